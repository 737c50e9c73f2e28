//! Faults and kills on the opening path of a failed-deployment incident and
//! of a crash-loop incident (a stop of the freshly deployed revision), every
//! AWS call through the recording fault proxy (`autopilot_tests::fault_bench`).
//!
//! - **Faults**: every call of the path (learnt from a clean run, as
//!   `service:Operation` and its occurrence) in turn gets throttling, a 503,
//!   a hang past its attempt timeout and a connection reset, on every
//!   attempt the SDK makes (the call fails, not just one attempt). Then, as
//!   Lambda does with a failed asynchronous invocation, the event is
//!   redelivered with the same request id after `REDELIVERY_DELAY_SECONDS`
//!   and twice that again, and once more by EventBridge (a new request id).
//!   Expected: the opening alert goes out, once (SNS works again by then);
//!   an SNS failure fails the invocation; a failed safety read means no
//!   action in that invocation (whatever another call of the same read
//!   answered); no retry acts or alerts twice; every executed action is
//!   announced. Every round must have injected its fault.
//! - **Kills**: the process is killed at each call of the path — held
//!   before it reaches the server, or after the server applied it — then the
//!   event is redelivered as above. Every round must have held and killed
//!   the process at its call. A second opening alert is allowed (once) only
//!   in the two cells where none can be avoided
//!   (`fault_bench::double_opening_unavoidable`).
//!
//! `FAULT_ROUNDS` (8): rounds per path and suite (`all`: the whole matrix);
//! `FAULT_SEED` (else `AUTOPILOT_SEED`, pinned by scripts/test.sh; else the
//! clock; printed, and named in a failure) draws them; the calls that decide —
//! `sns:Publish`, `ecs:UpdateService` — come first. The pinned rounds at the
//! end are single cells of the matrix, named after what they prove.

use autopilot_tests::adversity::env_count;
use autopilot_tests::fault_bench::{Blow, FaultBench, Path, RoundReport};
use autopilot_tests::fault_proxy::Fault;
use std::io::Write;
use std::time::Instant;

/// `FAULT_ROUNDS` as it replays (`all` for the whole matrix).
fn rounds_label() -> String {
    match env_count("FAULT_ROUNDS", 8) {
        usize::MAX => "all".into(),
        n => n.to_string(),
    }
}

/// Every picked round of both paths with `blows`; the suite's line.
async fn suite(name: &str, blows: &[Blow]) -> (String, RoundReport, u64) {
    let mut bench = FaultBench::new(name).await;
    let _ = writeln!(std::io::stdout().lock(), "{name}: FAULT_SEED={} FAULT_ROUNDS={}", bench.seed, rounds_label());
    let started = Instant::now();
    let (mut total, mut rounds, mut matrix) = (RoundReport::default(), 0, 0);
    for path in Path::ALL {
        matrix += bench.steps(path).await.len() * blows.len();
        for (step, blow) in bench.pick(path, blows).await {
            total.merge(bench.round(path, &step.op, step.k, blow).await);
            rounds += 1;
        }
    }
    let line = format!(
        "ADVERSITY {name} paths={} rounds={rounds} matrix={matrix} faults_injected={} kills={} missed_blows={} \
         dead_lettered={} sns_failure_swallowed={} acted_on_partial_information={} seed={} seconds={:.0} {}",
        Path::ALL.len(),
        total.injected,
        total.kills,
        total.missed_blows,
        total.dead_lettered,
        total.sns_failure_swallowed,
        total.acted_on_partial_information,
        bench.seed,
        started.elapsed().as_secs_f64(),
        total.findings.counts()
    );
    let _ = writeln!(std::io::stdout().lock(), "{line}");
    (line, total, bench.seed)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_of_the_opening_paths_failing_in_turn_keeps_one_alert_and_at_most_one_action() {
    let (line, total, seed) = suite("faults", &Blow::faults()).await;
    assert_eq!(
        total.violations(),
        0,
        "{line}\n(replay: FAULT_SEED={seed} FAULT_ROUNDS={rounds} draws the same rounds)\n{}",
        total.broken.join("\n"),
        rounds = rounds_label(),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_killed_at_any_call_of_the_opening_paths_and_redelivered_keeps_one_alert_and_at_most_one_action() {
    let (line, total, seed) = suite("kills", &Blow::kills()).await;
    assert_eq!(
        total.violations(),
        0,
        "{line}\n(replay: FAULT_SEED={seed} FAULT_ROUNDS={rounds} draws the same rounds)\n{}",
        total.broken.join("\n"),
        rounds = rounds_label(),
    );
}

/// One cell of the matrix on both paths.
async fn pinned(name: &str, op: &str, k: u32, blow: Blow) {
    let mut bench = FaultBench::new(name).await;
    let mut total = RoundReport::default();
    for path in Path::ALL {
        total.merge(bench.round(path, op, k, blow).await);
    }
    assert_eq!(total.violations(), 0, "{name}: {op}#{k} {} (a pinned cell)\n{}", blow.label(), total.broken.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_event_claim_is_throttled_the_retry_should_alert_once_and_act_once() {
    pinned("pin-claim", "dynamodb:PutItem", 1, Blow::Fault(Fault::Throttle)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_opening_alert_cannot_be_published_the_retry_should_alert_once_announcing_the_rollback() {
    pinned("pin-sns", "sns:Publish", 1, Blow::Fault(Fault::Status(503))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_process_dies_before_the_opening_alert_the_redelivery_should_still_send_it() {
    pinned("pin-kill-sns", "sns:Publish", 1, Blow::Kill { applied: false }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_process_dies_right_after_its_rollback_the_redelivery_should_announce_it_and_not_act_again() {
    pinned("pin-kill-rollback", "ecs:UpdateService", 1, Blow::Kill { applied: true }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_revision_list_is_unreadable_an_automatic_rollback_should_not_go_ahead() {
    // Without it, "never onto an inactive revision" cannot be checked.
    pinned("pin-revisions", "ecs:ListTaskDefinitions", 1, Blow::Fault(Fault::Throttle)).await;
}

/// Finding of issue 25 (the narrowed allowance): the incident shell marked
/// the ledger's actions announced (`dynamodb:UpdateItem`) between the opening
/// alert's `Publish` and the write that records it delivered, and a process
/// killed there — before or after that write — was redelivered into a second
/// opening alert. The shell now records the delivery first: no call comes
/// between the two on either path, and a kill at every call after the record
/// (the ledger's marking among them) keeps one alert.
#[tokio::test(flavor = "multi_thread")]
async fn when_the_process_dies_between_the_opening_alert_and_its_record_the_redelivery_should_not_alert_again() {
    let mut bench = FaultBench::new("pin-between").await;
    let mut total = RoundReport::default();
    for path in Path::ALL {
        let steps = bench.steps(path).await;
        let publish = steps.iter().find(|s| s.op == "sns:Publish").expect("the opening alert").index;
        let record = steps.iter().find(|s| s.index > publish && s.records_incident).expect("its record").index;
        let between: Vec<&str> =
            steps.iter().filter(|s| s.index > publish && s.index < record).map(|s| s.op.as_str()).collect();
        assert!(between.is_empty(), "{path:?}: calls between the opening Publish and its record: {between:?}");
        // The calls right after the record (the ledger's marking): a death there repeats nothing.
        for step in steps.iter().filter(|s| s.index > record).take(2) {
            for blow in Blow::kills() {
                total.merge(bench.round(path, &step.op, step.k, blow).await);
            }
        }
    }
    assert!(total.kills > 0, "no kill landed");
    assert_eq!(total.violations(), 0, "{}", total.broken.join("\n"));
}
