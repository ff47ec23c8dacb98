//! Manual commands (promote, promote-full, abort, pause, resume, retry) live in the Rollout's
//! annotations, so they survive restarts and reach whichever replica leads:
//!
//! ```sh
//! kubectl annotate rollout reporting sluice.dev/command=promote --overwrite
//! ```
//!
//! Exactly once: sluice first stamps the command with a nonce (its verb and the Rollout's
//! resourceVersion at that moment); the status records the nonce of every command it applied; the annotations are
//! removed only after that status is written, and only if they still hold the same command. A
//! crash anywhere in between neither loses a command nor applies one twice.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use sluice_strategies::release::{CommandVerb, PendingCommand, command_nonce, pending_command};
use sluice_strategies::status::RolloutStatus;

use crate::crd::Rollout;
use crate::error::{Error, kube_err};

pub const COMMAND_ANNOTATION: &str = "sluice.dev/command";
pub const NONCE_ANNOTATION: &str = "sluice.dev/command-nonce";
/// Why, and who sent it: an abort's reason ends up in the status and an Event.
pub const REASON_ANNOTATION: &str = "sluice.dev/command-reason";
const COMMAND_POINTER: &str = "/metadata/annotations/sluice.dev~1command";
const NONCE_POINTER: &str = "/metadata/annotations/sluice.dev~1command-nonce";
const REASON_POINTER: &str = "/metadata/annotations/sluice.dev~1command-reason";

/// The command the Rollout's annotations hold (the core decides what it is).
pub fn pending(rollout: &Rollout, status: &RolloutStatus) -> PendingCommand {
    let annotations = rollout.annotations();
    let pending = pending_command(
        annotations.get(COMMAND_ANNOTATION).map(String::as_str),
        annotations.get(NONCE_ANNOTATION).map(String::as_str),
        status.last_command.as_deref(),
    );
    match pending {
        PendingCommand::Ready(mut command) => {
            command.reason = annotations.get(REASON_ANNOTATION).cloned();
            PendingCommand::Ready(command)
        }
        other => other,
    }
}

/// Writes a command already stamped with its nonce, as the API sends it: in one patch, and only
/// onto the Rollout at `resource_version` (a `test` op), so that a command written meanwhile is
/// never overwritten unseen.
pub async fn send(
    client: &kube::Client,
    rollout: &Rollout,
    verb: CommandVerb,
    nonce: &str,
    reason: &str,
) -> Result<(), Error> {
    let mut ops = vec![json!({
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": rollout.resource_version().unwrap_or_default(),
    })];
    if rollout.metadata.annotations.is_none() {
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    }
    ops.extend([
        json!({"op": "add", "path": COMMAND_POINTER, "value": verb.as_str()}),
        json!({"op": "add", "path": NONCE_POINTER, "value": nonce}),
        json!({"op": "add", "path": REASON_POINTER, "value": reason}),
    ]);
    json_patch(client, rollout, json!(ops), "send command to").await
}

fn api(client: &kube::Client, rollout: &Rollout) -> Api<Rollout> {
    Api::namespaced(
        client.clone(),
        rollout.namespace().as_deref().unwrap_or_default(),
    )
}

async fn json_patch(
    client: &kube::Client,
    rollout: &Rollout,
    ops: serde_json::Value,
    action: &'static str,
) -> Result<(), Error> {
    let ops: json_patch::Patch =
        serde_json::from_value(ops).map_err(|source| Error::Serialize {
            what: "command patch",
            source,
        })?;
    let ns = rollout.namespace().unwrap_or_default();
    api(client, rollout)
        .patch(
            &rollout.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(ops),
        )
        .await
        .map_err(kube_err(action, "Rollout", &ns, &rollout.name_any()))?;
    Ok(())
}

/// Gives the command a nonce for its verb, if the annotation still holds it (a `test` op makes it
/// atomic).
pub async fn stamp(
    client: &kube::Client,
    rollout: &Rollout,
    verb: CommandVerb,
) -> Result<(), Error> {
    let text = rollout
        .annotations()
        .get(COMMAND_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let nonce = command_nonce(verb, &rollout.resource_version().unwrap_or_default());
    let ops = json!([
        {"op": "test", "path": COMMAND_POINTER, "value": text},
        {"op": "add", "path": NONCE_POINTER, "value": nonce},
    ]);
    json_patch(client, rollout, ops, "stamp command on").await
}

/// Removes a consumed (or unknown) command, unless a new one replaced it meanwhile: the text and
/// the nonce as read must both still be there.
pub async fn remove(client: &kube::Client, rollout: &Rollout) -> Result<(), Error> {
    let annotations = rollout.annotations();
    let text = annotations
        .get(COMMAND_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let mut ops = vec![json!({"op": "test", "path": COMMAND_POINTER, "value": text})];
    if let Some(nonce) = annotations.get(NONCE_ANNOTATION) {
        ops.push(json!({"op": "test", "path": NONCE_POINTER, "value": nonce}));
        ops.push(json!({"op": "remove", "path": NONCE_POINTER}));
    }
    if annotations.contains_key(REASON_ANNOTATION) {
        ops.push(json!({"op": "remove", "path": REASON_POINTER}));
    }
    ops.push(json!({"op": "remove", "path": COMMAND_POINTER}));
    json_patch(client, rollout, json!(ops), "remove command from").await
}
