//! Every payload under `tests/fixtures/` parses into the trigger it is, and
//! every malformed one gives an error naming what was wrong. A new fixture
//! without an expectation here fails the suite.

use super::*;
use std::path::PathBuf;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn load(rel: &str) -> Value {
    let path = fixtures_dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// (fixture, trigger variant, cluster, service)
const VALID: &[(&str, &str, Option<&str>, Option<&str>)] = &[
    ("ecs/task-stopped-image-pull.json", "ecs-task", Some("prod"), Some("api")),
    ("hook/reconcile-service.json", "deployment-hook", Some("prod"), Some("api")),
    ("hook/pre-scale-up.json", "deployment-hook", Some("prod"), Some("api")),
    ("hook/post-scale-up.json", "deployment-hook", Some("prod"), Some("api")),
    ("hook/test-traffic-shift.json", "deployment-hook", Some("prod"), Some("api")),
    ("hook/post-test-traffic-shift.json", "deployment-hook", Some("prod"), Some("api")),
    ("hook/pre-production-traffic-shift.json", "deployment-hook", Some("prod"), Some("api")),
    ("hook/production-traffic-shift.json", "deployment-hook", Some("prod"), Some("api")),
    ("hook/production-traffic-shift-canary-10.json", "deployment-hook", Some("prod"), Some("api")),
    ("hook/production-traffic-shift-linear-step-2.json", "deployment-hook", Some("prod"), Some("api")),
    ("hook/post-production-traffic-shift.json", "deployment-hook", Some("prod"), Some("api")),
    ("hook/flat-post-scale-up.json", "deployment-hook", Some("prod"), Some("api")),
    ("ecs/task-stopped-oom-on-container.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-secrets.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-secret-not-found.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-network-eni.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-elb-health-check.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-container-health-check.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-app-crash.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-sigkill-137.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-scale-in.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-deployment-replaced.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-user.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-spot.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-capacity.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-platform-mismatch-manifest.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-platform-mismatch-exec-format.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-running.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-standalone.json", "ecs-task", Some("prod"), None),
    ("ecs/task-stopped-numbers-as-strings.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-stopped-null-containers.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/service-steady-state.json", "ecs-service-action", Some("prod"), Some("api")),
    ("ecs/service-task-start-impaired.json", "ecs-service-action", Some("prod"), Some("api")),
    ("ecs/service-task-placement-failure.json", "ecs-service-action", Some("prod"), Some("api")),
    ("ecs/service-task-configuration-failure.json", "ecs-service-action", Some("prod"), Some("api")),
    ("ecs/service-health-unknown-legacy-arn.json", "ecs-service-action", Some("prod"), Some("api")),
    ("ecs/service-unknown-event-name.json", "ecs-service-action", Some("prod"), Some("api")),
    ("ecs/deployment-in-progress.json", "ecs-deployment", Some("prod"), Some("api")),
    ("ecs/deployment-completed.json", "ecs-deployment", Some("prod"), Some("api")),
    ("ecs/deployment-failed.json", "ecs-deployment", Some("prod"), Some("api")),
    ("ecs/deployment-failed-legacy-arn.json", "ecs-deployment", None, None),
    ("ecs/deployment-circuit-breaker-rolling-back.json", "ecs-deployment", Some("prod"), Some("api")),
    ("ecs/container-instance-state-change.json", "ignored", None, None),
    // Inputs as AWS and others really send them (issue 20): one variant each.
    ("ecs/task-event-without-detail-task-arn.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-event-version-integer.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-event-version-float.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-event-time-offset-0000.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/task-event-time-one-fraction-digit.json", "ecs-task", Some("prod"), Some("api")),
    ("ecs/service-action-without-cluster-arn.json", "ecs-service-action", Some("prod"), Some("api")),
    // Named before a task ARN was read from `resources`; it has one there, so it parses.
    ("malformed/ecs-task-missing-task-arn.json", "ecs-task", Some("prod"), Some("api")),
    ("alarm/sns-classic-region-display-name.json", "alarm", Some("prod"), Some("api")),
    ("alarm/sns-signing-cert-url-uppercase.json", "alarm", Some("prod"), Some("api")),
    ("alarm/eventbridge-version-integer-time-offset.json", "alarm", Some("prod"), Some("api")),
    ("sns/sns-signing-cert-url-uppercase.json", "ecs-task", Some("prod"), Some("api")),
    ("pipeline/stage-failed-version-integer-time-offset.json", "pipeline", None, None),
    ("schedule/scheduler-default-notification.json", "scheduled", None, None),
    ("schedule/scheduler-detail-string-with-job.json", "scheduled", None, None),
    ("alarm/eventbridge-metric-cpu.json", "alarm", Some("prod"), Some("api")),
    ("alarm/eventbridge-metric-cpu-ok.json", "alarm", Some("prod"), Some("api")),
    ("alarm/eventbridge-metric-math-5xx-rate.json", "alarm", None, None),
    ("alarm/eventbridge-anomaly-detection-latency.json", "alarm", None, None),
    ("alarm/eventbridge-composite.json", "alarm", None, None),
    ("alarm/eventbridge-composite-suppressed.json", "alarm", None, None),
    ("alarm/sns-metric-unhealthy-hosts.json", "alarm", None, None),
    ("alarm/sns-metric-math-memory.json", "alarm", Some("prod"), Some("api")),
    ("alarm/lambda-action-metric.json", "alarm", Some("prod"), Some("api")),
    ("alarm/lambda-action-composite.json", "alarm", None, None),
    ("sns/sns-wrapped-ecs-task-stopped.json", "ecs-task", Some("prod"), Some("api")),
    ("sns/sns-wrapped-deployment-failed.json", "ecs-deployment", Some("prod"), Some("api")),
    ("sns/sns-minimal-envelope-deployment-failed.json", "ecs-deployment", Some("prod"), Some("api")),
    ("alarm/lambda-action-without-time.json", "alarm", Some("prod"), Some("api")),
    ("pipeline/pipeline-execution-failed.json", "pipeline", None, None),
    ("pipeline/pipeline-execution-succeeded.json", "pipeline", None, None),
    ("pipeline/stage-failed.json", "pipeline", None, None),
    ("pipeline/action-failed-codebuild.json", "pipeline", None, None),
    ("pipeline/action-approval-started.json", "pipeline", None, None),
    ("pipeline/action-deploy-ecs-started.json", "pipeline", None, None),
    ("pipeline/action-deploy-ecs-succeeded.json", "pipeline", None, None),
    ("pipeline/action-deploy-codedeploy-started.json", "pipeline", None, None),
    ("pipeline/pipeline-execution-superseded.json", "pipeline", None, None),
    ("pipeline/pipeline-execution-canceled.json", "pipeline", None, None),
    ("pipeline/stage-started.json", "pipeline", None, None),
    ("schedule/job-daily.json", "scheduled", None, None),
    ("schedule/job-weekly.json", "scheduled", None, None),
    ("schedule/job-escalate.json", "scheduled", None, None),
    ("schedule/eventbridge-scheduled-event.json", "scheduled", None, None),
    ("runbook/diagnose.json", "runbook", Some("prod"), Some("api")),
    ("runbook/health-check.json", "runbook", Some("prod"), Some("api")),
    ("runbook/rollback-dry-run.json", "runbook", Some("prod"), Some("api")),
    ("runbook/rollback-explicit.json", "runbook", Some("prod"), Some("api")),
    ("runbook/rollback-with-request-id.json", "runbook", Some("prod"), Some("api")),
    ("runbook/scale.json", "runbook", Some("prod"), Some("api")),
    ("runbook/force-deploy.json", "runbook", Some("prod"), Some("api")),
    ("runbook/scale-to-zero.json", "runbook", Some("prod"), Some("api")),
    ("runbook/capture-evidence.json", "runbook", Some("prod"), Some("api")),
    ("runbook/continue-deployment.json", "runbook", Some("prod"), Some("api")),
    ("runbook/rollback-deployment.json", "runbook", Some("prod"), Some("api")),
    ("runbook/acknowledge.json", "runbook", Some("prod"), Some("api")),
    ("ecs/hook-awaiting-action.json", "ecs-hook", Some("my-cluster"), Some("my-service")),
    ("ecs/hook-succeeded.json", "ecs-hook", Some("my-cluster"), Some("my-service")),
];

/// (fixture, words the error must contain)
const MALFORMED: &[(&str, &[&str])] = &[
    ("malformed/runbook-missing-service.json", &["runbook request", "service"]),
    ("malformed/runbook-unknown-action.json", &["reboot", "diagnose"]),
    ("malformed/runbook-typo-field.json", &["desired_cont"]),
    ("malformed/runbook-scale-without-count.json", &["desired_count"]),
    ("malformed/runbook-scale-to-zero-without-confirm.json", &["confirm"]),
    ("malformed/empty-object.json", &["unrecognised", "an object with keys []"]),
    ("malformed/array.json", &["unrecognised", "array"]),
    ("malformed/unknown-source.json", &["aws.ec2", "EC2 Instance State-change Notification"]),
    ("malformed/ecs-task-without-any-task-arn.json", &["ECS Task State Change", "detail.taskArn", "resources"]),
    ("malformed/eventbridge-time-unreadable.json", &["EventBridge event", "timestamp", "yesterday"]),
    ("malformed/sns-message-not-json.json", &["Sns.Message", "Hello from the team"]),
    ("malformed/alarm-state-invalid.json", &["state.value", "PANIC"]),
    ("malformed/schedule-unknown-job.json", &["job", "hourly"]),
    ("malformed/runbook-continue-deployment-without-hook.json", &["continue-deployment", "hook_id"]),
    ("malformed/hook-no-service-arn.json", &["executionDetails.serviceArn"]),
];

fn variant(t: &Trigger) -> &'static str {
    match t {
        Trigger::EcsTask(_) => "ecs-task",
        Trigger::EcsServiceAction(_) => "ecs-service-action",
        Trigger::EcsDeployment(_) => "ecs-deployment",
        Trigger::EcsHook(_) => "ecs-hook",
        Trigger::Alarm { .. } => "alarm",
        Trigger::Pipeline(_) => "pipeline",
        Trigger::Scheduled { .. } => "scheduled",
        Trigger::Runbook(_) => "runbook",
        Trigger::DeploymentHook(_) => "deployment-hook",
        Trigger::Ignored { .. } => "ignored",
    }
}

