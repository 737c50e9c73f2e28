//! The pipeline decisions over real event payloads (the fixtures are the
//! shapes AWS documents for CodePipeline's EventBridge events) and real API
//! answer shapes (as the adapters turn them into plain data).

use super::*;
use crate::notify::pipeline::*;
use crate::notify::render::EventType;
use crate::outcome::{Cause, Kind};
use crate::redact::Redactor;
use crate::trigger::{Envelope, Trigger};

fn event(json: &str) -> Envelope<PipelineDetail> {
    let v: serde_json::Value = serde_json::from_str(json).expect("fixture is JSON");
    match Trigger::parse(&v).expect("a pipeline event") {
        Trigger::Pipeline(e) => e,
        other => panic!("not a pipeline trigger: {other:?}"),
    }
}

fn reading(json: &str) -> Reading {
    let e = event(json);
    read(PipelineLevel::of(&e.meta.detail_type).expect("a pipeline level"), &e.detail)
}

const ACTION_BUILD_FAILED: &str = include_str!("../../../tests/fixtures/pipeline/action-failed-codebuild.json");

#[test]
fn every_documented_state_change_reads_as_what_it_means() {
    let cases: &[(&str, Reading)] = &[
        (include_str!("../../../tests/fixtures/pipeline/pipeline-execution-failed.json"), Reading::Failure),
        (include_str!("../../../tests/fixtures/pipeline/stage-failed.json"), Reading::Failure),
        (ACTION_BUILD_FAILED, Reading::Failure),
        (include_str!("../../../tests/fixtures/pipeline/pipeline-execution-succeeded.json"), Reading::Success),
        (include_str!("../../../tests/fixtures/pipeline/action-approval-started.json"), Reading::ApprovalWaiting),
        (include_str!("../../../infra/tests/events/pipeline/execution-superseded.json"), Reading::Recorded),
        (include_str!("../../../infra/tests/events/pipeline/action-build-failed.json"), Reading::Failure),
        (include_str!("../../../infra/tests/events/pipeline/execution-failed.json"), Reading::Failure),
        (include_str!("../../../infra/tests/events/pipeline/execution-succeeded.json"), Reading::Success),
        (include_str!("../../../infra/tests/events/pipeline/action-approval-started.json"), Reading::ApprovalWaiting),
        (include_str!("../../../infra/tests/events/pipeline/stage-failed.json"), Reading::Failure),
    ];
    for (json, want) in cases {
        assert_eq!(reading(json), *want, "{json}");
    }
    for (json, want) in [
        (include_str!("../../../tests/fixtures/pipeline/action-deploy-ecs-started.json"), Reading::Deploy),
        (include_str!("../../../tests/fixtures/pipeline/action-deploy-ecs-succeeded.json"), Reading::Deploy),
        (include_str!("../../../tests/fixtures/pipeline/action-deploy-codedeploy-started.json"), Reading::Deploy),
        (include_str!("../../../tests/fixtures/pipeline/pipeline-execution-superseded.json"), Reading::Recorded),
        (include_str!("../../../tests/fixtures/pipeline/pipeline-execution-canceled.json"), Reading::Recorded),
    ] {
        assert_eq!(reading(json), want, "{json}");
    }
    for quiet in [
        include_str!("../../../tests/fixtures/pipeline/stage-started.json"),
        include_str!("../../../infra/tests/events/pipeline/execution-started.json"),
        include_str!("../../../infra/tests/events/pipeline/stage-succeeded.json"),
        include_str!("../../../infra/tests/events/pipeline/action-build-started.json"),
        include_str!("../../../infra/tests/events/pipeline/action-approval-succeeded.json"),
    ] {
        assert!(matches!(reading(quiet), Reading::Nothing(_)), "{quiet}");
    }
}

