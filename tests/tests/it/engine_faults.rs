//! The action engine when its safety records cannot be read or written: an
//! automatic action never acts on a guess, and a hold that could not be
//! recorded is said, not implied. ECS and DynamoDB answer through the SDK's
//! test support; everything else points at a closed port.

use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::query::{QueryError, QueryOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::update_service::{UpdateServiceError, UpdateServiceOutput};
use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState, Service};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use shared::actions::engine::{ActionRequest, ActionResult, Engine, run};
use shared::actions::{ActionKind, Origin};
use shared::adapters::Clients;
use shared::adapters::state::StateStore;
use shared::config::Config;
use shared::outcome::ActionStatus;

const TD: &str = "arn:aws:ecs:us-east-1:111122223333:task-definition/api";

fn td(rev: i32) -> String {
    format!("{TD}:{rev}")
}

fn service() -> DescribeServicesOutput {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    DescribeServicesOutput::builder()
        .services(
            Service::builder()
                .service_name("api")
                .cluster_arn("arn:aws:ecs:us-east-1:111122223333:cluster/prod")
                .status("ACTIVE")
                .desired_count(3)
                .running_count(1)
                .task_definition(td(42))
                .deployments(
                    Deployment::builder()
                        .id("ecs-svc/2")
                        .status("PRIMARY")
                        .task_definition(td(42))
                        .rollout_state(DeploymentRolloutState::Failed)
                        .created_at(DateTime::from_secs(now - 600))
                        .build(),
                )
                .deployments(
                    Deployment::builder()
                        .id("ecs-svc/1")
                        .status("ACTIVE")
                        .task_definition(td(41))
                        .rollout_state(DeploymentRolloutState::Completed)
                        .created_at(DateTime::from_secs(now - 86_400))
                        .build(),
                )
                .build(),
        )
        .build()
}

fn denied<E>(make: fn(aws_sdk_dynamodb::error::ErrorMetadata) -> E) -> E {
    make(
        aws_sdk_dynamodb::error::ErrorMetadata::builder()
            .code("AccessDeniedException")
            .message("not authorized")
            .build(),
    )
}

fn sk_is(key: Option<&std::collections::HashMap<String, AttributeValue>>, sk: &str) -> bool {
    key.and_then(|k| k.get("sk")).and_then(|v| v.as_s().ok()).is_some_and(|v| v == sk)
}

/// ECS answering a failed deployment of revision 42 (41 completed before);
/// `update` is the mutating call's rule.
fn ecs(update: &Rule) -> aws_sdk_ecs::Client {
    ecs_answering(service, &[42, 41, 40], update)
}

/// ECS answering DescribeServices with `describe`, the `active` revisions ACTIVE.
fn ecs_answering(
    describe: fn() -> DescribeServicesOutput,
    active: &'static [i32],
    update: &Rule,
) -> aws_sdk_ecs::Client {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(describe);
    let revisions = mock!(aws_sdk_ecs::Client::list_task_definitions).then_output(move || {
        aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput::builder()
            .set_task_definition_arns(Some(active.iter().map(|r| td(*r)).collect()))
            .build()
    });
    let deployments = mock!(aws_sdk_ecs::Client::list_service_deployments).then_output(|| {
        aws_sdk_ecs::operation::list_service_deployments::ListServiceDeploymentsOutput::builder().build()
    });
    mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe, &revisions, &deployments, update], |b| b
        .retry_config(RetryConfig::disabled()))
}

fn updated() -> Rule {
    mock!(aws_sdk_ecs::Client::update_service).then_output(|| UpdateServiceOutput::builder().build())
}

/// The state table: `hold` and `known_good` are the answers to those two
/// reads; every other read finds nothing and every other write succeeds.
fn dynamodb(hold: Rule, known_good: Rule, hold_write: Option<Rule>) -> aws_sdk_dynamodb::Client {
    dynamodb_with(hold, known_good, hold_write.into_iter().collect())
}

/// Like [`dynamodb`], with `extra` rules consulted before the defaults.
fn dynamodb_with(hold: Rule, known_good: Rule, extra: Vec<Rule>) -> aws_sdk_dynamodb::Client {
    let query = mock!(aws_sdk_dynamodb::Client::query).then_output(|| QueryOutput::builder().build());
    let put = mock!(aws_sdk_dynamodb::Client::put_item).then_output(|| PutItemOutput::builder().build());
    let update = mock!(aws_sdk_dynamodb::Client::update_item)
        .then_output(|| aws_sdk_dynamodb::operation::update_item::UpdateItemOutput::builder().build());
    let delete = mock!(aws_sdk_dynamodb::Client::delete_item)
        .then_output(|| aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput::builder().build());
    let get_other = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| GetItemOutput::builder().build());
    let mut rules = vec![hold, known_good];
    rules.extend(extra);
    rules.extend([query, put, update, delete, get_other]);
    let refs: Vec<&Rule> = rules.iter().collect();
    mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, refs, |b| b
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()))
}

