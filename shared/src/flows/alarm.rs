//! `alarm-responder`: map the alarm to its ECS service, classify, grade, run
//! the matching runbook (scale out within bounds; roll back when the alarm
//! follows a deployment), and resolve on OK.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::{Flow, FlowFuture, once, once_first_write};
use crate::actions::ActionKind;
use crate::actions::engine::ActionRequest;
use crate::actions::rollback_plan::recent_deployment;
use crate::adapters::sns::publish;
use crate::adapters::{cloudwatch, ecs};
use crate::context::{App, Function};
use crate::diagnosis::alarm::{AlarmAssessment, AlarmRunbook, Designation, assess, designation};
use crate::diagnosis::severity::Signal;
use crate::error::AutopilotError;
use crate::incident::machine::{Input, ProblemKey, ProblemSignal, Recovery, RecoveryScope};
use crate::incident::service::{self, ServiceSignal};
use crate::incident::shell::publish_failed;
use crate::notify::render::{Message, subject_line};
use crate::outcome::{ActionRecord, ActionStatus, Cause, Kind, Outcome, Severity};
use crate::time::{iso, now};
use crate::trigger::{AlarmChange, AlarmState, Trigger, trust};

pub const FLOW: Flow = Flow { function: Function::AlarmResponder, run };

fn run<'a>(app: &'a App, trigger: Trigger, raw: &'a serde_json::Value) -> FlowFuture<'a> {
    Box::pin(async move {
        match trigger {
            Trigger::Alarm { id, alarm } => handle(app, &id, &alarm, raw).await,
            other => Ok(Outcome::ignored(format!("{:?} is not an alarm state change", other.kind()))),
        }
    })
}

async fn handle(app: &App, id: &str, alarm: &AlarmChange, raw: &serde_json::Value) -> Result<Outcome, AutopilotError> {
    let a = assess(alarm);
    let target = map_to_service(app, alarm).await;
    let (cluster, service) = match &target {
        Some((c, s)) => (Some(c.clone()), Some(s.clone())),
        None => (None, None),
    };
    if let Some(c) = &cluster
        && !app.config.in_scope(c)
    {
        return Ok(Outcome::ignored(format!("alarm {} maps to cluster {c}, not in CLUSTERS", alarm.name))
            .for_service(cluster, service));
    }
    match alarm.state {
        AlarmState::InsufficientData => Ok(Outcome::new(
            Kind::Alarm,
            Severity::Info,
            a.cause,
            format!("alarm {} has insufficient data; recorded", alarm.name),
        )
        .for_service(cluster, service)),
        AlarmState::Ok => match target {
            Some((c, s)) => {
                let input = Input::Recovery(Recovery {
                    scope: RecoveryScope::Alarm(alarm.name.clone()),
                    at: state_time(alarm),
                    by: format!("alarm {} back to OK", alarm.name),
                });
                let dup = duplicate(&c, &s, a.cause);
                once_first_write(
                    app,
                    id,
                    dup,
                    service::drive(app, Kind::Alarm, &c, &s, console_region(alarm), None, input),
                )
                .await
            }
            None => Ok(Outcome::new(Kind::Alarm, Severity::Info, a.cause, format!("alarm {} back to OK", alarm.name))),
        },
        AlarmState::Alarm if alarm.actions_suppressed_by.is_some() => {
            let mut o = Outcome::new(
                Kind::Alarm,
                Severity::Info,
                a.cause,
                format!(
                    "alarm {} is ALARM but its actions are suppressed ({}); recorded, not paged",
                    alarm.name,
                    alarm.actions_suppressed_by.as_deref().unwrap_or("")
                ),
            )
            .for_service(cluster, service);
            o.notified = Some("suppressed:alarm-actions-suppressed".into());
            Ok(o)
        }
        AlarmState::Alarm => match target {
            None => {
                let dup = || {
                    let mut o = Outcome::new(
                        Kind::Alarm,
                        Severity::Info,
                        a.cause,
                        format!("alarm {}: duplicate delivery of this transition", alarm.name),
                    );
                    o.notified = Some("suppressed:duplicate-event".into());
                    o
                };
                once(app, id, dup, unmapped_alert(app, alarm, &a)).await
            }
            Some((c, s)) => {
                once_first_write(app, id, duplicate(&c, &s, a.cause), firing(app, alarm, &a, &c, &s, raw)).await
            }
        },
    }
}

