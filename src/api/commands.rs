//! Changing Rollouts: the CI trigger (`release`) and the commands (promote, abort, pause, resume,
//! retry). Commands take the same road as `kubectl annotate`: written into the Rollout's
//! annotations, already stamped with a nonce, and consumed exactly once by the release machine.
//! The nonce comes from the `Idempotency-Key` header, or from the request and the release it is
//! about: the same request sent twice is one command.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use sluice_strategies::image::{ImageChange, images_of, with_images};
use sluice_strategies::release::{
    Admission, CommandVerb, ReleaseAdmission, admit_command, admit_release, command_nonce,
    template_hash,
};
use sluice_strategies::status::RolloutStatus;

use super::auth::{Action, Caller};
use super::body::JsonBody;
use super::error::ApiError;
use super::rollouts::find;
use super::types::{
    AbortRequest, CommandAccepted, EmptyRequest, PromoteRequest, ReleaseAccepted, ReleaseRequest,
};
use super::{ApiState, ErrorAnswers};
use crate::controller::apply::FIELD_MANAGER;
use crate::controller::commands::{COMMAND_ANNOTATION, NONCE_ANNOTATION, send};
use crate::controller::raw::RawDeployment;
use crate::crd::Rollout;

/// The longest abort reason kept.
const MAX_REASON: usize = 1024;
/// The longest `Idempotency-Key`.
const MAX_KEY: usize = 128;
/// How many times a command is written again after the Rollout changed under it.
const ATTEMPTS: usize = 3;

type RolloutPath = Path<(String, String)>;

/// Sets the target Deployment's images: the CI trigger after an image push.
#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{namespace}/rollouts/{name}/release",
    tag = "commands",
    params(
        ("namespace" = String, Path, description = "The Rollout's namespace", example = "erp-system"),
        ("name" = String, Path, description = "The Rollout's name", example = "reporting"),
    ),
    request_body = ReleaseRequest,
    responses(
        (status = 202, description = "The target asks for this revision; sluice releases it", body = ReleaseAccepted),
        (status = 200, description = "These images are the stable revision already: nothing changed", body = ReleaseAccepted),
        ErrorAnswers,
    ),
    security(("bearer" = []))
)]
pub async fn release(
    State(state): State<ApiState>,
    caller: Caller,
    Path((namespace, name)): RolloutPath,
    JsonBody(request): JsonBody<ReleaseRequest>,
) -> Result<(StatusCode, Json<ReleaseAccepted>), ApiError> {
    caller.allow(&namespace, Action::Release)?;
    let change = match (request.image, request.images) {
        (Some(image), None) => ImageChange::Only(image),
        (None, Some(images)) => ImageChange::ByContainer(images),
        _ => {
            return Err(ApiError::invalid(
                "invalid_request",
                "give exactly one of `image` (a single-container target) or `images` (by container)",
            ));
        }
    };
    let rollout = find(&state, &namespace, &name)?;
    let target_name = rollout.spec.names().map(|n| n.target).ok_or_else(|| {
        ApiError::conflict(
            "invalid_spec",
            format!("Rollout {namespace}/{name}: its spec cannot be read, so it has no target"),
        )
    })?;
    let target = crate::controller::observe::get(
        &state.context.deployments,
        &namespace,
        &target_name,
    )
    .ok_or_else(|| {
        ApiError::conflict(
            "target_missing",
            format!(
                "Rollout {namespace}/{name}: its target Deployment {target_name} does not exist"
            ),
        )
    })?;
    let current = target
        .spec
        .as_ref()
        .map(|s| s.template.value())
        .unwrap_or_default();
    let wanted = with_images(&current, &change)
        .map_err(|e| ApiError::invalid("invalid_image", e.to_string()))?;
    let revision = template_hash(&wanted);
    let status = rollout.status.clone().unwrap_or_default();
    let accepted = |changed| ReleaseAccepted {
        revision: revision.clone(),
        changed,
        images: images_of(&wanted),
    };
    match admit_release(&status, &revision, wanted == current) {
        ReleaseAdmission::RolledBack => {
            return Err(ApiError::conflict(
                "rolled_back",
                format!("revision {revision} was rolled back: send `retry` to release it again"),
            ));
        }
        ReleaseAdmission::Stable => return Ok((StatusCode::OK, Json(accepted(false)))),
        ReleaseAdmission::Asked => return Ok((StatusCode::ACCEPTED, Json(accepted(false)))),
        ReleaseAdmission::Write => {}
    }
    set_images(&state, &target, &current, &wanted).await?;
    tracing::info!(
        rollout = %format!("{namespace}/{name}"),
        by = %caller.name,
        insecure = caller.insecure,
        %revision,
        "release requested through the API"
    );
    Ok((StatusCode::ACCEPTED, Json(accepted(true))))
}