fn hold_read(answer: Result<Option<&'static str>, ()>) -> Rule {
    let rule = mock!(aws_sdk_dynamodb::Client::get_item).match_requests(|i| sk_is(i.key(), "hold"));
    match answer {
        Err(()) => rule.then_error(|| denied(GetItemError::generic)),
        Ok(reason) => rule.then_output(move || {
            GetItemOutput::builder()
                .set_item(reason.map(|r| {
                    [
                        ("since".to_string(), AttributeValue::N("1795000000".into())),
                        ("reason".into(), AttributeValue::S(r.into())),
                    ]
                    .into()
                }))
                .build()
        }),
    }
}

/// A Query that returns the known-good history: its own (`:kg`), or the one
/// read of the service's facts that starts at it (`:from`).
fn reads_known_good(q: &aws_sdk_dynamodb::operation::query::QueryInput) -> bool {
    let values = q.expression_attribute_values();
    [":kg", ":from"]
        .iter()
        .any(|k| values.and_then(|v| v.get(*k)).and_then(|v| v.as_s().ok()).is_some_and(|v| v == "known-good#"))
}

/// The known-good history query: revision 40 reached steady state a day ago
/// (`readable`), else a damaged record of it.
fn known_good_read(readable: bool) -> Rule {
    let rule = mock!(aws_sdk_dynamodb::Client::query).match_requests(reads_known_good);
    if readable {
        rule.then_output(|| {
            let day_ago = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
                - 86_400)
                .to_string();
            QueryOutput::builder()
                .items(
                    [
                        ("sk".to_string(), AttributeValue::S("known-good#api:40".into())),
                        ("task_definition".into(), AttributeValue::S(td(40))),
                        ("first_completed_at".into(), AttributeValue::N(day_ago.clone())),
                        ("completed_at".into(), AttributeValue::N(day_ago)),
                    ]
                    .into(),
                )
                .build()
        })
    } else {
        rule.then_output(|| {
            QueryOutput::builder()
                .items([("sk".to_string(), AttributeValue::S("known-good#api:40".into()))].into())
                .build()
        })
    }
}

/// The read of the known-good history (and the ledger with it) denied.
fn known_good_denied() -> Rule {
    mock!(aws_sdk_dynamodb::Client::query).match_requests(reads_known_good).then_error(|| denied(QueryError::generic))
}

async fn engine_run(ecs: aws_sdk_ecs::Client, dynamodb: aws_sdk_dynamodb::Client) -> ActionResult {
    engine_run_with(ecs, dynamodb, |r| r).await
}

