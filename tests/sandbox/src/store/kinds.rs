//! The resource kinds the sandbox serves: the built-ins sluice and kubectl need, plus every kind a
//! CustomResourceDefinition declares while it exists.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::validate::crd::CustomSchema;

/// One served resource (`deployments.apps`), across its served versions.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceKind {
    /// "" for the core group.
    pub group: String,
    /// Served versions; the first one is the preferred version.
    pub versions: Vec<String>,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    pub scale_subresource: bool,
    /// `additionalPrinterColumns` of a CRD: (name, type, jsonPath), shown by `kubectl get`.
    pub printer_columns: Vec<PrinterColumn>,
    /// Declared by a CRD: the server then refuses strategic merge patches, as the real one does.
    pub custom: bool,
    /// A custom kind's schema (its storage version's), enforced on every write.
    pub schema: Option<Arc<CustomSchema>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub column_type: String,
    pub json_path: String,
}

/// How the store names a resource: (group, plural).
pub type ResourceKey = (String, String);

impl ResourceKind {
    pub fn key(&self) -> ResourceKey {
        (self.group.clone(), self.plural.clone())
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn preferred_version(&self) -> &str {
        // Every kind is built with at least one served version (builtins below, CRDs checked on
        // registration), so the first element exists.
        &self.versions[0]
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// Verbs as discovery reports them.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short_names: &[&str],
    status: bool,
    scale: bool,
) -> ResourceKind {
    ResourceKind {
        group: group.into(),
        versions: vec![version.into()],
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        status_subresource: status,
        scale_subresource: scale,
        printer_columns: Vec::new(),
        custom: false,
        schema: None,
    }
}

/// The built-in kinds (the list of issue 2, which is what sluice, kubectl and Helm-style manifests use).
pub fn builtins() -> Vec<ResourceKind> {
    vec![
        builtin(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            &["ns"],
            true,
            false,
        ),
        builtin("", "v1", "Service", "services", true, &["svc"], true, false),
        builtin(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            &["cm"],
            false,
            false,
        ),
        builtin("", "v1", "Secret", "secrets", true, &[], false, false),
        // Installed by sluice's chart and manifests; nothing in the sandbox evicts pods.
        builtin(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            &["pdb"],
            true,
            false,
        ),
        builtin("", "v1", "Event", "events", true, &["ev"], false, false),
        builtin(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            false,
            false,
        ),
        builtin(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            &["deploy"],
            true,
            true,
        ),
        builtin(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            true,
            &[],
            false,
            false,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            true,
            &["ing"],
            true,
            false,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            false,
            &[],
            false,
            false,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            false,
            false,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            &[],
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            false,
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
            false,
        ),
    ]
}

/// The registry: which (group, plural) exist, and the lookups discovery and routing need.
#[derive(Debug, Default, Clone)]
pub struct Kinds {
    /// Shared: every request takes a copy of the registry, and kinds change only with CRDs.
    by_key: Arc<BTreeMap<ResourceKey, Arc<ResourceKind>>>,
}

impl Kinds {
    pub fn with_builtins() -> Self {
        let mut kinds = Kinds::default();
        for kind in builtins() {
            kinds.insert(kind);
        }
        kinds
    }

    pub fn insert(&mut self, kind: ResourceKind) {
        Arc::make_mut(&mut self.by_key).insert(kind.key(), Arc::new(kind));
    }

    pub fn remove(&mut self, key: &ResourceKey) -> Option<Arc<ResourceKind>> {
        Arc::make_mut(&mut self.by_key).remove(key)
    }

    pub fn get(&self, group: &str, plural: &str) -> Option<&Arc<ResourceKind>> {
        self.by_key.get(&(group.to_string(), plural.to_string()))
    }

    /// The kind served at `/apis/<group>/<version>/<plural>`.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceKind>> {
        self.get(group, plural)
            .filter(|k| k.serves(version))
            .cloned()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceKind>> {
        self.by_key.values()
    }

    /// Groups with their served versions, the core group excluded, in a stable order.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for kind in self.all().filter(|k| !k.group.is_empty()) {
            let versions = groups.entry(kind.group.clone()).or_default();
            for v in &kind.versions {
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
            }
        }
        groups
    }

    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceKind>> {
        self.all()
            .filter(move |k| k.group == group && k.serves(version))
    }
}

/// Reads the kind a CRD declares. Err names what the CRD is missing.
pub fn kind_from_crd(crd: &Value) -> Result<ResourceKind, String> {
    let spec = crd.get("spec").ok_or("spec is required")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let group = text(spec.get("group")).ok_or("spec.group is required")?;
    let names = spec.get("names").ok_or("spec.names is required")?;
    let plural = text(names.get("plural")).ok_or("spec.names.plural is required")?;
    let kind = text(names.get("kind")).ok_or("spec.names.kind is required")?;
    let singular = text(names.get("singular")).unwrap_or_else(|| kind.to_lowercase());
    let list_kind = text(names.get("listKind")).unwrap_or_else(|| format!("{kind}List"));
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            return Err(format!(
                "spec.scope must be Namespaced or Cluster, got {other:?}"
            ));
        }
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions is required")?;
    let mut served = Vec::new();
    let mut status_subresource = false;
    let mut printer_columns = Vec::new();
    // The storage version is preferred: list it first so discovery names it.
    let mut ordered: Vec<&Value> = versions.iter().collect();
    ordered.sort_by_key(|v| !v.get("storage").and_then(Value::as_bool).unwrap_or(false));
    for version in ordered {
        let name = text(version.get("name")).ok_or("spec.versions[].name is required")?;
        if !version
            .get("served")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            continue;
        }
        if served.is_empty() {
            status_subresource = version.pointer("/subresources/status").is_some();
            for column in version
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(name), Some(json_path)) =
                    (text(column.get("name")), text(column.get("jsonPath")))
                {
                    let column_type = text(column.get("type")).unwrap_or_else(|| "string".into());
                    printer_columns.push(PrinterColumn {
                        name,
                        column_type,
                        json_path,
                    });
                }
            }
        }
        served.push(name);
    }
    if served.is_empty() {
        return Err("spec.versions must have at least one served version".into());
    }
    Ok(ResourceKind {
        group,
        versions: served,
        kind,
        list_kind,
        plural,
        singular,
        namespaced,
        short_names: strings(names.get("shortNames")),
        categories: strings(names.get("categories")),
        status_subresource,
        scale_subresource: false,
        printer_columns,
        custom: true,
        schema: None,
    })
}
