//! pipeline-events. The local server cannot model pipeline executions,
//! action executions or builds (TESTBED.md), so CodePipeline and CodeBuild
//! answer through `aws-smithy-mocks` with the response shapes AWS documents,
//! while the log reading, notifications, evidence and incident state run
//! against the local server (a seeded CodeBuild log group). The real binary
//! is driven too, against the local server alone, where those APIs fail and
//! the alert degrades to what the event carries.

use autopilot_tests::{SeededService, TestBed, fixture};
use aws_sdk_codebuild::operation::batch_get_builds::BatchGetBuildsOutput;
use aws_sdk_codebuild::types::{Build, BuildPhase, BuildPhaseType, LogsLocation, PhaseContext, StatusType};
use aws_sdk_codepipeline::operation::get_pipeline_execution::GetPipelineExecutionOutput;
use aws_sdk_codepipeline::operation::get_pipeline_state::GetPipelineStateOutput;
use aws_sdk_codepipeline::operation::list_action_executions::ListActionExecutionsOutput;
use aws_sdk_codepipeline::operation::list_tags_for_resource::ListTagsForResourceOutput;
use aws_sdk_codepipeline::primitives::DateTime;
use aws_sdk_codepipeline::types::{
    ActionCategory, ActionExecution, ActionExecutionDetail, ActionExecutionInput, ActionExecutionOutput,
    ActionExecutionResult, ActionExecutionStatus, ActionOwner, ActionState, ActionTypeId, ArtifactRevision,
    ErrorDetails, PipelineExecution, PipelineExecutionStatus, StageExecution, StageExecutionStatus, StageState, Tag,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use serde_json::{Value, json};
use shared::adapters::Clients;
use shared::config::Config;
use shared::context::{App, Function};
use shared::invocation::Invocation;

const FAILED_EXEC: &str = "8f1d2c3b-4a5e-6f70-8192-a3b4c5d6e7f8";
const FIXING_EXEC: &str = "9a8b7c6d-0000-4000-8000-000000000002";
const BUILD_ID: &str = "api-build:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const FAILING_COMMIT: &str = "3f2a9c1d4e5f60718293a4b5c6d7e8f901234567";
const FIXING_COMMIT: &str = "9e8d7c6b5a4938271605f4e3d2c1b0a998877665";

/// A CodePipeline fixture for `pipeline` and `execution`, with its own event id and time.
fn event(file: &str, pipeline: &str, execution: &str, event_id: &str, at: chrono::DateTime<chrono::Utc>) -> Value {
    let text = fixture(&format!("pipeline/{file}")).to_string().replace("api-prod-pipeline", pipeline);
    let mut v: Value = serde_json::from_str(&text).expect("json");
    v["id"] = json!(event_id);
    v["time"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    v["detail"]["execution-id"] = json!(execution);
    v
}

fn revision(commit: &str, message: &str, created: i64) -> ArtifactRevision {
    ArtifactRevision::builder()
        .name("SourceArtifact")
        .revision_id(commit)
        .revision_summary(json!({"ProviderType": "GitHub", "CommitMessage": message}).to_string())
        .revision_url(format!("https://github.com/acme/api/commit/{commit}"))
        .created(DateTime::from_secs(created))
        .build()
}

fn type_id(category: ActionCategory, provider: &str) -> ActionTypeId {
    ActionTypeId::builder().category(category).owner(ActionOwner::Aws).provider(provider).version("1").build().unwrap()
}

/// The action executions of the failed execution: Source succeeded, the
/// CodeBuild action failed, a later ECS deploy never ran.
fn failed_actions() -> ListActionExecutionsOutput {
    let source = ActionExecutionDetail::builder()
        .pipeline_execution_id(FAILED_EXEC)
        .stage_name("Source")
        .action_name("Source")
        .status(ActionExecutionStatus::Succeeded)
        .input(
            ActionExecutionInput::builder()
                .action_type_id(type_id(ActionCategory::Source, "CodeStarSourceConnection"))
                .build(),
        )
        .start_time(DateTime::from_secs(chrono::Utc::now().timestamp() - 300))
        .build();
    let build = ActionExecutionDetail::builder()
        .pipeline_execution_id(FAILED_EXEC)
        .stage_name("Build")
        .action_name("UnitTests")
        .status(ActionExecutionStatus::Failed)
        .start_time(DateTime::from_secs(chrono::Utc::now().timestamp() - 200))
        .last_update_time(DateTime::from_secs(chrono::Utc::now().timestamp() - 60))
        .input(
            ActionExecutionInput::builder()
                .action_type_id(type_id(ActionCategory::Build, "CodeBuild"))
                .configuration("ProjectName", "api-build")
                .build(),
        )
        .output(
            ActionExecutionOutput::builder()
                .execution_result(
                    ActionExecutionResult::builder()
                        .external_execution_id(BUILD_ID)
                        .external_execution_summary("Build terminated with state: FAILED")
                        .external_execution_url(format!(
                            "https://console.aws.amazon.com/codebuild/home?region=us-east-1#/builds/{BUILD_ID}/view/new"
                        ))
                        .error_details(
                            ErrorDetails::builder()
                                .code("JobFailed")
                                .message("Build terminated with state: FAILED")
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build();
    ListActionExecutionsOutput::builder().action_execution_details(source).action_execution_details(build).build()
}

/// An ECS deploy action of `execution` in `status`, deploying `cluster/service`.
fn deploy_actions(
    execution: &str,
    status: ActionExecutionStatus,
    cluster: &str,
    service: &str,
) -> ListActionExecutionsOutput {
    ListActionExecutionsOutput::builder()
        .action_execution_details(
            ActionExecutionDetail::builder()
                .pipeline_execution_id(execution)
                .stage_name("Deploy")
                .action_name("DeployApi")
                .status(status)
                .start_time(DateTime::from_secs(chrono::Utc::now().timestamp() - 12 * 60))
                .last_update_time(DateTime::from_secs(chrono::Utc::now().timestamp() - 10 * 60))
                .input(
                    ActionExecutionInput::builder()
                        .action_type_id(type_id(ActionCategory::Deploy, "ECS"))
                        .configuration("ClusterName", cluster)
                        .configuration("ServiceName", service)
                        .configuration("FileName", "imagedefinitions.json")
                        .build(),
                )
                .build(),
        )
        .build()
}

fn failed_build() -> BatchGetBuildsOutput {
    let phase = |t: BuildPhaseType, s: StatusType| BuildPhase::builder().phase_type(t).phase_status(s).build();
    BatchGetBuildsOutput::builder()
        .builds(
            Build::builder()
                .id(BUILD_ID)
                .project_name("api-build")
                .build_status(StatusType::Failed)
                .phases(phase(BuildPhaseType::Submitted, StatusType::Succeeded))
                .phases(phase(BuildPhaseType::Install, StatusType::Succeeded))
                .phases(
                    BuildPhase::builder()
                        .phase_type(BuildPhaseType::Build)
                        .phase_status(StatusType::Failed)
                        .contexts(
                            PhaseContext::builder()
                                .status_code("COMMAND_EXECUTION_ERROR")
                                .message("Error while executing command: npm test. Reason: exit status 1")
                                .build(),
                        )
                        .build(),
                )
                .phases(phase(BuildPhaseType::Finalizing, StatusType::Succeeded))
                .phases(BuildPhase::builder().phase_type(BuildPhaseType::Completed).build())
                .logs(
                    LogsLocation::builder()
                        .group_name("/aws/codebuild/api-build")
                        .stream_name("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
                        .deep_link("https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEvent:group=/aws/codebuild/api-build")
                        .build(),
                )
                .build(),
        )
        .build()
}

fn execution_rule(execution: &'static str, commit: &'static str, message: &'static str) -> Rule {
    mock!(aws_sdk_codepipeline::Client::get_pipeline_execution)
        .match_requests(move |r| r.pipeline_execution_id() == Some(execution))
        .then_output(move || {
            GetPipelineExecutionOutput::builder()
                .pipeline_execution(
                    PipelineExecution::builder()
                        .pipeline_execution_id(execution)
                        .status(PipelineExecutionStatus::InProgress)
                        .artifact_revisions(revision(commit, message, chrono::Utc::now().timestamp() - 3600))
                        .build(),
                )
                .build()
        })
}

fn tags_rule(tags: &'static [(&'static str, &'static str)]) -> Rule {
    mock!(aws_sdk_codepipeline::Client::list_tags_for_resource).then_output(move || {
        ListTagsForResourceOutput::builder()
            .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap()).collect()))
            .build()
    })
}

/// The function as `pipeline-events` runs it: the local server for state,
/// logs, S3 and SNS; CodePipeline and CodeBuild answering through mocks.
/// Every call, mocked or not, is counted.
fn app(bed: &TestBed, pipeline_rules: &[&Rule], build_rules: &[&Rule]) -> App {
    app_with_codedeploy(bed, pipeline_rules, build_rules, &[])
}

/// Like [`app`], CodeDeploy answering through `deploy_rules` too.
fn app_with_codedeploy(bed: &TestBed, pipeline_rules: &[&Rule], build_rules: &[&Rule], deploy_rules: &[&Rule]) -> App {
    let env = bed.function_env();
    let config = Config::from_lookup(|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).expect("config");
    let mut clients = Clients::new(&bed.config);
    let calls = clients.calls.clone();
    clients.set_codepipeline(
        mock_client!(aws_sdk_codepipeline, RuleMode::MatchAny, pipeline_rules, |b| b.interceptor(calls.clone()))
    );
    let calls = clients.calls.clone();
    clients.set_codebuild(
        mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, build_rules, |b| b.interceptor(calls.clone()))
    );
    let calls = clients.calls.clone();
    clients.set_codedeploy(
        mock_client!(aws_sdk_codedeploy, RuleMode::MatchAny, deploy_rules, |b| b.interceptor(calls.clone()))
    );
    App::new(Function::PipelineEvents, config, clients)
}

/// The flows run in-process here: debug builds of their futures need more
/// stack than a test thread's 2 MiB (the Lambda binaries run them on the
/// main thread's 8 MiB).
fn big_stack(test: impl std::future::Future<Output = ()> + Send + 'static) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()
        .expect("runtime");
    // On a worker thread (the block_on thread is the test's own small one).
    runtime.block_on(async move { tokio::spawn(test).await.expect("test body") });
}

/// Like [`app`], notifying `topic_arn` instead of the bed's topic.
fn app_notifying(bed: &TestBed, topic_arn: &str, pipeline_rules: &[&Rule], build_rules: &[&Rule]) -> App {
    let mut app = app(bed, pipeline_rules, build_rules);
    app.config.notify_topic_arn = topic_arn.to_string();
    app
}

/// One invocation, in-process, that may fail (as Lambda sees it).
async fn try_invoke(app: &App, request_id: &str, payload: Value) -> Result<Value, shared::error::AutopilotError> {
    Box::pin(shared::flows::handle(app, &shared::flows::pipeline::FLOW, payload, Invocation::new(request_id, None)))
        .await
        .map(|o| serde_json::to_value(&o).expect("outcome json"))
}

/// One invocation, in-process, through the same entry point as the binary;
/// with its AWS calls.
async fn invoke(app: &App, request_id: &str, payload: Value) -> (Value, u64) {
    let before = app.clients.calls.get();
    let o = Box::pin(shared::flows::handle(
        app,
        &shared::flows::pipeline::FLOW,
        payload,
        Invocation::new(request_id, None),
    ))
    .await
    .expect("handled");
    (serde_json::to_value(&o).expect("outcome json"), app.clients.calls.get() - before)
}

async fn seed_build_log(bed: &TestBed, lines: &[&str]) {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&bed.config);
    logs.create_log_group().log_group_name("/aws/codebuild/api-build").send().await.ok();
    let stream = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    logs.create_log_stream().log_group_name("/aws/codebuild/api-build").log_stream_name(stream).send().await.ok();
    let now = chrono::Utc::now().timestamp_millis();
    let mut req = logs.put_log_events().log_group_name("/aws/codebuild/api-build").log_stream_name(stream);
    for (i, l) in lines.iter().enumerate() {
        req = req.log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now - 120_000 + i as i64 * 100)
                .message(*l)
                .build()
                .expect("log event"),
        );
    }
    req.send().await.expect("put log events");
}

