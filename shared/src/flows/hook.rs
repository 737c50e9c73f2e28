//! `deployment-hook`: the ECS deployment lifecycle hook. ECS invokes it
//! synchronously at the stages it is attached to; it answers
//! `{"hookStatus": "SUCCEEDED" | "FAILED" | "IN_PROGRESS", "callBackDelay"?,
//! "hookDetails"?}` as ECS documents, judged by `diagnosis::gate` over what
//! it reads here within a budget below the Lambda timeout.
//!
//! The flow runs inside `flows::handle` like every other (one decision log
//! line with the Outcome, metrics); the Outcome carries the hook response in
//! `details.hookResponse`, and [`answer`] — what the binary calls — returns
//! exactly that response to ECS (ECS reads `hookStatus`; the Outcome is
//! logged, not returned).
//!
//! Every verdict is recorded: in the state table (`state::gates`: when the
//! step began, the last verdict, `passed_at` once the revision passed); a
//! `FAILED` also goes to the incident machine as a problem of the service
//! (it opens or joins the service's incident, whose alert says ECS rolls
//! the deployment back — we call no rollback: ECS does on the hook's
//! `FAILED`) and marks the revision failed in the known-good history.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Flow, FlowFuture, once};
use crate::adapters::state::gates::GateStep;
use crate::adapters::{cloudwatch, ecs, elb};
use crate::context::{App, Function};
use crate::diagnosis::classify::classify_stop;
use crate::diagnosis::gate::{
    AlarmNow, ErrorLines, GateFacts, GateInput, GateSettings, GateState, GateTags, GateVerdict, GreenStop, GroupHealth,
    HookStatus, OnReadFailure, Read, judge,
};
use crate::diagnosis::severity::Signal;
use crate::error::{AutopilotError, AwsError};
use crate::incident::machine::{Input, ProblemKey, ProblemSignal};
use crate::incident::service::{self, ServiceSignal, revision_of};
use crate::invocation::Invocation;
use crate::outcome::{ActionRecord, ActionStatus, Cause, Kind, Outcome, Severity};
use crate::trigger::{HookInvocation, Trigger};

pub const FLOW: Flow = Flow { function: Function::DeploymentHook, run };

/// The longest the reads may take (`HOOK_READ_BUDGET_SECONDS`, default 20),
/// and never closer than [`ANSWER_MARGIN`] to the Lambda deadline.
const DEFAULT_READ_BUDGET: Duration = Duration::from_secs(20);
/// Time kept after the reads for recording and answering.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// What the binary calls: run the flow and return the hook response ECS
/// reads. An input that is not a hook payload (no service ARN) is an error
/// naming the field (ECS then rolls back, as for any failed invocation); any
/// other failure answers by `HOOK_ON_READ_FAILURE`.
pub async fn answer(app: &App, payload: Value, invocation: Invocation) -> Result<Value, AutopilotError> {
    let incoming = payload.get("hookDetails").cloned().unwrap_or(Value::Null);
    match super::handle(app, &FLOW, payload, invocation).await {
        Ok(o) => match o.details.as_ref().and_then(|d| d.get("hookResponse")) {
            Some(r) => Ok(r.clone()),
            // The route check answered (e.g. an untrusted account): not judged.
            None => Ok(fallback(&o.summary, &incoming)),
        },
        Err(e @ (AutopilotError::InvalidEvent(_) | AutopilotError::WrongFunction { .. })) => Err(e),
        Err(e) => Ok(fallback(&e.to_string(), &incoming)),
    }
}

/// The answer when nothing could be judged: by `HOOK_ON_READ_FAILURE`.
fn fallback(why: &str, incoming: &Value) -> Value {
    let (settings, _) = GateSettings::from_lookup(|k| std::env::var(k).ok());
    let status = match settings.on_read_failure {
        OnReadFailure::Fail => HookStatus::Failed,
        OnReadFailure::Pass => HookStatus::Succeeded,
    };
    tracing::warn!(
        function = "deployment-hook",
        decision = "hook-fallback",
        hook_status = status.as_str(),
        "not judged: {why}"
    );
    let mut r = json!({"hookStatus": status.as_str()});
    if incoming.is_object() {
        r["hookDetails"] = incoming.clone();
    }
    r
}