/// Replaces the changed images only, on the Deployment as read (its resourceVersion tested).
async fn set_images(
    state: &ApiState,
    target: &RawDeployment,
    current: &serde_json::Value,
    wanted: &serde_json::Value,
) -> Result<(), ApiError> {
    let mut ops = vec![json!({
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": target.resource_version().unwrap_or_default(),
    })];
    let before = current["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let after = wanted["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, (old, new)) in before.iter().zip(&after).enumerate() {
        if old["image"] != new["image"] {
            let at = format!("/spec/template/spec/containers/{i}");
            ops.push(json!({"op": "test", "path": format!("{at}/name"), "value": old["name"]}));
            ops.push(
                json!({"op": "replace", "path": format!("{at}/image"), "value": new["image"]}),
            );
        }
    }
    let patch: json_patch::Patch = serde_json::from_value(json!(ops))
        .map_err(|e| ApiError::upstream(format!("cannot build the image patch: {e}")))?;
    let namespace = target.namespace().unwrap_or_default();
    let api: Api<RawDeployment> = Api::namespaced(state.context.callers_client.clone(), &namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(&target.name_any(), &params, &Patch::Json::<()>(patch))
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) if [409, 422].contains(&status.code) => ApiError::conflict(
                "conflict",
                format!(
                    "Deployment {namespace}/{} changed meanwhile; send the release again",
                    target.name_any()
                ),
            ),
            other => ApiError::upstream(format!(
                "setting the images of Deployment {namespace}/{}: {other}",
                target.name_any()
            )),
        })?;
    Ok(())
}

macro_rules! command_endpoint {
    ($fn:ident, $path:literal, $body:ty, $what:literal, $read:expr) => {
        #[doc = $what]
        #[utoipa::path(
            post,
            path = $path,
            tag = "commands",
            params(
                ("namespace" = String, Path, description = "The Rollout's namespace", example = "erp-system"),
                ("name" = String, Path, description = "The Rollout's name", example = "reporting"),
                ("Idempotency-Key" = Option<String>, Header, description = "The same key is one command, however often it is sent (letters, digits and `._:-`, at most 128)"),
            ),
            request_body(content = Option<$body>, description = "Optional: an empty body means the defaults"),
            responses(
                (status = 202, description = "Accepted: the release machine applies it once", body = CommandAccepted),
                ErrorAnswers,
            ),
            security(("bearer" = []))
        )]
        pub async fn $fn(
            State(state): State<ApiState>,
            caller: Caller,
            Path((namespace, name)): RolloutPath,
            headers: HeaderMap,
            JsonBody(request): JsonBody<$body>,
        ) -> Result<(StatusCode, Json<CommandAccepted>), ApiError> {
            let read: fn(&$body) -> Result<(CommandVerb, Option<String>), ApiError> = $read;
            let (verb, reason) = read(&request)?;
            let body = serde_json::to_string(&request).unwrap_or_default();
            let sent = Sent { verb, reason, body };
            command(&state, &caller, &namespace, &name, &headers, sent).await
        }
    };
}

command_endpoint!(
    promote,
    "/api/v1/namespaces/{namespace}/rollouts/{name}/promote",
    PromoteRequest,
    "Promotes the release in flight: the next step, or with `full` all the way.",
    |request| {
        let verb = if request.full {
            CommandVerb::PromoteFull
        } else {
            CommandVerb::Promote
        };
        Ok((verb, None))
    }
);
command_endpoint!(
    abort,
    "/api/v1/namespaces/{namespace}/rollouts/{name}/abort",
    AbortRequest,
    "Gives up the release in flight: traffic back to stable first, then the candidate scales down.",
    |request| {
        let reason = request
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        if reason.is_some_and(|r| r.chars().count() > MAX_REASON) {
            return Err(ApiError::invalid(
                "invalid_request",
                format!("reason: at most {MAX_REASON} characters"),
            ));
        }
        Ok((CommandVerb::Abort, reason.map(str::to_string)))
    }
);
command_endpoint!(
    pause,
    "/api/v1/namespaces/{namespace}/rollouts/{name}/pause",
    EmptyRequest,
    "Holds the release at its step (analysis keeps running and can still roll back).",
    |_| Ok((CommandVerb::Pause, None))
);
command_endpoint!(
    resume,
    "/api/v1/namespaces/{namespace}/rollouts/{name}/resume",
    EmptyRequest,
    "Carries on after a pause.",
    |_| Ok((CommandVerb::Resume, None))
);
command_endpoint!(
    retry,
    "/api/v1/namespaces/{namespace}/rollouts/{name}/retry",
    EmptyRequest,
    "Releases the rolled-back revision again.",
    |_| Ok((CommandVerb::Retry, None))
);

