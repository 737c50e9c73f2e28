//! `ecs-events`: stopped tasks, service actions, deployment state changes,
//! and deployment hooks waiting for approval (`incident::approval`).

use serde_json::Value;

use super::{Flow, FlowFuture, once_driven, once_first_write};
use crate::actions::ActionKind;
use crate::actions::engine::ActionRequest;
use crate::actions::rollback_plan::completed_revision;
use crate::context::{App, Function};
use crate::diagnosis::classify::{classify_stop, definite_revision_failure};
use crate::diagnosis::service_events::{ServiceActionMeaning, meaning};
use crate::diagnosis::severity::Signal;
use crate::error::AutopilotError;
use crate::incident::machine::{Input, ProblemKey, ProblemSignal, Recovery, RecoveryScope, TaskStop};
use crate::incident::service::{self, ServiceSignal, revision_of};
use crate::outcome::{Cause, Kind, Outcome, Severity};
use crate::trigger::{DeploymentStateChange, Envelope, EventMeta, ServiceAction, TaskStateChange, Trigger};

/// When an event happened: the time its detail names, else the envelope's,
/// else now (never later than now: a clock ahead of ours is not the future).
fn event_time(detail_time: Option<&str>, meta: &EventMeta) -> i64 {
    let t = crate::time::now();
    detail_time.and_then(crate::lenient::parse_time).or(meta.time).map(|at| at.timestamp()).unwrap_or(t).min(t)
}

/// The problem a failed deployment (or ECS rolling one back) is to its
/// incident: SEV3 until the diagnosis says more.
fn deployment_failed(deployment_id: &str, at: i64, note: Option<String>) -> Input {
    Input::Problem(ProblemSignal {
        key: ProblemKey::Deployment(deployment_id.to_string()),
        label: "deployment failed".into(),
        kind: Kind::EcsDeployment,
        at,
        severity: Severity::Sev3,
        cause: None,
        revision: None,
        task: None,
        news: true,
        note,
    })
}

/// A failed deployment too old to act on is still recorded in the
/// known-good history (when the service still lists it, its revision is known).
async fn record_stale_failure(app: &App, cluster: &str, service: &str, deployment: &str, at: i64) {
    let td = match crate::adapters::ecs::describe_service(&app.clients, cluster, service).await {
        Ok(s) => crate::actions::rollback_plan::deployment_revision(&s, deployment).map(str::to_string),
        Err(e) => {
            tracing::warn!(cluster, service, deployment, error = %e, "service unreadable; stale failure not recorded");
            None
        }
    };
    if let Some(td) = td
        && let Err(e) = app.state.deployments().record_failure(cluster, service, &td, deployment, at).await
    {
        tracing::warn!(cluster, service, deployment, error = %e, "stale failure not recorded");
    }
}

/// A signal of this flow with no action of its own.
fn signal<'a>(kind: Kind, grade: Signal, problem: &'a str, explanation: String, raw: &'a Value) -> ServiceSignal<'a> {
    ServiceSignal {
        kind,
        signal: grade,
        problem,
        explanation,
        task_definition: None,
        failing_task: None,
        raw_event: raw,
        notes: Vec::new(),
        actions: Vec::new(),
        action: None,
        failed_deployment: None,
        rollback_on_crash_loop: false,
        first_failure_only: false,
    }
}

pub const FLOW: Flow = Flow { function: Function::EcsEvents, run };

fn run<'a>(app: &'a App, trigger: Trigger, raw: &'a Value) -> FlowFuture<'a> {
    Box::pin(handle(app, trigger, raw))
}

async fn handle(app: &App, trigger: Trigger, raw: &Value) -> Result<Outcome, AutopilotError> {
    let (cluster, service) = trigger.cluster_service();
    if let Some(c) = &cluster
        && !app.config.in_scope(c)
    {
        return Ok(Outcome::ignored(format!("cluster {c} is not in CLUSTERS")).for_service(cluster, service));
    }
    match trigger {
        Trigger::EcsTask(e) => task_changed(app, e, raw).await,
        Trigger::EcsServiceAction(e) => match (cluster, service) {
            (Some(c), Some(s)) => service_action(app, e, &c, &s, raw).await,
            _ => Ok(Outcome::ignored(format!("{} without a service ARN in resources", e.detail.event_name))),
        },
        Trigger::EcsDeployment(e) => match (cluster, service) {
            (Some(c), Some(s)) => deployment_changed(app, e, &c, &s, raw).await,
            _ => Ok(Outcome::ignored(format!(
                "{} names no cluster/service: resources {:?} hold no long-format service ARN \
                 (arn:aws:ecs:<region>:<account>:service/<cluster>/<service>)",
                e.detail.event_name, e.meta.resources
            ))),
        },
        Trigger::EcsHook(e) => match (cluster, service) {
            (Some(c), Some(s)) if e.detail.awaits_action() => {
                let (hook, work) = (&e.detail, crate::incident::approval::notice(app, &e, &c, &s));
                let announced = super::once_notice(app, &format!("hook/{}", hook.hook_id), work).await?;
                Ok(announced.unwrap_or_else(|| crate::incident::approval::duplicate(hook, &c, &s)))
            }
            (Some(c), Some(s)) => Ok(crate::incident::approval::recorded(&e.detail, &c, &s)),
            _ => Ok(Outcome::ignored(format!("{} names no cluster/service", e.detail.event_name))),
        },
        other => Ok(Outcome::ignored(format!("{:?} is not an ECS event", other.kind()))),
    }
}

