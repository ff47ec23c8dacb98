//! Authorization as kube-apiserver's RBAC authorizer decides it, for requests that carry a
//! ServiceAccount token (the sandbox's own kubeconfig carries none and may do everything, as a
//! cluster admin). A request is allowed when a rule of a role bound to its user allows it: the
//! ClusterRoleBindings' ClusterRoles anywhere, then, for a namespaced request, the RoleBindings of
//! that namespace (to a Role there or a ClusterRole). Rules match as in
//! `pkg/apis/rbac/v1/evaluation_helpers.go`: verb, API group, resource (`resource/subresource`,
//! `*/subresource`, `*`) and resource names; subjects as in `plugin/pkg/auth/authorizer/rbac`:
//! a User by name, a Group by membership, a ServiceAccount by `system:serviceaccount:<ns>:<name>`
//! (its namespace defaulting to the binding's). Aggregated ClusterRoles are not computed.
//! Discovery (`/api`, `/apis`, `/version`) is open to every authenticated user, as the default
//! `system:discovery` binding makes it.

use std::sync::Arc;

use serde_json::Value;

/// Who sends a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    /// The user a ServiceAccount's token authenticates as, with the groups kube-apiserver adds.
    pub fn service_account(namespace: &str, name: &str) -> User {
        User {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }
}

/// What a request asks, as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    /// `status`, `scale`, or empty.
    pub subresource: &'a str,
    /// Empty at the cluster scope.
    pub namespace: &'a str,
    /// Empty for a list, a watch of many or a create.
    pub name: &'a str,
}

/// The RBAC objects of the cluster, as stored.
pub struct Policy<'a> {
    pub roles: &'a [Arc<Value>],
    pub cluster_roles: &'a [Arc<Value>],
    pub role_bindings: &'a [Arc<Value>],
    pub cluster_role_bindings: &'a [Arc<Value>],
}

/// Where the rule that allowed a request is: the role's kind, namespace (empty for a ClusterRole),
/// name, and the rule's index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub index: usize,
}

fn strings<'v>(value: &'v Value, field: &str) -> Vec<&'v str> {
    value[field]
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Whether `subject` of a binding in `binding_namespace` ("" for a ClusterRoleBinding) is `user`.
fn applies_to(subject: &Value, user: &User, binding_namespace: &str) -> bool {
    let name = text(subject, "/name");
    match text(subject, "/kind") {
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let namespace = match text(subject, "/namespace") {
                "" => binding_namespace,
                given => given,
            };
            !namespace.is_empty()
                && user.name == format!("system:serviceaccount:{namespace}:{name}")
        }
        _ => false,
    }
}

/// Whether `rule` allows the request.
pub fn rule_allows(rule: &Value, request: &Attributes<'_>) -> bool {
    let verbs = strings(rule, "verbs");
    let groups = strings(rule, "apiGroups");
    let resources = strings(rule, "resources");
    let names = strings(rule, "resourceNames");
    let combined = if request.subresource.is_empty() {
        request.resource.to_string()
    } else {
        format!("{}/{}", request.resource, request.subresource)
    };
    let verb = verbs.iter().any(|v| *v == "*" || *v == request.verb);
    let group = groups.iter().any(|g| *g == "*" || *g == request.group);
    let resource = resources.iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!request.subresource.is_empty() && *r == format!("*/{}", request.subresource))
    });
    let name = names.is_empty() || names.contains(&request.name);
    verb && group && resource && name
}

/// The rules of the role a binding refers to, with where they are.
fn bound_rules<'p>(
    policy: &Policy<'p>,
    binding: &Value,
    binding_namespace: &str,
) -> Vec<(RuleRef, &'p Value)> {
    let (kind, name) = (
        text(binding, "/roleRef/kind"),
        text(binding, "/roleRef/name"),
    );
    let role = match kind {
        "ClusterRole" => policy
            .cluster_roles
            .iter()
            .find(|r| text(r, "/metadata/name") == name),
        // A RoleBinding's Role is in the binding's own namespace.
        "Role" if !binding_namespace.is_empty() => policy.roles.iter().find(|r| {
            text(r, "/metadata/name") == name && text(r, "/metadata/namespace") == binding_namespace
        }),
        _ => None,
    };
    let Some(role) = role.map(|r| &**r) else {
        return Vec::new();
    };
    let namespace = if kind == "Role" {
        binding_namespace
    } else {
        ""
    };
    role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, rule)| {
            let at = RuleRef {
                kind: kind.to_string(),
                namespace: namespace.to_string(),
                name: name.to_string(),
                index,
            };
            (at, rule)
        })
        .collect()
}