/// A command as the caller sent it.
struct Sent {
    verb: CommandVerb,
    reason: Option<String>,
    /// The body as read, part of the derived idempotency key.
    body: String,
}

/// Checks and writes a command; the same one again is answered as a duplicate and not written.
async fn command(
    state: &ApiState,
    caller: &Caller,
    namespace: &str,
    name: &str,
    headers: &HeaderMap,
    sent: Sent,
) -> Result<(StatusCode, Json<CommandAccepted>), ApiError> {
    let verb = sent.verb;
    caller.allow(namespace, action_of(verb))?;
    let key = idempotency_key(headers)?;
    let mut rollout = find(state, namespace, name)?;
    for attempt in 1..=ATTEMPTS {
        let status = rollout.status.clone().unwrap_or_default();
        let id = key.clone().unwrap_or_else(|| derived_key(&sent, &status));
        let nonce = command_nonce(verb, &format!("api-{id}"));
        let accepted = |duplicate| {
            let answer = CommandAccepted {
                command: verb.as_str().to_string(),
                id: id.clone(),
                duplicate,
            };
            (StatusCode::ACCEPTED, Json(answer))
        };
        match admission(&rollout, &status, verb, &nonce) {
            Admission::Duplicate => return Ok(accepted(true)),
            Admission::Refused { code, message } => {
                return Err(ApiError::conflict(code, message));
            }
            Admission::Write => {}
        }
        let by = format!("sent by {}", caller.name);
        let reason = match &sent.reason {
            Some(reason) => format!("{reason} ({by})"),
            None => by,
        };
        match send(
            &state.context.callers_client,
            &rollout,
            verb,
            &nonce,
            &reason,
        )
        .await
        {
            Ok(()) => {
                tracing::info!(
                    rollout = %format!("{namespace}/{name}"),
                    command = verb.as_str(),
                    by = %caller.name,
                    insecure = caller.insecure,
                    "command accepted through the API"
                );
                return Ok(accepted(false));
            }
            Err(err) if changed_meanwhile(&err) && attempt < ATTEMPTS => {
                // Read the Rollout as it is now and decide again.
                let api: Api<Rollout> =
                    Api::namespaced(state.context.callers_client.clone(), namespace);
                rollout = std::sync::Arc::new(api.get(name).await.map_err(|e| match e {
                    kube::Error::Api(s) if s.code == 404 => ApiError::not_found(namespace, name),
                    other => {
                        ApiError::upstream(format!("reading Rollout {namespace}/{name}: {other}"))
                    }
                })?);
            }
            Err(err) if changed_meanwhile(&err) => break,
            Err(err) => return Err(ApiError::upstream(err.to_string())),
        }
    }
    Err(ApiError::conflict(
        "conflict",
        format!("Rollout {namespace}/{name} kept changing; send the command again"),
    ))
}

/// The core's decision on the command, from the annotations as they are.
fn admission(
    rollout: &Rollout,
    status: &RolloutStatus,
    verb: CommandVerb,
    nonce: &str,
) -> Admission {
    let annotations = rollout.annotations();
    admit_command(
        status,
        annotations.get(COMMAND_ANNOTATION).map(String::as_str),
        annotations.get(NONCE_ANNOTATION).map(String::as_str),
        verb,
        nonce,
    )
}

fn changed_meanwhile(err: &crate::Error) -> bool {
    matches!(err, crate::Error::Kube { source: kube::Error::Api(s), .. } if [409, 422].contains(&s.code))
}

/// The `Idempotency-Key` header, checked.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().ok().map(str::trim).unwrap_or_default();
    let fits = !key.is_empty()
        && key.len() <= MAX_KEY
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
    if !fits {
        return Err(ApiError::invalid(
            "invalid_idempotency_key",
            format!("Idempotency-Key: letters, digits and `._:-`, 1 to {MAX_KEY} characters"),
        ));
    }
    Ok(Some(key.to_string()))
}