fn duplicate(kind: Kind, cluster: &str, service: &str, cause: Cause) -> impl FnOnce() -> Outcome {
    let (c, s) = (cluster.to_string(), service.to_string());
    move || {
        let mut o = Outcome::new(
            kind,
            Severity::Info,
            cause,
            format!("{c}/{s}: duplicate delivery of an event already handled"),
        )
        .for_service(Some(c), Some(s));
        o.notified = Some("suppressed:duplicate-event".into());
        o
    }
}

async fn task_changed(app: &App, e: Envelope<TaskStateChange>, raw: &Value) -> Result<Outcome, AutopilotError> {
    let task = &e.detail;
    let cluster = crate::arn::cluster_name(&task.cluster_arn).to_string();
    if !task.is_stopped() {
        return Ok(Outcome::ignored(format!(
            "task {} is {}: only STOPPED tasks are diagnosed",
            task.task_id(),
            task.last_status.as_deref().unwrap_or("in an unknown state")
        ))
        .for_service(Some(cluster), task.service_name().map(str::to_string)));
    }
    let verdict = classify_stop(task);
    tracing::info!(
        task = task.task_id(), cluster = %cluster, service = task.service_name().unwrap_or(""),
        cause = verdict.cause.as_str(), failure = verdict.failure, decision = "task-classified", "{}", verdict.explanation
    );
    let Some(service) = task.service_name() else {
        // Standalone tasks (batch jobs, migrations) have no service to heal.
        let mut o = Outcome::new(
            Kind::EcsTaskStopped,
            Severity::Info,
            verdict.cause,
            format!(
                "standalone task {} ({}) stopped: {}",
                task.task_id(),
                task.group.as_deref().unwrap_or("no group"),
                verdict.explanation
            ),
        )
        .for_service(Some(cluster), None);
        o.notified = Some("suppressed:not-a-service-task".into());
        return Ok(o);
    };
    if !verdict.failure {
        let mut o = Outcome::new(
            Kind::EcsTaskStopped,
            Severity::Info,
            verdict.cause,
            format!("{cluster}/{service}: task {} stopped as expected: {}", task.task_id(), verdict.explanation),
        )
        .for_service(Some(cluster), Some(service.to_string()));
        o.notified = Some(format!("suppressed:{}", verdict.cause));
        return Ok(o);
    }
    // A stop counts at ECS's stop time, not when its event reached us.
    let at = event_time(task.stopped_at.as_deref(), &e.meta);
    let revision = revision_of(task.task_definition_arn.as_deref());
    let input = Input::Problem(ProblemSignal {
        key: ProblemKey::Tasks,
        label: "task failed".into(),
        kind: Kind::EcsTaskStopped,
        at,
        severity: Severity::Sev3,
        cause: Some(verdict.cause),
        revision: Some(revision.clone()).filter(|r| !r.is_empty()),
        task: Some(TaskStop { task: task.task_id().to_string(), revision, stopped_at: at }),
        news: false,
        note: None,
    });
    // A stop that proves the revision broken (its image or secret does not
    // exist, the wrong CPU architecture) rolls a fresh release back at once,
    // ahead of diagnosis: every further task of it fails the same way.
    let definite = definite_revision_failure(task);
    let action = match (definite, task.task_definition_arn.as_deref()) {
        (Some(cause), Some(td)) => Some(ActionRequest {
            failing_revision: Some(td),
            within_rollback_window: true,
            ..ActionRequest::automatic(
                ActionKind::Rollback,
                &cluster,
                service,
                format!("task {} stopped: {cause}, definite on its first failure", task.task_id()),
            )
        }),
        _ => None,
    };
    tracing::info!(
        task = task.task_id(),
        definite = definite.map(Cause::as_str).unwrap_or("no"),
        decision = "definite-failure",
        "whether one stop proves the revision broken"
    );
    let signal = ServiceSignal {
        task_definition: task.task_definition_arn.clone(),
        failing_task: Some((task.task_id().to_string(), verdict.container.clone())),
        first_failure_only: action.is_some(),
        action,
        rollback_on_crash_loop: true,
        ..signal(
            Kind::EcsTaskStopped,
            Signal::TaskFailed,
            "task failed",
            format!("task {} stopped: {}", task.task_id(), verdict.explanation),
            raw,
        )
    };
    let region = e.meta.region.as_deref();
    let work = service::drive(app, Kind::EcsTaskStopped, &cluster, service, region, Some(signal), input);
    once_first_write(app, &e.meta.id, duplicate(Kind::EcsTaskStopped, &cluster, service, verdict.cause), work).await
}

