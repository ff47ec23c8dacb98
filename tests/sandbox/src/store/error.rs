//! The one error type of the API surface: every failure carries the HTTP code, the Kubernetes
//! `reason` and a message that names the object, so it renders as a faithful `Status` body.

use serde_json::{Value, json};

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// The `CauseType` of a field error, read from the error's wording (`Required value: ...`).
fn cause_type(message: &str) -> &'static str {
    const TYPES: [(&str, &str); 7] = [
        ("Required value", "FieldValueRequired"),
        ("Forbidden", "FieldValueForbidden"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Internal error", "InternalError"),
    ];
    TYPES
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("FieldValueInvalid", |(_, cause)| cause)
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        ApiError {
            code,
            reason,
            message,
            details: None,
        }
    }

    fn with_details(mut self, group: &str, plural: &str, name: &str) -> Self {
        let mut details = json!({ "kind": plural });
        if !name.is_empty() {
            details["name"] = json!(name);
        }
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        self.details = Some(details);
        self
    }

    /// The `<plural>.<group>` form the real server uses in messages.
    fn qualified(group: &str, plural: &str) -> String {
        if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        }
    }

    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let q = Self::qualified(group, plural);
        Self::new(404, "NotFound", format!("{q} \"{name}\" not found"))
            .with_details(group, plural, name)
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let q = Self::qualified(group, plural);
        Self::new(
            409,
            "AlreadyExists",
            format!("{q} \"{name}\" already exists"),
        )
        .with_details(group, plural, name)
    }

    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let q = Self::qualified(group, plural);
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {q} \"{name}\": {why}"),
        )
        .with_details(group, plural, name)
    }

    /// 422 with the field causes, as the real server reports validation failures.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: &[(String, String)]) -> Self {
        let text: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        // The real server names the kind with its group: `Deployment.apps "web" is invalid`.
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut err = Self::new(
            422,
            "Invalid",
            // One cause alone, several as the aggregate `[a, b]`, as `NewInvalid` words them.
            match text.as_slice() {
                [one] => format!("{qualified_kind} \"{name}\" is invalid: {one}"),
                many => format!(
                    "{qualified_kind} \"{name}\" is invalid: [{}]",
                    many.join(", ")
                ),
            },
        )
        // Invalid names the kind in its details (NotFound and AlreadyExists name the resource).
        .with_details(group, kind, name);
        if let Some(details) = err.details.as_mut() {
            details["causes"] = causes
                .iter()
                .map(|(field, message)| json!({"reason": cause_type(message), "field": field, "message": message}))
                .collect();
        }
        err
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into())
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message.into())
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message.into())
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    /// Bodies in protobuf or CBOR: the sandbox has no schemas to decode them with.
    pub fn unsupported_body_encoding(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the sandbox reads JSON and YAML bodies only, not {content_type:?}; kubectl's `create <kind> NAME` \
                 generators send protobuf: use a manifest with `kubectl create -f`/`kubectl apply -f`, or \
                 `kubectl create ... --dry-run=client -o yaml | kubectl apply -f -`"
            ),
        )
    }

    pub fn not_found_path(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    pub fn injected(code: u16, message: impl Into<String>) -> Self {
        let reason = match code {
            409 => "Conflict",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        Self::new(code, reason, message.into())
    }

    /// The `metav1.Status` body for this error.
    pub fn status_body(&self) -> Value {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            body["details"] = details.clone();
        }
        body
    }
}