fn run<'a>(app: &'a App, trigger: Trigger, raw: &'a Value) -> FlowFuture<'a> {
    Box::pin(handle(app, trigger, raw))
}

async fn handle(app: &App, trigger: Trigger, raw: &Value) -> Result<Outcome, AutopilotError> {
    let Trigger::DeploymentHook(h) = trigger else {
        return Ok(Outcome::ignored(format!("{:?} is not a deployment hook call", trigger.kind())));
    };
    let (settings, notes) = GateSettings::from_lookup(|k| std::env::var(k).ok());
    for note in &notes {
        tracing::warn!(function = "deployment-hook", decision = "setting-ignored", "{note}");
    }
    let now = crate::time::now();
    let revision = h.target_revision_arn.clone().unwrap_or_else(|| "unknown".into());
    let stage = h.stage_name().to_string();
    let weight = h.target_production_weight();
    let step = GateStep {
        cluster: &h.cluster,
        service: &h.service,
        revision_id: h.target_revision_id(),
        stage: &stage,
        weight,
    };

    let (read, stored_since, task_definition) = if app.config.in_scope(&h.cluster) {
        let budget = read_budget();
        match tokio::time::timeout(budget, read_facts(app, &h, step, now, settings.bake_seconds)).await {
            Ok(r) => r,
            Err(_) => (Read::Unreadable(format!("the reads did not finish within {}s", budget.as_secs())), None, None),
        }
    } else {
        // Not ours to judge: a cluster outside CLUSTERS passes (as opted out).
        let tags = GateTags { opted_out: true, ..Default::default() };
        (Read::Facts(Box::new(GateFacts { tags, ..Default::default() })), None, None)
    };
    let input = GateInput {
        revision: revision.clone(),
        stage: stage.clone(),
        weight,
        now,
        carried: GateState::from_hook_details(&h.hook_details),
        stored_since,
        settings,
        read,
    };
    let verdict = judge(&input);
    tracing::info!(
        function = "deployment-hook",
        decision = "hook-verdict",
        cluster = %h.cluster,
        service = %h.service,
        stage = %stage,
        target_revision = %revision,
        hook_status = verdict.status.as_str(),
        rule = verdict.rule,
        cause = verdict.cause.as_str(),
        since = verdict.state.since,
        checks = verdict.state.checks,
        "{}",
        verdict.reason
    );
    if let Err(e) =
        app.state.gates().record_verdict(step, &revision, verdict.status.as_str(), &verdict.reason, now).await
    {
        tracing::warn!(cluster = %h.cluster, service = %h.service, error = %e, decision = "gate-not-recorded", "verdict not recorded");
    }
    let response = verdict.response(&h.hook_details);
    let mut o = match verdict.status {
        HookStatus::Failed => failed(app, &h, &verdict, task_definition.as_deref(), raw, now).await,
        status => Outcome::new(
            Kind::EcsDeployment,
            Severity::Info,
            if status == HookStatus::Succeeded { Cause::Expected } else { verdict.cause },
            format!(
                "{}/{}: deployment hook {} at {stage} for revision {}: {}",
                h.cluster,
                h.service,
                status.as_str(),
                h.target_revision_id(),
                verdict.reason
            ),
        )
        .for_service(Some(h.cluster.clone()), Some(h.service.clone())),
    };
    o.details = Some(json!({
        "hookResponse": response,
        "stage": stage,
        "targetServiceRevisionArn": revision,
        "rule": verdict.rule,
    }));
    Ok(o)
}

