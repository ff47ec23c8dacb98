//! Who may call the API: bearer tokens from a file (a mounted Secret), each stored as the hex
//! SHA-256 of the token with the namespaces and actions it may use. The file is read again when it
//! changes, without a restart; a file that no longer parses keeps the tokens it had, and says so.
//! A presented token is hashed and compared with every entry in constant time; tokens never reach
//! a log, only their names do.
//!
//! ```yaml
//! tokens:
//!   - name: ci-erp
//!     sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//!     namespaces: [erp-system]      # or ["*"]
//!     actions: [read, release, promote, abort, pause, resume, retry]
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use serde::Deserialize;

use super::error::ApiError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Read,
    Release,
    Promote,
    Abort,
    Pause,
    Resume,
    Retry,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Release => "release",
            Action::Promote => "promote",
            Action::Abort => "abort",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Retry => "retry",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read the API tokens file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the API tokens file {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "no API tokens configured: give --api-tokens-file with at least one token, or --api-insecure to serve the API without authentication"
    )]
    NoTokens,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    sha256: String,
    namespaces: Vec<String>,
    actions: Vec<Action>,
}

/// One token, ready to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    name: String,
    hash: [u8; 32],
    namespaces: BTreeSet<String>,
    actions: BTreeSet<Action>,
}

/// An authenticated caller and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (shown in logs and Events), or `anonymous` without authentication.
    pub name: String,
    namespaces: BTreeSet<String>,
    actions: BTreeSet<Action>,
    /// The API runs without authentication (`--api-insecure`).
    pub insecure: bool,
}

impl Caller {
    fn anonymous() -> Caller {
        Caller {
            name: "anonymous".into(),
            namespaces: ["*".to_string()].into(),
            actions: BTreeSet::new(),
            insecure: true,
        }
    }

    /// Whether the caller may read in `namespace`.
    pub fn may_read(&self, namespace: &str) -> bool {
        self.in_scope(namespace) && (self.insecure || self.actions.contains(&Action::Read))
    }

    /// Whether the caller may read in some namespace (what the status page needs to be of use).
    pub fn may_read_somewhere(&self) -> bool {
        !self.namespaces.is_empty() && (self.insecure || self.actions.contains(&Action::Read))
    }

    fn in_scope(&self, namespace: &str) -> bool {
        self.namespaces.contains("*") || self.namespaces.contains(namespace)
    }

    /// 403 unless the caller may do `action` in `namespace`.
    pub fn allow(&self, namespace: &str, action: Action) -> Result<(), ApiError> {
        if !self.in_scope(namespace) {
            return Err(ApiError::forbidden(format!(
                "token {} may not act in namespace {namespace}",
                self.name
            )));
        }
        if !self.insecure && !self.actions.contains(&action) {
            return Err(ApiError::forbidden(format!(
                "token {} may not {} in namespace {namespace}",
                self.name,
                action.as_str()
            )));
        }
        Ok(())
    }
}

/// How the API authenticates.
#[derive(Debug)]
pub enum Auth {
    /// `--api-insecure`: everyone may do everything (and every mutating request says so).
    Insecure,
    Tokens(TokenFile),
}

impl Auth {
    /// From the flags: a tokens file that must hold a token, or insecure on request.
    pub fn configure(tokens_file: Option<&Path>, insecure: bool) -> Result<Auth, TokensError> {
        match tokens_file {
            Some(path) => Ok(Auth::Tokens(TokenFile::load(path)?)),
            None if insecure => Ok(Auth::Insecure),
            None => Err(TokensError::NoTokens),
        }
    }

    /// The caller of the `Authorization` header's value.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let tokens = match self {
            Auth::Insecure => return Ok(Caller::anonymous()),
            Auth::Tokens(file) => file.current(),
        };
        let presented = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated("send a token: Authorization: Bearer <token>")
            })?;
        let hash = digest(&SHA256, presented.as_bytes());
        // Every entry is compared, whichever matches, so the time taken says nothing of which.
        let mut found = None;
        for token in &tokens {
            let equal = verify_slices_are_equal(hash.as_ref(), &token.hash).is_ok();
            if equal && found.is_none() {
                found = Some(token);
            }
        }
        let token = found.ok_or_else(|| ApiError::unauthenticated("unknown token"))?;
        Ok(Caller {
            name: token.name.clone(),
            namespaces: token.namespaces.clone(),
            actions: token.actions.clone(),
            insecure: false,
        })
    }
}