async fn s3_text(bed: &TestBed, uri: &str) -> String {
    let key = uri.trim_start_matches(&format!("s3://{}/", bed.bucket));
    let out = bed.s3.get_object().bucket(&bed.bucket).key(key).send().await.expect("stored");
    String::from_utf8(out.body.collect().await.expect("read").into_bytes().to_vec()).expect("utf-8")
}

#[test]
fn a_failed_codebuild_action_alerts_once_with_its_phase_and_log_lines_and_a_later_success_resolves_it() {
    big_stack(async {
        let bed = TestBed::new("pipeline-build").await;
        let pipeline = format!("{}-prod", bed.prefix);
        seed_build_log(
            &bed,
            &[
                "[Container] 2026/11/20 14:01:02 Running command npm ci",
                "added 812 packages in 14s",
                "[Container] 2026/11/20 14:01:40 Running command npm test",
                "FAIL src/pool.test.ts",
                "  ● pool › grows to the configured size: expected 20, received 10",
                "npm ERR! Test failed. DB_PASSWORD=s3cr3t-Passw0rd-value",
                "[Container] 2026/11/20 14:01:58 Command did not exit successfully npm test exit status 1",
                "[Container] 2026/11/20 14:01:58 Phase complete: BUILD State: FAILED",
            ],
        )
        .await;
        let list = mock!(aws_sdk_codepipeline::Client::list_action_executions).then_output(failed_actions);
        let failing = execution_rule(FAILED_EXEC, FAILING_COMMIT, "raise pool size");
        let fixing = execution_rule(FIXING_EXEC, FIXING_COMMIT, "fix the pool test");
        let tags = tags_rule(&[("autopilot:team", "payments")]);
        let build = mock!(aws_sdk_codebuild::Client::batch_get_builds).then_output(failed_build);
        let app = app(&bed, &[&list, &failing, &fixing, &tags], &[&build]);
        let t0 = chrono::Utc::now() - chrono::Duration::seconds(30);

        // The execution's three failure events, execution first (EventBridge keeps no order).
        let (first, calls_open) =
            invoke(&app, "r1", event("pipeline-execution-failed.json", &pipeline, FAILED_EXEC, "ev-exec-failed", t0))
                .await;
        let (action, calls_join) =
            invoke(&app, "r2", event("action-failed-codebuild.json", &pipeline, FAILED_EXEC, "ev-action-failed", t0))
                .await;
        let (stage, _) =
            invoke(&app, "r3", event("stage-failed.json", &pipeline, FAILED_EXEC, "ev-stage-failed", t0)).await;
        let (again, calls_dup) =
            invoke(&app, "r4", event("stage-failed.json", &pipeline, FAILED_EXEC, "ev-stage-failed", t0)).await;
        println!("PIPELINE calls open={calls_open} join={calls_join} duplicate={calls_dup}");
        let incident = first["incident"].as_str().expect("an incident").to_string();
        assert_eq!(first["kind"], "pipeline");
        assert_eq!(first["severity"], "SEV2", "a -prod pipeline is production: {first}");
        assert_eq!(first["cause"], "pipeline-failed");
        assert_eq!(action["incident"], incident.as_str(), "the action's failure joins: {action}");
        assert_eq!(stage["incident"], incident.as_str(), "the stage's failure joins: {stage}");
        assert_eq!(action["notified"], "suppressed:joined-incident");
        assert_eq!(again["notified"], "suppressed:duplicate-event");

        let notes = bed.notifications().await;
        assert_eq!(
            notes.len(),
            1,
            "one alert for the execution: {:?}",
            notes.iter().map(|n| &n.subject).collect::<Vec<_>>()
        );
        let alert = &notes[0];
        assert_eq!(alert.subject, format!("[SEV2] pipeline {pipeline}: Build/UnitTests failed in BUILD"));
        for want in [
            "failed action: Build/UnitTests (Build, CodeBuild)",
            "error: JobFailed: Build terminated with state: FAILED",
            &format!("external execution: {BUILD_ID}"),
            "source revision: commit 3f2a9c1 'raise pool size'",
            "phase BUILD FAILED - COMMAND_EXECUTION_ERROR: Error while executing command: npm test",
            "Build log (/aws/codebuild/api-build 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0, last error lines):",
            "FAIL src/pool.test.ts",
            "Phase complete: BUILD State: FAILED",
            "https://github.com/acme/api/commit/3f2a9c1",
            &format!("codepipeline/pipelines/{pipeline}/executions/{FAILED_EXEC}/timeline"),
        ] {
            assert!(alert.message.contains(want), "missing {want:?} in\n{}", alert.message);
        }
        assert!(!alert.message.contains("s3cr3t-Passw0rd-value"), "build log lines are redacted:\n{}", alert.message);
        assert!(!alert.message.contains("added 812 packages"), "only the error lines:\n{}", alert.message);
        assert_eq!(alert.attributes["severity"]["Value"], "SEV2");
        assert_eq!(alert.attributes["kind"]["Value"], "pipeline");
        assert_eq!(alert.attributes["team"]["Value"], "payments", "the pipeline's team tag routes it");
        let evidence = first["evidence"].as_str().expect("evidence stored").to_string();
        assert!(evidence.ends_with(&format!("incidents/pipelines/{pipeline}/{incident}/")), "{evidence}");
        let manifest: Value = serde_json::from_str(&s3_text(&bed, &format!("{evidence}manifest.json")).await).unwrap();
        let names: Vec<&str> =
            manifest["contents"].as_array().unwrap().iter().filter_map(|o| o["key"].as_str()).collect();
        for object in ["event.json", "execution.json", "action-executions.json", "build.json", "build-log.json"] {
            assert!(names.iter().any(|k| k.ends_with(&format!("bundle.json#{object}"))), "{object} in {names:?}");
        }
        let bundle = s3_text(&bed, &format!("{evidence}bundle.json")).await;
        let (_, build_log) = shared::evidence::bundle_documents(bundle.as_bytes())
            .into_iter()
            .find(|(name, _)| name == "build-log.json")
            .expect("build-log.json in the bundle");
        assert!(!String::from_utf8_lossy(&build_log).contains("s3cr3t-Passw0rd-value"));

        // A later execution succeeds: the incident resolves, naming the fix.
        let t1 = chrono::Utc::now();
        let (resolved, calls_resolve) =
            invoke(&app, "r5", event("pipeline-execution-succeeded.json", &pipeline, FIXING_EXEC, "ev-exec-ok", t1))
                .await;
        println!("PIPELINE calls resolve={calls_resolve}");
        assert_eq!(resolved["incident"], incident.as_str(), "{resolved}");
        let notes = bed.notifications().await;
        assert_eq!(notes.len(), 1, "one resolution");
        let r = &notes[0];
        assert!(
            r.subject.starts_with(&format!("[RESOLVED] pipeline {pipeline}: failed at Build/UnitTests (recovered in ")),
            "{}",
            r.subject
        );
        for want in [
            &format!("Failed execution: {FAILED_EXEC}"),
            &format!("by execution {FIXING_EXEC} succeeding"),
            "Fixed by commit 9e8d7c6 'fix the pool test'",
            "Time to recover: ",
            "report.md",
        ] {
            assert!(r.message.contains(want), "missing {want:?} in\n{}", r.message);
        }
        assert_eq!(r.attributes["team"]["Value"], "payments", "routed like its alert");
        let report = s3_text(&bed, &format!("{evidence}report.md")).await;
        assert!(report.contains(&incident) && report.contains(FIXING_EXEC), "{report}");
        // Resolved once: the same success again, and a second success, say nothing.
        let (_, _) =
            invoke(&app, "r6", event("pipeline-execution-succeeded.json", &pipeline, FIXING_EXEC, "ev-exec-ok-2", t1))
                .await;
        assert!(bed.notifications().await.is_empty(), "no second resolution");
        // A failure of before the success, delivered late (another event id): already fixed.
        let (stale, _) =
            invoke(&app, "r7", event("stage-failed.json", &pipeline, FAILED_EXEC, "ev-stage-late", t0)).await;
        assert_eq!(stale["notified"], "suppressed:stale-failure", "{stale}");
        assert!(stale["incident"].is_null(), "{stale}");
        assert!(bed.notifications().await.is_empty(), "a stale failure pages nobody");
    });
}