/// Run an automatic rollback request, shaped by `shape`, through the engine.
async fn engine_run_with<'a>(
    ecs: aws_sdk_ecs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    shape: impl FnOnce(ActionRequest<'a>) -> ActionRequest<'a>,
) -> ActionResult {
    let dead = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new("k", "s", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let mut clients = Clients::new(&dead);
    clients.set_ecs(ecs);
    clients.set_dynamodb(dynamodb.clone());
    let config = Config::from_lookup(|k| {
        match k {
            "NOTIFY_TOPIC_ARN" => Some("arn:aws:sns:us-east-1:111122223333:autopilot"),
            "EVIDENCE_BUCKET" => Some("evidence"),
            "STATE_TABLE" => Some("state"),
            _ => None,
        }
        .map(str::to_string)
    })
    .expect("config");
    let state = StateStore::new(dynamodb, "state");
    let engine = Engine { function: "ecs-events", config: &config, clients: &clients, state: &state };
    let request =
        shape(ActionRequest::automatic(ActionKind::Rollback, "prod", "api", "SERVICE_DEPLOYMENT_FAILED test"));
    run(&engine, &request).await
}

#[tokio::test]
async fn when_the_hold_is_unreadable_an_automatic_rollback_should_skip_and_say_why() {
    let update = updated();
    let r = engine_run(ecs(&update), dynamodb(hold_read(Err(())), known_good_read(true), None)).await;
    assert_eq!(r.record.status, ActionStatus::Skipped, "{:?}", r.record);
    assert!(r.record.detail.contains("hold") && r.record.detail.contains("AccessDenied"), "{}", r.record.detail);
    assert_eq!(update.num_calls(), 0, "no UpdateService on an unknown hold");
}

#[tokio::test]
async fn when_the_known_good_revision_is_unreadable_an_automatic_rollback_should_skip_not_guess() {
    let update = updated();
    let r = engine_run(ecs(&update), dynamodb(hold_read(Ok(None)), known_good_read(false), None)).await;
    assert_eq!(r.record.status, ActionStatus::Skipped, "{:?}", r.record);
    assert!(r.record.detail.contains("known-good"), "{}", r.record.detail);
    assert_eq!(update.num_calls(), 0, "no rollback to an unverified target");
    // The read itself denied: neither the history nor the ledger is known.
    let r = engine_run(ecs(&update), dynamodb(hold_read(Ok(None)), known_good_denied(), None)).await;
    assert_eq!(r.record.status, ActionStatus::Skipped, "{:?}", r.record);
    assert!(r.record.detail.contains("unreadable") && r.record.detail.contains("AccessDenied"), "{}", r.record.detail);
    assert_eq!(update.num_calls(), 0, "no rollback on an unknown history");
}

#[tokio::test]
async fn when_a_hold_exists_an_automatic_rollback_should_skip_naming_it() {
    let update = updated();
    let r =
        engine_run(ecs(&update), dynamodb(hold_read(Ok(Some("UpdateService FAILED"))), known_good_read(true), None))
            .await;
    assert_eq!(r.record.status, ActionStatus::Skipped);
    assert!(
        r.record.detail.contains("held") && r.record.detail.contains("UpdateService FAILED"),
        "{}",
        r.record.detail
    );
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn when_the_call_fails_and_the_hold_cannot_be_recorded_the_result_should_say_nothing_is_held() {
    let update = mock!(aws_sdk_ecs::Client::update_service).then_error(|| {
        UpdateServiceError::generic(
            aws_sdk_ecs::error::ErrorMetadata::builder()
                .code("InvalidParameterException")
                .message("TaskDefinition is inactive")
                .build(),
        )
    });
    let hold_write = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|i| sk_is(i.item(), "hold"))
        .then_error(|| denied(PutItemError::generic));
    let r = engine_run(ecs(&update), dynamodb(hold_read(Ok(None)), known_good_read(true), Some(hold_write))).await;
    assert_eq!(update.num_calls(), 1);
    assert_eq!(r.record.status, ActionStatus::Failed);
    assert!(r.failed, "a failed call escalates");
    let detail = &r.record.detail;
    assert!(detail.contains("hold NOT recorded") && detail.contains("AccessDenied"), "{detail}");
    assert!(!detail.contains("are now held"), "must not claim a hold that is not there: {detail}");
}

/// The service after ECS's circuit breaker rolled back release 42: ECS's own
/// rollback deployment of 41 is PRIMARY and COMPLETED; the failed deployment
/// of 42 is still listed, ACTIVE and FAILED, while its tasks drain. (The
/// local server cannot list two deployments; these are ECS's shapes.)
fn rolled_back_by_ecs() -> DescribeServicesOutput {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    DescribeServicesOutput::builder()
        .services(
            Service::builder()
                .service_name("api")
                .cluster_arn("arn:aws:ecs:us-east-1:111122223333:cluster/prod")
                .status("ACTIVE")
                .desired_count(3)
                .running_count(3)
                .task_definition(td(41))
                .deployments(
                    Deployment::builder()
                        .id("ecs-svc/3")
                        .status("PRIMARY")
                        .task_definition(td(41))
                        .rollout_state(DeploymentRolloutState::Completed)
                        .rollout_state_reason("ECS deployment ecs-svc/3 completed.")
                        .created_at(DateTime::from_secs(now - 240))
                        .build(),
                )
                .deployments(
                    Deployment::builder()
                        .id("ecs-svc/2")
                        .status("ACTIVE")
                        .task_definition(td(42))
                        .rollout_state(DeploymentRolloutState::Failed)
                        .rollout_state_reason("ECS deployment circuit breaker: task failed to start.")
                        .created_at(DateTime::from_secs(now - 900))
                        .build(),
                )
                .build(),
        )
        .build()
}

#[tokio::test]
async fn when_ecs_already_rolled_back_an_automatic_rollback_should_never_go_onto_the_failed_deployments_revision() {
    // No trigger named (as a hand-off that does not say what it is about):
    // the failed deployment's 42 is the only other revision, and never a target.
    let update = updated();
    let r = engine_run(
        ecs_answering(rolled_back_by_ecs, &[42, 41], &update),
        dynamodb(hold_read(Ok(None)), known_good_read(true), None),
    )
    .await;
    assert_eq!(update.num_calls(), 0, "the healthy service stays on 41: {:?}", r.record);
    assert_eq!(r.record.status, ActionStatus::Skipped, "{:?}", r.record);
}

#[tokio::test]
async fn when_a_failed_event_arrives_after_ecs_rolled_back_the_engine_should_skip_saying_the_deployment_is_no_longer_primary()
 {
    let update = updated();
    let r = engine_run_with(
        ecs_answering(rolled_back_by_ecs, &[42, 41, 40], &update),
        dynamodb(hold_read(Ok(None)), known_good_read(true), None),
        |r| ActionRequest { trigger_deployment: Some("ecs-svc/2"), ..r },
    )
    .await;
    assert_eq!(update.num_calls(), 0);
    assert_eq!(r.record.status, ActionStatus::Skipped, "{:?}", r.record);
    assert_eq!(
        r.record.detail,
        "deployment ecs-svc/2 is no longer the service's primary deployment \
         (ECS already rolled back to api:41, deployment ecs-svc/3 COMPLETED); nothing to do"
    );
    assert_eq!(r.trigger_revision.as_deref(), Some(td(42).as_str()), "the failed deployment's own revision");
}

#[tokio::test]
async fn when_the_failed_deployment_is_still_primary_the_engine_should_roll_back_and_mark_the_revision_rolled_away() {
    let update = updated();
    let rolled_away = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|u| sk_is(u.key(), "known-good#api:42"))
        .then_output(|| aws_sdk_dynamodb::operation::update_item::UpdateItemOutput::builder().build());
    let r = engine_run_with(
        ecs(&update),
        dynamodb(hold_read(Ok(None)), known_good_read(true), Some(rolled_away.clone())),
        |r| ActionRequest { trigger_deployment: Some("ecs-svc/2"), ..r },
    )
    .await;
    assert_eq!(r.record.status, ActionStatus::Executed, "{:?}", r.record);
    assert!(r.record.detail.contains("api:42 -> api:40 (KnownGood)"), "{}", r.record.detail);
    assert_eq!(update.num_calls(), 1);
    assert_eq!(rolled_away.num_calls(), 1, "the revision we rolled away from is marked in its history");
    assert_eq!(r.trigger_revision.as_deref(), Some(td(42).as_str()));
}