/// A tokens file, read again at most once a second when a request comes and its bytes changed.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    bytes: Vec<u8>,
    tokens: Vec<Token>,
    read_at: Instant,
}

const REREAD_EVERY: Duration = Duration::from_secs(1);

impl TokenFile {
    pub fn load(path: &Path) -> Result<TokenFile, TokensError> {
        let bytes = read(path)?;
        let tokens = parse(path, &bytes)?;
        if tokens.is_empty() {
            return Err(TokensError::NoTokens);
        }
        Ok(TokenFile {
            path: path.to_path_buf(),
            state: Mutex::new(Loaded {
                bytes,
                tokens,
                read_at: Instant::now(),
            }),
        })
    }

    fn current(&self) -> Vec<Token> {
        // Plain data behind the lock: a panic while it was held broke no invariant.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.read_at.elapsed() >= REREAD_EVERY {
            state.read_at = Instant::now();
            match read(&self.path) {
                Ok(bytes) if bytes != state.bytes => match parse(&self.path, &bytes) {
                    Ok(tokens) => {
                        tracing::info!(path = %self.path.display(), tokens = tokens.len(), "API tokens reloaded");
                        state.tokens = tokens;
                        state.bytes = bytes;
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "API tokens not reloaded: the previous ones stay");
                        state.bytes = bytes;
                    }
                },
                Ok(_) => {}
                Err(err) => tracing::error!(error = %err, "API tokens not reloaded"),
            }
        }
        state.tokens.clone()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TokensError> {
    std::fs::read(path).map_err(|source| TokensError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<Token>, TokensError> {
    let invalid = |message: String| TokensError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| invalid(e.to_string()))?;
    let file: TokensFile = serde_saphyr::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let mut names = BTreeSet::new();
    let mut tokens = Vec::new();
    for (i, entry) in file.tokens.into_iter().enumerate() {
        let at = format!("tokens[{i}]");
        if entry.name.trim().is_empty() {
            return Err(invalid(format!("{at}: name is empty")));
        }
        if !names.insert(entry.name.clone()) {
            return Err(invalid(format!("{at}: name {} is given twice", entry.name)));
        }
        let hash = hex32(&entry.sha256).ok_or_else(|| {
            invalid(format!(
                "{at} ({}): sha256 must be 64 hex digits (e.g. `printf %s TOKEN | sha256sum`)",
                entry.name
            ))
        })?;
        if entry.namespaces.is_empty() || entry.actions.is_empty() {
            return Err(invalid(format!(
                "{at} ({}): give at least one namespace (or \"*\") and one action",
                entry.name
            )));
        }
        tokens.push(Token {
            name: entry.name,
            hash,
            namespaces: entry.namespaces.into_iter().collect(),
            actions: entry.actions.into_iter().collect(),
        });
    }
    Ok(tokens)
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Requests per token: a bucket of `burst` refilled at `per_second`.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_second: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `caller`'s bucket, or says how long to wait (429).
    pub fn take(&self, caller: &str, now: Instant) -> Result<(), ApiError> {
        // Plain numbers behind the lock: a panic while it was held broke no invariant.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (level, at) = buckets
            .entry(caller.to_string())
            .or_insert((self.burst, now));
        let refilled = now.saturating_duration_since(*at).as_secs_f64() * self.per_second;
        *level = (*level + refilled).min(self.burst);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            return Ok(());
        }
        // At least one request a second refills: the next one is there within a second, the
        // smallest wait Retry-After can say.
        Err(ApiError::rate_limited(1))
    }
}

