//! The controller's own writes to Rollouts, so that a reconcile never decides from a cache that
//! has not seen them yet. Without this, a reconcile whose status comes out unchanged (its write
//! skipped, and with it the resourceVersion guard) could act on the status from before our last
//! write, and re-apply an older weight.

use std::collections::HashMap;
use std::sync::Mutex;

/// For each Rollout (by uid), the resourceVersion our latest write to it replaced.
#[derive(Debug, Default)]
pub struct OwnWrites {
    replaced: Mutex<HashMap<String, String>>,
}

impl OwnWrites {
    /// We wrote the Rollout `uid` that we had read at `resource_version`.
    pub fn wrote(&self, uid: &str, resource_version: &str) {
        self.lock().insert(uid.into(), resource_version.into());
    }

    /// Whether a Rollout read at `resource_version` is older than our latest write to it: the
    /// cache still shows exactly the version that write replaced. A resourceVersion is opaque, so
    /// equality is all there is to compare; a cache moves forward, so seeing any other version
    /// means it has seen the write.
    pub fn is_stale(&self, uid: &str, resource_version: &str) -> bool {
        let mut replaced = self.lock();
        match replaced.get(uid) {
            Some(old) if old == resource_version => true,
            Some(_) => {
                replaced.remove(uid);
                false
            }
            None => false,
        }
    }

    /// The Rollout is gone: nothing to remember of it.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // The map holds plain strings: a panic while it was locked left no broken invariant.
        self.replaced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_behind_our_own_write_is_stale_until_it_moves_on() {
        let writes = OwnWrites::default();
        assert!(!writes.is_stale("u1", "10"), "nothing written yet");
        writes.wrote("u1", "10");
        assert!(
            writes.is_stale("u1", "10"),
            "still the version our write replaced"
        );
        assert!(!writes.is_stale("u2", "10"), "another Rollout");
        assert!(!writes.is_stale("u1", "11"), "the cache saw the write");
        assert!(
            !writes.is_stale("u1", "10"),
            "forgotten once seen: a re-created object may reuse nothing, but need not wait"
        );
        writes.wrote("u1", "12");
        writes.forget("u1");
        assert!(!writes.is_stale("u1", "12"));
    }
}