/// Without a key, the same body about the same release is the same command.
fn derived_key(sent: &Sent, status: &RolloutStatus) -> String {
    let release = format!(
        "{}|{}|{}",
        status
            .release_started_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        status.candidate_revision.as_deref().unwrap_or_default(),
        status.rolled_back_revision.as_deref().unwrap_or_default(),
    );
    let digest =
        crate::digest::sha256_hex(&format!("{}|{}|{release}", sent.verb.as_str(), sent.body));
    digest[..16].to_string()
}

fn action_of(verb: CommandVerb) -> Action {
    match verb {
        CommandVerb::Promote | CommandVerb::PromoteFull => Action::Promote,
        CommandVerb::Abort => Action::Abort,
        CommandVerb::Pause => Action::Pause,
        CommandVerb::Resume => Action::Resume,
        CommandVerb::Retry => Action::Retry,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rollout(annotations: serde_json::Value, status: serde_json::Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "reporting", "namespace": "erp-system", "annotations": annotations},
            "spec": {
                "targetRef": {"name": "reporting"},
                "service": {"name": "reporting-service", "port": 80},
                "strategy": {"canary": {"ingressRef": {"name": "erp-ingress"}, "steps": [20, 50]}},
            },
            "status": status,
        }))
        .expect("a Rollout")
    }

    fn stepping() -> serde_json::Value {
        json!({"phase": "Progressing", "stage": "stepping", "step": 1, "candidateRevision": "c1"})
    }

    #[test]
    fn the_admission_reads_the_annotations_as_written() {
        let pending = rollout(
            json!({"sluice.dev/command": "promote", "sluice.dev/command-nonce": "promote@api-k1"}),
            stepping(),
        );
        let status = pending.status.clone().unwrap_or_default();
        let same = admission(&pending, &status, CommandVerb::Promote, "promote@api-k1");
        assert_eq!(same, Admission::Duplicate);
        let other = admission(&pending, &status, CommandVerb::Pause, "pause@api-k2");
        assert!(
            matches!(
                other,
                Admission::Refused {
                    code: "command_pending",
                    ..
                }
            ),
            "{other:?}"
        );
    }

    #[test]
    fn idempotency_keys_are_checked() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers), Ok(None));
        headers.insert(
            "idempotency-key",
            "run-42.attempt_1:x".parse().expect("a header"),
        );
        assert_eq!(
            idempotency_key(&headers),
            Ok(Some("run-42.attempt_1:x".into()))
        );
        for bad in ["a b", "x/y", ""] {
            headers.insert("idempotency-key", bad.parse().expect("a header"));
            assert_eq!(
                idempotency_key(&headers).map_err(|e| e.code),
                Err("invalid_idempotency_key"),
                "{bad:?}"
            );
        }
        headers.insert(
            "idempotency-key",
            "k".repeat(MAX_KEY + 1).parse().expect("a header"),
        );
        assert!(idempotency_key(&headers).is_err());
        headers.insert(
            "idempotency-key",
            "k".repeat(MAX_KEY).parse().expect("a header"),
        );
        assert!(idempotency_key(&headers).is_ok());
    }

    #[test]
    fn the_derived_key_is_the_request_and_its_release() {
        let sent = |verb, body: &str| Sent {
            verb,
            reason: None,
            body: body.into(),
        };
        let status: RolloutStatus = serde_json::from_value(stepping()).expect("a status");
        let key = derived_key(&sent(CommandVerb::Pause, "{}"), &status);
        assert_eq!(key.len(), 16);
        assert_eq!(
            key,
            derived_key(&sent(CommandVerb::Pause, "{}"), &status),
            "stable"
        );
        assert_ne!(
            key,
            derived_key(&sent(CommandVerb::Resume, "{}"), &status),
            "the verb"
        );
        assert_ne!(
            key,
            derived_key(&sent(CommandVerb::Pause, "{\"x\":1}"), &status),
            "the body"
        );
        let mut next = status.clone();
        next.candidate_revision = Some("c2".into());
        assert_ne!(
            key,
            derived_key(&sent(CommandVerb::Pause, "{}"), &next),
            "the release"
        );
    }

    #[test]
    fn each_verb_needs_its_own_action() {
        assert_eq!(action_of(CommandVerb::Promote), Action::Promote);
        assert_eq!(action_of(CommandVerb::PromoteFull), Action::Promote);
        assert_eq!(action_of(CommandVerb::Abort), Action::Abort);
        assert_eq!(action_of(CommandVerb::Pause), Action::Pause);
        assert_eq!(action_of(CommandVerb::Resume), Action::Resume);
        assert_eq!(action_of(CommandVerb::Retry), Action::Retry);
    }
}