#[test]
fn a_late_success_of_an_older_execution_does_not_resolve_a_newer_failure() {
    big_stack(async {
        let bed = TestBed::new("pipeline-late").await;
        let pipeline = format!("{}-staging", bed.prefix);
        let list = mock!(aws_sdk_codepipeline::Client::list_action_executions).then_output(failed_actions);
        let failing = execution_rule(FAILED_EXEC, FAILING_COMMIT, "raise pool size");
        let tags = tags_rule(&[]);
        let build = mock!(aws_sdk_codebuild::Client::batch_get_builds).then_output(failed_build);
        let app = app(&bed, &[&list, &failing, &tags], &[&build]);
        let now = chrono::Utc::now();
        let (opened, _) =
            invoke(&app, "r1", event("action-failed-codebuild.json", &pipeline, FAILED_EXEC, "ev-1", now)).await;
        assert_eq!(opened["severity"], "SEV3", "a staging pipeline is not production: {opened}");
        assert_eq!(bed.notifications().await.len(), 1);
        // The older execution's SUCCEEDED, delivered late: it happened before the failure.
        let (late, _) = invoke(
            &app,
            "r2",
            event(
                "pipeline-execution-succeeded.json",
                &pipeline,
                FIXING_EXEC,
                "ev-2",
                now - chrono::Duration::minutes(20),
            ),
        )
        .await;
        assert_eq!(late["notified"], "suppressed:no-open-incident", "{late}");
        assert!(bed.notifications().await.is_empty(), "the newer failure stays open");
    });
}