/// Every rule that allows `request` for `user`; none means 403.
pub fn allowing_rules(policy: &Policy<'_>, user: &User, request: &Attributes<'_>) -> Vec<RuleRef> {
    let binds = |binding: &Value, namespace: &str| {
        binding["subjects"]
            .as_array()
            .is_some_and(|subjects| subjects.iter().any(|s| applies_to(s, user, namespace)))
    };
    let mut rules = Vec::new();
    for binding in policy.cluster_role_bindings.iter().filter(|b| binds(b, "")) {
        rules.extend(bound_rules(policy, binding, ""));
    }
    if !request.namespace.is_empty() {
        let in_namespace = policy
            .role_bindings
            .iter()
            .filter(|b| text(b, "/metadata/namespace") == request.namespace);
        for binding in in_namespace.filter(|b| binds(b, request.namespace)) {
            rules.extend(bound_rules(policy, binding, request.namespace));
        }
    }
    rules
        .into_iter()
        .filter(|(_, rule)| rule_allows(rule, request))
        .map(|(at, _)| at)
        .collect()
}

/// The message of kube-apiserver's 403 for a request no rule allows.
pub fn forbidden_message(user: &User, request: &Attributes<'_>) -> String {
    let resource = if request.subresource.is_empty() {
        request.resource.to_string()
    } else {
        format!("{}/{}", request.resource, request.subresource)
    };
    let scope = if request.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", request.namespace)
    };
    let reason = format!(
        "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        user.name, request.verb, request.group
    );
    let qualified = if request.group.is_empty() {
        request.resource.to_string()
    } else {
        format!("{}.{}", request.resource, request.group)
    };
    if request.name.is_empty() {
        format!("{qualified} is forbidden: {reason}")
    } else {
        format!("{qualified} {:?} is forbidden: {reason}", request.name)
    }
}

/// One decision of the authorizer, kept for tests: who asked what, and which rules allowed it
/// (none: refused).
#[derive(Debug, Clone)]
pub struct Decision {
    pub user: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub allowed_by: Vec<RuleRef>,
}

/// The ServiceAccount tokens the sandbox issued (TokenRequest), and the decisions taken.
#[derive(Debug, Default)]
pub struct Authority {
    tokens: std::sync::Mutex<std::collections::HashMap<String, (String, String)>>,
    decisions: std::sync::Mutex<Vec<Decision>>,
}

impl Authority {
    /// A new token for ServiceAccount `namespace/name`.
    pub fn issue(&self, namespace: &str, name: &str) -> String {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let token = format!(
            "sandbox-sa-{:016x}-{}",
            rand_u64(tokens.len()),
            tokens.len()
        );
        tokens.insert(token.clone(), (namespace.to_string(), name.to_string()));
        token
    }

    /// The user a bearer token authenticates as, if the sandbox issued it.
    pub fn user_of(&self, token: &str) -> Option<User> {
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens
            .get(token)
            .map(|(namespace, name)| User::service_account(namespace, name))
    }

    pub fn record(&self, decision: Decision) {
        self.decisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(decision);
    }

