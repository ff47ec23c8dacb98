//! When a Deployment's pods count as ready for a release: only pods of its current template, only
//! once the Deployment controller has seen that template, and only once they are available (ready
//! for `minReadySeconds`), which is what the user asked the Deployment to wait for.

/// What a Deployment's status says, as the controller read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RolloutFacts {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
    /// `status.replicas`: pods of every template.
    pub total: i32,
    /// `status.updatedReplicas`: pods of the current template.
    pub updated: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.availableReplicas`: ready for at least `minReadySeconds`.
    pub available: i32,
}

/// Pods of the current template that are ready and available; 0 while the status lags the spec or
/// pods of an older template are left (their readiness would be counted as the new one's).
pub fn ready_of_current(facts: RolloutFacts) -> i32 {
    let observed = facts.observed_generation >= facts.generation;
    if !observed || facts.updated < facts.replicas || facts.total > facts.replicas {
        return 0;
    }
    facts.ready.min(facts.available).min(facts.updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolled_out(replicas: i32) -> RolloutFacts {
        RolloutFacts {
            replicas,
            generation: 3,
            observed_generation: 3,
            total: replicas,
            updated: replicas,
            ready: replicas,
            available: replicas,
        }
    }

    #[test]
    fn only_available_pods_of_the_current_template_once_the_status_caught_up() {
        let cases = [
            ("rolled out", rolled_out(2), 2),
            (
                "status behind the spec",
                RolloutFacts {
                    observed_generation: 2,
                    ..rolled_out(2)
                },
                0,
            ),
            (
                "old pods still there",
                RolloutFacts {
                    total: 3,
                    ..rolled_out(2)
                },
                0,
            ),
            (
                "not all updated",
                RolloutFacts {
                    updated: 1,
                    ..rolled_out(2)
                },
                0,
            ),
            (
                "one not ready",
                RolloutFacts {
                    ready: 1,
                    ..rolled_out(2)
                },
                1,
            ),
            (
                "ready, not yet minReadySeconds",
                RolloutFacts {
                    available: 0,
                    ..rolled_out(2)
                },
                0,
            ),
            ("scaled to zero", rolled_out(0), 0),
        ];
        for (what, facts, want) in cases {
            assert_eq!(ready_of_current(facts), want, "{what}");
        }
    }
}