#[test]
fn an_ecs_incident_on_a_service_a_pipeline_deployed_names_the_execution_and_commit() {
    big_stack(async {
        let bed = TestBed::new("pipeline-link").await;
        let svc = SeededService::create(&bed, "api", 2).await;
        let pipeline = format!("{}-prod", bed.prefix);
        let (cluster, service) = (svc.cluster.clone(), svc.service.clone());
        let list = mock!(aws_sdk_codepipeline::Client::list_action_executions)
            .then_output(move || deploy_actions(FAILED_EXEC, ActionExecutionStatus::Succeeded, &cluster, &service));
        let execution = execution_rule(FAILED_EXEC, FAILING_COMMIT, "raise pool size");
        let app = app(&bed, &[&list, &execution], &[]);
        // The Deploy action's SUCCEEDED event: the link is recorded on the service.
        let deployed =
            event("action-deploy-ecs-succeeded.json", &pipeline, FAILED_EXEC, "ev-deploy", chrono::Utc::now());
        let (linked, calls_link) = invoke(&app, "r1", deployed).await;
        println!("PIPELINE calls deploy-link={calls_link}");
        assert_eq!(linked["service"], svc.service.as_str(), "{linked}");
        assert!(linked["summary"].as_str().unwrap().contains("commit 3f2a9c1 'raise pool size'"), "{linked}");

        // Its tasks then crash: ecs-events' alert names the deployment.
        let mut events = bed.start("ecs-events", &[]);
        let o = events.outcome(&svc.retarget(
            &fixture("ecs/task-stopped-app-crash.json"),
            "crash-1",
            &format!("{:032x}", 7),
        ));
        assert!(o["incident"].is_string(), "{o}");
        let notes = bed.notifications().await;
        assert_eq!(notes.len(), 1);
        let want = format!("by pipeline {pipeline}, execution {FAILED_EXEC}, commit 3f2a9c1 'raise pool size'");
        assert!(
            notes[0].message.contains("deployed ") && notes[0].message.contains(&want),
            "missing {want:?} in\n{}",
            notes[0].message
        );
    });
}