// ---- Issue 19: the hold re-read under the lock, ECS's own traffic-shifting
// strategies, and crash loops on a revision that is not a fresh release.

use aws_sdk_ecs::operation::list_service_deployments::{ListServiceDeploymentsError, ListServiceDeploymentsOutput};
use aws_sdk_ecs::operation::stop_service_deployment::StopServiceDeploymentOutput;
use aws_sdk_ecs::types::{
    DeploymentConfiguration, DeploymentStrategy, ServiceDeploymentBrief, ServiceDeploymentStatus,
};

const SERVICE_DEPLOYMENT: &str =
    "arn:aws:ecs:us-east-1:111122223333:service-deployment/prod/api/r9i43YFjvgF_xlg7m2eJ1r";

fn epoch_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A deployment as DescribeServices lists it, created `ago` seconds before now.
fn deployment(id: &str, status: &str, rev: i32, rollout: DeploymentRolloutState, ago: i64, reason: &str) -> Deployment {
    let d = Deployment::builder()
        .id(id)
        .status(status)
        .task_definition(td(rev))
        .rollout_state(rollout)
        .created_at(DateTime::from_secs(epoch_now() - ago));
    if reason.is_empty() { d.build() } else { d.rollout_state_reason(reason).build() }
}

/// DescribeServices of a service running `runs`, with `deployments` and, when given, a deployment strategy.
fn described(runs: i32, deployments: Vec<Deployment>, strategy: Option<DeploymentStrategy>) -> DescribeServicesOutput {
    DescribeServicesOutput::builder()
        .services(
            Service::builder()
                .service_name("api")
                .cluster_arn("arn:aws:ecs:us-east-1:111122223333:cluster/prod")
                .status("ACTIVE")
                .desired_count(3)
                .running_count(3)
                .task_definition(td(runs))
                .set_deployments(Some(deployments))
                .set_deployment_configuration(strategy.map(|s| DeploymentConfiguration::builder().strategy(s).build()))
                .build(),
        )
        .build()
}

/// The service mid-way through a deployment of 42 from a completed 41, with `strategy`.
fn rolling_out(strategy: Option<DeploymentStrategy>) -> DescribeServicesOutput {
    described(
        42,
        vec![
            deployment("ecs-svc/2", "PRIMARY", 42, DeploymentRolloutState::InProgress, 600, ""),
            deployment("ecs-svc/1", "ACTIVE", 41, DeploymentRolloutState::Completed, 86_400, ""),
        ],
        strategy,
    )
}