async fn service_action(
    app: &App,
    e: Envelope<ServiceAction>,
    cluster: &str,
    service: &str,
    raw: &Value,
) -> Result<Outcome, AutopilotError> {
    let d = &e.detail;
    let what = meaning(&d.event_name, d.event_type.as_deref(), d.reason.as_deref());
    tracing::info!(cluster, service, event = %d.event_name, meaning = ?what, decision = "service-action", "service action mapped");
    match what {
        ServiceActionMeaning::Resolves => {
            let by = format!("{} at {}", d.event_name, d.created_at.as_deref().unwrap_or("?"));
            let input = Input::Recovery(Recovery {
                scope: RecoveryScope::Service { revision: None },
                at: event_time(d.created_at.as_deref(), &e.meta),
                by,
            });
            let region = e.meta.region.as_deref();
            let work = service::drive(app, Kind::EcsServiceAction, cluster, service, region, None, input);
            once_first_write(
                app,
                &e.meta.id,
                duplicate(Kind::EcsServiceAction, cluster, service, Cause::Expected),
                work,
            )
            .await
        }
        ServiceActionMeaning::Record => Ok(Outcome::new(
            Kind::EcsServiceAction,
            Severity::Info,
            Cause::Unknown,
            format!(
                "{cluster}/{service}: {} ({}) recorded, not paged{}",
                d.event_name,
                d.event_type.as_deref().unwrap_or("no type"),
                d.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            ),
        )
        .for_service(Some(cluster.into()), Some(service.into()))),
        ServiceActionMeaning::Problem(cause) => {
            let problem = match d.event_name.as_str() {
                "SERVICE_TASK_START_IMPAIRED" => "tasks cannot start",
                "SERVICE_TASK_PLACEMENT_FAILURE" => "task placement failed",
                "SERVICE_TASK_CONFIGURATION_FAILURE" => "task configuration failed",
                "SERVICE_HEALTH_UNKNOWN" => "service health unknown",
                _ => "service error",
            };
            let explanation = format!(
                "ECS reported {}{}",
                d.event_name,
                d.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            );
            let input = Input::Problem(ProblemSignal {
                key: ProblemKey::ServiceEvent(d.event_name.clone()),
                label: problem.into(),
                kind: Kind::EcsServiceAction,
                at: event_time(d.created_at.as_deref(), &e.meta),
                severity: Severity::Sev3,
                cause,
                revision: None,
                task: None,
                news: false,
                note: None,
            });
            let signal = signal(Kind::EcsServiceAction, Signal::ServiceWarning, problem, explanation, raw);
            let region = e.meta.region.as_deref();
            let work = service::drive(app, Kind::EcsServiceAction, cluster, service, region, Some(signal), input);
            once_first_write(
                app,
                &e.meta.id,
                duplicate(Kind::EcsServiceAction, cluster, service, cause.unwrap_or(Cause::Unknown)),
                work,
            )
            .await
        }
    }
}