/// Issue 25: a throttled `ListActionExecutions` on the deploy-link path
/// fails the invocation as retryable (Lambda retries it; in AWS a throttle
/// must not lose the link for good), and the retry records the link. A
/// definite refusal (`PipelineNotFoundException`) is named, not retried.
#[test]
fn a_throttled_deploy_link_read_fails_retryable_and_the_retry_records_the_link() {
    use aws_sdk_codepipeline::error::ErrorMetadata;
    use aws_sdk_codepipeline::operation::list_action_executions::ListActionExecutionsError;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    big_stack(async {
        let bed = TestBed::new("pipeline-link-retry").await;
        let svc = SeededService::create(&bed, "api", 2).await;
        let pipeline = format!("{}-prod", bed.prefix);
        let (cluster, service) = (svc.cluster.clone(), svc.service.clone());
        let throttled = Arc::new(AtomicBool::new(true));
        let t = throttled.clone();
        let throttle = mock!(aws_sdk_codepipeline::Client::list_action_executions)
            .match_requests(move |_| t.load(Ordering::SeqCst))
            .then_error(|| {
                ListActionExecutionsError::generic(
                    ErrorMetadata::builder().code("ThrottlingException").message("Rate exceeded").build(),
                )
            });
        let missing = mock!(aws_sdk_codepipeline::Client::list_action_executions)
            .match_requests(|r| r.pipeline_name().is_some_and(|p| p.ends_with("-gone")))
            .then_error(|| {
                ListActionExecutionsError::generic(
                    ErrorMetadata::builder()
                        .code("PipelineNotFoundException")
                        .message("Account does not have a pipeline with that name")
                        .build(),
                )
            });
        let list = mock!(aws_sdk_codepipeline::Client::list_action_executions)
            .then_output(move || deploy_actions(FAILED_EXEC, ActionExecutionStatus::Succeeded, &cluster, &service));
        let execution = execution_rule(FAILED_EXEC, FAILING_COMMIT, "raise pool size");
        let app = app(&bed, &[&missing, &throttle, &list, &execution], &[]);
        let deployed = event(
            "action-deploy-ecs-succeeded.json",
            &pipeline,
            FAILED_EXEC,
            "ev-deploy-throttled",
            chrono::Utc::now(),
        );
        let err =
            try_invoke(&app, "lambda-1", deployed.clone()).await.expect_err("a throttled read fails the invocation");
        assert!(
            err.is_retryable() && err.error_type() == "AwsRetryable",
            "Lambda must retry it: {} {err}",
            err.error_type()
        );
        assert!(err.to_string().contains("ListActionExecutions"), "{err}");
        // Lambda's retry (same request id), the throttle over: the link is recorded.
        throttled.store(false, Ordering::SeqCst);
        let linked = try_invoke(&app, "lambda-1", deployed).await.expect("the retry is handled");
        assert_eq!(linked["service"], svc.service.as_str(), "{linked}");
        assert!(linked["summary"].as_str().unwrap().contains("recorded for its incidents"), "{linked}");
        // A pipeline that does not exist: a definite answer, named and not retried.
        let gone = event(
            "action-deploy-ecs-succeeded.json",
            &format!("{}-gone", bed.prefix),
            FAILED_EXEC,
            "ev-deploy-gone",
            chrono::Utc::now(),
        );
        let named = try_invoke(&app, "lambda-2", gone).await.expect("a refusal is answered, not retried");
        assert!(named["summary"].as_str().unwrap().contains("PipelineNotFoundException"), "{named}");
    });
}