fn listed_in_progress() -> Rule {
    mock!(aws_sdk_ecs::Client::list_service_deployments).then_output(|| {
        ListServiceDeploymentsOutput::builder()
            .service_deployments(
                ServiceDeploymentBrief::builder()
                    .service_deployment_arn(SERVICE_DEPLOYMENT)
                    .status(ServiceDeploymentStatus::InProgress)
                    .build(),
            )
            .build()
    })
}

fn nothing_in_progress() -> Rule {
    mock!(aws_sdk_ecs::Client::list_service_deployments).then_output(|| ListServiceDeploymentsOutput::builder().build())
}

fn stopped() -> Rule {
    mock!(aws_sdk_ecs::Client::stop_service_deployment)
        .then_output(|| StopServiceDeploymentOutput::builder().service_deployment_arn(SERVICE_DEPLOYMENT).build())
}

/// ECS answering DescribeServices with `describe` (revisions 40–42 ACTIVE),
/// ListServiceDeployments with `list`, and the two mutating calls with `update` and `stop`.
fn ecs_strategy(
    describe: impl Fn() -> DescribeServicesOutput + Send + Sync + 'static,
    list: &Rule,
    update: &Rule,
    stop: &Rule,
) -> aws_sdk_ecs::Client {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(describe);
    let revisions = mock!(aws_sdk_ecs::Client::list_task_definitions).then_output(|| {
        aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput::builder()
            .set_task_definition_arns(Some([42, 41, 40].iter().map(|r| td(*r)).collect()))
            .build()
    });
    mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe, &revisions, list, update, stop], |b| b
        .retry_config(RetryConfig::disabled()))
}

/// The known-good history: `(revision, first completed, last completed)`, epoch seconds.
fn known_good_history(revisions: Vec<(i32, i64, i64)>) -> Rule {
    mock!(aws_sdk_dynamodb::Client::query).match_requests(reads_known_good).then_output(move || {
        let items = revisions
            .iter()
            .map(|(rev, first, last)| {
                [
                    ("sk".to_string(), AttributeValue::S(format!("known-good#api:{rev}"))),
                    ("task_definition".into(), AttributeValue::S(td(*rev))),
                    ("first_completed_at".into(), AttributeValue::N(first.to_string())),
                    ("completed_at".into(), AttributeValue::N(last.to_string())),
                ]
                .into()
            })
            .collect();
        QueryOutput::builder().set_items(Some(items)).build()
    })
}

#[tokio::test]
async fn when_another_invocation_sets_a_hold_before_the_lock_the_engine_should_not_act() {
    // Planning found no reason to stop; by the time the lock is taken,
    // another invocation's failed action has held the service. An enforced
    // automatic action reads the hold under the lock only, where it counts.
    let hold = mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(|i| sk_is(i.key(), "hold"))
        .sequence()
        .output(|| {
            GetItemOutput::builder()
                .set_item(Some(
                    [
                        ("since".to_string(), AttributeValue::N(epoch_now().to_string())),
                        (
                            "reason".into(),
                            AttributeValue::S("StopServiceDeployment FAILED (another invocation)".into()),
                        ),
                    ]
                    .into(),
                ))
                .build()
        })
        .build();
    let update = updated();
    let r = engine_run_with(ecs(&update), dynamodb(hold.clone(), known_good_read(true), None), |r| ActionRequest {
        trigger_deployment: Some("ecs-svc/2"),
        ..r
    })
    .await;
    assert_eq!(update.num_calls(), 0, "no UpdateService once the hold is there: {:?}", r.record);
    assert_eq!(hold.num_calls(), 1, "read once, under the lock");
    assert_eq!(r.record.status, ActionStatus::Skipped, "{:?}", r.record);
    assert!(r.record.detail.contains("held") && r.record.detail.contains("another invocation"), "{}", r.record.detail);
    assert!(!r.failed);
}

#[tokio::test]
async fn a_blue_green_deployment_in_progress_should_be_rolled_back_with_stop_service_deployment_never_update_service() {
    for strategy in [DeploymentStrategy::BlueGreen, DeploymentStrategy::Linear, DeploymentStrategy::Canary] {
        let (list, update, stop) = (listed_in_progress(), updated(), stopped());
        let s = strategy.clone();
        let r = engine_run_with(
            ecs_strategy(move || rolling_out(Some(s.clone())), &list, &update, &stop),
            // 40 is known-good too; ROLLBACK returns to the blue revision 41 all the same.
            dynamodb(hold_read(Ok(None)), known_good_read(true), None),
            |r| ActionRequest { trigger_deployment: Some("ecs-svc/2"), ..r },
        )
        .await;
        assert_eq!(update.num_calls(), 0, "{strategy:?}: never UpdateService mid-deployment: {:?}", r.record);
        assert_eq!(stop.num_calls(), 1, "{strategy:?}: {:?}", r.record);
        assert_eq!(r.record.status, ActionStatus::Executed, "{strategy:?}: {:?}", r.record);
        assert!(
            r.record.detail.contains("api:42 -> api:41") && r.record.detail.contains("StopServiceDeployment(ROLLBACK)"),
            "{strategy:?}: {}",
            r.record.detail
        );
    }
}