fn detail(level_state: (&str, &str), category: &str, provider: &str) -> (PipelineLevel, PipelineDetail) {
    let level = match level_state.0 {
        "execution" => PipelineLevel::Execution,
        "stage" => PipelineLevel::Stage,
        _ => PipelineLevel::Action,
    };
    let d = PipelineDetail {
        pipeline: "api-prod".into(),
        execution_id: Some("x-1".into()),
        stage: Some("Deploy".into()),
        action: Some("DeployApi".into()),
        state: level_state.1.into(),
        action_type: Some(crate::trigger::pipeline::ActionType {
            category: Some(category.into()),
            provider: Some(provider.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    (level, d)
}

#[test]
fn deploys_to_ecs_are_read_when_they_start_or_succeed_and_canceled_executions_are_recorded() {
    for provider in ["ECS", "CodeDeployToECS", "ecs"] {
        for state in ["STARTED", "SUCCEEDED"] {
            let (l, d) = detail(("action", state), "Deploy", provider);
            assert_eq!(read(l, &d), Reading::Deploy, "{provider} {state}");
        }
    }
    let (l, d) = detail(("action", "STARTED"), "Deploy", "S3");
    assert!(matches!(read(l, &d), Reading::Nothing(_)), "an S3 deploy is no ECS deployment");
    let (l, d) = detail(("action", "FAILED"), "Deploy", "ECS");
    assert_eq!(read(l, &d), Reading::Failure);
    for state in ["SUPERSEDED", "CANCELED", "STOPPED", "ABANDONED"] {
        let (l, d) = detail(("execution", state), "", "");
        assert_eq!(read(l, &d), Reading::Recorded, "{state}");
    }
    let (l, d) = detail(("stage", "CANCELED"), "", "");
    assert!(matches!(read(l, &d), Reading::Nothing(_)), "the execution's own event records it");
}

#[test]
fn production_is_the_tag_when_there_is_one_else_the_name_patterns() {
    let patterns: Vec<String> = crate::config::DEFAULT_PRODUCTION_PIPELINES.iter().map(|p| p.to_string()).collect();
    let tags = |v: &str| vec![("autopilot:env".to_string(), v.to_string())];
    assert!(production("api-prod", &[], &patterns).0);
    assert!(production("api-production", &[], &patterns).0);
    assert!(production("teams-prod/api", &[], &patterns).0);
    assert!(!production("api-staging", &[], &patterns).0);
    assert!(!production("product-catalog", &[], &patterns).0, "prod inside a word is not production");
    assert!(!production("api-prod", &tags("staging"), &patterns).0, "the tag wins over the name");
    assert!(production("api-build", &tags("Production"), &patterns).0);
    assert!(production("api-build", &tags("prod"), &patterns).0);
    assert!(production("API-PROD", &[], &patterns).0, "names match ignoring case");
    assert_eq!(failure_severity(true), Severity::Sev2);
    assert_eq!(failure_severity(false), Severity::Sev3);
    let custom = vec!["live-*".to_string()];
    assert!(production("live-api", &[], &custom).0);
    assert!(!production("api-prod", &[], &custom).0, "the configured patterns replace the defaults");
}

#[test]
fn patterns_match_like_shell_globs() {
    assert!(matches_pattern("*-prod", "a-prod"));
    assert!(!matches_pattern("*-prod", "a-prod-2"));
    assert!(matches_pattern("a*b*c", "a-x-b-y-c"));
    assert!(!matches_pattern("a*b*c", "a-x-c"));
    assert!(matches_pattern("exact", "EXACT"));
    assert!(matches_pattern("*", "anything"));
}

fn listed(stage: &str, action: &str, status: &str, provider: &str, updated: i64) -> ActionFacts {
    ActionFacts {
        stage: stage.into(),
        action: action.into(),
        status: status.into(),
        category: Some(if provider == "CodeBuild" { "Build" } else { "Deploy" }.into()),
        provider: Some(provider.into()),
        updated_at: Some(updated),
        ..Default::default()
    }
}

#[test]
fn the_failed_action_is_the_events_own_completed_by_the_api_else_the_latest_failure() {
    let e = event(ACTION_BUILD_FAILED);
    let from_event = ActionFacts::from_event(&e.detail).expect("an action event");
    assert_eq!((from_event.stage.as_str(), from_event.action.as_str()), ("Build", "UnitTests"));
    assert_eq!(from_event.error_code.as_deref(), Some("JobFailed"));
    assert!(from_event.failed());
    let mut api = listed("Build", "UnitTests", "Failed", "CodeBuild", 10);
    api.error_message = Some("Build terminated with state: FAILED".into());
    let actions = vec![listed("Source", "Source", "Succeeded", "CodeStarSourceConnection", 5), api];
    let f = failed_action(Some(&from_event), &actions).expect("found");
    assert_eq!(f.error_code.as_deref(), Some("JobFailed"), "the event's error code is kept");
    assert_eq!(f.external_id.as_deref(), Some("api-build:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
    assert_eq!(f.error_message.as_deref(), Some("Build terminated with state: FAILED"), "the API's detail is added");
    // An execution or stage event: the latest failed action of the execution.
    let actions = vec![
        listed("Build", "Lint", "Failed", "CodeBuild", 10),
        listed("Deploy", "DeployApi", "Failed", "ECS", 20),
        listed("Build", "UnitTests", "Succeeded", "CodeBuild", 30),
    ];
    assert_eq!(failed_action(None, &actions).map(|a| a.action), Some("DeployApi".into()));
    assert_eq!(failed_action(None, &[listed("Build", "B", "InProgress", "CodeBuild", 1)]), None);
}

#[test]
fn commit_messages_come_from_codestar_json_summaries_or_plain_ones() {
    assert_eq!(
        commit_message(r#"{"ProviderType":"GitHub","CommitMessage":"raise pool size\n\nlonger text"}"#).as_deref(),
        Some("raise pool size\n\nlonger text")
    );
    assert_eq!(commit_message("Fix the health check path").as_deref(), Some("Fix the health check path"));
    assert_eq!(commit_message("  "), None);
    let revisions = vec![
        SourceRevision { artifact: "Empty".into(), ..Default::default() },
        SourceRevision {
            artifact: "SourceArtifact".into(),
            revision_id: Some("3f2a9c1d4e5f60718293a4b5c6d7e8f901234567".into()),
            summary: Some(r#"{"ProviderType":"GitHub","CommitMessage":"raise pool size"}"#.into()),
            url: Some("https://github.com/acme/api/commit/3f2a9c1".into()),
            created_at: Some(100),
        },
    ];
    let c = commit_of(&revisions).expect("commit");
    assert_eq!(c.label(), "3f2a9c1 'raise pool size'");
    assert_eq!(c.created_at, Some(100));
    assert_eq!(commit_of(&[]), None);
}

fn failed_build() -> BuildFacts {
    BuildFacts {
        id: "api-build:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into(),
        project: "api-build".into(),
        status: Some("FAILED".into()),
        phases: vec![
            BuildPhase { phase: "SUBMITTED".into(), status: Some("SUCCEEDED".into()), contexts: vec![] },
            BuildPhase { phase: "INSTALL".into(), status: Some("SUCCEEDED".into()), contexts: vec![] },
            BuildPhase {
                phase: "BUILD".into(),
                status: Some("FAILED".into()),
                contexts: vec![
                    "COMMAND_EXECUTION_ERROR: Error while executing command: npm test. Reason: exit status 1".into(),
                ],
            },
            BuildPhase { phase: "POST_BUILD".into(), status: Some("SUCCEEDED".into()), contexts: vec![] },
            BuildPhase { phase: "COMPLETED".into(), status: None, contexts: vec![] },
        ],
        ..Default::default()
    }
}

#[test]
fn a_builds_failed_phase_and_log_location_are_found_even_when_the_build_reports_no_log() {
    let b = failed_build();
    assert_eq!(b.failed_phase().map(|p| p.phase.as_str()), Some("BUILD"));
    assert_eq!(
        b.log_location(),
        Some(("/aws/codebuild/api-build".into(), "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into())),
        "CodeBuild's default group and stream"
    );
    let reported =
        BuildFacts { log_group: Some("/ci/api".into()), log_stream: Some("builds/0f1e".into()), ..failed_build() };
    assert_eq!(reported.log_location(), Some(("/ci/api".into(), "builds/0f1e".into())), "what the build reported");
    assert_eq!(build_log_stream("no-colon"), None);
    assert_eq!(build_project("api-build:uuid"), Some("api-build"));
    let timed_out = BuildFacts {
        phases: vec![BuildPhase { phase: "QUEUED".into(), status: Some("TIMED_OUT".into()), contexts: vec![] }],
        ..failed_build()
    };
    assert_eq!(timed_out.failed_phase().map(|p| p.phase.as_str()), Some("QUEUED"));
}

#[test]
fn an_ecs_deploy_action_names_its_service_and_codedeploy_its_group() {
    let mut ecs = listed("Deploy", "DeployApi", "Failed", "ECS", 1);
    ecs.configuration = vec![
        ("ClusterName".into(), "prod".into()),
        ("FileName".into(), "imagedefinitions.json".into()),
        ("ServiceName".into(), "api".into()),
    ];
    assert_eq!(ecs_target(&ecs), Some(("prod".into(), "api".into())));
    ecs.configuration[0].1 = "arn:aws:ecs:us-east-1:111122223333:cluster/prod".into();
    assert_eq!(ecs_target(&ecs), Some(("prod".into(), "api".into())), "ARNs in the configuration are shortened");
    let mut codedeploy = listed("Deploy", "BlueGreen", "Failed", "CodeDeployToECS", 1);
    codedeploy.configuration = vec![
        ("ApplicationName".into(), "AppECS-prod-api".into()),
        ("DeploymentGroupName".into(), "DgpECS-prod-api".into()),
    ];
    assert_eq!(ecs_target(&codedeploy), None);
    assert_eq!(codedeploy_group(&codedeploy), Some(("AppECS-prod-api".into(), "DgpECS-prod-api".into())));
    assert_eq!(ecs_target(&listed("Build", "UnitTests", "Failed", "CodeBuild", 1)), None);
}

#[test]
fn the_deploy_link_finding_says_when_which_execution_and_which_commit() {
    let link = DeployLink {
        pipeline: "api-prod".into(),
        execution_id: "8f1d2c3b".into(),
        stage: "Deploy".into(),
        action: "DeployApi".into(),
        commit: Some(Commit {
            id: "3f2a9c1d4e5f".into(),
            message: Some("raise pool size".into()),
            ..Default::default()
        }),
        started_at: Some(1_000),
        finished_at: Some(1_100),
        status: "Succeeded".into(),
    };
    assert_eq!(
        link.finding(1_000 + 12 * 60),
        "deployed 12m 0s ago by pipeline api-prod, execution 8f1d2c3b, commit 3f2a9c1 'raise pool size'"
    );
    let older = DeployLink { execution_id: "old".into(), started_at: Some(500), ..link.clone() };
    let links = vec![older.clone(), link.clone()];
    assert_eq!(latest_link(&links, 2_000, 3_600).map(|l| l.execution_id.as_str()), Some("8f1d2c3b"));
    assert_eq!(latest_link(&links, 1_000 + 7_200, 3_600), None, "older than the window");
    let failed = DeployLink { status: "Failed".into(), ..link };
    assert!(failed.finding(2_000).ends_with("(the deploy action failed)"));
}

fn links() -> PipelineLinks {
    PipelineLinks { region: "us-east-1".into(), pipeline: "api-prod".into(), execution_id: "8f1d2c3b".into() }
}

#[test]
fn the_failure_alert_names_the_action_error_commit_phase_and_log_lines_in_an_ascii_subject() {
    let e = event(ACTION_BUILD_FAILED);
    let action = ActionFacts::from_event(&e.detail).unwrap();
    let build = failed_build();
    let commit = Commit { id: "3f2a9c1d4e5f".into(), message: Some("raise pool size".into()), ..Default::default() };
    let lines = vec![
        "FAIL src/pool.test.ts - expected 20 got 10".to_string(),
        "npm ERR! Test failed. password=hunter2secret".to_string(),
    ];
    let unread = vec!["pipeline tags: AccessDenied".to_string()];
    let view = FailureView {
        pipeline: "api-prod-pipeline",
        execution_id: "8f1d2c3b",
        incident: "inc-1",
        severity: Severity::Sev2,
        production: "production pipeline: name matches *-prod",
        opened_at: 0,
        stage: Some("Build"),
        action: Some(&action),
        commit: Some(&commit),
        build: Some(&build),
        build_log: Some(("/aws/codebuild/api-build", "0f1e", &lines)),
        target: None,
        ecs_incident: None,
        unread: &unread,
        evidence: Some("s3://ev/incidents/pipelines/api-prod-pipeline/inc-1/"),
        links: &links(),
    };
    let m = render_failure(&view, &Redactor::new());
    assert_eq!(m.subject, "[SEV2] pipeline api-prod-pipeline: Build/UnitTests failed in BUILD");
    assert!(m.subject.is_ascii() && m.subject.len() < 100);
    for want in [
        "failed action: Build/UnitTests (Build, CodeBuild)",
        "error: JobFailed: Build terminated with state: FAILED",
        "commit 3f2a9c1 'raise pool size'",
        "phase BUILD FAILED - COMMAND_EXECUTION_ERROR: Error while executing command: npm test",
        "FAIL src/pool.test.ts",
        "not read: pipeline tags: AccessDenied",
        "retry-stage-execution --pipeline-name api-prod-pipeline --stage-name Build --pipeline-execution-id 8f1d2c3b",
        "builds/api-build:0f1e2d3c",
    ] {
        assert!(m.body.contains(want), "missing {want:?} in\n{}", m.body);
    }
    assert!(!m.body.contains("hunter2secret"), "log lines are redacted:\n{}", m.body);
    assert_eq!((m.kind, m.cause, m.event_type), (Kind::Pipeline, Cause::PipelineFailed, EventType::IncidentOpened));
    // A long pipeline name still gives a subject under 100 characters.
    let long = "p".repeat(120);
    let m = render_failure(&FailureView { pipeline: &long, ..view.clone() }, &Redactor::new());
    assert!(m.subject.len() < 100, "{}", m.subject);
}

#[test]
fn a_deploy_failure_names_the_service_and_its_open_incident() {
    let mut action = listed("Deploy", "DeployApi", "Failed", "ECS", 1);
    action.error_code = Some("JobFailed".into());
    action.summary = Some("Deployment failed: circuit breaker triggered".into());
    let view = FailureView {
        pipeline: "api-prod",
        execution_id: "x-9",
        incident: "inc-2",
        severity: Severity::Sev2,
        production: "production",
        opened_at: 0,
        stage: None,
        action: Some(&action),
        commit: None,
        build: None,
        build_log: None,
        target: Some(("prod", "api")),
        ecs_incident: Some("inc-ecs-7"),
        unread: &[],
        evidence: None,
        links: &links(),
    };
    let m = render_failure(&view, &Redactor::new());
    assert!(m.body.contains("deploys ECS service prod/api"), "{}", m.body);
    assert!(m.body.contains("open incident: inc-ecs-7"), "{}", m.body);
    assert_eq!((m.cluster.as_str(), m.service.as_str()), ("prod", "api"), "routable by service");
    assert!(m.body.contains("source revision: unknown"));
}

#[test]
fn approvals_say_what_is_approved_and_how_to_approve() {
    let stages = vec![
        StageFacts { name: "Source".into(), status: Some("Succeeded".into()), ..Default::default() },
        StageFacts { name: "Build".into(), status: Some("Succeeded".into()), ..Default::default() },
        StageFacts {
            name: "Approve".into(),
            execution_id: Some("8f1d2c3b".into()),
            status: Some("InProgress".into()),
            actions: vec![("ProductionApproval".into(), Some("InProgress".into()), Some("tok-123".into()))],
        },
    ];
    assert_eq!(previous_stage(&stages, "Approve"), Some(("Build", "Succeeded")));
    assert_eq!(previous_stage(&stages, "Source"), None);
    assert_eq!(approval_token(&stages, "Approve", "ProductionApproval"), Some("tok-123"));
    let commit = Commit { id: "abcdef123456".into(), message: Some("ship it".into()), ..Default::default() };
    let m = render_approval(
        &ApprovalView {
            pipeline: "api-prod",
            execution_id: "8f1d2c3b",
            stage: "Approve",
            action: "ProductionApproval",
            commit: Some(&commit),
            previous_stage: previous_stage(&stages, "Approve"),
            token: approval_token(&stages, "Approve", "ProductionApproval"),
            production: "production pipeline",
            unread: &[],
            links: &links(),
        },
        &Redactor::new(),
    );
    assert_eq!(m.subject, "[APPROVAL] pipeline api-prod: Approve/ProductionApproval waiting for approval");
    for want in [
        "commit abcdef1 'ship it'",
        "previous stage Build: Succeeded",
        "https://us-east-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/api-prod/view?region=us-east-1",
        "put-approval-result --pipeline-name api-prod --stage-name Approve --action-name ProductionApproval --token tok-123",
    ] {
        assert!(m.body.contains(want), "missing {want:?} in\n{}", m.body);
    }
    assert_eq!(
        (m.severity, m.cause, m.event_type),
        (Severity::Info, Cause::ApprovalWaiting, EventType::PipelineApproval)
    );
}

#[test]
fn the_resolution_says_how_long_and_which_execution_and_commit_fixed_it() {
    let commit = Commit { id: "9e8d7c6b5a49".into(), message: Some("fix the pool test".into()), ..Default::default() };
    let m = render_resolved(
        &PipelineResolvedView {
            pipeline: "api-prod",
            incident: "inc-1",
            failed_execution: "x-1",
            severity: Severity::Sev2,
            problem: "failed at Build/UnitTests",
            opened_at: 0,
            resolved_at: 25 * 60,
            fixed_by: Some("x-2"),
            why: "",
            fixing_commit: Some(&commit),
            report: Some("s3://ev/incidents/pipelines/api-prod/inc-1/report.md"),
            evidence: None,
            links: &links(),
        },
        &Redactor::new(),
    );
    assert_eq!(m.subject, "[RESOLVED] pipeline api-prod: failed at Build/UnitTests (recovered in 25m 0s)");
    for want in
        ["Time to recover: 25m 0s", "by execution x-2 succeeding", "commit 9e8d7c6 'fix the pool test'", "report.md"]
    {
        assert!(m.body.contains(want), "missing {want:?} in\n{}", m.body);
    }
    assert_eq!(m.incident.as_deref(), Some("inc-1"), "threaded with its alert");
}

#[test]
fn build_error_lines_are_what_build_tools_print_on_failure() {
    for line in [
        "FAIL src/pool.test.ts",
        "npm ERR! Test failed.",
        "[Container] 2026/11/20 14:01:58 Command did not exit successfully npm test exit status 1",
        "[Container] 2026/11/20 14:01:58 Phase complete: BUILD State: FAILED",
        "error[E0425]: cannot find value `x` in this scope",
        "  ● pool › grows to the configured size",
    ] {
        assert!(is_build_error_line(line), "{line}");
    }
    for line in
        ["added 812 packages in 14s", "[Container] 2026/11/20 14:01:40 Running command npm test", "PASS src/a.test.ts"]
    {
        assert!(!is_build_error_line(line), "{line}");
    }
}

#[test]
fn an_incident_closed_without_a_success_says_why_and_links_no_fixing_execution() {
    let m = render_resolved(
        &PipelineResolvedView {
            pipeline: "api-prod",
            incident: "inc-1",
            failed_execution: "x-1",
            severity: Severity::Sev2,
            problem: "failed at Build/UnitTests",
            opened_at: 0,
            resolved_at: 7 * 24 * 3600 + 60,
            fixed_by: None,
            why: "expired: no signal for 7d 0h",
            fixing_commit: None,
            report: None,
            evidence: None,
            links: &links(),
        },
        &Redactor::new(),
    );
    assert_eq!(m.subject, "[CLOSED] pipeline api-prod: failed at Build/UnitTests (expired: no signal for 7d 0h)");
    assert!(m.body.contains("without a successful execution"), "{}", m.body);
    assert!(!m.body.contains("Fixing execution"), "{}", m.body);
}

#[test]
fn pipeline_messages_pass_the_chat_schema_check_and_thread_on_their_incident() {
    let e = event(ACTION_BUILD_FAILED);
    let action = ActionFacts::from_event(&e.detail).unwrap();
    let build = failed_build();
    let lines = vec!["FAIL src/pool.test.ts".to_string()];
    let failure = render_failure(
        &FailureView {
            pipeline: "api-prod",
            execution_id: "8f1d2c3b",
            incident: "inc-1",
            severity: Severity::Sev2,
            production: "production",
            opened_at: 0,
            stage: Some("Build"),
            action: Some(&action),
            commit: None,
            build: Some(&build),
            build_log: Some(("/aws/codebuild/api-build", "0f1e", &lines)),
            target: None,
            ecs_incident: None,
            unread: &[],
            evidence: None,
            links: &links(),
        },
        &Redactor::new(),
    );
    let resolved = render_resolved(
        &PipelineResolvedView {
            pipeline: "api-prod",
            incident: "inc-1",
            failed_execution: "8f1d2c3b",
            severity: Severity::Sev2,
            problem: "failed at Build/UnitTests",
            opened_at: 0,
            resolved_at: 600,
            fixed_by: Some("x-2"),
            why: "",
            fixing_commit: None,
            report: None,
            evidence: None,
            links: &links(),
        },
        &Redactor::new(),
    );
    let approval = render_approval(
        &ApprovalView {
            pipeline: "api-prod",
            execution_id: "8f1d2c3b",
            stage: "Approve",
            action: "ProductionApproval",
            commit: None,
            previous_stage: None,
            token: None,
            production: "production",
            unread: &[],
            links: &links(),
        },
        &Redactor::new(),
    );
    for (name, m) in [("failure", &failure), ("resolution", &resolved), ("approval", &approval)] {
        let n = crate::notify::chat::notification(m);
        crate::notify::chat::validate(&n).unwrap_or_else(|e| panic!("{name}: {e}\n{n:#}"));
    }
    assert_eq!(
        crate::notify::chat::notification(&failure)["metadata"]["threadId"],
        crate::notify::chat::notification(&resolved)["metadata"]["threadId"],
        "the resolution threads under its alert"
    );
}
