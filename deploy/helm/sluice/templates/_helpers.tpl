{{/*
The release's full name: the release name alone when it already holds the chart's name (release
"sluice" gives Deployment "sluice", Services "sluice-metrics" and "sluice-api").
*/}}
{{- define "sluice.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the controller's pods: they never change between upgrades. */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The standard labels of every object of the chart. */}}
{{- define "sluice.labels" -}}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sluice.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
What the schema cannot say clearly: rules across two values. Each failure names the values and the
fix.
*/}}
{{- define "sluice.validate" -}}
{{- if and .Values.prometheus.bearerTokenSecret .Values.prometheus.basicAuthSecret -}}
{{- fail "prometheus.bearerTokenSecret and prometheus.basicAuthSecret are both set: Prometheus takes one kind of credential, keep one" -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas is more than 1 with leaderElection.enabled=false: every replica would reconcile every Rollout; enable leader election or keep one replica" -}}
{{- end -}}
{{- if and (not .Values.api.insecure) (not .Values.api.tokensSecret) -}}
{{- fail "api.tokensSecret is empty: name the Secret holding tokens.yaml, or set api.insecure=true to serve the API without authentication" -}}
{{- end -}}
{{- end -}}

{{/*
"true" when a Secret for Prometheus (a credential, a CA, a client certificate) is mounted.
*/}}
{{- define "sluice.prometheusFiles" -}}
{{- with .Values.prometheus -}}
{{- if or .bearerTokenSecret .basicAuthSecret .tls.caSecret .tls.clientCertSecret -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The arguments of `sluice controller`. The probes and the Services use the two fixed ports, so the
listen addresses are not values.
*/}}
{{- define "sluice.args" -}}
- controller
- {{ printf "--prometheus-url=%s" .Values.prometheus.url | quote }}
- --listen=0.0.0.0:8080
- --api-listen=0.0.0.0:8443
- {{ printf "--log-format=%s" .Values.logFormat | quote }}
{{- if .Values.api.insecure }}
- --api-insecure
{{- else }}
- --api-tokens-file=/etc/sluice/api/tokens.yaml
{{- end }}
{{- if .Values.watchNamespaces }}
- {{ printf "--namespaces=%s" (join "," .Values.watchNamespaces) | quote }}
{{- end }}
{{- with .Values.shardSelector }}
- {{ printf "--shard-selector=%s" . | quote }}
{{- end }}
- {{ printf "--ingress-class=%s" .Values.ingressClass | quote }}
{{- if .Values.prometheus.bearerTokenSecret }}
- --prometheus-bearer-token-file=/etc/sluice/prometheus/token
{{- end }}
{{- if .Values.prometheus.basicAuthSecret }}
- --prometheus-basic-auth-file=/etc/sluice/prometheus/basic-auth
{{- end }}
{{- if .Values.prometheus.tls.caSecret }}
- --prometheus-ca-file=/etc/sluice/prometheus/ca.crt
{{- end }}
{{- if .Values.prometheus.tls.clientCertSecret }}
- --prometheus-cert-file=/etc/sluice/prometheus/tls.crt
- --prometheus-key-file=/etc/sluice/prometheus/tls.key
{{- end }}
{{- if .Values.prometheus.tls.insecureSkipVerify }}
- --prometheus-insecure-skip-verify
{{- end }}
{{- if .Values.leaderElection.enabled }}
- {{ printf "--leader-elect-lease-duration=%s" .Values.leaderElection.leaseDuration | quote }}
- {{ printf "--leader-elect-renew-deadline=%s" .Values.leaderElection.renewDeadline | quote }}
- {{ printf "--leader-elect-retry-period=%s" .Values.leaderElection.retryPeriod | quote }}
{{- else }}
- --leader-elect=false
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
The ports Prometheus listens on, for the NetworkPolicy: the values' list, else the port of
prometheus.url, else its scheme's.
*/}}
{{- define "sluice.prometheusPorts" -}}
{{- $ports := .Values.networkPolicy.prometheus.ports -}}
{{- if not $ports -}}
{{- $url := urlParse .Values.prometheus.url -}}
{{- $hostPort := splitList ":" $url.host -}}
{{- if gt (len $hostPort) 1 -}}
{{- $ports = list (last $hostPort | atoi) -}}
{{- else if eq $url.scheme "https" -}}
{{- $ports = list 443 -}}
{{- else -}}
{{- $ports = list 80 -}}
{{- end -}}
{{- end -}}
{{- range $ports }}
- port: {{ . }}
  protocol: TCP
{{- end }}
{{- end -}}

{{/*
The rules of exactly what sluice does, one rule per resource, no wildcard (derived from
src/controller/{mod,apply,reconcile,commands}.rs and src/api/commands.rs). The CRD itself is not
managed by the controller: installing it is the chart's (crds/) or yours.
*/}}
{{- define "sluice.rules" -}}
# Rollouts: watched by the controller (list, watch); the API reads one again when a command raced a
# change (get); finalizer and command annotations are merge and JSON patches (patch).
- apiGroups: [sluice.dev]
  resources: [rollouts]
  verbs: [get, list, watch, patch]
# The status is replaced whole, guarded by its resourceVersion: PUT on the subresource (update).
- apiGroups: [sluice.dev]
  resources: [rollouts/status]
  verbs: [update]
# Deployments: targets and slots are watched (list, watch); the slots <app>-blue and <app>-green are
# server-side applied (patch, and create for the apply that makes one); the target is scaled, its
# template restored and its images set by the API, all by patch. sluice deletes none: slots go
# with their Rollout by garbage collection.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, create, patch]
# ControllerRevisions: each revision's pod template, as written, is kept in one the Rollout owns
# (watched by label, created once, deleted when the revision is forgotten).
- apiGroups: [apps]
  resources: [controllerrevisions]
  verbs: [list, watch, create, delete]
# Services: watched; <svc> is created when missing and its selector switched by a JSON patch;
# <svc>-canary is server-side applied (patch, create); canary Services the spec no longer names are
# deleted.
- apiGroups: [""]
  resources: [services]
  verbs: [list, watch, create, patch, delete]
# Ingresses: the user's are watched (their rules are copied, never written); <ingress>-<svc>-canary
# is server-side applied (patch, create) and deleted when traffic goes back to stable.
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [list, watch, create, patch, delete]
# Events about Rollouts: kube-runtime's Recorder creates one per transition and patches a repeat's
# series.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