#[tokio::test]
async fn when_whether_a_blue_green_deployment_is_in_progress_cannot_be_read_the_engine_should_not_act() {
    let list = mock!(aws_sdk_ecs::Client::list_service_deployments).then_error(|| {
        ListServiceDeploymentsError::generic(
            aws_sdk_ecs::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized")
                .build(),
        )
    });
    let (update, stop) = (updated(), stopped());
    let r = engine_run_with(
        ecs_strategy(|| rolling_out(Some(DeploymentStrategy::BlueGreen)), &list, &update, &stop),
        dynamodb(hold_read(Ok(None)), known_good_read(true), None),
        |r| ActionRequest { trigger_deployment: Some("ecs-svc/2"), ..r },
    )
    .await;
    assert_eq!((update.num_calls(), stop.num_calls()), (0, 0), "{:?}", r.record);
    assert_eq!(r.record.status, ActionStatus::Skipped, "{:?}", r.record);
    assert!(r.record.detail.contains("BLUE_GREEN") && r.record.detail.contains("AccessDenied"), "{}", r.record.detail);
    assert!(!r.failed, "a refusal holds nothing");
}

#[tokio::test]
async fn a_crash_loop_on_a_revision_that_is_not_a_fresh_release_should_not_be_rolled_back() {
    let now = epoch_now();
    // (case, the PRIMARY deployment of 42, the known-good history)
    type Case<'a> = (&'a str, Deployment, Vec<(i32, i64, i64)>);
    let cases: Vec<Case> = vec![
        (
            "a force-deploy of 42, which had reached steady state a day before",
            deployment("ecs-svc/9", "PRIMARY", 42, DeploymentRolloutState::Completed, 600, ""),
            vec![(42, now - 86_400, now - 86_400), (40, now - 3 * 86_400, now - 3 * 86_400)],
        ),
        (
            "ECS's circuit-breaker rollback to 42",
            deployment(
                "ecs-svc/9",
                "PRIMARY",
                42,
                DeploymentRolloutState::Completed,
                600,
                "ECS deployment circuit breaker: rollback completed.",
            ),
            vec![(40, now - 3 * 86_400, now - 3 * 86_400)],
        ),
    ];
    for (case, primary, history) in cases {
        let (list, update, stop) = (listed_in_progress(), updated(), stopped());
        let r = engine_run_with(
            ecs_strategy(move || described(42, vec![primary.clone()], None), &list, &update, &stop),
            dynamodb(hold_read(Ok(None)), known_good_history(history), None),
            |r| ActionRequest { failing_revision: Some("api:42"), ..r },
        )
        .await;
        assert_eq!((update.num_calls(), stop.num_calls()), (0, 0), "{case}: {:?}", r.record);
        assert_eq!(r.record.status, ActionStatus::Skipped, "{case}: {:?}", r.record);
        assert!(r.record.detail.contains("not a fresh release"), "{case}: {}", r.record.detail);
    }
}

#[tokio::test]
async fn a_crash_loop_on_a_fresh_release_is_still_rolled_back() {
    let now = epoch_now();
    let (list, update, stop) = (listed_in_progress(), updated(), stopped());
    let r = engine_run_with(
        ecs_strategy(
            || {
                described(
                    42,
                    vec![deployment("ecs-svc/9", "PRIMARY", 42, DeploymentRolloutState::Completed, 600, "")],
                    None,
                )
            },
            &list,
            &update,
            &stop,
        ),
        dynamodb(
            hold_read(Ok(None)),
            known_good_history(vec![(42, now - 300, now - 300), (40, now - 86_400, now - 86_400)]),
            None,
        ),
        |r| ActionRequest { failing_revision: Some("api:42"), ..r },
    )
    .await;
    assert_eq!(r.record.status, ActionStatus::Executed, "{:?}", r.record);
    assert!(r.record.detail.contains("api:42 -> api:40"), "{}", r.record.detail);
    assert_eq!(update.num_calls(), 1);
}