/// The reads, each bounded by the SDK's own timeouts and all by the read budget.
async fn read_facts(
    app: &App,
    h: &HookInvocation,
    step: GateStep<'_>,
    now: i64,
    bake_seconds: i64,
) -> (Read, Option<i64>, Option<String>) {
    let svc = match ecs::describe_service(&app.clients, &h.cluster, &h.service).await {
        Ok(s) => s,
        Err(e) => return (Read::Unreadable(format!("ecs:DescribeServices {}: {}", e.resource, e.message)), None, None),
    };
    let tags = GateTags::from_tags(&svc.tags);
    if tags.opted_out {
        return (Read::Facts(Box::new(GateFacts { tags, ..Default::default() })), None, svc.task_definition.clone());
    }
    // The target revision's task definition, as DescribeServiceRevisions
    // names it; else the service's (ECS sets it when the deployment starts).
    let described = match &h.target_revision_arn {
        Some(arn) => ecs::service_revision_task_definition(&app.clients, arn)
            .await
            .map_err(|e| tracing::warn!(error = %e, decision = "revision-unread", "target revision not described; the service's task definition stands for it"))
            .ok()
            .flatten(),
        None => None,
    };
    let td = described.or_else(|| svc.task_definition.clone());
    let green = revision_of(td.as_deref());
    let subject = crate::incident::Subject::service(&h.cluster, &h.service).at(app.scope());
    let alarm_names = tags.alarms.clone();
    // Error lines of both revisions over the same window: the bake, at least a minute.
    let window = tags.bake_seconds.unwrap_or(bake_seconds).max(60);
    let (since, stopped, health, incident, alarms, errors) = tokio::join!(
        app.state.gates().first_seen(step, now),
        ecs::stopped_tasks(&app.clients, &h.cluster, &h.service),
        futures::future::join_all(svc.target_group_arns.iter().map(|tg| elb::target_health(&app.clients, tg))),
        app.state.incidents().open(&subject),
        service_alarms(app, &h.cluster, &h.service, alarm_names),
        revision_errors(app, &h.cluster, &h.service, td.as_deref(), (now - window) * 1000),
    );
    let stored_since = since.map_err(|e| tracing::warn!(error = %e, "gate start not read; hookDetails only")).ok();
    let stopped = match stopped {
        Ok(t) => t,
        Err(e) => {
            return (
                Read::Unreadable(format!("ecs:ListTasks/DescribeTasks {}: {}", e.resource, e.message)),
                stored_since,
                td,
            );
        }
    };
    let mut facts = GateFacts { tags, ..Default::default() };
    facts.green_stops = stopped
        .iter()
        .filter(|t| td.is_some() && t.task_definition_arn == td)
        .filter_map(|t| {
            let c = classify_stop(t);
            c.failure.then(|| GreenStop { task: t.task_id().to_string(), cause: c.cause, explanation: c.explanation })
        })
        .collect();
    for hth in health {
        match hth {
            Ok(g) => facts.targets.push(GroupHealth {
                target_group: crate::arn::last_segment(&g.target_group_arn).to_string(),
                healthy: g.healthy(),
                unhealthy: g.targets.iter().filter(|t| t.state == "unhealthy").count(),
            }),
            Err(e) => {
                facts.unread.push(format!("elasticloadbalancing:DescribeTargetHealth {}: {}", e.resource, e.message))
            }
        }
    }
    match incident {
        Ok(Some(rec)) if !green.is_empty() => {
            let window = app.config.settings.incident_window.as_secs() as i64;
            let about_green = rec.open_problems().any(|p| p.revision.as_deref() == Some(green.as_str()))
                || rec.failures.count(Some(&green), now, window) > 0;
            if about_green {
                facts.incident = Some((rec.cause, rec.id.clone()));
            }
        }
        Ok(_) => {}
        Err(e) => facts.unread.push(format!("the service's incident: {e}")),
    }
    match alarms {
        Ok(a) => facts.alarms = a,
        Err(e) => facts.unread.push(format!("cloudwatch:DescribeAlarms {}: {}", e.resource, e.message)),
    }
    match errors {
        Ok(e) => facts.errors = e,
        Err(e) => {
            facts.unread.push(format!("the revisions' error lines: {} {}: {}", e.operation, e.resource, e.message))
        }
    }
    (Read::Facts(Box::new(facts)), stored_since, td)
}

/// A running task: its id and task definition ARN.
type TaskOf = (String, String);

/// At most this many tasks of each revision have their log read.
const LOG_SAMPLE_TASKS: usize = 3;