/// When the alarm entered its state, as AWS wrote it (else now).
fn state_time(alarm: &AlarmChange) -> i64 {
    let t = now();
    alarm.timestamp.as_deref().and_then(crate::lenient::parse_time).map_or(t, |at| at.timestamp().min(t))
}

/// A region name fit for console links (classic SNS alarm messages carry a display name).
fn console_region(alarm: &AlarmChange) -> Option<&str> {
    alarm.region.as_deref().filter(|r| r.contains('-') && !r.contains(' '))
}

/// What the alarm's current state allows: before any automatic action the
/// alarm is read, because the event may be late — retried, redelivered —
/// and the world may have changed since.
enum Now {
    /// Still in ALARM: its runbook may act.
    Firing,
    /// Back to OK since `since`: the signal is stale.
    Recovered { since: i64 },
    /// Anything else, said: page, but act on no guess.
    NoAction(String),
}

async fn alarm_now(app: &App, alarm: &AlarmChange, at: i64) -> Now {
    match cloudwatch::alarm_states(&app.clients, std::slice::from_ref(&alarm.name)).await {
        Ok(states) => match states.into_iter().find(|s| s.name == alarm.name) {
            Some(s) if s.state == "ALARM" => {
                let read = trust::AlarmAsRead { arn: s.arn.as_deref(), state: &s.state, dimensions: &s.dimensions };
                match trust::alarm_matches(alarm, &read) {
                    Ok(()) => Now::Firing,
                    Err(refused) => {
                        tracing::warn!(alarm = %alarm.name, decision = "alarm-mismatch", "{refused}");
                        Now::NoAction(refused.0)
                    }
                }
            }
            Some(s) if s.state == "OK" && s.since.is_none_or(|since| since >= at) => {
                Now::Recovered { since: s.since.unwrap_or_else(now) }
            }
            Some(s) => Now::NoAction(format!(
                "the alarm is {} now{}; no automatic action on a state it no longer has",
                s.state,
                s.since.map(|t| format!(" (since {})", iso(t))).unwrap_or_default()
            )),
            None => Now::NoAction(
                "the alarm no longer exists (DescribeAlarms does not list it); no automatic action".into(),
            ),
        },
        Err(e) => {
            Now::NoAction(format!("the alarm's current state is unreadable ({e}); no automatic action on a guess"))
        }
    }
}