#[tokio::test]
async fn when_update_service_answers_500_the_engine_should_read_the_service_back_and_record_what_it_finds() {
    // (case, ECS applied it, expected status, hold written)
    let cases = [
        ("applied, its answer lost", true, ActionStatus::Executed, false),
        ("not applied", false, ActionStatus::Failed, true),
    ];
    for (case, applied, expected, held) in cases {
        // The engine's first read, then the read-back under the lock after the 500.
        let describe = mock!(aws_sdk_ecs::Client::describe_services)
            .sequence()
            .output(service)
            .output(move || {
                let mut out = service();
                if applied && let Some(s) = out.services.as_mut().and_then(|s| s.first_mut()) {
                    // ECS applied UpdateService(taskDefinition=40): the service runs it.
                    s.task_definition = Some(td(40));
                }
                out
            })
            .build();
        let revisions = mock!(aws_sdk_ecs::Client::list_task_definitions).then_output(|| {
            aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput::builder()
                .set_task_definition_arns(Some([42, 41, 40].iter().map(|r| td(*r)).collect()))
                .build()
        });
        let update = mock!(aws_sdk_ecs::Client::update_service).sequence().http_status(500, None).build();
        let none = nothing_in_progress();
        let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe, &revisions, &none, &update], |b| b
            .retry_config(RetryConfig::disabled()));
        let hold_write = mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(|i| sk_is(i.item(), "hold"))
            .then_output(|| PutItemOutput::builder().build());
        let r =
            engine_run_with(ecs, dynamodb(hold_read(Ok(None)), known_good_read(true), Some(hold_write.clone())), |r| {
                ActionRequest { trigger_deployment: Some("ecs-svc/2"), ..r }
            })
            .await;
        assert_eq!(update.num_calls(), 1, "{case}");
        assert_eq!(describe.num_calls(), 2, "{case}: read back after the 500");
        assert_eq!(r.record.status, expected, "{case}: {:?}", r.record);
        assert!(
            r.record.detail.contains("verified from the service read back under the lock"),
            "{case}: {}",
            r.record.detail
        );
        assert_eq!(hold_write.num_calls() == 1, held, "{case}: held only when it did not take effect");
        assert_eq!(r.failed, held, "{case}: escalated only when it did not take effect");
        assert!(!r.outcome_unknown, "{case}");
    }
}

#[tokio::test]
async fn when_the_service_cannot_be_read_back_after_a_lost_answer_the_outcome_should_be_unknown_and_nothing_held() {
    let describe =
        mock!(aws_sdk_ecs::Client::describe_services).sequence().output(service).http_status(503, None).build();
    let revisions = mock!(aws_sdk_ecs::Client::list_task_definitions).then_output(|| {
        aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput::builder()
            .set_task_definition_arns(Some([42, 41, 40].iter().map(|r| td(*r)).collect()))
            .build()
    });
    let update = mock!(aws_sdk_ecs::Client::update_service).sequence().http_status(500, None).build();
    let none = nothing_in_progress();
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe, &revisions, &none, &update], |b| b
        .retry_config(RetryConfig::disabled()));
    let hold_write = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|i| sk_is(i.item(), "hold"))
        .then_output(|| PutItemOutput::builder().build());
    // The entry written before the call is finished as still `executing`.
    let finish = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|u| {
            u.expression_attribute_values()
                .and_then(|v| v.get(":status"))
                .and_then(|v| v.as_s().ok())
                .is_some_and(|s| s == "executing")
        })
        .then_output(|| aws_sdk_dynamodb::operation::update_item::UpdateItemOutput::builder().build());
    let r = engine_run_with(
        ecs,
        dynamodb_with(hold_read(Ok(None)), known_good_read(true), vec![hold_write.clone(), finish.clone()]),
        |r| ActionRequest { trigger_deployment: Some("ecs-svc/2"), ..r },
    )
    .await;
    assert!(r.outcome_unknown, "{:?}", r.record);
    assert!(!r.failed, "not verified as failed: nothing held");
    assert_eq!(hold_write.num_calls(), 0);
    assert_eq!(finish.num_calls(), 1, "the ledger keeps it executing (counted as executed) until verified");
    assert!(r.record.detail.contains("outcome UNKNOWN"), "{}", r.record.detail);
}