/// Error lines since `since_ms` in the logs of up to [`LOG_SAMPLE_TASKS`]
/// running tasks of the target revision and as many of the others (the
/// running, blue revision): `None` when either has no running task, or no
/// task's log can be found under `LOG_GROUP_PREFIXES`.
async fn revision_errors(
    app: &App,
    cluster: &str,
    service: &str,
    green_td: Option<&str>,
    since_ms: i64,
) -> Result<Option<ErrorLines>, AwsError> {
    let Some(green_td) = green_td else { return Ok(None) };
    let tasks = ecs::running_tasks(&app.clients, cluster, service).await?;
    let (green, blue): (Vec<TaskOf>, Vec<TaskOf>) =
        tasks.into_iter().filter_map(|t| Some((t.id, t.task_definition?))).partition(|(_, td)| td == green_td);
    if green.is_empty() || blue.is_empty() {
        return Ok(None);
    }
    let sample: Vec<(bool, String, String)> = green
        .into_iter()
        .take(LOG_SAMPLE_TASKS)
        .map(|(id, td)| (true, id, td))
        .chain(blue.into_iter().take(LOG_SAMPLE_TASKS).map(|(id, td)| (false, id, td)))
        .collect();
    let mut defs = std::collections::BTreeMap::new();
    for (_, _, td) in &sample {
        if !defs.contains_key(td) {
            let d = ecs::describe_task_definition(&app.clients, td).await?;
            defs.insert(td.clone(), d);
        }
    }
    let prefixes = &app.config.log_group_prefixes;
    let streams: Vec<(bool, String, String)> = sample
        .iter()
        .filter_map(|(is_green, id, td)| {
            let def = defs.get(td)?;
            let container = def
                .containers
                .iter()
                .find(|c| c.essential != Some(false) && c.log_driver.is_some())
                .or_else(|| def.containers.first())?;
            let (group, stream) = container.awslogs_stream(id)?;
            prefixes.iter().any(|p| group.starts_with(p.as_str())).then_some((*is_green, group, stream))
        })
        .collect();
    let counts = futures::future::join_all(
        streams
            .iter()
            .map(|(_, group, stream)| crate::adapters::logs::error_lines_since(&app.clients, group, stream, since_ms)),
    )
    .await;
    let mut out = ErrorLines { green: 0, green_tasks: 0, blue: 0, blue_tasks: 0 };
    for ((is_green, group, stream), count) in streams.iter().zip(counts) {
        let (errors, _) = count?;
        tracing::debug!(group = %group, stream = %stream, errors, green = is_green, "error lines counted");
        if *is_green {
            out.green += errors;
            out.green_tasks += 1;
        } else {
            out.blue += errors;
            out.blue_tasks += 1;
        }
    }
    Ok((out.green_tasks > 0 && out.blue_tasks > 0).then_some(out))
}

/// The service's alarms now: those the tag `autopilot:hook-alarms` names,
/// else those in ALARM whose metric names the service (`ClusterName` and
/// `ServiceName` dimensions), as the alarm flow maps them.
async fn service_alarms(
    app: &App,
    cluster: &str,
    service: &str,
    named: Vec<String>,
) -> Result<Vec<AlarmNow>, crate::error::AwsError> {
    let names = if named.is_empty() {
        let firing = cloudwatch::alarms_in_alarm(&app.clients).await?;
        let dim = |a: &cloudwatch::FiringAlarm, k: &str, v: &str| a.dimensions.iter().any(|(n, x)| n == k && x == v);
        firing
            .into_iter()
            .filter(|a| dim(a, "ClusterName", cluster) && dim(a, "ServiceName", service))
            .map(|a| a.name)
            .collect::<Vec<_>>()
    } else {
        named
    };
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let states = cloudwatch::alarm_states(&app.clients, &names).await?;
    Ok(states.into_iter().map(|a| AlarmNow { in_alarm: a.state == "ALARM", since: a.since, name: a.name }).collect())
}

