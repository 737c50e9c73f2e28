//! Next steps that know what was done (issue 24), read as the person paged
//! reads them: the real ecs-events binary against the local server renders
//! an alert with an executed rollback, one with a failed rollback (the
//! service held), one with a skipped rollback, and a resolution. None of
//! them advises an action its record shows taken; each says what to do
//! instead — and chat's `nextSteps` are the same list as the text's.

use autopilot_tests::fault_proxy::{Fault, FaultProxy, Rule};
use autopilot_tests::{SeededService, TestBed, fixture};
use serde_json::Value;

/// The numbered lines of a body's "Next steps" section.
fn next_steps(body: &str) -> Vec<String> {
    let start = body.find("\nNext steps").unwrap_or_else(|| panic!("no Next steps section:\n{body}"));
    body[start + 1..]
        .lines()
        .skip(1)
        .map_while(|l| l.split_once(". ").filter(|(n, _)| n.parse::<u32>().is_ok()).map(|(_, t)| t.to_string()))
        .collect()
}

/// `family:revision` of a task definition ARN.
fn short(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}

/// No step advises an action the message shows was taken: after an
/// executed rollback nothing says "roll back", after an executed scale-out
/// nothing says "scale out".
fn assert_nothing_taken_is_advised(name: &str, body: &str) {
    let steps = next_steps(body);
    assert!(!steps.is_empty(), "{name}: no next steps:\n{body}");
    for (taken, advice) in [("rollback executed", "roll back"), ("scale executed", "scale out")] {
        if body.contains(taken) {
            let again: Vec<&String> = steps.iter().filter(|s| s.to_lowercase().contains(advice)).collect();
            assert!(again.is_empty(), "{name}: {taken}, yet advised {again:#?}\n{body}");
        }
    }
}