    /// Every decision so far, oldest first.
    pub fn decisions(&self) -> Vec<Decision> {
        self.decisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Enough randomness that a token cannot be guessed from another: the clock and a counter through
/// the standard library's keyed hasher.
fn rand_u64(counter: usize) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_usize(counter);
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        namespace: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            verb,
            group,
            resource,
            subresource: "",
            namespace,
            name: "",
        }
    }

    #[test]
    fn rules_match_verb_group_resource_subresource_and_name_as_kube_does() {
        let rule = json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list", "watch"]});
        assert!(rule_allows(
            &rule,
            &request("list", "apps", "deployments", "")
        ));
        assert!(!rule_allows(
            &rule,
            &request("patch", "apps", "deployments", "")
        ));
        assert!(
            !rule_allows(&rule, &request("list", "", "deployments", "")),
            "the group counts"
        );
        let status = Attributes {
            subresource: "status",
            ..request("update", "sluice.dev", "rollouts", "erp")
        };
        let main_only =
            json!({"apiGroups": ["sluice.dev"], "resources": ["rollouts"], "verbs": ["update"]});
        assert!(
            !rule_allows(&main_only, &status),
            "rollouts does not reach rollouts/status"
        );
        let sub = json!({"apiGroups": ["sluice.dev"], "resources": ["rollouts/status"], "verbs": ["update"]});
        assert!(rule_allows(&sub, &status));
        let any_status = json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]});
        assert!(rule_allows(&any_status, &status));
        assert!(!rule_allows(
            &any_status,
            &request("update", "sluice.dev", "rollouts", "erp")
        ));
        let named = json!({"apiGroups": [""], "resources": ["services"], "verbs": ["get"], "resourceNames": ["web"]});
        assert!(rule_allows(
            &named,
            &Attributes {
                name: "web",
                ..request("get", "", "services", "erp")
            }
        ));
        assert!(
            !rule_allows(&named, &request("get", "", "services", "erp")),
            "a name rule needs a name"
        );
    }

    #[test]
    fn bindings_grant_their_roles_to_their_subjects_in_their_scope() {
        let arcs = |values: Vec<Value>| values.into_iter().map(Arc::new).collect::<Vec<_>>();
        let cluster_roles = arcs(vec![json!({"metadata": {"name": "reader"}, "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}]})]);
        let roles = arcs(vec![
            json!({"metadata": {"name": "writer", "namespace": "erp"}, "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}]}),
        ]);
        let cluster_role_bindings = arcs(vec![json!({"metadata": {"name": "b"},
            "roleRef": {"kind": "ClusterRole", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "sluice", "namespace": "sluice"}]})]);
        let role_bindings = arcs(vec![
            // No namespace on the subject: the binding's own.
            json!({"metadata": {"name": "w", "namespace": "erp"}, "roleRef": {"kind": "Role", "name": "writer"},
                   "subjects": [{"kind": "ServiceAccount", "name": "sluice"}]}),
            json!({"metadata": {"name": "g", "namespace": "shop"}, "roleRef": {"kind": "Role", "name": "writer"},
                   "subjects": [{"kind": "Group", "name": "system:serviceaccounts:sluice"}]}),
        ]);
        let policy = Policy {
            roles: &roles,
            cluster_roles: &cluster_roles,
            role_bindings: &role_bindings,
            cluster_role_bindings: &cluster_role_bindings,
        };
        let sluice = User::service_account("sluice", "sluice");
        let in_erp = User::service_account("erp", "sluice");
        assert_eq!(
            allowing_rules(
                &policy,
                &sluice,
                &request("list", "apps", "deployments", "")
            )
            .len(),
            1
        );
        assert!(
            allowing_rules(
                &policy,
                &sluice,
                &request("patch", "apps", "deployments", "erp")
            )
            .is_empty(),
            "erp's binding names erp's sluice"
        );
        assert_eq!(
            allowing_rules(
                &policy,
                &in_erp,
                &request("patch", "apps", "deployments", "erp")
            )
            .len(),
            1
        );
        assert!(
            allowing_rules(
                &policy,
                &sluice,
                &request("patch", "apps", "deployments", "shop")
            )
            .is_empty(),
            "a Role is read in its own namespace only"
        );
        assert!(
            allowing_rules(
                &policy,
                &in_erp,
                &request("patch", "apps", "deployments", "")
            )
            .is_empty(),
            "a Role grants nothing cluster-wide"
        );
    }

    #[test]
    fn the_refusal_reads_as_kube_apiservers() {
        let user = User::service_account("sluice", "sluice");
        assert_eq!(
            forbidden_message(&user, &request("list", "apps", "deployments", "")),
            "deployments.apps is forbidden: User \"system:serviceaccount:sluice:sluice\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
        );
        let status = Attributes {
            subresource: "status",
            name: "web",
            ..request("update", "sluice.dev", "rollouts", "erp")
        };
        assert_eq!(
            forbidden_message(&user, &status),
            "rollouts.sluice.dev \"web\" is forbidden: User \"system:serviceaccount:sluice:sluice\" cannot update resource \"rollouts/status\" in API group \"sluice.dev\" in the namespace \"erp\""
        );
    }
}