/// The hex SHA-256 of a token, as the tokens file stores it.
pub fn token_hash(token: &str) -> String {
    crate::digest::sha256_hex(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(body: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("tokens.yaml");
        std::fs::write(&path, body).expect("written");
        (dir, path)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let n = std::sync::atomic::AtomicU64::new(0);
                let path = std::env::temp_dir().join(format!(
                    "sluice-auth-{}-{}-{}",
                    std::process::id(),
                    n.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or_default()
                ));
                std::fs::create_dir_all(&path).expect("a temp dir");
                Dir(path)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn tokens_yaml(entries: &[(&str, &str, &str, &str)]) -> String {
        let mut out = String::from("tokens:\n");
        for (name, token, namespaces, actions) in entries {
            out.push_str(&format!(
                "  - name: {name}\n    sha256: {}\n    namespaces: {namespaces}\n    actions: {actions}\n",
                token_hash(token)
            ));
        }
        out
    }

    #[test]
    fn the_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }

    #[test]
    fn a_token_is_known_by_its_hash_and_scoped() {
        let (_dir, path) = file(&tokens_yaml(&[
            ("ci-erp", "s3cret", "[erp-system]", "[read, release, abort]"),
            ("viewer", "look", "[\"*\"]", "[read]"),
        ]));
        let auth = Auth::configure(Some(&path), false).expect("loads");
        let ci = auth.authenticate(Some("Bearer s3cret")).expect("known");
        assert_eq!(ci.name, "ci-erp");
        assert!(ci.allow("erp-system", Action::Release).is_ok());
        assert_eq!(
            ci.allow("erp-system", Action::Promote).map_err(|e| e.code),
            Err("forbidden")
        );
        assert_eq!(
            ci.allow("shop", Action::Read).map_err(|e| e.code),
            Err("forbidden")
        );
        assert!(ci.may_read("erp-system") && !ci.may_read("shop"));
        let viewer = auth.authenticate(Some("Bearer look")).expect("known");
        assert!(viewer.may_read("anything"));
        assert!(viewer.allow("anything", Action::Abort).is_err());
        for wrong in [
            None,
            Some("Bearer nope"),
            Some("Basic s3cret"),
            Some("Bearer "),
        ] {
            let err = auth.authenticate(wrong).expect_err("refused");
            assert_eq!(err.code, "unauthenticated");
            assert!(!err.message.contains("s3cret"));
        }
    }

    #[test]
    fn no_tokens_refuses_to_start_unless_insecure() {
        assert!(matches!(
            Auth::configure(None, false),
            Err(TokensError::NoTokens)
        ));
        let insecure = Auth::configure(None, true).expect("insecure on request");
        let caller = insecure.authenticate(None).expect("anyone");
        assert!(caller.insecure && caller.allow("any", Action::Abort).is_ok());
        let (_dir, path) = file("tokens: []\n");
        assert!(matches!(
            Auth::configure(Some(&path), false),
            Err(TokensError::NoTokens)
        ));
    }

    #[test]
    fn malformed_files_say_what_is_wrong() {
        for (body, says) in [
            (
                "tokens:\n  - name: a\n    sha256: abc\n    namespaces: [x]\n    actions: [read]\n",
                "64 hex",
            ),
            (
                "tokens:\n  - name: a\n    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n    namespaces: [x]\n    actions: [fly]\n",
                "fly",
            ),
            (
                "tokens:\n  - name: a\n    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n    namespaces: []\n    actions: [read]\n",
                "at least one",
            ),
            (
                "tokens:\n  - {name: a, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, namespaces: [x], actions: [read]}\n  - {name: a, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, namespaces: [x], actions: [read]}\n",
                "twice",
            ),
        ] {
            let (_dir, path) = file(body);
            let err = Auth::configure(Some(&path), false)
                .expect_err(body)
                .to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_keeps_the_old_tokens() {
        let (_dir, path) = file(&tokens_yaml(&[("one", "first", "[a]", "[read]")]));
        let auth = Auth::configure(Some(&path), false).expect("loads");
        assert!(auth.authenticate(Some("Bearer first")).is_ok());
        std::fs::write(&path, tokens_yaml(&[("two", "second", "[a]", "[read]")])).expect("w");
        std::thread::sleep(REREAD_EVERY + Duration::from_millis(50));
        assert!(auth.authenticate(Some("Bearer first")).is_err(), "revoked");
        assert_eq!(
            auth.authenticate(Some("Bearer second")).map(|c| c.name),
            Ok("two".to_string())
        );
        std::fs::write(&path, "tokens: [garbage").expect("w");
        std::thread::sleep(REREAD_EVERY + Duration::from_millis(50));
        assert!(auth.authenticate(Some("Bearer second")).is_ok(), "kept");
    }

    #[test]
    fn the_rate_limit_lets_a_burst_through_then_asks_to_wait() {
        let limiter = RateLimiter::new(2, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take("ci", start).is_ok());
        }
        let refused = limiter.take("ci", start).expect_err("over the burst");
        assert_eq!(
            (refused.code, refused.retry_after),
            ("rate_limited", Some(1))
        );
        assert!(limiter.take("other", start).is_ok(), "per token");
        assert!(
            limiter
                .take("ci", start + Duration::from_millis(500))
                .is_ok()
        );
    }
}
