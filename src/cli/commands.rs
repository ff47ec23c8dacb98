//! `release` and the commands (`promote`, `abort`, `pause`, `resume`, `retry`): one request each,
//! one line printed.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::args::{AbortArgs, CommandArgs, PromoteArgs, ReleaseArgs, Target, release_request};
use super::client::{Api, Failure};
use super::text::images_text;
use crate::api::types::{CommandAccepted, ReleaseAccepted};

pub async fn release(args: &ReleaseArgs) -> Result<(), Failure> {
    let request = release_request(&args.images).map_err(Failure::Usage)?;
    let api = Api::new(&args.api)?;
    let accepted = api.release(&args.target, &request).await?;
    println!("{}", release_line(&args.target, &accepted));
    Ok(())
}

pub async fn promote(args: &PromoteArgs) -> Result<(), Failure> {
    send(&args.command, "promote", json!({ "full": args.full })).await
}

pub async fn abort(args: &AbortArgs) -> Result<(), Failure> {
    let body = match &args.reason {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    };
    send(&args.command, "abort", body).await
}

/// `pause`, `resume` or `retry`: no fields.
pub async fn simple(args: &CommandArgs, command: &str) -> Result<(), Failure> {
    send(args, command, json!({})).await
}

async fn send(args: &CommandArgs, command: &str, body: serde_json::Value) -> Result<(), Failure> {
    let api = Api::new(&args.api)?;
    let key = args.idempotency_key.clone().unwrap_or_else(random_key);
    let accepted = api.command(&args.target, command, &body, &key).await?;
    println!("{}", accepted_line(&args.target, &accepted));
    Ok(())
}

/// `shop/web: releasing revision 5b1e2a (images web=shop/web:1.2)`, or that it already is stable.
pub fn release_line(target: &Target, accepted: &ReleaseAccepted) -> String {
    if accepted.changed {
        format!(
            "{target}: releasing revision {} (images {})",
            accepted.revision,
            images_text(&accepted.images)
        )
    } else {
        format!("{target}: revision {} is already stable", accepted.revision)
    }
}

/// `shop/web: promote-full accepted (id 1a2b)`, noting a duplicate.
pub fn accepted_line(target: &Target, accepted: &CommandAccepted) -> String {
    let mut line = format!(
        "{target}: {} accepted (id {})",
        accepted.command, accepted.id
    );
    if accepted.duplicate {
        line.push_str(" (duplicate: not applied again)");
    }
    line
}

/// A key no other invocation sends: the clock and the process id, hashed with the process's
/// random hash keys (two rounds for 128 bits).
fn random_key() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default();
    let seed = RandomState::new();
    (0u8..2)
        .map(|round| format!("{:016x}", seed.hash_one((nanos, std::process::id(), round))))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn target() -> Target {
        "shop/web".parse().expect("valid target")
    }

    #[test]
    fn release_lines() {
        let mut accepted = ReleaseAccepted {
            revision: "5b1e2a".to_string(),
            changed: true,
            images: BTreeMap::from([
                ("web".to_string(), "shop/web:1.2".to_string()),
                ("proxy".to_string(), "envoy:1.30".to_string()),
            ]),
        };
        assert_eq!(
            release_line(&target(), &accepted),
            "shop/web: releasing revision 5b1e2a (images proxy=envoy:1.30, web=shop/web:1.2)"
        );
        accepted.changed = false;
        assert_eq!(
            release_line(&target(), &accepted),
            "shop/web: revision 5b1e2a is already stable"
        );
    }

    #[test]
    fn accepted_lines_say_duplicates() {
        let mut accepted = CommandAccepted {
            command: "promote-full".to_string(),
            id: "k1".to_string(),
            duplicate: false,
        };
        assert_eq!(
            accepted_line(&target(), &accepted),
            "shop/web: promote-full accepted (id k1)"
        );
        accepted.duplicate = true;
        assert_eq!(
            accepted_line(&target(), &accepted),
            "shop/web: promote-full accepted (id k1) (duplicate: not applied again)"
        );
    }

    #[test]
    fn random_keys_differ_and_are_128_bits() {
        let (first, second) = (random_key(), random_key());
        assert_ne!(first, second);
        assert_eq!(first.len(), 32);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
