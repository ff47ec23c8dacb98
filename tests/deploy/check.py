"""Checks of what installs sluice on a real cluster: the Helm chart, the manifests rendered from it,
the Dockerfile and the example Rollouts. Nothing here needs a cluster or a container engine.

    target/py/bin/python tests/deploy/check.py CHECK      (scripts/ensure-python-tools installs them)

CHECK is one of lint, template, validate, schema, manifests, dockerfile, examples, or all. Each
prints what it found, one line each, and exits 0 when everything holds, 1 otherwise.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import dockerfile
import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
sys.path.insert(0, str(Path(__file__).resolve().parent))
import chart  # noqa: E402  (the chart through Helm 4, shared with scripts/render-manifests)

ROOT = chart.ROOT
HERE = Path(__file__).resolve().parent
KUBE_VERSIONS = ["1.30", "1.33"]  # the oldest the chart allows; the one k8s-openapi's types are (v1_33)
SLUICE_BIN = Path(os.environ.get("SLUICE_BIN", ROOT / "target" / "debug" / "sluice"))
FIXTURE = ROOT / "tests" / "sandbox" / "fixtures" / "erp-system.yaml"


class Report:
    """Findings of one check: every line printed, any failure makes the exit code 1."""

    def __init__(self, name: str):
        self.name = name
        self.failures = 0

    def ok(self, message: str) -> None:
        print(f"ok    {message}")

    def fail(self, message: str) -> None:
        self.failures += 1
        print(f"FAIL  {message}")

    def note(self, message: str) -> None:
        print(f"note  {message}")

    def expect(self, holds: bool, message: str) -> bool:
        (self.ok if holds else self.fail)(message)
        return holds


# The two value sets every check renders: the defaults (what deploy/manifests holds) and the other
# shape (two namespaces with Roles, one shard, scraped, with dashboards, a NetworkPolicy and two
# replicas).
def value_sets() -> dict[str, dict | None]:
    return {
        "default values": None,
        "values-other.yaml": chart.load_values(HERE / "values-other.yaml"),
    }


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


# --- lint -------------------------------------------------------------------------------------


def check_lint(r: Report) -> None:
    """helm lint --strict of both value sets, as seen by each Kubernetes version."""
    for label, values in value_sets().items():
        for version in KUBE_VERSIONS:
            found = chart.lint(values, kube_version=f"v{version}.0")
            # Under --strict a warning fails like an error; an info (e.g. "icon is recommended")
            # does not.
            bad = [m for m in found["messages"] if m["severity"] >= 2]
            for m in found["messages"]:
                if m["severity"] < 2:
                    r.note(f"{label}, {version}: {m['path']}: {m['error']}")
            detail = "; ".join(f"{m['path']}: {m['error'].strip()}" for m in bad)
            r.expect(not bad and not found["errors"],
                     f"helm lint --strict, {label}, Kubernetes {version}" + (f": {detail}" if detail else ""))


# --- template ---------------------------------------------------------------------------------

# What sluice does to each resource (src/controller/*.rs, src/api/commands.rs): the chart must grant
# exactly this, one rule per resource. A change here is a change of what the controller may do.
EXPECTED_RULES = [
    ("sluice.dev", "rollouts", ["get", "list", "watch", "patch"]),
    ("sluice.dev", "rollouts/status", ["update"]),
    ("apps", "deployments", ["list", "watch", "create", "patch"]),
    ("apps", "controllerrevisions", ["list", "watch", "create", "delete"]),
    ("", "services", ["list", "watch", "create", "patch", "delete"]),
    ("networking.k8s.io", "ingresses", ["list", "watch", "create", "patch", "delete"]),
    ("events.k8s.io", "events", ["create", "patch"]),
]

# Leader election (src/leader/mod.rs): the Lease read at every try and watched, created once,
# renewed and released by update; in the release's namespace only.
LEASE_RULES = [("coordination.k8s.io", "leases", ["get", "list", "watch", "create", "update"])]
LEADER_ELECTION = "sluice-leader-election"

# `sluice controller`'s arguments with the default values, in the chart's order.
DEFAULT_ARGS = [
    "controller",
    "--prometheus-url=http://prometheus-operated.monitoring.svc:9090",
    "--listen=0.0.0.0:8080",
    "--api-listen=0.0.0.0:8443",
    "--log-format=json",
    "--api-tokens-file=/etc/sluice/api/tokens.yaml",
    "--ingress-class=nginx",
    "--leader-elect-lease-duration=15s",
    "--leader-elect-renew-deadline=10s",
    "--leader-elect-retry-period=2s",
]


def check_rules(r: Report, where: str, rules: list[dict], expected: list = EXPECTED_RULES) -> None:
    flat = [(rule["apiGroups"], rule["resources"], rule["verbs"]) for rule in rules]
    r.expect(all(len(g) == 1 and len(res) == 1 for g, res, _ in flat),
             f"{where}: one API group and one resource per rule")
    r.expect(not any("*" in g + res + v for g, res, v in flat), f"{where}: no wildcard")
    got = [(g[0], res[0], v) for g, res, v in flat]
    r.expect(got == expected, f"{where}: exactly the verbs sluice uses" +
             ("" if got == expected else f", got {got}"))


def check_leader_election(r: Report, objects: list[dict], c: dict) -> None:
    """A Role for the Leases in the release's namespace, bound to sluice's ServiceAccount, and the
    pod's namespace and name given to the controller."""
    roles = [o for o in by_kind(objects, "Role") if o["metadata"]["name"] == LEADER_ELECTION]
    bindings = [o for o in by_kind(objects, "RoleBinding") if o["metadata"]["name"] == LEADER_ELECTION]
    if not r.expect(len(roles) == 1 and len(bindings) == 1, f"one Role and RoleBinding {LEADER_ELECTION}"):
        return
    (role,), (binding,) = roles, bindings
    r.expect(role["metadata"]["namespace"] == chart.NAMESPACE and binding["metadata"]["namespace"] == chart.NAMESPACE,
             f"{LEADER_ELECTION} in the release's namespace")
    check_rules(r, f"Role {LEADER_ELECTION}", role["rules"], LEASE_RULES)
    r.expect(binding["subjects"] == [{"kind": "ServiceAccount", "name": "sluice", "namespace": "sluice"}]
             and binding["roleRef"]["name"] == LEADER_ELECTION,
             f"RoleBinding {LEADER_ELECTION} to ServiceAccount sluice/sluice")
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c.get("env", [])}
    r.expect(env.get("POD_NAMESPACE") == "metadata.namespace" and env.get("POD_NAME") == "metadata.name",
             f"POD_NAMESPACE and POD_NAME from the downward API, got {env}")


