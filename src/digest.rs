//! The one digest the shell uses (API tokens, derived command ids, Event actions): SHA-256 from
//! aws-lc-rs, which the TLS stack already builds.

use aws_lc_rs::digest::{SHA256, digest};

/// The lowercase hex SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    digest(&SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
