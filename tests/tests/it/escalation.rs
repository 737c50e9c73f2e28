//! The escalation job (`{"job": "escalate"}`, every five minutes) over the
//! open incidents the state table's index lists: one escalation per incident
//! past the delay, a SEV1 re-announced every 30 minutes, an incident without
//! a signal for a whole window closed as expired — and concurrent runs never
//! send the same escalation twice.

use autopilot_tests::{LambdaProcess, SeededService, TestBed, binary, fixture};
use serde_json::{Value, json};
use std::time::Duration;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Set fields of the open incident record of `svc`, as if it had been open that long.
async fn age_incident(bed: &TestBed, svc: &SeededService, sets: &[(&str, Value)]) {
    let pk = format!("service#{}/{}", svc.cluster, svc.service);
    bed.edit_incident(&pk, |r| {
        for (k, v) in sets {
            r[*k] = v.clone();
        }
    })
    .await;
}

fn n(v: i64) -> Value {
    Value::from(v)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incident_past_the_delay_is_escalated_once_however_many_runs_race() {
    let bed = TestBed::new("escalate").await;
    let svc = SeededService::create(&bed, "api", 3).await;
    let mut events = bed.start("ecs-events", &[]);
    let opened =
        events.outcome(&svc.retarget(&fixture("ecs/task-stopped-app-crash.json"), "esc-1", &format!("{:032x}", 1)));
    let incident = opened["incident"].as_str().expect("incident").to_string();
    assert_eq!(bed.notifications().await.len(), 1, "the opening alert");

    // Not yet due: nothing is sent.
    let mut reports = bed.start("scheduled-reports", &[]);
    let early = reports.outcome(&json!({"job": "escalate"}));
    assert!(early["summary"].as_str().unwrap().contains("0 escalated"), "{early}");
    assert!(bed.notifications().await.is_empty());

    // Open for 20 minutes, still signalling: due. Three runs race for it.
    age_incident(&bed, &svc, &[("opened_at", n(now() - 20 * 60))]).await;
    let env = bed.function_env();
    let name = bed.prefix.clone();
    let runs: Vec<_> = (0..3)
        .map(|i| {
            let env = env.clone();
            let name = format!("{name}-esc-{i}");
            std::thread::spawn(move || {
                let mut p = LambdaProcess::start(&binary("scheduled-reports"), &name, &env);
                p.wait_ready(Duration::from_secs(20));
                p.invoke(&json!({"job": "escalate"})).expect_response("escalate")
            })
        })
        .collect();
    let outcomes: Vec<Value> = runs.into_iter().map(|r| r.join().expect("run")).collect();
    let notes = bed.notifications().await;
    assert_eq!(
        notes.len(),
        1,
        "exactly one escalation: {:?}\n{outcomes:#?}",
        notes.iter().map(|n| &n.subject).collect::<Vec<_>>()
    );
    assert!(notes[0].subject.contains("ESCALATION"), "{}", notes[0].subject);
    assert!(notes[0].message.contains(&incident), "{}", notes[0].message);
    assert!(notes[0].message.contains("What was tried"), "{}", notes[0].message);
    assert!(notes[0].message.contains("Evidence: s3://"), "the evidence link: {}", notes[0].message);
    // A later run: a SEV3 escalates once only.
    reports.outcome(&json!({"job": "escalate"}));
    assert!(bed.notifications().await.is_empty(), "never the same escalation twice");

    // A SEV1 is re-announced every 30 minutes while open.
    age_incident(
        &bed,
        &svc,
        &[
            ("opened_at", n(now() - 50 * 60)),
            ("severity", Value::from("SEV1")),
            ("announced_severity", Value::from("SEV1")),
        ],
    )
    .await;
    reports.outcome(&json!({"job": "escalate"}));
    let again = bed.notifications().await;
    assert_eq!(again.len(), 1, "{:?}", again.iter().map(|n| &n.subject).collect::<Vec<_>>());
    assert!(again[0].subject.contains("reminder 1"), "{}", again[0].subject);
    reports.outcome(&json!({"job": "escalate"}));
    assert!(bed.notifications().await.is_empty(), "not again within 30 minutes");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incident_with_no_signal_for_a_window_is_closed_as_expired_and_says_so() {
    let bed = TestBed::new("expire").await;
    let svc = SeededService::create(&bed, "api", 3).await;
    let mut events = bed.start("ecs-events", &[]);
    let opened =
        events.outcome(&svc.retarget(&fixture("ecs/task-stopped-app-crash.json"), "exp-1", &format!("{:032x}", 1)));
    bed.notifications().await;
    age_incident(&bed, &svc, &[("opened_at", n(now() - 3 * 3600)), ("last_signal_at", n(now() - 2 * 3600))]).await;
    let mut reports = bed.start("scheduled-reports", &[]);
    let o = reports.outcome(&json!({"job": "escalate"}));
    assert!(o["summary"].as_str().unwrap().contains("1 expired"), "{o}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(notes[0].subject.starts_with("[RESOLVED]"), "{}", notes[0].subject);
    assert!(notes[0].message.contains("expired: no signal for"), "{}", notes[0].message);
    assert!(notes[0].message.contains(opened["incident"].as_str().unwrap()));
    // Closed: the next run has nothing to do, and a new stop opens a new incident.
    let later = reports.outcome(&json!({"job": "escalate"}));
    assert!(later["summary"].as_str().unwrap().contains("0 open"), "{later}");
}
