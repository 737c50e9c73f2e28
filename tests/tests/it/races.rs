//! Races: randomized interleavings of duplicate, concurrent, late and
//! out-of-order signals of one service's failure — its fresh revision's
//! tasks crashing, SERVICE_DEPLOYMENT_FAILED / COMPLETED, the designated 5xx
//! alarm going to ALARM and back to OK, SERVICE_STEADY_STATE — handled by
//! five warm function processes at once (three `ecs-events`, two
//! `alarm-responder`) against the local server, every AWS call through the
//! recording proxy (`autopilot_tests::race_bench`). Each interleaving gets a
//! fresh service; a final SERVICE_STEADY_STATE closes what is still open;
//! then the invariants (`autopilot_tests::adversity::check`) must hold.
//!
//! `RACE_INTERLEAVINGS` (50) interleavings, seeds `RACE_SEED` (else
//! `AUTOPILOT_SEED`, pinned by scripts/test.sh; else the clock; printed, and
//! named in a failure), `RACE_SEED`+1, …; `RACE_RETRY_SECONDS` (0.3): Lambda's two
//! retries of a failed invocation come after 1× and 2× more of this.

use autopilot_tests::adversity::{Findings, env_count, env_seed};
use autopilot_tests::race_bench::RaceBench;
use std::io::Write;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread")]
async fn randomized_interleavings_of_one_failures_signals_keep_every_incident_invariant() {
    let interleavings = env_count("RACE_INTERLEAVINGS", 50);
    let seed = env_seed("RACE_SEED");
    let mut bench = RaceBench::new("races", 3, 2).await;
    let _ = writeln!(std::io::stdout().lock(), "races: {interleavings} interleavings from RACE_SEED={seed}");
    let started = Instant::now();
    let (mut total, mut failing_seeds) = (Findings::default(), Vec::new());
    let (mut invocations, mut dead_lettered) = (0, 0);
    for i in 0..interleavings {
        let s = seed.wrapping_add(i as u64);
        let r = bench.interleaving(s).await;
        invocations += r.invocations;
        dead_lettered += r.dead_lettered;
        if r.findings.violations() > 0 {
            failing_seeds.push(s);
            let _ = writeln!(std::io::stdout().lock(), "\nRACE interleaving {i} RACE_SEED={s}:\n{}", r.detail);
        }
        total.merge(r.findings);
    }
    let line = format!(
        "ADVERSITY races interleavings={} processes={} invocations={invocations} dead_lettered={dead_lettered} \
         seed={seed} seconds={:.0} {}",
        total.episodes,
        bench.processes.len(),
        started.elapsed().as_secs_f64(),
        total.counts()
    );
    // Straight to the process's stdout: the counts show whether the test passes or not.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
    assert_eq!(
        total.violations(),
        0,
        "{line}\nRACE_SEED={seed}: broken in interleavings with seeds {failing_seeds:?} (rerun one: RACE_SEED=<seed> RACE_INTERLEAVINGS=1)\n{}",
        total.broken.join("\n")
    );
}