/// An alarm in ALARM on a service: its incident, and its runbook's action
/// while the alarm still fires.
async fn firing(
    app: &App,
    alarm: &AlarmChange,
    a: &AlarmAssessment,
    c: &str,
    s: &str,
    raw: &serde_json::Value,
) -> Result<Outcome, AutopilotError> {
    let at = state_time(alarm);
    let region = console_region(alarm);
    let now_state = match a.runbook {
        AlarmRunbook::Diagnose => Now::NoAction(String::new()),
        _ => alarm_now(app, alarm, at).await,
    };
    if let Now::Recovered { since } = now_state {
        // True when sent, false when handled: nothing to page, nothing to act on.
        tracing::info!(alarm = %alarm.name, since, decision = "stale-alarm", "alarm already back to OK");
        let input = Input::Recovery(Recovery {
            scope: RecoveryScope::Alarm(alarm.name.clone()),
            at: since,
            by: format!("alarm {} read OK (since {})", alarm.name, iso(since)),
        });
        let mut o = service::drive(app, Kind::Alarm, c, s, region, None, input).await?;
        o.summary = format!(
            "{c}/{s}: alarm {} entered ALARM at {} but is OK since {}; stale, not paged, no action ({})",
            alarm.name,
            iso(at),
            iso(since),
            o.summary
        );
        if o.notified.is_none() || o.notified.as_deref() == Some("suppressed:already-resolved") {
            o.notified = Some("suppressed:alarm-recovered".into());
        }
        return Ok(o);
    }
    let (records, action) = match (a.runbook, now_state) {
        (AlarmRunbook::Diagnose, _) => (Vec::new(), AlarmAction::None),
        (_, Now::NoAction(why)) => (vec![not_acting(a, &why)], AlarmAction::None),
        _ => match alarm_designation(app, alarm).await {
            Designation::Not(why) => (vec![not_considered(a, &why)], AlarmAction::None),
            designated => {
                tracing::info!(alarm = %alarm.name, designation = ?designated, decision = "alarm-designated", "alarm may act");
                (Vec::new(), runbook_action(app, a, c, s, at).await)
            }
        },
    };
    let input = Input::Problem(ProblemSignal {
        key: ProblemKey::Alarm(alarm.name.clone()),
        label: "alarm".into(),
        kind: Kind::Alarm,
        at,
        severity: a.severity,
        cause: Some(a.cause),
        revision: match &action {
            AlarmAction::Rollback { revision, .. } => Some(crate::incident::service::revision_of(Some(revision))),
            _ => None,
        },
        task: None,
        news: false,
        note: None,
    });
    let signal = ServiceSignal {
        kind: Kind::Alarm,
        signal: Signal::ServiceWarning,
        problem: "alarm",
        explanation: a.explanation.clone(),
        task_definition: None,
        failing_task: None,
        raw_event: raw,
        notes: Vec::new(),
        actions: records,
        action: action_request(&action, alarm, c, s),
        failed_deployment: None,
        rollback_on_crash_loop: false,
        first_failure_only: false,
    };
    service::drive(app, Kind::Alarm, c, s, region, Some(signal), input).await
}

/// The record of the action the alarm's runbook would have asked for, not taken.
fn not_acting(a: &AlarmAssessment, why: &str) -> ActionRecord {
    let action = match a.runbook {
        AlarmRunbook::ScaleOut => ActionKind::Scale,
        _ => ActionKind::Rollback,
    };
    ActionRecord { action: action.as_str().into(), status: ActionStatus::Skipped, detail: why.into() }
}

fn duplicate(cluster: &str, service: &str, cause: Cause) -> impl FnOnce() -> Outcome {
    let (c, s) = (cluster.to_string(), service.to_string());
    move || {
        let mut o = Outcome::new(
            Kind::Alarm,
            Severity::Info,
            cause,
            format!("{c}/{s}: duplicate delivery of an alarm transition"),
        )
        .for_service(Some(c), Some(s));
        o.notified = Some("suppressed:duplicate-event".into());
        o
    }
}

/// Whether this alarm may trigger automatic actions (prefix, else its tag).
async fn alarm_designation(app: &App, alarm: &AlarmChange) -> Designation {
    let prefix = app.config.alarm_name_prefix.as_deref();
    if prefix.is_some_and(|p| alarm.name.starts_with(p)) {
        return designation(&alarm.name, prefix, Ok(None));
    }
    let tags = match &alarm.arn {
        Some(arn) => cloudwatch::alarm_tags(&app.clients, arn).await.map_err(|e| e.message),
        None => Err("the alarm's ARN is not in the event".to_string()),
    };
    let tag = match &tags {
        Ok(t) => Ok(t.iter().find(|(k, _)| k.eq_ignore_ascii_case("autopilot:actions")).map(|(_, v)| v.as_str())),
        Err(why) => Err(why.as_str()),
    };
    designation(&alarm.name, prefix, tag)
}