/// How long the reads may take: `HOOK_READ_BUDGET_SECONDS` (20), and at
/// most the time left before the Lambda deadline minus the answer margin.
fn read_budget() -> Duration {
    let configured = std::env::var("HOOK_READ_BUDGET_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s >= 1)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_READ_BUDGET);
    match crate::invocation::deadline_ms() {
        Some(deadline) => {
            let left = deadline - chrono::Utc::now().timestamp_millis();
            let left = Duration::from_millis(u64::try_from(left).unwrap_or(0)).saturating_sub(ANSWER_MARGIN);
            configured.min(left).max(Duration::from_secs(1))
        }
        None => configured,
    }
}

/// A `FAILED`: the service's incident (opened or joined) says ECS rolls
/// back; the revision is recorded failed in the known-good history. Both
/// bounded by the time left: the answer to ECS never waits for them.
async fn failed(
    app: &App,
    h: &HookInvocation,
    v: &GateVerdict,
    task_definition: Option<&str>,
    raw: &Value,
    now: i64,
) -> Outcome {
    let stage = h.stage_name();
    let deployment = h.deployment_arn.as_deref().map(crate::arn::last_segment).unwrap_or("unknown").to_string();
    let note = format!(
        "deployment-hook answered FAILED at {stage} for service revision {}: {}; ECS rolls the deployment back to the last successful service revision (autopilot calls no rollback)",
        h.target_revision_id(),
        v.reason
    );
    let base = Outcome::new(
        Kind::EcsDeployment,
        Severity::Sev2,
        v.cause,
        format!("{}/{}: deployment gate FAILED at {stage}: {}; ECS is rolling back", h.cluster, h.service, v.reason),
    )
    .for_service(Some(h.cluster.clone()), Some(h.service.clone()));
    if let Some(td) = task_definition
        && let Err(e) = app.state.deployments().record_failure(&h.cluster, &h.service, td, &deployment, now).await
    {
        tracing::warn!(error = %e, decision = "failure-not-recorded", "failed revision not recorded in the known-good history");
    }
    let input = Input::Problem(ProblemSignal {
        key: ProblemKey::Deployment(format!("gate/{}", h.target_revision_id())),
        label: "deployment gate failed".into(),
        kind: Kind::EcsDeployment,
        at: now,
        severity: Severity::Sev2,
        cause: (v.cause != Cause::Unknown).then_some(v.cause),
        revision: task_definition.map(|td| revision_of(Some(td))),
        task: None,
        news: true,
        note: Some(note.clone()),
    });
    let signal = ServiceSignal {
        kind: Kind::EcsDeployment,
        signal: Signal::DeploymentFailed,
        problem: "deployment gate failed",
        explanation: v.reason.clone(),
        task_definition: task_definition.map(str::to_string),
        failing_task: None,
        raw_event: raw,
        notes: vec![note],
        actions: vec![ActionRecord {
            action: "rollback".into(),
            status: ActionStatus::Skipped,
            detail: "ECS rolls the deployment back on the hook's FAILED; autopilot calls no rollback on top".into(),
        }],
        action: None,
        failed_deployment: None,
        rollback_on_crash_loop: false,
        first_failure_only: false,
    };
    let region = h.service_arn.split(':').nth(3).filter(|r| !r.is_empty());
    let key = format!("{}/FAILED", h.key());
    let work = service::drive(app, Kind::EcsDeployment, &h.cluster, &h.service, region, Some(signal), input);
    let left = read_budget().saturating_sub(Duration::from_secs(1)).max(Duration::from_secs(1));
    let duplicate = {
        let base = base.clone();
        move || {
            let mut o = base;
            o.notified = Some("suppressed:duplicate-event".into());
            o
        }
    };
    match tokio::time::timeout(left, once(app, &key, duplicate, work)).await {
        Ok(Ok(mut o)) => {
            o.summary = base.summary.clone();
            o.cause = v.cause;
            o
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, decision = "incident-not-recorded", "the FAILED verdict stands; its incident was not recorded");
            Outcome { notified: Some(format!("suppressed:incident-not-recorded: {}", e.error_type())), ..base }
        }
        Err(_) => {
            tracing::warn!(
                decision = "incident-not-recorded",
                "the incident did not finish in time; the FAILED verdict stands"
            );
            Outcome { notified: Some("suppressed:incident-timeout".into()), ..base }
        }
    }
}