/// The chat form of every message the topic received, in order, as
/// `(nextSteps, the plain text)`.
fn chat_steps(bed: &TestBed) -> Vec<(Vec<String>, String)> {
    crate::chat::published(&bed.topic_arn)
        .iter()
        .map(|raw| {
            let structure: Value = serde_json::from_str(raw).expect("MessageStructure=json");
            let chat: Value =
                serde_json::from_str(structure["https"].as_str().expect("https body")).expect("chat JSON");
            let steps = chat["content"]["nextSteps"]
                .as_array()
                .expect("nextSteps")
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            (steps, structure["default"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

fn assert_chat_says_the_same(bed: &TestBed) {
    for (chat, text) in chat_steps(bed) {
        let body: Vec<String> = next_steps(&text).into_iter().take(chat.len()).collect();
        assert_eq!(chat.len(), next_steps(&text).len().min(10), "{text}");
        for (c, b) in chat.iter().zip(&body) {
            let kept = c.trim_end_matches("…(cut)");
            assert!(b.starts_with(kept), "chat step {c:?} is not the text's {b:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_executed_rollback_is_confirmed_not_advised_again_and_its_resolution_points_at_the_report() {
    let bed = TestBed::new("steps-done").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    let (good, bad) = (short(&svc.task_definition_arn), short(&bad));
    let mut p = bed.start("ecs-events", &[]);
    let o = p.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "steps-done-1", "x"));
    assert_eq!(o["actions"][0]["status"], "executed", "{o}");
    let resolved = p.outcome(&svc.retarget(&fixture("ecs/service-steady-state.json"), "steps-done-2", "x"));
    assert_eq!(resolved["incident"], o["incident"], "{resolved}");

    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 2, "{:?}", notes.iter().map(|n| &n.subject).collect::<Vec<_>>());
    let (alert, resolution) = (&notes[0].message, &notes[1].message);
    assert!(alert.contains("rollback executed"), "{alert}");
    assert_nothing_taken_is_advised("alert", alert);
    let steps = next_steps(alert);
    let label = format!("{}/api", svc.cluster);
    assert!(
        steps[0].starts_with(&format!("Confirm {label} is healthy on {good}"))
            && steps[0].contains(&format!("The failing revision was {bad}")),
        "the first step confirms the rollback's target and names the failing revision: {steps:#?}"
    );

    assert!(resolution.starts_with("INCIDENT RESOLVED"), "{resolution}");
    assert!(resolution.contains("rollback executed"), "{resolution}");
    assert_nothing_taken_is_advised("resolution", resolution);
    let steps = next_steps(resolution);
    let incident = o["incident"].as_str().expect("incident");
    assert!(
        steps[0].starts_with("Review and complete the incident report: s3://")
            && steps[0].contains(&format!("{incident}/report.md")),
        "{steps:#?}"
    );
    assert!(
        steps.iter().any(|s| s.starts_with(&format!("Verify {label} still runs {good} and stays healthy"))),
        "the resolution says what to verify: {steps:#?}"
    );
    assert_chat_says_the_same(&bed);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_rollback_says_how_to_roll_back_by_hand_and_how_the_hold_is_cleared() {
    let bed = TestBed::new("steps-held").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    let (good, bad) = (short(&svc.task_definition_arn), short(&bad));
    // UpdateService answered 503 without reaching the server: not applied, so failed and held.
    let proxy = FaultProxy::start();
    proxy.inject(Rule::call("ecs:UpdateService", 1, Fault::Status(503)));
    let url = proxy.url();
    let mut p = bed.start("ecs-events", &[("AWS_ENDPOINT_URL", url.as_str())]);
    let o = p.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "steps-held-1", "x"));
    assert_eq!(o["actions"][0]["status"], "failed", "{o}");
    assert!(svc.hold(&bed).await.is_some(), "the failed rollback holds the service");

    let notes = bed.notifications().await;
    let alert = &notes.first().expect("an alert").message;
    assert!(alert.contains("rollback failed") && alert.contains("now held"), "{alert}");
    assert_nothing_taken_is_advised("held alert", alert);
    let steps = next_steps(alert);
    let label = format!("{}/api", svc.cluster);
    assert!(steps[0].starts_with(&format!("The automatic rollback {bad} -> {good} failed")), "{steps:#?}");
    let by_hand = steps.iter().find(|s| s.starts_with("Roll back by hand")).expect("a manual rollback");
    assert!(
        by_hand.contains("aws lambda invoke --function-name <stack>-runbook")
            && by_hand.contains(&format!("\"task_definition\":\"{good}\",\"dry_run\":true")),
        "{by_hand}"
    );
    assert!(steps.iter().any(|s| s.starts_with(&format!("Automatic actions on {label} are held"))), "{steps:#?}");
    let clear = format!(
        "aws dynamodb delete-item --table-name <stack>-state --key '{{\"pk\":{{\"S\":\"service#{label}\"}},\"sk\":{{\"S\":\"hold\"}}}}'"
    );
    assert!(steps.iter().any(|s| s.contains(&clear)), "the exact command that clears the hold: {steps:#?}");
    assert!(!steps.iter().any(|s| s.contains("is healthy on")), "nothing was rolled back: {steps:#?}");
    assert_chat_says_the_same(&bed);
    assert!(
        proxy.injected_into("ecs:UpdateService") > 0,
        "the fault aimed at ecs:UpdateService was injected (else this proved nothing)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_skipped_rollback_says_what_a_person_does_instead() {
    let bed = TestBed::new("steps-off").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    svc.tag(&bed, "autopilot:mode", "off").await;
    let mut p = bed.start("ecs-events", &[]);
    let o = p.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "steps-off-1", "x"));
    assert_eq!(o["actions"][0]["status"], "skipped", "{o}");

    let notes = bed.notifications().await;
    let alert = &notes.first().expect("an alert").message;
    assert!(alert.contains("rollback skipped: mode off"), "{alert}");
    assert_nothing_taken_is_advised("skipped alert", alert);
    let steps = next_steps(alert);
    let label = format!("{}/api", svc.cluster);
    assert!(steps[0].starts_with(&format!("Automatic actions are off for {label} (mode off)")), "{steps:#?}");
    let payload =
        format!("\"action\":\"rollback\",\"cluster\":\"{}\",\"service\":\"api\",\"dry_run\":true", svc.cluster);
    assert!(
        steps.iter().any(|s| s.starts_with("Roll back by hand") && s.contains(&payload)),
        "the command a person runs instead: {steps:#?}"
    );
    assert!(!steps.iter().any(|s| s.contains("is healthy on") || s.contains("are held")), "{steps:#?}");
    assert_chat_says_the_same(&bed);
}