/// The record of the action an undesignated alarm's runbook would have asked for.
fn not_considered(a: &crate::diagnosis::alarm::AlarmAssessment, why: &str) -> crate::outcome::ActionRecord {
    let action = match a.runbook {
        AlarmRunbook::ScaleOut => ActionKind::Scale,
        _ => ActionKind::Rollback,
    };
    crate::outcome::ActionRecord {
        action: action.as_str().into(),
        status: crate::outcome::ActionStatus::Skipped,
        detail: format!("no automatic action considered: the alarm is not designated ({why})"),
    }
}

/// What the alarm's runbook asks of the engine (run by the incident core
/// once the incident exists, so that the action is recorded against it and
/// announced whoever executes it).
enum AlarmAction {
    None,
    Scale,
    /// Roll back the fresh deployment `deployment` of `revision`.
    Rollback {
        deployment: String,
        revision: String,
    },
}

/// The alarm's runbook: scale out for saturation, roll back when errors follow
/// a fresh deployment.
async fn runbook_action(app: &App, a: &AlarmAssessment, cluster: &str, service: &str, alarm_at: i64) -> AlarmAction {
    match a.runbook {
        AlarmRunbook::ScaleOut if a.severity <= Severity::Sev2 => AlarmAction::Scale,
        AlarmRunbook::RollbackIfRecentDeploy => {
            let recent = ecs::describe_service(&app.clients, cluster, service).await.ok().and_then(|s| {
                // The service's own rollback window (tag autopilot:rollback-window-minutes), if it has one.
                let window =
                    crate::config::ServiceTuning::from_tags(&app.config.settings, &s.tags).rollback_window_seconds;
                // "After a deployment" is judged at the alarm's own state time.
                recent_deployment(&s, alarm_at, window)
            });
            match recent {
                Some(r) => AlarmAction::Rollback { deployment: r.deployment, revision: r.revision },
                None => AlarmAction::None,
            }
        }
        _ => AlarmAction::None,
    }
}

/// The engine request for `action`. The engine re-checks a rollback against
/// the service under its own read: still PRIMARY, still running that
/// revision, and a fresh release — not ECS's (or our) rollback to a revision
/// that had reached steady state before.
fn action_request<'a>(
    action: &'a AlarmAction,
    alarm: &AlarmChange,
    cluster: &'a str,
    service: &'a str,
) -> Option<ActionRequest<'a>> {
    let trigger = format!("alarm {}", alarm.name);
    match action {
        AlarmAction::None => None,
        AlarmAction::Scale => Some(ActionRequest::automatic(ActionKind::Scale, cluster, service, trigger)),
        AlarmAction::Rollback { deployment, revision } => Some(ActionRequest {
            recent_deployment: Some(deployment),
            failing_revision: Some(revision),
            ..ActionRequest::automatic(
                ActionKind::Rollback,
                cluster,
                service,
                format!("{trigger} after deployment {deployment}"),
            )
        }),
    }
}

/// Target group → service, per warm instance, for a few minutes only: a
/// service moved to another target group must not keep receiving its
/// alarms' actions.
const TG_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5 * 60);

type TgCache = HashMap<String, ((String, String), std::time::Instant)>;

fn tg_cache() -> &'static Mutex<TgCache> {
    static CACHE: OnceLock<Mutex<TgCache>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// `(cluster, service)` of an alarm: from `ClusterName`/`ServiceName`
/// dimensions, else from a `TargetGroup` dimension by finding the service that
/// registers into that target group.
pub async fn map_to_service(app: &App, alarm: &AlarmChange) -> Option<(String, String)> {
    if let (Some(c), Some(s)) = (alarm.dimension("ClusterName"), alarm.dimension("ServiceName")) {
        return Some((c.to_string(), s.to_string()));
    }
    // Composite and math alarms carry no service dimensions: their owners tag
    // them `autopilot:cluster` / `autopilot:service`.
    if let Some(arn) = &alarm.arn
        && let Some(hit) = service_from_alarm_tags(app, arn).await
    {
        return Some(hit);
    }
    let tg = alarm.dimension("TargetGroup")?.to_string();
    if let Ok(mut cache) = tg_cache().lock() {
        match cache.get(&tg) {
            Some((hit, at)) if at.elapsed() < TG_CACHE_TTL => return Some(hit.clone()),
            Some(_) => {
                cache.remove(&tg);
            }
            None => {}
        }
    }
    let found = find_service_by_target_group(app, &tg).await;
    if let (Some(hit), Ok(mut cache)) = (&found, tg_cache().lock()) {
        cache.insert(tg, (hit.clone(), std::time::Instant::now()));
    }
    found
}