async fn deployment_changed(
    app: &App,
    e: Envelope<DeploymentStateChange>,
    cluster: &str,
    service: &str,
    raw: &Value,
) -> Result<Outcome, AutopilotError> {
    let d = &e.detail;
    let t = crate::time::now();
    app.state.deployments().record_deployment(cluster, service, &d.deployment_id, &d.event_name, t).await?;
    // When ECS says it happened, not when it reached us: a late event must
    // not outrank what happened since (the history keeps the newest).
    let happened_at = event_time(d.updated_at.as_deref(), &e.meta);
    let base = |severity, cause, summary: String| {
        Outcome::new(Kind::EcsDeployment, severity, cause, summary)
            .for_service(Some(cluster.into()), Some(service.into()))
    };
    match d.event_name.as_str() {
        "SERVICE_DEPLOYMENT_COMPLETED" => {
            let work = async {
                // The deployment reached steady state: its revision completed — if we
                // can tell which one it was (the service still lists the deployment).
                let td = match crate::adapters::ecs::describe_service(&app.clients, cluster, service).await {
                    Ok(s) => completed_revision(&s, &d.deployment_id)
                        .map_err(|why| tracing::warn!(cluster, service, deployment = %d.deployment_id, decision = "known-good-not-recorded", "{why}; nothing recorded"))
                        .ok(),
                    Err(e) => {
                        tracing::warn!(cluster, service, deployment = %d.deployment_id, error = %e, decision = "known-good-not-recorded", "the service could not be read; nothing recorded");
                        None
                    }
                };
                if let Some(td) = &td {
                    let fresh = app
                        .state
                        .deployments()
                        .record_completion(cluster, service, td, &d.deployment_id, happened_at)
                        .await?;
                    tracing::info!(cluster, service, task_definition = %td, deployment = %d.deployment_id, fresh, decision = "known-good-recorded", "completion recorded in the known-good history");
                }
                let input = Input::Recovery(Recovery {
                    scope: RecoveryScope::Service { revision: td.as_deref().map(|td| revision_of(Some(td))) },
                    at: happened_at,
                    by: format!("deployment {} COMPLETED", d.deployment_id),
                });
                let region = e.meta.region.as_deref();
                let mut o = service::drive(app, Kind::EcsDeployment, cluster, service, region, None, input).await?;
                if o.incident.is_none() {
                    o.summary = format!(
                        "{cluster}/{service}: deployment {} completed; known-good {}",
                        d.deployment_id,
                        td.as_deref().map(crate::arn::last_segment).unwrap_or("not recorded")
                    );
                }
                Ok(o)
            };
            once_driven(app, &e.meta.id, duplicate(Kind::EcsDeployment, cluster, service, Cause::Expected), work).await
        }
        "SERVICE_DEPLOYMENT_FAILED" => {
            let work = async {
                // The incident core records the incident, then runs the rollback
                // first (its critical path is the service read and the engine's
                // checks); diagnosis, logs and evidence follow. Only while this
                // deployment is still the service's PRIMARY one: a late event does
                // nothing. Its revision is then recorded failed (not known-good).
                let explanation = format!(
                    "deployment {} failed: {}",
                    d.deployment_id,
                    d.reason.as_deref().unwrap_or("no reason given")
                );
                let input = deployment_failed(&d.deployment_id, happened_at, None);
                let signal = ServiceSignal {
                    action: Some(ActionRequest {
                        trigger_deployment: Some(&d.deployment_id),
                        ..ActionRequest::automatic(
                            ActionKind::Rollback,
                            cluster,
                            service,
                            format!("SERVICE_DEPLOYMENT_FAILED {}", d.deployment_id),
                        )
                    }),
                    failed_deployment: Some((&d.deployment_id, happened_at)),
                    ..signal(Kind::EcsDeployment, Signal::DeploymentFailed, "deployment failed", explanation, raw)
                };
                let region = e.meta.region.as_deref();
                let o = service::drive(app, Kind::EcsDeployment, cluster, service, region, Some(signal), input).await?;
                if o.notified.as_deref() == Some("suppressed:stale-signal") {
                    // Too old to page or act on, still a fact about its revision.
                    record_stale_failure(app, cluster, service, &d.deployment_id, happened_at).await;
                }
                Ok(o)
            };
            once_driven(app, &e.meta.id, duplicate(Kind::EcsDeployment, cluster, service, Cause::Unknown), work).await
        }
        "SERVICE_DEPLOYMENT_IN_PROGRESS" if d.is_circuit_breaker_rollback() => {
            // ECS is already rolling back: we follow and report, never act on top of it.
            let note = format!(
                "ECS deployment circuit breaker is rolling back ({}); autopilot takes no action while ECS rolls back",
                d.reason.as_deref().unwrap_or("")
            );
            let input = deployment_failed(&d.deployment_id, happened_at, Some(note.clone()));
            let signal = ServiceSignal {
                notes: vec![note],
                action: Some(ActionRequest {
                    ecs_rolling_back: true,
                    ..ActionRequest::automatic(
                        ActionKind::Rollback,
                        cluster,
                        service,
                        format!("{} (circuit breaker)", d.event_name),
                    )
                }),
                ..signal(
                    Kind::EcsDeployment,
                    Signal::DeploymentFailed,
                    "deployment failed",
                    "ECS is rolling back a failed deployment".into(),
                    raw,
                )
            };
            let region = e.meta.region.as_deref();
            let work = service::drive(app, Kind::EcsDeployment, cluster, service, region, Some(signal), input);
            let mut o = once_first_write(
                app,
                &e.meta.id,
                duplicate(Kind::EcsDeployment, cluster, service, Cause::Unknown),
                work,
            )
            .await?;
            o.summary =
                format!("{cluster}/{service}: ECS is rolling back deployment {}; {}", d.deployment_id, o.summary);
            Ok(o)
        }
        other => Ok(base(
            Severity::Info,
            Cause::Expected,
            format!(
                "{cluster}/{service}: deployment {} {}; recorded",
                d.deployment_id,
                other.trim_start_matches("SERVICE_DEPLOYMENT_")
            ),
        )),
    }
}
