use super::*;
use crate::api::types::RolloutSummary;
use crate::cli::fixtures::summary;

#[test]
fn columns_align_on_their_widest_cell() {
    let rows = vec![
        vec!["A".to_string(), "BB".to_string(), "C".to_string()],
        vec![
            "long".to_string(),
            "x".to_string(),
            "last column".to_string(),
        ],
    ];
    assert_eq!(
        aligned(&rows, "  "),
        "  A      BB   C\n  long   x    last column\n"
    );
}

#[test]
fn the_last_column_and_short_rows_leave_no_trailing_spaces() {
    let rows = vec![
        vec!["NAME".to_string(), "MESSAGE".to_string()],
        vec!["a-much-longer-name".to_string(), String::new()],
    ];
    let text = aligned(&rows, "");
    assert!(text.lines().all(|line| line == line.trim_end()), "{text:?}");
}

#[test]
fn rollout_table_reads_like_kubectl() {
    let idle = RolloutSummary {
        namespace: "finance".to_string(),
        name: "ledger-api".to_string(),
        strategy: Some("blueGreen".to_string()),
        phase: "Ready".to_string(),
        step: None,
        step_count: 0,
        weight: None,
        candidate_slot: None,
        candidate_revision: None,
        target_revision: Some("stab".to_string()),
        message: None,
        ..summary()
    };
    let list = RolloutList {
        items: vec![summary(), idle],
    };
    let expected = "\
NAMESPACE   NAME         STRATEGY    PHASE         STEP   WEIGHT   STABLE   CANDIDATE   MESSAGE
shop        web          canary      Progressing   2/4    50%      stab     cand        step 2/4: 50% to green
finance     ledger-api   blueGreen   Ready         -      -        stab     -           -
";
    assert_eq!(rollout_table(&list), expected);
}

#[test]
fn a_paused_rollout_says_so_in_its_phase() {
    let held = RolloutSummary {
        paused: true,
        ..summary()
    };
    let table = rollout_table(&RolloutList { items: vec![held] });
    assert!(table.contains("Progressing (paused)"), "{table}");
}

#[test]
fn an_empty_list_is_just_the_header() {
    let table = rollout_table(&RolloutList { items: Vec::new() });
    assert_eq!(table.lines().count(), 1);
}