#[test]
fn every_fixture_should_have_an_expectation() {
    let mut listed: Vec<&str> = VALID.iter().map(|v| v.0).chain(MALFORMED.iter().map(|m| m.0)).collect();
    listed.sort();
    let mut on_disk = Vec::new();
    for dir in std::fs::read_dir(fixtures_dir()).unwrap() {
        let dir = dir.unwrap().path();
        // `redaction/` holds the redaction corpus, not events.
        if !dir.is_dir() || dir.ends_with("redaction") {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "json") {
                let rel = f.strip_prefix(fixtures_dir()).unwrap().to_string_lossy().replace('\\', "/");
                on_disk.push(rel);
            }
        }
    }
    on_disk.sort();
    let missing: Vec<_> = on_disk.iter().filter(|f| !listed.contains(&f.as_str())).collect();
    assert!(missing.is_empty(), "fixtures without an expectation: {missing:?}");
}

#[test]
fn every_valid_fixture_should_parse_into_its_trigger() {
    for (file, expected, cluster, service) in VALID {
        let trigger = Trigger::parse(&load(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(variant(&trigger), *expected, "{file}");
        let (c, s) = trigger.cluster_service();
        assert_eq!((c.as_deref(), s.as_deref()), (*cluster, *service), "{file}");
        if !matches!(
            trigger,
            Trigger::Runbook(_)
                | Trigger::DeploymentHook(_)
                | Trigger::Ignored { .. }
                | Trigger::Scheduled { id: None, .. }
        ) {
            assert!(trigger.event_id().is_some_and(|id| !id.is_empty()), "{file}: no idempotency key");
        }
    }
}

#[test]
fn every_malformed_fixture_should_be_refused_naming_what_was_wrong() {
    for (file, words) in MALFORMED {
        let err = Trigger::parse(&load(file)).expect_err(file).to_string();
        for w in *words {
            assert!(err.contains(w), "{file}: error {err:?} should mention {w:?}");
        }
    }
}

#[test]
fn oom_on_the_container_and_numbers_as_strings_should_survive_parsing() {
    let Trigger::EcsTask(e) = Trigger::parse(&load("ecs/task-stopped-numbers-as-strings.json")).unwrap() else {
        panic!("not a task")
    };
    assert_eq!(e.detail.containers[0].exit_code, Some(137));
    assert_eq!(e.detail.cpu.as_deref(), Some("512"));
    assert_eq!(e.detail.version, Some(6));
    let Trigger::EcsTask(e) = Trigger::parse(&load("ecs/task-stopped-null-containers.json")).unwrap() else {
        panic!("not a task")
    };
    assert!(e.detail.containers.is_empty());
    assert_eq!(e.detail.stopped_reason, None);
}

#[test]
fn alarm_shapes_should_normalise_to_one_model() {
    let cases: &[(&str, AlarmKind, AlarmOrigin, AlarmState, &str)] = &[
        (
            "alarm/eventbridge-metric-cpu.json",
            AlarmKind::Metric,
            AlarmOrigin::EventBridge,
            AlarmState::Alarm,
            "CPUUtilization",
        ),
        (
            "alarm/eventbridge-metric-cpu-ok.json",
            AlarmKind::Metric,
            AlarmOrigin::EventBridge,
            AlarmState::Ok,
            "CPUUtilization",
        ),
        (
            "alarm/eventbridge-metric-math-5xx-rate.json",
            AlarmKind::MetricMath,
            AlarmOrigin::EventBridge,
            AlarmState::Alarm,
            "RequestCount",
        ),
        (
            "alarm/eventbridge-anomaly-detection-latency.json",
            AlarmKind::AnomalyDetection,
            AlarmOrigin::EventBridge,
            AlarmState::Alarm,
            "TargetResponseTime",
        ),
        ("alarm/eventbridge-composite.json", AlarmKind::Composite, AlarmOrigin::EventBridge, AlarmState::Alarm, ""),
        (
            "alarm/sns-metric-unhealthy-hosts.json",
            AlarmKind::Metric,
            AlarmOrigin::Sns,
            AlarmState::Alarm,
            "UnHealthyHostCount",
        ),
        (
            "alarm/sns-metric-math-memory.json",
            AlarmKind::MetricMath,
            AlarmOrigin::Sns,
            AlarmState::Alarm,
            "MemoryUtilized",
        ),
        (
            "alarm/lambda-action-metric.json",
            AlarmKind::Metric,
            AlarmOrigin::LambdaAction,
            AlarmState::Alarm,
            "RunningTaskCount",
        ),
        ("alarm/lambda-action-composite.json", AlarmKind::Composite, AlarmOrigin::LambdaAction, AlarmState::Alarm, ""),
    ];
    for (file, kind, origin, state, first_metric) in cases {
        let Trigger::Alarm { alarm, .. } = Trigger::parse(&load(file)).unwrap() else { panic!("{file}") };
        assert_eq!((alarm.kind, alarm.origin, alarm.state), (*kind, *origin, *state), "{file}");
        assert_eq!(alarm.metrics.first().map(|m| m.name.as_str()).unwrap_or(""), *first_metric, "{file}");
    }
    let Trigger::Alarm { alarm, .. } = Trigger::parse(&load("alarm/eventbridge-composite-suppressed.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(alarm.actions_suppressed_by.as_deref(), Some("WaitPeriod"));
    let Trigger::Alarm { alarm, .. } = Trigger::parse(&load("alarm/sns-metric-math-memory.json")).unwrap() else {
        panic!()
    };
    assert_eq!(alarm.threshold, Some(90.0), "threshold given as a string");
    assert_eq!(alarm.expression.as_deref(), Some("100*(m1/m2)"));
}

#[test]
fn the_same_alarm_transition_should_have_one_key_whatever_its_delivery() {
    let Trigger::Alarm { alarm: a, .. } = Trigger::parse(&load("alarm/eventbridge-metric-cpu.json")).unwrap() else {
        panic!()
    };
    let mut b = a.clone();
    b.origin = AlarmOrigin::Sns;
    b.timestamp = Some("2026-11-20T14:01:02.123Z".into());
    assert_eq!(a.transition_key(), b.transition_key());
}

#[test]
fn pipeline_details_should_keep_failure_and_approval_facts() {
    let Trigger::Pipeline(e) = Trigger::parse(&load("pipeline/action-failed-codebuild.json")).unwrap() else {
        panic!()
    };
    assert_eq!(e.detail.version.as_deref(), Some("3.0"));
    let result = e.detail.execution_result.unwrap();
    assert_eq!(result.error_code.as_deref(), Some("JobFailed"));
    let Trigger::Pipeline(e) = Trigger::parse(&load("pipeline/action-approval-started.json")).unwrap() else {
        panic!()
    };
    assert!(e.detail.is_approval());
}

#[test]
fn schedules_should_name_their_job() {
    for (file, job) in [
        ("schedule/job-daily.json", Job::Daily),
        ("schedule/job-weekly.json", Job::Weekly),
        ("schedule/job-escalate.json", Job::Escalate),
        ("schedule/eventbridge-scheduled-event.json", Job::Daily),
        ("schedule/scheduler-default-notification.json", Job::Daily),
        ("schedule/scheduler-detail-string-with-job.json", Job::Escalate),
    ] {
        let Trigger::Scheduled { job: got, .. } = Trigger::parse(&load(file)).unwrap() else { panic!("{file}") };
        assert_eq!(got, job, "{file}");
    }
}

#[test]
fn a_schedule_may_restrict_its_run_to_some_accounts_and_regions() {
    let parsed = |v: Value| match Trigger::parse(&v) {
        Ok(Trigger::Scheduled { shard, .. }) => Ok(shard),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.to_string()),
    };
    assert_eq!(parsed(serde_json::json!({"job": "daily"})), Ok(Shard::default()));
    assert_eq!(
        parsed(serde_json::json!({"job": "daily", "accounts": ["777788889999", "444455556666", "444455556666"]})),
        Ok(Shard { accounts: vec!["444455556666".into(), "777788889999".into()], regions: vec![] })
    );
    assert_eq!(
        parsed(
            serde_json::json!({"job": "weekly", "accounts": "444455556666, 777788889999", "regions": ["eu-west-1"]})
        ),
        Ok(Shard { accounts: vec!["444455556666".into(), "777788889999".into()], regions: vec!["eu-west-1".into()] })
    );
    // The same from a Scheduled Event's detail.
    let mut event = load("schedule/eventbridge-scheduled-event.json");
    event["detail"] = serde_json::json!({"job": "daily", "accounts": ["444455556666"]});
    assert_eq!(parsed(event).map(|s| s.accounts), Ok(vec!["444455556666".to_string()]));
    for (bad, names) in [
        (serde_json::json!({"job": "daily", "accounts": ["4444"]}), ["accounts", "\"4444\""]),
        (serde_json::json!({"job": "daily", "accounts": [444455556666u64]}), ["accounts", "a number"]),
        (serde_json::json!({"job": "daily", "accounts": {"a": 1}}), ["accounts", "an object"]),
        (serde_json::json!({"job": "daily", "regions": ["US East"]}), ["regions", "US East"]),
    ] {
        let e = parsed(bad.clone()).expect_err("refused");
        for n in names {
            assert!(e.contains(n), "{n} in {e} ({bad})");
        }
    }
}

#[test]
fn a_task_event_without_detail_task_arn_should_read_it_from_resources() {
    for file in ["ecs/task-event-without-detail-task-arn.json", "malformed/ecs-task-missing-task-arn.json"] {
        let raw = load(file);
        assert!(raw["detail"].get("taskArn").is_none(), "{file}: the variant has no detail.taskArn");
        let Trigger::EcsTask(e) = Trigger::parse(&raw).unwrap() else { panic!("{file}") };
        assert_eq!(e.detail.task_arn, raw["resources"][0].as_str().unwrap(), "{file}");
        assert_eq!(e.detail.task_id(), "a1b2c3d4e5f60718293a4b5c6d7e8f07", "{file}");
    }
    let Trigger::EcsServiceAction(e) = Trigger::parse(&load("ecs/service-action-without-cluster-arn.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(e.detail.cluster_arn, "arn:aws:ecs:us-east-1:111122223333:cluster/prod");
}

#[test]
fn versions_as_integer_float_or_string_and_every_time_style_should_parse_to_the_same_facts() {
    let base = Trigger::parse(&load("ecs/task-stopped-app-crash.json")).unwrap();
    let Trigger::EcsTask(base) = base else { panic!() };
    for (file, version) in [
        ("ecs/task-event-version-integer.json", Some(6)),
        ("ecs/task-event-version-float.json", Some(6)),
        ("ecs/task-event-time-offset-0000.json", base.detail.version),
        ("ecs/task-event-time-one-fraction-digit.json", base.detail.version),
    ] {
        let Trigger::EcsTask(e) = Trigger::parse(&load(file)).unwrap() else { panic!("{file}") };
        assert_eq!(e.detail.version, version, "{file}");
        let offset = e.meta.time.map(|t| t.timestamp_millis() - base.meta.time.unwrap().timestamp_millis());
        assert!(offset.is_some_and(|ms| (0..=500).contains(&ms)), "{file}: event time {:?}", e.meta.time);
        let stopped = e.detail.stopped_at.as_deref().and_then(crate::lenient::parse_time);
        assert!(stopped.is_some(), "{file}: stoppedAt {:?} unreadable", e.detail.stopped_at);
    }
    let Trigger::Alarm { alarm, .. } =
        Trigger::parse(&load("alarm/eventbridge-version-integer-time-offset.json")).unwrap()
    else {
        panic!()
    };
    assert!(alarm.transition_key().ends_with(":1795183262000"), "{}", alarm.transition_key());
    let Trigger::Pipeline(e) = Trigger::parse(&load("pipeline/stage-failed-version-integer-time-offset.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(e.detail.version.as_deref(), Some("1"));
    assert!(e.meta.time.is_some());
}

#[test]
fn a_classic_alarm_naming_its_region_for_people_should_get_the_region_code() {
    let Trigger::Alarm { alarm, .. } = Trigger::parse(&load("alarm/sns-classic-region-display-name.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(alarm.region.as_deref(), Some("eu-west-1"));
    assert_eq!(alarm.arn, None);
    assert_eq!(alarm.account.as_deref(), Some("111122223333"), "AWSAccountId as a number");
    let Trigger::Alarm { alarm, .. } = Trigger::parse(&load("alarm/sns-metric-math-memory.json")).unwrap() else {
        panic!()
    };
    assert_eq!(alarm.region.as_deref(), Some("us-east-1"), "the ARN's region");
}

#[test]
fn sns_envelopes_with_either_spelling_of_the_url_fields_should_give_the_message_id() {
    for (file, id) in [
        ("sns/sns-signing-cert-url-uppercase.json", "5e4f3a21-bc0d-5e9f-a081-2c3d4e5f6071"),
        ("sns/sns-wrapped-ecs-task-stopped.json", ""),
    ] {
        let Trigger::EcsTask(e) = Trigger::parse(&load(file)).unwrap() else { panic!("{file}") };
        let got = e.meta.sns_message_id.unwrap_or_default();
        assert!(!got.is_empty() && (id.is_empty() || got == id), "{file}: {got}");
    }
}

#[test]
fn no_json_value_should_panic_the_parser() {
    // Truncations and type swaps of every fixture: parse may refuse, never panic.
    for (file, ..) in VALID {
        let v = load(file);
        let _ = Trigger::parse(&v);
        if let Value::Object(map) = &v {
            for key in map.keys() {
                let mut m = map.clone();
                m.insert(key.clone(), Value::Null);
                let _ = Trigger::parse(&Value::Object(m.clone()));
                m.insert(key.clone(), Value::from(42));
                let _ = Trigger::parse(&Value::Object(m.clone()));
                m.remove(key);
                let _ = Trigger::parse(&Value::Object(m));
            }
        }
    }
    for v in [Value::Null, Value::from("x"), Value::from(1), Value::Bool(true)] {
        assert!(Trigger::parse(&v).is_err());
    }
}