async fn service_from_alarm_tags(app: &App, alarm_arn: &str) -> Option<(String, String)> {
    let tags = cloudwatch::alarm_tags(&app.clients, alarm_arn)
        .await
        .map_err(|e| tracing::info!(alarm_arn, error = %e, "alarm tags unreadable"))
        .ok()?;
    let tag = |key: &str| tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone());
    Some((tag("autopilot:cluster")?, tag("autopilot:service")?))
}

async fn find_service_by_target_group(app: &App, tg_dimension: &str) -> Option<(String, String)> {
    let clusters: Vec<String> = if app.config.clusters.is_empty() {
        ecs::list_clusters(&app.clients).await.map_err(|e| tracing::warn!(error = %e, "cannot list clusters")).ok()?
    } else {
        app.config.clusters.clone()
    };
    for cluster in clusters {
        let services = ecs::list_services(&app.clients, &cluster).await.ok()?;
        for batch in services.chunks(10) {
            for s in ecs::service_target_groups(&app.clients, &cluster, batch).await.ok()? {
                if s.target_groups.iter().any(|arn| arn.ends_with(&format!(":{tg_dimension}"))) {
                    return Some((crate::arn::cluster_name(&cluster).to_string(), s.service));
                }
            }
        }
    }
    None
}

/// An alarm in ALARM that maps to no service: one notification per transition.
async fn unmapped_alert(
    app: &App,
    alarm: &AlarmChange,
    a: &crate::diagnosis::alarm::AlarmAssessment,
) -> Result<Outcome, AutopilotError> {
    let subject =
        subject_line(&format!("[{}] alarm {}: {} (no ECS service mapped)", a.severity, alarm.name, a.cause.headline()));
    let body = format!(
        "ALARM - {}\n\nAlarm:     {}\nState:     {:?} (was {:?})\nKind:      {:?}\nMetrics:   {}\nReason:    {}\nDescription: {}\n\nThe alarm names no ClusterName/ServiceName dimensions and no target group of a known service,\nso no runbook ran. Next steps:\n{}\n",
        a.severity,
        alarm.name,
        alarm.state,
        alarm.previous_state,
        alarm.kind,
        alarm.metrics.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
        alarm.reason,
        alarm.description.as_deref().unwrap_or("-"),
        a.cause.next_steps().iter().map(|s| format!("- {s}")).collect::<Vec<_>>().join("\n"),
    );
    let message = Message {
        place: None,
        subject,
        body,
        severity: a.severity,
        cluster: String::new(),
        service: String::new(),
        cause: a.cause,
        kind: Kind::Alarm,
        incident: None,
        event_type: crate::notify::render::EventType::AlarmNotice,
        highlights: vec![
            format!("Alarm {} is {:?} (was {:?})", alarm.name, alarm.state, alarm.previous_state),
            format!("Reason: {}", alarm.reason),
            "No ECS service mapped (no ClusterName/ServiceName dimensions, no known target group): no runbook ran"
                .into(),
        ],
        next_steps: crate::notify::render::steps_of(a.cause),
        links: Vec::new(),
        evidence: None,
        team: None,
        chat_context: Vec::new(),
    };
    let mut o = Outcome::new(Kind::Alarm, a.severity, a.cause, a.explanation.clone());
    o.notified = Some(publish(&app.clients, &app.config.notify_topic_arn, &message).await.map_err(publish_failed)?);
    Ok(o)
}