/// A service CodeDeploy (or an external tool) deploys, in ECS's shape for
/// a release that failed: the engine must not act on it, whatever the trigger.
fn deployed_by(controller: &'static str) -> impl Fn() -> DescribeServicesOutput + Send + Sync + 'static {
    move || {
        let mut out = rolling_out(None);
        if let Some(s) = out.services.as_mut().and_then(|s| s.first_mut()) {
            s.deployment_controller = Some(
                aws_sdk_ecs::types::DeploymentController::builder()
                    .r#type(aws_sdk_ecs::types::DeploymentControllerType::from(controller))
                    .build()
                    .expect("controller"),
            );
        }
        out
    }
}

#[tokio::test]
async fn a_codedeploy_or_external_service_is_refused_before_any_call_but_may_be_scaled() {
    for controller in ["CODE_DEPLOY", "EXTERNAL"] {
        let (list, update, stop) = (listed_in_progress(), updated(), stopped());
        let r = engine_run_with(
            ecs_strategy(deployed_by(controller), &list, &update, &stop),
            dynamodb(hold_read(Ok(None)), known_good_read(true), None),
            |r| ActionRequest { trigger_deployment: Some("ecs-svc/2"), ..r },
        )
        .await;
        assert_eq!((update.num_calls(), stop.num_calls(), list.num_calls()), (0, 0, 0), "{controller}: {:?}", r.record);
        assert_eq!(r.record.status, ActionStatus::Skipped, "{controller}: {:?}", r.record);
        assert!(r.record.detail.contains(controller), "{controller}: {}", r.record.detail);
        assert!(!r.failed, "{controller}: no hold, no escalation");
        // UpdateService(desiredCount) stays allowed.
        let (list, update, stop) = (listed_in_progress(), updated(), stopped());
        let r = engine_run_with(
            ecs_strategy(deployed_by(controller), &list, &update, &stop),
            dynamodb(hold_read(Ok(None)), known_good_read(true), None),
            |r| ActionRequest {
                kind: ActionKind::Scale,
                origin: Origin::Manual { reason: None },
                desired_count: Some(5),
                ..r
            },
        )
        .await;
        assert_eq!(r.record.status, ActionStatus::Executed, "{controller}: {:?}", r.record);
        assert_eq!(update.num_calls(), 1, "{controller}");
    }
}

#[tokio::test]
async fn a_revision_a_failed_signal_of_the_incident_named_is_never_the_target() {
    // Known-good 40 is the target a rollback would take; the incident's
    // earlier failed signal named 40 (by its short name), so 41 it is.
    let update = updated();
    // (`engine_run_with` shapes a request of any lifetime: the list lives for the test's process.)
    let avoid: &'static [String] = Vec::leak(vec!["api:40".to_string()]);
    let r = engine_run_with(ecs(&update), dynamodb(hold_read(Ok(None)), known_good_read(true), None), |r| {
        ActionRequest { trigger_deployment: Some("ecs-svc/2"), avoid_revisions: avoid, ..r }
    })
    .await;
    assert_eq!(r.record.status, ActionStatus::Executed, "{:?}", r.record);
    assert!(r.record.detail.contains("api:42 -> api:41"), "{}", r.record.detail);
}

/// A rollback planned on the diagnosis's description of the service acts
/// only on the service as it is under the lock: here ECS marked the
/// deployment FAILED (its breaker moved) between the diagnosis's read and
/// the lock, so the earlier plan is not carried out.
#[tokio::test]
async fn when_the_service_changed_since_the_diagnosis_described_it_the_engine_should_not_act_on_that_read() {
    use shared::actions::engine::PriorReads;
    use shared::snapshot::{DeploymentSnapshot, ServiceSnapshot};
    let planned_on = ServiceSnapshot {
        cluster: "prod".into(),
        service: "api".into(),
        status: Some("ACTIVE".into()),
        desired: 3,
        running: 1,
        task_definition: Some(td(42)),
        deployments: vec![
            DeploymentSnapshot {
                id: "ecs-svc/2".into(),
                status: "PRIMARY".into(),
                task_definition: td(42),
                rollout_state: Some("IN_PROGRESS".into()),
                ..Default::default()
            },
            DeploymentSnapshot {
                id: "ecs-svc/1".into(),
                status: "ACTIVE".into(),
                task_definition: td(41),
                rollout_state: Some("COMPLETED".into()),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let update = updated();
    let r =
        engine_run_with(ecs(&update), dynamodb(hold_read(Ok(None)), known_good_read(true), None), |r| ActionRequest {
            trigger_deployment: Some("ecs-svc/2"),
            prior: PriorReads { service: Some((&planned_on, epoch_now())), facts: None },
            ..r
        })
        .await;
    assert_eq!(update.num_calls(), 0, "nothing sent on the earlier read: {:?}", r.record);
    assert_eq!(r.record.status, ActionStatus::Skipped, "{:?}", r.record);
    assert!(r.record.detail.contains("changed while the action was planned"), "{}", r.record.detail);
    assert!(r.record.detail.contains("deployments changed"), "{}", r.record.detail);
}