/// The real binary against the local server alone: CodePipeline there knows
/// no executions and no action executions, CodeBuild no builds. The alert
/// goes out with what the event says and names what could not be read.
#[tokio::test(flavor = "multi_thread")]
async fn the_binary_alerts_from_the_event_alone_records_superseded_and_announces_an_approval_once() {
    let bed = TestBed::new("pipeline-bin").await;
    let pipeline = format!("{}-prod", bed.prefix);
    let mut f = bed.start("pipeline-events", &[]);
    let now = chrono::Utc::now();
    let started = f.outcome(&event("pipeline-execution-succeeded.json", &pipeline, FAILED_EXEC, "b-0", now));
    assert_eq!(started["notified"], "suppressed:no-open-incident", "{started}");

    let failed = f.outcome(&event("action-failed-codebuild.json", &pipeline, FAILED_EXEC, "b-1", now));
    assert_eq!(
        (failed["severity"].as_str(), failed["cause"].as_str()),
        (Some("SEV2"), Some("pipeline-failed")),
        "{failed}"
    );
    let stage = f.outcome(&event("stage-failed.json", &pipeline, FAILED_EXEC, "b-2", now));
    assert_eq!(stage["incident"], failed["incident"], "{stage}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "one alert");
    let body = &notes[0].message;
    assert!(notes[0].subject.contains("Build/UnitTests (CodeBuild) failed"), "{}", notes[0].subject);
    assert!(body.contains("error: JobFailed: Build terminated with state: FAILED"), "{body}");
    assert!(body.contains("not read: action executions: "), "names what it could not read:\n{body}");

    // Three hours later, still failed, no new event: escalated once, not
    // expired (a failed pipeline waits for a fix; a service incident would
    // have expired after its 60-minute window).
    let pk = format!("pipeline#{pipeline}/{FAILED_EXEC}");
    let ago = chrono::Utc::now().timestamp() - 3 * 3600;
    bed.edit_incident(&pk, |r| {
        r["opened_at"] = Value::from(ago);
        r["last_signal_at"] = Value::from(ago);
    })
    .await;
    let mut reports = bed.start("scheduled-reports", &[]);
    for _ in 0..2 {
        let run = reports.outcome(&json!({"job": "escalate"}));
        assert!(run["summary"].as_str().unwrap().contains("0 expired"), "{run}");
    }
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "one escalation: {:?}", notes.iter().map(|n| &n.subject).collect::<Vec<_>>());
    assert!(
        notes[0]
            .subject
            .starts_with(&format!("[SEV2] ESCALATION pipeline {pipeline}: pipeline failed unresolved for 3h")),
        "{}",
        notes[0].subject
    );
    assert!(
        notes[0].message.contains(&format!("Pipeline:  pipeline {pipeline} execution {FAILED_EXEC}")),
        "{}",
        notes[0].message
    );

    // Superseded: recorded, not paged.
    let superseded = event("pipeline-execution-superseded.json", &pipeline, "older-exec", "b-3", now);
    let s = f.outcome(&superseded);
    assert_eq!(s["notified"], "suppressed:not-paged", "{s}");
    // An approval waits: announced once, even when announced by two events.
    let a1 = f.outcome(&event("action-approval-started.json", &pipeline, FIXING_EXEC, "b-4", now));
    let a2 = f.outcome(&event("action-approval-started.json", &pipeline, FIXING_EXEC, "b-5", now));
    assert_eq!(a1["cause"], "approval-waiting");
    assert_eq!(a2["notified"], "suppressed:approval-already-announced", "{a2}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "one approval notice: {:?}", notes.iter().map(|n| &n.subject).collect::<Vec<_>>());
    assert_eq!(
        notes[0].subject,
        format!("[APPROVAL] pipeline {pipeline}: Approve/ProductionApproval waiting for approval")
    );
    assert!(notes[0].message.contains("put-approval-result"), "{}", notes[0].message);
    assert_eq!(notes[0].attributes["severity"]["Value"], "INFO");

    // The fixing execution succeeds: resolved (no commit: the local server has no execution).
    let ok = f.outcome(&event("pipeline-execution-succeeded.json", &pipeline, FIXING_EXEC, "b-6", chrono::Utc::now()));
    assert_eq!(ok["incident"], failed["incident"], "{ok}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(notes[0].subject.starts_with("[RESOLVED]"), "{}", notes[0].subject);
    let calls: Vec<u64> = f
        .stdout()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["decision"] == "outcome" || v["decision"] == "outcome")
        .filter_map(|v| v["fields"]["aws_calls"].as_u64().or_else(|| v["aws_calls"].as_u64()))
        .collect();
    println!(
        "PIPELINE binary calls per event (success-none, failure, stage-join, superseded, approval, approval-dup, resolution) = {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_event_without_its_execution_is_refused_naming_the_field() {
    let bed = TestBed::new("pipeline-bad").await;
    let mut f = bed.start("pipeline-events", &[]);
    let mut e = event("stage-failed.json", "api-prod", FAILED_EXEC, "bad-1", chrono::Utc::now());
    e["detail"].as_object_mut().unwrap().remove("execution-id");
    let (kind, message) = f.invoke(&e).expect_error("an event with no execution");
    assert!(message.contains("detail.execution-id"), "{kind}: {message}");
}

#[test]
fn an_approval_names_the_commit_the_previous_stage_and_the_token_to_approve_with() {
    big_stack(async {
        let bed = TestBed::new("pipeline-approval").await;
        let pipeline = format!("{}-prod", bed.prefix);
        let state = mock!(aws_sdk_codepipeline::Client::get_pipeline_state).then_output(|| {
            let stage = |name: &str, status: StageExecutionStatus| {
                StageState::builder().stage_name(name).latest_execution(
                    StageExecution::builder().pipeline_execution_id(FIXING_EXEC).status(status).build().unwrap(),
                )
            };
            GetPipelineStateOutput::builder()
                .stage_states(stage("Source", StageExecutionStatus::Succeeded).build())
                .stage_states(stage("Build", StageExecutionStatus::Succeeded).build())
                .stage_states(
                    stage("Approve", StageExecutionStatus::InProgress)
                        .action_states(
                            ActionState::builder()
                                .action_name("ProductionApproval")
                                .latest_execution(
                                    ActionExecution::builder()
                                        .status(ActionExecutionStatus::InProgress)
                                        .token("1a2b3c4d-approval-token")
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
        let execution = execution_rule(FIXING_EXEC, FIXING_COMMIT, "fix the pool test");
        let tags = tags_rule(&[("autopilot:env", "production")]);
        let app = app(&bed, &[&state, &execution, &tags], &[]);
        let (o, calls) = invoke(
            &app,
            "r1",
            event("action-approval-started.json", &pipeline, FIXING_EXEC, "ap-1", chrono::Utc::now()),
        )
        .await;
        println!("PIPELINE calls approval={calls}");
        assert_eq!(o["cause"], "approval-waiting", "{o}");
        let notes = bed.notifications().await;
        assert_eq!(notes.len(), 1);
        for want in [
            "source revision: commit 9e8d7c6 'fix the pool test'",
            "previous stage Build: Succeeded",
            "--token 1a2b3c4d-approval-token",
            "production pipeline: tag autopilot:env=production",
        ] {
            assert!(notes[0].message.contains(want), "missing {want:?} in\n{}", notes[0].message);
        }
    });
}

#[test]
fn when_sns_refuses_the_alert_the_invocation_fails_and_lambdas_retry_sends_exactly_one() {
    big_stack(async {
        let bed = TestBed::new("pipeline-sns").await;
        let pipeline = format!("{}-prod", bed.prefix);
        let list = mock!(aws_sdk_codepipeline::Client::list_action_executions).then_output(failed_actions);
        let failing = execution_rule(FAILED_EXEC, FAILING_COMMIT, "raise pool size");
        let tags = tags_rule(&[]);
        let build = mock!(aws_sdk_codebuild::Client::batch_get_builds).then_output(failed_build);
        let gone = format!("{}-deleted", bed.topic_arn);
        let broken = app_notifying(&bed, &gone, &[&list, &failing, &tags], &[&build]);
        let working = app(&bed, &[&list, &failing, &tags], &[&build]);
        let failed = event("action-failed-codebuild.json", &pipeline, FAILED_EXEC, "sns-1", chrono::Utc::now());
        let err = try_invoke(&broken, "req-1", failed.clone()).await.expect_err("an unsent alert fails the invocation");
        assert!(err.is_retryable(), "Lambda retries it: {err}");
        // The failed publish released the alert: the stage's failure, at
        // another instance with SNS back, sends it at once (no wait for a lease).
        let stage =
            invoke(&working, "req-2", event("stage-failed.json", &pipeline, FAILED_EXEC, "sns-2", chrono::Utc::now()))
                .await
                .0;
        assert!(stage["notified"].as_str().is_some_and(|n| !n.starts_with("suppressed:")), "{stage}");
        let notes = bed.notifications().await;
        assert_eq!(notes.len(), 1, "the alert: {:?}", notes.iter().map(|n| &n.subject).collect::<Vec<_>>());
        // Lambda's retry of the first event (same request id) joins: no second alert.
        let retried = try_invoke(&working, "req-1", failed.clone()).await.expect("the retry succeeds");
        assert_eq!(retried["incident"], stage["incident"], "{retried}");
        assert!(bed.notifications().await.is_empty(), "exactly one alert");
        // And again (a duplicate delivery of the retried event): nothing more.
        let dup = try_invoke(&working, "req-3", failed).await.expect("duplicate");
        assert_eq!(dup["notified"], "suppressed:duplicate-event");
        assert!(bed.notifications().await.is_empty());
    });
}

#[test]
fn a_codedeploy_to_ecs_deploy_is_linked_to_the_service_its_deployment_group_names() {
    big_stack(async {
        use aws_sdk_codedeploy::operation::get_deployment_group::GetDeploymentGroupOutput;
        use aws_sdk_codedeploy::types::{DeploymentGroupInfo, EcsService};
        let bed = TestBed::new("pipeline-codedeploy").await;
        let pipeline = format!("{}-prod", bed.prefix);
        let list = mock!(aws_sdk_codepipeline::Client::list_action_executions).then_output(|| {
            ListActionExecutionsOutput::builder()
                .action_execution_details(
                    ActionExecutionDetail::builder()
                        .pipeline_execution_id(FAILED_EXEC)
                        .stage_name("Deploy")
                        .action_name("DeployApi")
                        .status(ActionExecutionStatus::InProgress)
                        .start_time(DateTime::from_secs(chrono::Utc::now().timestamp() - 60))
                        .input(
                            ActionExecutionInput::builder()
                                .action_type_id(type_id(ActionCategory::Deploy, "CodeDeployToECS"))
                                .configuration("ApplicationName", "AppECS-prod-api")
                                .configuration("DeploymentGroupName", "DgpECS-prod-api")
                                .configuration("TaskDefinitionTemplateArtifact", "BuildArtifact")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
        let execution = execution_rule(FAILED_EXEC, FAILING_COMMIT, "raise pool size");
        let group = mock!(aws_sdk_codedeploy::Client::get_deployment_group)
            .match_requests(|r| r.deployment_group_name() == Some("DgpECS-prod-api"))
            .then_output(|| {
                GetDeploymentGroupOutput::builder()
                    .deployment_group_info(
                        DeploymentGroupInfo::builder()
                            .application_name("AppECS-prod-api")
                            .deployment_group_name("DgpECS-prod-api")
                            .ecs_services(EcsService::builder().cluster_name("prod").service_name("api").build())
                            .build(),
                    )
                    .build()
            });
        let app = app_with_codedeploy(&bed, &[&list, &execution], &[], &[&group]);
        let started =
            event("action-deploy-codedeploy-started.json", &pipeline, FAILED_EXEC, "cd-1", chrono::Utc::now());
        let (o, _) = invoke(&app, "r1", started).await;
        assert_eq!((o["cluster"].as_str(), o["service"].as_str()), (Some("prod"), Some("api")), "{o}");
        let links = app.state.pipelines().pipeline_deploys("prod", "api").await.expect("links read");
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!((links[0].execution_id.as_str(), links[0].status.as_str()), (FAILED_EXEC, "InProgress"));
        assert_eq!(links[0].commit.as_ref().map(|c| c.label()), Some("3f2a9c1 'raise pool size'".into()));
    });
}