def scope_roles(objects: list[dict], kind: str) -> list[dict]:
    """The Roles (or RoleBindings) of the watched namespaces: all but leader election's."""
    return [o for o in by_kind(objects, kind) if o["metadata"]["name"] != LEADER_ELECTION]


def container(objects: list[dict]) -> tuple[dict, dict]:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    (sluice,) = [c for c in pod["containers"] if c["name"] == "sluice"]
    return pod, sluice


def check_security(r: Report, pod: dict, c: dict) -> None:
    podsc, sc = pod["securityContext"], c["securityContext"]
    r.expect(podsc.get("runAsNonRoot") is True and sc.get("runAsNonRoot") is True, "runAsNonRoot")
    r.expect(podsc.get("runAsUser") == 65532 and podsc.get("runAsGroup") == 65532, "uid/gid 65532")
    r.expect(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    r.expect(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    r.expect(sc.get("capabilities") == {"drop": ["ALL"]}, "capabilities drop ALL")
    r.expect(podsc.get("seccompProfile") == {"type": "RuntimeDefault"}, "seccompProfile RuntimeDefault")
    r.expect(pod.get("automountServiceAccountToken") is True,
             "automountServiceAccountToken (sluice needs the API)")


def check_probes_and_ports(r: Report, c: dict, services: list[dict]) -> None:
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    r.expect(ports == {"http-metrics": 8080, "http-api": 8443}, f"ports {ports}")
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        get = c.get(probe, {}).get("httpGet", {})
        r.expect(get == {"path": path, "port": "http-metrics"}, f"{probe} on {path} of http-metrics")
    names = {s["metadata"]["name"]: s["spec"]["ports"] for s in services}
    want = {"sluice-metrics": ("http-metrics", 8080), "sluice-api": ("http-api", 8443)}
    for name, (port_name, port) in want.items():
        (p,) = names.get(name, [{}])
        r.expect(p.get("port") == port and p.get("targetPort") == port_name,
                 f"Service {name} port {port} to {port_name}")


def check_default(r: Report, objects: list[dict]) -> None:
    pod, c = container(objects)
    r.expect(c["image"] == "sluice:0.1.0", f"image {c['image']} (tag: the appVersion)")
    r.expect(c["args"] == DEFAULT_ARGS, f"args {' '.join(c['args'])}")
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    r.expect(mounts.get("/etc/sluice/api", {}).get("readOnly") is True, "API tokens mounted read-only")
    (tokens,) = [v for v in pod["volumes"] if v["name"] == "api-tokens"]
    r.expect(tokens["secret"]["secretName"] == "sluice-api-tokens" and
             tokens["secret"]["items"] == [{"key": "tokens.yaml", "path": "tokens.yaml"}],
             "tokens.yaml from Secret sluice-api-tokens")
    r.expect(c["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
             "resources 100m/128Mi, limit 512Mi")
    r.expect(one(objects, "PodDisruptionBudget")["spec"].get("maxUnavailable") == 1,
             "one replica: the PodDisruptionBudget lets a drain evict it (maxUnavailable 1)")
    r.expect(not scope_roles(objects, "Role") and not scope_roles(objects, "RoleBinding"),
             "all namespaces: no Role but leader election's")
    check_leader_election(r, objects, c)
    check_rules(r, "ClusterRole", one(objects, "ClusterRole")["rules"])
    binding = one(objects, "ClusterRoleBinding")
    r.expect(binding["subjects"] == [{"kind": "ServiceAccount", "name": "sluice", "namespace": "sluice"}],
             "ClusterRoleBinding to ServiceAccount sluice/sluice")
    r.expect(not by_kind(objects, "ServiceMonitor") and not by_kind(objects, "NetworkPolicy"),
             "no ServiceMonitor, no NetworkPolicy by default")


def check_other(r: Report, objects: list[dict]) -> None:
    _, c = container(objects)
    r.expect("--prometheus-bearer-token-file=/etc/sluice/prometheus/token" in c["args"], "bearer token file flag")
    tls_flags = ["--prometheus-ca-file=/etc/sluice/prometheus/ca.crt",
                 "--prometheus-cert-file=/etc/sluice/prometheus/tls.crt",
                 "--prometheus-key-file=/etc/sluice/prometheus/tls.key"]
    r.expect(all(f in c["args"] for f in tls_flags), "prometheus.tls: CA, client certificate and key flags")
    pod, _ = container(objects)
    (prometheus,) = [v for v in pod["volumes"] if v["name"] == "prometheus-auth"] or [{}]
    mounted = {(s["secret"]["name"], i["key"], i["path"])
               for s in prometheus.get("projected", {}).get("sources", []) for i in s["secret"]["items"]}
    r.expect(mounted == {("sluice-prometheus", "token", "token"), ("prometheus-ca", "ca.crt", "ca.crt"),
                         ("sluice-prometheus-client", "tls.crt", "tls.crt"),
                         ("sluice-prometheus-client", "tls.key", "tls.key")},
             f"the token, the CA and the client certificate in /etc/sluice/prometheus, got {sorted(mounted)}")
    r.expect(c["args"][-1] == "--api-rate-limit=50", "extraArgs last")
    r.expect("--namespaces=erp-system,shop" in c["args"], "watchNamespaces: --namespaces=erp-system,shop")
    r.expect("--shard-selector=sluice.dev/shard=a" in c["args"], "shardSelector: --shard-selector=sluice.dev/shard=a")
    check_namespaced_rbac(r, objects, ["erp-system", "shop"])
    r.expect(one(objects, "Deployment")["spec"]["replicas"] == 2, "replicas 2")
    r.expect("--leader-elect-lease-duration=30s" in c["args"], "leaderElection.leaseDuration: 30s")
    check_leader_election(r, objects, c)
    r.expect(one(objects, "PodDisruptionBudget")["spec"].get("minAvailable") == 1, "two replicas: minAvailable 1")
    check_service_monitor(r, objects)
    check_dashboards(r, objects)
    check_network_policy(r, objects)


def check_namespaced_rbac(r: Report, objects: list[dict], namespaces: list[str]) -> None:
    """watchNamespaces: a Role and its RoleBinding in each listed namespace, nothing cluster-wide."""
    r.expect(not by_kind(objects, "ClusterRole") and not by_kind(objects, "ClusterRoleBinding"),
             "some namespaces: no ClusterRole, no ClusterRoleBinding")
    roles = scope_roles(objects, "Role")
    bindings = scope_roles(objects, "RoleBinding")
    for kind, found in [("Role", roles), ("RoleBinding", bindings)]:
        where = sorted(o["metadata"].get("namespace", "") for o in found)
        r.expect(where == sorted(namespaces), f"one {kind} in each of {', '.join(namespaces)} (found in {where})")
    for namespace in namespaces:
        (role,) = [o for o in roles if o["metadata"].get("namespace") == namespace] or [None]
        (binding,) = [o for o in bindings if o["metadata"].get("namespace") == namespace] or [None]
        if role is None or binding is None:
            continue
        check_rules(r, f"Role {namespace}/{role['metadata']['name']}", role["rules"])
        r.expect(binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                        "name": role["metadata"]["name"]},
                 f"RoleBinding {namespace}/{binding['metadata']['name']} to Role {role['metadata']['name']}")
        r.expect(binding["subjects"] == [{"kind": "ServiceAccount", "name": "sluice", "namespace": "sluice"}],
                 f"RoleBinding {namespace}/{binding['metadata']['name']} to ServiceAccount sluice/sluice")


def check_service_monitor(r: Report, objects: list[dict]) -> None:
    monitor = one(objects, "ServiceMonitor")
    metrics = one(objects, "Service", "sluice-metrics")
    selector = monitor["spec"]["selector"]["matchLabels"]
    labels = metrics["metadata"]["labels"]
    r.expect(all(labels.get(k) == v for k, v in selector.items()), "ServiceMonitor selects sluice-metrics")
    api_labels = one(objects, "Service", "sluice-api")["metadata"]["labels"]
    r.expect(not all(api_labels.get(k) == v for k, v in selector.items()), "and not sluice-api")
    (endpoint,) = monitor["spec"]["endpoints"]
    scraped = (endpoint["port"], endpoint["path"], endpoint["interval"])
    r.expect(scraped == ("http-metrics", "/metrics", "15s"), "ServiceMonitor scrapes http-metrics /metrics every 15s")
    r.expect(monitor["metadata"]["labels"].get("release") == "kube-prometheus-stack",
             "ServiceMonitor labels from values")


def check_dashboards(r: Report, objects: list[dict]) -> None:
    maps = [o for o in by_kind(objects, "ConfigMap") if o["metadata"]["labels"].get("grafana_dashboard") == "1"]
    files = {p.name: p.read_text() for p in sorted((ROOT / "dashboards").glob("*.json"))}
    data = {k: v for m in maps for k, v in m["data"].items()}
    r.expect(data == files, f"dashboards ConfigMaps hold dashboards/*.json as they are ({', '.join(files)})")
    r.expect({m["metadata"]["namespace"] for m in maps} == {"monitoring"}, "dashboards in dashboards.namespace")


def check_network_policy(r: Report, objects: list[dict]) -> None:
    spec = one(objects, "NetworkPolicy")["spec"]
    ingress_ports = sorted(p["port"] for rule in spec["ingress"] for p in rule["ports"])
    r.expect(ingress_ports == [8080, 8443] and all("from" in rule for rule in spec["ingress"]),
             "NetworkPolicy: in on 8080 and 8443 from the given peers")
    egress_ports = sorted({p["port"] for rule in spec["egress"] for p in rule["ports"]})
    r.expect(egress_ports == [53, 443, 6443, 9091],
             f"NetworkPolicy: out to the API server, DNS and Prometheus {egress_ports}")


def check_insecure(r: Report) -> None:
    objects = chart.objects(chart.template({"api": {"insecure": True}}))
    pod, c = container(objects)
    r.expect("--api-insecure" in c["args"] and not any(a.startswith("--api-tokens-file") for a in c["args"]),
             "api.insecure: --api-insecure, no tokens file")
    r.expect(not pod.get("volumes"), "api.insecure: no Secret to wait for")


def check_template(r: Report) -> None:
    """helm template of both value sets: the controller's pod, its access, its Services."""
    for label, values in value_sets().items():
        print(f"-- {label}")
        objects = chart.objects(chart.template(values))
        r.note("rendered " + ", ".join(f"{o['kind']}/{o['metadata']['name']}" for o in objects))
        pod, c = container(objects)
        check_security(r, pod, c)
        check_probes_and_ports(r, c, by_kind(objects, "Service"))
        labels = one(objects, "Deployment")["metadata"]["labels"]
        r.expect({"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                  "app.kubernetes.io/managed-by"} <= set(labels), "standard labels")
        (check_default if values is None else check_other)(r, objects)
    print("-- api.insecure=true")
    check_insecure(r)


# --- validate ---------------------------------------------------------------------------------


def kube_validate(r: Report, where: str, objects: list[dict]) -> None:
    """Each object against the strict schema of each Kubernetes version (no unknown field).

    kubernetes-validate has schemas of the built-in kinds only: for a custom resource (the
    ServiceMonitor) it has none, and its CLI only warns. That is reported here as skipped; the
    template check looks at the ServiceMonitor's fields.
    """
    for version in KUBE_VERSIONS:
        passed, skipped = 0, set()
        for obj in objects:
            kind = f"{obj['kind']}/{obj['metadata']['name']}"
            try:
                kubernetes_validate.validate(obj, version, strict=True)
                passed += 1
            except kubernetes_validate.ValidationError as e:
                r.fail(f"{where}, {version}: {kind}: {'.'.join(map(str, e.path))}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError:
                skipped.add(f"{obj['kind']} ({obj['apiVersion']})")
        r.expect(passed > 0, f"{where}: {passed} objects pass Kubernetes {version}'s strict schemas")
        for kind in sorted(skipped):
            r.note(f"{where}, {version}: skipped {kind}: a custom resource, no schema in kubernetes-validate")


def manifest_objects() -> list[dict]:
    files = sorted(p for p in chart.MANIFESTS.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    return [o for p in files for o in chart.objects(p.read_text())]


def check_validate(r: Report) -> None:
    """kubernetes-validate --strict of both renderings and of deploy/manifests."""
    for label, values in value_sets().items():
        kube_validate(r, label, chart.objects(chart.template(values)))
    kube_validate(r, "deploy/manifests", manifest_objects())


# --- schema -----------------------------------------------------------------------------------

# Bad values, and what Helm's refusal must say (the key, and the rule it broke).
BAD_VALUES = [
    ({"logFormat": "xml"}, "at '/logFormat': value must be one of 'text', 'json'"),
    ({"replicas": 0}, "at '/replicas': minimum: got 0, want 1"),
    ({"watchNamespaces": ["ERP_System"]}, "at '/watchNamespaces/0': 'ERP_System' does not match pattern"),
    ({"watchNamespaces": ["Not_A_Namespace"]}, "at '/watchNamespaces/0': 'Not_A_Namespace' does not match pattern"),
    ({"watchNamespaces": ["shop", "shop"]}, "at '/watchNamespaces'"),
    ({"shardSelector": ["sluice.dev/shard=a"]}, "at '/shardSelector'"),
    ({"replica": 2}, "additional properties 'replica' not allowed"),
    ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy': value must be one of"),
    ({"prometheus": {"url": "prometheus:9090"}}, "at '/prometheus/url'"),
    ({"serviceMonitor": {"interval": "30 seconds"}}, "at '/serviceMonitor/interval'"),
    ({"extraArgs": ["-v"]}, "at '/extraArgs/0'"),
    ({"networkPolicy": {"apiServer": {"port": [443]}}}, "additional properties 'port' not allowed"),
    # Rules across two values: the chart's own `fail`, at render time.
    ({"prometheus": {"tls": {"caFile": "/ca.crt"}}}, "additional properties 'caFile' not allowed"),
    ({"prometheus": {"bearerTokenSecret": "a", "basicAuthSecret": "b"}}, "both set"),
    ({"api": {"tokensSecret": ""}}, "api.tokensSecret is empty"),
    ({"replicas": 2, "leaderElection": {"enabled": False}}, "enable leader election or keep one replica"),
    ({"leaderElection": {"leaseDuration": "1.5s"}}, "at '/leaderElection/leaseDuration'"),
    ({"leaderElection": {"enable": True}}, "additional properties 'enable' not allowed"),
]


SCHEMA_PREAMBLE = "values don't meet the specifications of the schema(s) in the following chart(s): sluice: "


def refusal(values: dict) -> str | None:
    """Helm's message when `helm template` refuses the values, None when it renders them."""
    try:
        chart.template(values)
    except helm.HelmError as e:
        return str(e)
    return None


def check_schema(r: Report) -> None:
    """helm template refuses bad values with a message that names the value and the rule."""
    for values, expected in BAD_VALUES:
        message = refusal(values)
        shown = json.dumps(values)
        if message is None:
            r.fail(f"{shown} was accepted")
        else:
            # Helm's preamble is the same for every schema refusal; the rest is the finding.
            first = " ".join(message.split()).replace(SCHEMA_PREAMBLE, "")[:140]
            r.expect(expected in message, f"{shown} refused: {first}")
    for label, values in value_sets().items():
        r.expect(refusal(values) is None, f"{label} accepted")


# --- manifests --------------------------------------------------------------------------------


def compare_dirs(r: Report, want: dict[str, str], have_dir: Path, what: str) -> None:
    have = {p.name: p.read_text() for p in have_dir.iterdir() if p.is_file()}
    for name in sorted(set(want) | set(have)):
        if name not in have:
            r.fail(f"{what}: {name} missing")
        elif name not in want:
            r.fail(f"{what}: {name} should not be there")
        else:
            r.expect(want[name] == have[name], f"{what}/{name} up to date")


def check_crd(r: Report) -> None:
    if not SLUICE_BIN.exists():
        r.fail(f"no binary at {SLUICE_BIN} to compare the CRD with (cargo build, or set SLUICE_BIN)")
        return
    printed = subprocess.run([str(SLUICE_BIN), "crd"], check=True, capture_output=True).stdout
    shipped = (chart.CHART / "crds" / chart.CRD_FILE).read_bytes()
    r.expect(printed == shipped, f"crds/{chart.CRD_FILE} is `sluice crd` byte for byte")


def check_kustomize(r: Report) -> None:
    """kubectl apply -k and -f see the same objects; -f meets the Namespace first."""
    objects = manifest_objects()
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    r.expect(not any(k == "Kustomization" for k, _ in names), "kubectl apply -f reads no Kustomization as an object")
    first_namespaced = next(i for i, o in enumerate(objects) if "namespace" in o["metadata"])
    r.expect(objects[0]["kind"] == "Namespace" or
             any(o["kind"] == "Namespace" for o in objects[:first_namespaced]),
             "kubectl apply -f: the Namespace comes before what lives in it")
    if shutil.which("kubectl") is None:
        r.note("no kubectl: kubectl kustomize not tried")
        return
    built = subprocess.run(["kubectl", "kustomize", str(chart.MANIFESTS)], capture_output=True, text=True)
    if not r.expect(built.returncode == 0, f"kubectl kustomize deploy/manifests {built.stderr.strip()}".strip()):
        return
    kustomized = sorted((o["kind"], o["metadata"]["name"]) for o in chart.objects(built.stdout))
    r.expect(kustomized == sorted(names), f"-k and -f apply the same {len(names)} objects")


def check_manifests(r: Report) -> None:
    """deploy/manifests, the chart's dashboards and its CRD are what scripts/render-manifests makes."""
    compare_dirs(r, chart.manifest_files(), chart.MANIFESTS, "deploy/manifests")
    dashboards = {p.name: p.read_text() for p in (ROOT / "dashboards").glob("*.json")}
    compare_dirs(r, dashboards, chart.CHART / "dashboards", "deploy/helm/sluice/dashboards")
    check_crd(r)
    check_kustomize(r)


# --- dockerfile -------------------------------------------------------------------------------


def stages(commands: tuple) -> list[list]:
    """The Dockerfile's commands, cut into stages at each FROM."""
    out: list[list] = []
    for c in commands:
        if c.cmd == "FROM":
            out.append([])
        if out:
            out[-1].append(c)
    return out


def last(stage: list, cmd: str):
    found = [c for c in stage if c.cmd == cmd]
    return found[-1] if found else None


def check_final_stage(r: Report, final: list) -> None:
    user = last(final, "USER")
    uid = user.value[0].split(":")[0] if user else "root"
    r.expect(uid.isdigit() and int(uid) != 0, f"final USER {user.value[0] if user else '(none: root)'} is not root")
    entry = last(final, "ENTRYPOINT")
    r.expect(entry is not None and entry.json and list(entry.value) == ["sluice"], 'ENTRYPOINT ["sluice"]')
    env = dict(zip(*[iter(last(final, "ENV").value)] * 2)) if last(final, "ENV") else {}
    r.expect("/usr/local/bin" in env.get("PATH", "").split(":"), "PATH finds /usr/local/bin/sluice")


def check_build_stage(r: Report, build: list) -> None:
    release = subprocess.run([str(ROOT / "scripts" / "build-release"), "--print"],
                             check=True, capture_output=True, text=True).stdout.strip()
    cargo = [c.value[0] for c in build if c.cmd == "RUN" and c.value[0].startswith("cargo ")]
    r.expect(cargo == [release], f"the build runs `{release}` (scripts/build-release), found {cargo}")
    base = build[0].value[0]
    has = re.match(r"rust:(\d+)\.(\d+)", base)
    needs = re.search(r'rust-version = "(\d+)\.(\d+)"', (ROOT / "Cargo.toml").read_text())
    meets = bool(has and needs) and tuple(map(int, has.groups())) >= tuple(map(int, needs.groups()))
    r.expect(meets, f"builder {base} meets the workspace's rust-version {needs and '.'.join(needs.groups())}")


def check_rootfs(r: Report) -> None:
    """The final stage's files, made from the debug binary here, run it as 65532 in a chroot."""
    if os.geteuid() != 0:
        r.note("not root: the image's root filesystem is not tried in a chroot")
        return
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # the image's root, which 65532 must be able to enter
        subprocess.run([str(ROOT / "deploy" / "image-rootfs"), str(SLUICE_BIN), tmp], check=True)
        files = sorted(str(p.relative_to(tmp)) for p in Path(tmp).rglob("*") if p.is_file())
        r.note("image files: " + ", ".join(files))
        ran = subprocess.run(["chroot", "--userspec=65532:65532", tmp, "/usr/local/bin/sluice", "crd"],
                             capture_output=True)
        shipped = (chart.CHART / "crds" / chart.CRD_FILE).read_bytes()
        r.expect(ran.returncode == 0 and ran.stdout == shipped,
                 f"sluice runs as 65532 on those files alone {ran.stderr.decode().strip()}".strip())


def check_dockerfile(r: Report) -> None:
    """deploy/Dockerfile, read with BuildKit's own parser."""
    parts = stages(dockerfile.parse_file(str(ROOT / "deploy" / "Dockerfile")))
    r.expect(len(parts) >= 2, f"multi-stage ({len(parts)} stages)")
    check_build_stage(r, parts[0])
    final = parts[-1]
    check_final_stage(r, final)
    copies = [c.original for c in final if c.cmd == "COPY"]
    r.expect(copies == ["COPY --from=build /rootfs/ /"], f"the final stage takes only the assembled root {copies}")
    check_rootfs(r)


# --- examples ---------------------------------------------------------------------------------


def crd_schema(strict: bool) -> dict:
    crd = yaml.safe_load((chart.CHART / "crds" / chart.CRD_FILE).read_text())
    schema = copy.deepcopy(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    # What every object has beside its spec (the API server checks metadata on its own).
    schema["properties"].update({"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                 "metadata": {"type": "object"}})
    return close_objects(schema) if strict else schema


def close_objects(schema: dict) -> dict:
    """additionalProperties: false wherever the schema lists properties and keeps no unknown
    fields: the API server drops unknown fields, and `kubectl apply` (field validation strict)
    refuses them, so an example with a misspelt field must fail here too."""
    if not isinstance(schema, dict):
        return schema
    if "properties" in schema and "additionalProperties" not in schema and \
            not schema.get("x-kubernetes-preserve-unknown-fields"):
        schema["additionalProperties"] = False
    for sub in schema.get("properties", {}).values():
        close_objects(sub)
    if isinstance(schema.get("items"), dict):
        close_objects(schema["items"])
    return schema


def rollout_errors(doc: dict, validator) -> list[str]:
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
              for e in validator.iter_errors(doc)]
    if doc.get("apiVersion") != "sluice.dev/v1alpha1" or doc.get("kind") != "Rollout":
        errors.append(f"not a sluice.dev/v1alpha1 Rollout: {doc.get('apiVersion')} {doc.get('kind')}")
    meta = doc.get("metadata", {})
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", str(meta.get("name", ""))) or \
            not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", str(meta.get("namespace", ""))):
        errors.append(f"metadata name/namespace not DNS labels: {meta}")
    return errors


def example_files() -> list[Path]:
    files = sorted((ROOT / "deploy" / "examples").rglob("*.yaml"))
    return [p for p in files if p.name != "kustomization.yaml"]


def check_against_fixture(r: Report, rollouts: dict[str, dict]) -> None:
    """Each ERP Rollout names what the ERP system really has, as the controller will read it."""
    world = chart.objects(FIXTURE.read_text())
    named = {(o["kind"], o["metadata"]["name"]): o for o in world}
    for name, ro in sorted(rollouts.items()):
        spec = ro["spec"]
        problems = []
        if ("Deployment", spec["targetRef"]["name"]) not in named:
            problems.append(f"no Deployment {spec['targetRef']['name']}")
        svc = named.get(("Service", spec["service"]["name"]))
        if not svc or spec["service"].get("port", 80) not in [p["port"] for p in svc["spec"]["ports"]]:
            problems.append(f"no Service {spec['service']['name']} port {spec['service'].get('port', 80)}")
        canary = spec["strategy"].get("canary")
        metrics = [m["name"] for m in spec.get("analysis", {}).get("metrics", [])]
        if canary:
            problems += ingress_problems(named, canary["ingressRef"]["name"], spec["service"])
        elif any(not m.startswith("app-") for m in metrics):
            problems.append(f"blue/green judged on ingress metrics {metrics}")
        r.expect(not problems, f"erp-system/{name} fits the ERP system" + "".join(f"; {p}" for p in problems))


def ingress_problems(named: dict, ingress: str, service: dict) -> list[str]:
    found = named.get(("Ingress", ingress))
    if not found:
        return [f"no Ingress {ingress}"]
    rules = [(rule.get("host"), path["path"]) for rule in found["spec"]["rules"]
             for path in rule["http"]["paths"]
             if path["backend"]["service"]["name"] == service["name"]
             and path["backend"]["service"]["port"]["number"] == service.get("port", 80)]
    if not rules:
        return [f"Ingress {ingress} has no rule for {service['name']}"]
    return [f"rule {path} has no host (ingress-nginx would count none of it)" for host, path in rules if not host]


def check_kustomization(r: Report, directory: Path) -> None:
    listed = yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"]
    present = sorted(p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
    r.expect(sorted(listed) == present, f"{directory.relative_to(ROOT)}/kustomization.yaml lists every Rollout")


def check_examples(r: Report) -> None:
    """Every example Rollout validates against the CRD's schema, closed to unknown fields."""
    validator = jsonschema.Draft7Validator(crd_schema(strict=True))
    erp: dict[str, dict] = {}
    for path in example_files():
        for doc in chart.objects(path.read_text()):
            errors = rollout_errors(doc, validator)
            where = str(path.relative_to(ROOT))
            r.expect(not errors, f"{where}: Rollout {doc.get('metadata', {}).get('name')}" +
                     ("" if not errors else ": " + "; ".join(errors)))
            if path.parent.name == "erp-system":
                erp[doc["metadata"]["name"]] = doc
    wanted = {"gateway", "identity", "finance", "inventory", "sales", "procurement", "production", "reporting"}
    r.expect(set(erp) == wanted, f"the whole ERP system has a Rollout ({', '.join(sorted(erp))})")
    strategies = {n: "canary" if "canary" in d["spec"]["strategy"] else "blueGreen" for n, d in erp.items()}
    r.expect(strategies.get("gateway") == strategies.get("reporting") == "canary" and
             strategies.get("finance") == "blueGreen", "gateway and reporting canaries, finance blue/green")
    check_against_fixture(r, erp)
    check_kustomization(r, ROOT / "deploy" / "examples" / "erp-system")


CHECKS = {
    "lint": check_lint,
    "template": check_template,
    "validate": check_validate,
    "schema": check_schema,
    "manifests": check_manifests,
    "dockerfile": check_dockerfile,
    "examples": check_examples,
}


def run(name: str) -> int:
    r = Report(name)
    print(f"== {name}: {CHECKS[name].__doc__.splitlines()[0]}")
    try:
        CHECKS[name](r)
    except (AssertionError, KeyError, ValueError, helm.HelmError, subprocess.CalledProcessError) as e:
        r.fail(f"{type(e).__name__}: {e}")
    print(f"== {name}: {'passed' if not r.failures else f'{r.failures} failed'}")
    return 1 if r.failures else 0


def main(argv: list[str]) -> int:
    names = list(CHECKS) if argv == ["all"] else argv
    if len(names) < 1 or any(n not in CHECKS for n in names):
        print(f"usage: check.py {'|'.join(CHECKS)}|all", file=sys.stderr)
        return 2
    return max(run(n) for n in names)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
