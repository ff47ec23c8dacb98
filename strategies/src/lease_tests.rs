use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn read<'a>(version: &'a str, holder: Option<&'a str>) -> LeaseRead<'a> {
    LeaseRead {
        resource_version: version,
        holder,
        lease_duration_seconds: Some(15),
        transitions: Some(3),
    }
}

#[test]
fn the_defaults_are_client_gos_and_pass_its_checks() {
    let timing = Timing::default();
    assert_eq!(
        (
            timing.lease_duration,
            timing.renew_deadline,
            timing.retry_period
        ),
        (secs(15), secs(10), secs(2))
    );
    assert_eq!(timing.check(), Ok(()));
    assert_eq!(timing.lease_duration_seconds(), 15);
}

#[test]
fn times_that_could_give_two_leaders_are_refused() {
    let with = |lease, renew, retry| Timing {
        lease_duration: lease,
        renew_deadline: renew,
        retry_period: retry,
    };
    let refused = [
        with(secs(10), secs(10), secs(2)),
        with(secs(10), secs(12), secs(2)),
        with(Duration::from_millis(15_500), secs(10), secs(2)),
        with(Duration::ZERO, Duration::ZERO, Duration::ZERO),
        with(secs(15), secs(10), Duration::ZERO),
        with(secs(15), Duration::from_millis(2400), secs(2)),
    ];
    for timing in refused {
        assert!(timing.check().is_err(), "{timing:?} is refused");
    }
    // The tightest that still works: 1.2 x retry just under the deadline, deadline under duration.
    assert_eq!(
        with(secs(3), Duration::from_millis(2401), secs(2)).check(),
        Ok(())
    );
    assert_eq!(
        with(
            secs(1),
            Duration::from_millis(500),
            Duration::from_millis(400)
        )
        .check(),
        Ok(())
    );
    assert!(matches!(
        with(secs(10), secs(10), secs(2)).check(),
        Err(TimingError::RenewDeadline { .. })
    ));
    assert!(matches!(
        with(secs(15), secs(10), secs(9)).check(),
        Err(TimingError::RetryPeriod { .. })
    ));
}

#[test]
fn the_leader_stops_a_renew_deadline_after_it_sent_its_last_renewal() {
    let timing = Timing::default();
    assert_eq!(timing.leading_until(secs(100)), secs(110));
    assert!(timing.leading_until(secs(100)) < secs(100) + timing.lease_duration);
}

#[test]
fn followers_spread_their_tries_and_the_leader_keeps_time() {
    let timing = Timing::default();
    assert_eq!(timing.next_try(true, 0.9), secs(2));
    assert_eq!(timing.next_try(false, 0.0), secs(2));
    assert_eq!(timing.next_try(false, 1.0), Duration::from_millis(2400));
    assert_eq!(timing.next_try(false, 0.5), Duration::from_millis(2200));
    assert_eq!(timing.next_try(false, 7.0), Duration::from_millis(2400));
}

#[test]
fn an_unchanged_record_keeps_the_time_it_was_first_seen() {
    let first = observe(None, read("7", Some("b")), secs(5));
    assert_eq!(first.changed_at, secs(5));
    assert_eq!(first.lease_duration, secs(15));
    assert_eq!(first.transitions, 3);
    let again = observe(Some(&first), read("7", Some("b")), secs(9));
    assert_eq!(again.changed_at, secs(5));
    let renewed = observe(Some(&again), read("8", Some("b")), secs(11));
    assert_eq!(renewed.changed_at, secs(11));
}

#[test]
fn an_empty_holder_is_no_holder_and_a_missing_duration_lapses_at_once() {
    let seen = observe(
        None,
        LeaseRead {
            resource_version: "1",
            holder: Some(""),
            lease_duration_seconds: None,
            transitions: Some(-4),
        },
        secs(1),
    );
    assert_eq!(seen.holder, None);
    assert_eq!(seen.lease_duration, Duration::ZERO);
    assert_eq!(seen.transitions, 0);
    let negative = observe(
        None,
        LeaseRead {
            lease_duration_seconds: Some(-3),
            ..read("1", Some("b"))
        },
        secs(1),
    );
    assert_eq!(negative.lease_duration, Duration::ZERO);
    assert_eq!(attempt("a", Some(&negative), secs(1)), Attempt::Acquire);
}

#[test]
fn no_lease_is_created_a_held_one_followed_until_it_lapses_then_taken() {
    assert_eq!(attempt("a", None, secs(0)), Attempt::Create);
    let seen = observe(None, read("7", Some("b")), secs(5));
    let follow = Attempt::Follow {
        holder: "b".into(),
        until: secs(20),
    };
    assert_eq!(attempt("a", Some(&seen), secs(5)), follow);
    assert_eq!(
        attempt("a", Some(&seen), Duration::from_millis(19_999)),
        follow
    );
    assert_eq!(attempt("a", Some(&seen), secs(20)), Attempt::Acquire);
    assert_eq!(attempt("b", Some(&seen), secs(6)), Attempt::Renew);
    // b's own Lease stays b's even past its duration: renewing it is b's to do.
    assert_eq!(attempt("b", Some(&seen), secs(60)), Attempt::Renew);
    let free = observe(None, read("9", None), secs(5));
    assert_eq!(attempt("a", Some(&free), secs(5)), Attempt::Acquire);
}

#[test]
fn claims_count_a_transition_only_when_the_holder_changes() {
    let timing = Timing::default();
    let held = observe(None, read("7", Some("b")), secs(5));
    let free = observe(None, read("7", None), secs(5));
    let taken = claim("a", &Attempt::Acquire, Some(&held), &timing).unwrap();
    assert_eq!(
        taken,
        Claim {
            holder: Some("a".into()),
            lease_duration_seconds: 15,
            transitions: 4,
            new_acquire_time: true,
        }
    );
    let after_release = claim("a", &Attempt::Acquire, Some(&free), &timing).unwrap();
    assert_eq!(
        (after_release.transitions, after_release.new_acquire_time),
        (3, true)
    );
    let mine = observe(None, read("7", Some("a")), secs(5));
    let renewed = claim("a", &Attempt::Renew, Some(&mine), &timing).unwrap();
    assert_eq!((renewed.transitions, renewed.new_acquire_time), (3, false));
    let created = claim("a", &Attempt::Create, None, &timing).unwrap();
    assert_eq!((created.transitions, created.new_acquire_time), (0, true));
    assert_eq!(created.holder.as_deref(), Some("a"));
    let follow = Attempt::Follow {
        holder: "b".into(),
        until: secs(20),
    };
    assert_eq!(claim("a", &follow, Some(&held), &timing), None);
}

#[test]
fn a_released_lease_has_no_holder_and_lapses_in_a_second() {
    let mine = observe(None, read("7", Some("a")), secs(5));
    assert_eq!(
        release(&mine),
        Claim {
            holder: None,
            lease_duration_seconds: 1,
            transitions: 3,
            new_acquire_time: false,
        }
    );
}

#[test]
fn each_scope_has_its_own_lease() {
    let digest = |scope: &str| format!("{:x}", scope.len());
    assert_eq!(lease_name(&[], None, digest), "sluice");
    let sharded = lease_name(&[], Some("shard=a"), |s| s.to_string());
    assert_eq!(sharded, "sluice-|shard=a");
    let namespaced = lease_name(&["erp".into(), "shop".into()], None, |s| s.to_string());
    assert_eq!(namespaced, "sluice-erp,shop|");
    let both = lease_name(&["erp".into()], Some("shard=a"), |s| s.to_string());
    assert_eq!(both, "sluice-erp|shard=a");
}
