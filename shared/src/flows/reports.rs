//! `scheduled-reports`: the escalation job (every five minutes) and the daily
//! and weekly reports.
//!
//! Escalation lists the open incidents from the state table's open index
//! and steps each with the machine's tick (`incident::machine`, driven by
//! `incident::shell`): an opening alert whose sender died is delivered, an
//! alarm problem whose alarm reads OK clears, a resolution left unsent goes
//! out, an incident without a signal for a window expires, one open past the
//! escalation delay escalates. Every message is claimed in the record before
//! it is published, so concurrent or repeated runs never send one twice.
//!
//! The daily and weekly reports read every service of the clusters in
//! scope, judge them with the pure modules (`daily_report`,
//! `weekly_report`), store JSON and HTML under `reports/<kind>/…/` in the
//! evidence bucket and publish one summary with links to both (the S3
//! console page, durable, and a presigned URL whose lifetime the summary
//! states; our own links are never redacted). A read that
//! fails degrades the service (or the report) it belongs to and is named in
//! the report; only a summary that cannot be published fails the run.

use serde_json::{Value, json};

use super::{Flow, FlowFuture};
use crate::adapters::sns::publish;
use crate::context::{App, Function};
use crate::error::AutopilotError;
use crate::fleet::Scope;
use crate::incident::Subject;
use crate::incident::machine::{Input, MessageKind, Verdict};
use crate::incident::pipeline::PipelinePort;
use crate::incident::service::ServicePort;
use crate::incident::shell::{self, Driven};
use crate::outcome::{Cause, Kind, Outcome, Severity};
use crate::reports::daily::{ObjectLinks, ReportObject};
use crate::reports::fleet::{AccountScope, ScopeRun, run_scopes, shard_suffix};
use crate::time::{iso, now};
use crate::trigger::{Job, Shard, Trigger};

pub const FLOW: Flow = Flow { function: Function::ScheduledReports, run };

fn run<'a>(app: &'a App, trigger: Trigger, _raw: &'a Value) -> FlowFuture<'a> {
    Box::pin(async move {
        match trigger {
            Trigger::Scheduled { job: Job::Escalate, .. } => escalate(app).await,
            Trigger::Scheduled { job: Job::Daily, shard, .. } => daily(app, &shard).await,
            Trigger::Scheduled { job: Job::Weekly, shard, .. } => weekly(app, &shard).await,
            other => Ok(Outcome::ignored(format!("{:?} is not a scheduled job", other.kind()))),
        }
    })
}

/// One tick of one open incident, through its subject kind.
async fn tick(app: &App, subject: &Subject) -> Result<Driven, AutopilotError> {
    let input = Input::Tick { alarms_checked: false };
    match subject.as_service() {
        Some((cluster, service)) => {
            let mut port = ServicePort::new(cluster, service, None, None);
            shell::drive(app, &mut port, subject, input).await
        }
        None => {
            let mut port = PipelinePort::new(app, subject, None, None);
            shell::drive(app, &mut port, subject, input).await
        }
    }
}

/// One escalation run over every open incident.
async fn escalate(app: &App) -> Result<Outcome, AutopilotError> {
    let open = app.state.incidents().open_subjects().await?;
    let mut escalated = Vec::new();
    let mut expired = Vec::new();
    let mut delivered = Vec::new();
    let mut resolved = Vec::new();
    let mut failed = Vec::new();
    for subject in &open {
        // A member's incident is driven in the member (its clients, its keys);
        // a member that cannot be reached is named among the failures.
        let placed = match app.at(subject.scope()).await {
            Ok(placed) => placed,
            Err(e) => {
                failed.push(format!("{}: {e}", subject.label()));
                continue;
            }
        };
        match tick(&placed, subject).await {
            Ok(driven) => {
                let id = driven.record.as_ref().map(|r| r.id.clone()).unwrap_or_default();
                for (message, _) in &driven.published {
                    match message {
                        MessageKind::Escalation { .. } => escalated.push(id.clone()),
                        MessageKind::Opening => delivered.push(id.clone()),
                        MessageKind::Resolution { expired: true, .. } => expired.push(id.clone()),
                        MessageKind::Resolution { .. } => resolved.push(id.clone()),
                        MessageKind::Update => {}
                    }
                }
                if let Some(why) = &driven.not_published {
                    failed.push(format!("{id}: {why}"));
                }
                if driven.verdicts.iter().any(|v| matches!(v, Verdict::Released(_))) && driven.not_published.is_none() {
                    failed.push(format!("{id}: a message was not published"));
                }
            }
            Err(e) => failed.push(format!("{}: {e}", subject.label())),
        }
    }
    tracing::info!(
        open = open.len(),
        escalated = escalated.len(),
        expired = expired.len(),
        delivered = delivered.len(),
        resolved = resolved.len(),
        failed = failed.len(),
        decision = "escalation-run",
        "escalation run"
    );
    let sent = escalated.len() + expired.len() + delivered.len() + resolved.len();
    if !failed.is_empty() && sent == 0 {
        // Nothing got through: fail so that the schedule's retry tries again.
        return Err(AutopilotError::Aws(crate::error::AwsError {
            retryable: true,
            ..crate::error::AwsError::answer(
                "sns",
                "Publish (escalation)",
                &app.config.notify_topic_arn,
                failed.join("; "),
            )
        }));
    }
    let mut o = Outcome::new(
        Kind::Report,
        Severity::Info,
        Cause::Expected,
        format!(
            "escalation: {} open incident(s), {} escalated, {} expired, {} pending alert(s) delivered, {} resolved{}",
            open.len(),
            escalated.len(),
            expired.len(),
            delivered.len(),
            resolved.len(),
            if failed.is_empty() { String::new() } else { format!(", {} failed: {}", failed.len(), failed.join("; ")) }
        ),
    );
    o.details = Some(json!({
        "escalated": escalated, "expired": expired, "delivered": delivered, "resolved": resolved, "failed": failed,
    }));
    Ok(o)
}

/// Pages of `FilterLogEvents` read per log group for the daily error count.
const ERROR_COUNT_PAGES: usize = 5;

/// How long the presigned report links are asked to open: S3's limit. The
/// signing credentials may cut it shorter; the summary says which.
const LINK_LIFETIME: std::time::Duration = crate::adapters::s3::MAX_PRESIGN_LIFETIME;

/// The daily health check over every service in scope: home's and every
/// member account's in every region of the fleet (or of the run's shard),
/// each read with its own clients, a few accounts at a time.
async fn daily(app: &App, shard: &Shard) -> Result<Outcome, AutopilotError> {
    use crate::reports::daily::{build_fleet, html, summary};
    use futures::StreamExt;
    let t = now();
    let since = t - 24 * 3600;
    let date = chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default();
    let fleet = app.fleet();
    let scopes = run_scopes(&fleet, &app.config.regions, shard)?;
    let reads: Vec<_> =
        scopes.iter().map(|scope| day_of_scope(app, ScopeRun::of(&fleet, scope), scope, since)).collect();
    let mut days = Vec::new();
    let mut runs = Vec::new();
    for (run, services) in futures::stream::iter(reads).buffered(SCOPE_CONCURRENCY).collect::<Vec<_>>().await {
        days.extend(services);
        runs.push(run);
    }
    let report = build_fleet(&date, &iso(t), days, runs, (!shard.is_whole_fleet()).then(|| shard.clone()));
    let redactor = crate::telemetry::redactor();
    let mut json_value = serde_json::to_value(&report).unwrap_or(Value::Null);
    redactor.json(&mut json_value);
    let page = redactor.text(&html(&report));
    let bucket = &app.config.evidence_bucket;
    let prefix = format!("reports/daily/{date}/{}", shard_suffix(shard));
    let json_key = format!("{prefix}report.json");
    let html_key = format!("{prefix}report.html");
    let objects = store_report(app, &prefix, &json_value, page).await;
    let (subject_line, body) = summary(&report, &objects, &format!("s3://{bucket}/{prefix}"));
    let worst = report.services.first().map(|s| s.health);
    let severity = match worst {
        Some(crate::reports::daily::Health::Down) => Severity::Sev2,
        Some(crate::reports::daily::Health::Degraded) => Severity::Sev3,
        // An account not reported is a warning of its own.
        _ if report.totals.accounts_failed > 0 => Severity::Sev3,
        _ => Severity::Info,
    };
    let fleet_report = report.is_fleet();
    // The worst services first, for chat's short text.
    let highlights = report
        .services
        .iter()
        .take(5)
        .map(|s| {
            let label = if fleet_report {
                format!("{} {} ", s.account.as_deref().unwrap_or("?"), s.region)
            } else {
                String::new()
            };
            redactor.text(&format!("{label}{}/{}: {:?} {}", s.cluster, s.service, s.health, s.reasons.join("; ")))
        })
        .collect();
    let summary = ReportSummary { subject_line, body, severity, highlights, objects: &objects, prefix: &prefix };
    let message_id = publish_summary(app, summary, &redactor).await?;
    let t = &report.totals;
    let failed = AccountScope::failures(report.accounts.iter().map(|a| &a.scope));
    let mut o = Outcome::new(
        Kind::Report,
        Severity::Info,
        Cause::Expected,
        format!(
            "daily report {date}: {} services ({} down, {} degraded, {} healthy, {} unreadable){}",
            t.services,
            t.down,
            t.degraded,
            t.healthy,
            t.unknown,
            fleet_suffix(fleet_report, t.accounts, &failed)
        ),
    );
    o.notified = Some(message_id);
    o.evidence = Some(format!("s3://{bucket}/{prefix}"));
    o.details = Some(json!({"report": json_key, "html": html_key, "totals": t, "failed_accounts": failed}));
    Ok(o)
}

/// What a report's summary notification says, beside what every one says.
struct ReportSummary<'a> {
    subject_line: String,
    body: crate::redact::Outgoing,
    severity: Severity,
    /// A few lines for chat's short text (redacted).
    highlights: Vec<String>,
    objects: &'a [ReportObject],
    /// Where the report's objects are, under the evidence bucket.
    prefix: &'a str,
}

/// Publish a report's summary (daily or weekly): its message id.
async fn publish_summary(
    app: &App,
    summary: ReportSummary<'_>,
    redactor: &crate::redact::Redactor,
) -> Result<String, AutopilotError> {
    let message = crate::notify::render::Message {
        place: None,
        subject: redactor.text(&summary.subject_line),
        // Redacted except our own links (the console and presigned URLs).
        body: summary.body.render(redactor),
        severity: summary.severity,
        cluster: String::new(),
        service: String::new(),
        cause: Cause::Expected,
        kind: Kind::Report,
        incident: None,
        event_type: crate::notify::render::EventType::Report,
        highlights: summary.highlights,
        next_steps: Vec::new(),
        // Chat carries the console links: they open after sign-in, for as long as the objects are kept.
        links: summary.objects.iter().filter_map(ReportObject::console).collect(),
        evidence: Some(format!("s3://{}/{}", app.config.evidence_bucket, summary.prefix)),
        team: None,
        chat_context: Vec::new(),
    };
    publish(&app.clients, &app.config.notify_topic_arn, &message).await.map_err(crate::incident::shell::publish_failed)
}

/// `, in N account/region(s), F not reported: …` of a fleet report's Outcome.
fn fleet_suffix(fleet: bool, accounts: usize, failed: &[String]) -> String {
    match (fleet, failed.is_empty()) {
        (false, true) => String::new(),
        (_, true) => format!(", in {accounts} account/region(s)"),
        (_, false) => {
            format!(", in {accounts} account/region(s), {} not reported: {}", failed.len(), failed.join("; "))
        }
    }
}

/// Accounts and regions read at a time by a fleet report (each runs its
/// own services a few at a time).
const SCOPE_CONCURRENCY: usize = 4;

/// Place the App in `scope` and read its day; what fails for the whole
/// scope is named in its run, never the end of the report.
async fn day_of_scope(
    app: &App,
    mut run: ScopeRun,
    scope: &Scope,
    since: i64,
) -> (ScopeRun, Vec<crate::reports::daily::ServiceDay>) {
    let days = match placed(app, &mut run, scope).await {
        Some(placed) => day_of_placed(&placed, &mut run, since).await,
        None => Vec::new(),
    };
    say_failure(&run, "daily");
    (run, days)
}

/// `app` placed in `scope`, or `None` with the failure named in `run`.
async fn placed(app: &App, run: &mut ScopeRun, scope: &Scope) -> Option<App> {
    app.at(scope)
        .await
        .map_err(|e| run.fail(format!("the member role cannot be assumed ({e}); nothing read there")))
        .ok()
}

/// One log line for a scope a report could not (wholly) read.
fn say_failure(run: &ScopeRun, job: &str) {
    if let Some(why) = &run.failure {
        tracing::warn!(decision = "report-scope-failed", job, scope = %run.label(), "{why}");
    }
}

/// The services of one placed App's clusters (its `ListServices`,
/// `DescribeServices` ten at a time, alarms once), each judged.
async fn day_of_placed(app: &App, run: &mut ScopeRun, since: i64) -> Vec<crate::reports::daily::ServiceDay> {
    use crate::adapters::{cloudwatch, ecs};
    use futures::StreamExt;
    let clusters = match clusters_in_scope(app).await {
        Ok(c) => c,
        Err(e) => {
            run.fail(format!("clusters not listed: {e}"));
            return Vec::new();
        }
    };
    // One read of the firing alarms for all services.
    let (alarms, alarms_unread) = match cloudwatch::alarms_in_alarm(&app.clients).await {
        Ok(a) => (a, None),
        Err(e) => (Vec::new(), Some(format!("alarms: {e}"))),
    };
    let place = (run.account.clone(), run.region.clone());
    let mut days = Vec::new();
    for cluster in &clusters {
        let names: Vec<String> = match ecs::list_services(&app.clients, cluster).await {
            Ok(arns) => arns.iter().map(|a| crate::arn::last_segment(a).to_string()).collect(),
            Err(e) if cluster_absent(&e) && !app.config.clusters.is_empty() => {
                run.clusters_absent.push(cluster.clone());
                continue;
            }
            Err(e) => {
                run.fail(format!("services of cluster {cluster} not listed: {e}"));
                continue;
            }
        };
        let snapshots = match ecs::describe_services(&app.clients, cluster, &names).await {
            Ok(s) => s,
            Err(e) => {
                // Each service is then reported unreadable, by name.
                run.fail(format!("services of cluster {cluster} not described: {e}"));
                Vec::new()
            }
        };
        let reads: Vec<_> = names
            .iter()
            .map(|name| {
                let snapshot = snapshots.iter().find(|s| &s.service == name).cloned();
                day_of_service(app, &place, cluster, name, snapshot, (&alarms, &alarms_unread), since)
            })
            .collect();
        days.extend(futures::stream::iter(reads).buffered(DAILY_CONCURRENCY).collect::<Vec<_>>().await);
    }
    days
}

/// A cluster of `CLUSTERS` that this account and region does not run.
fn cluster_absent(e: &crate::error::AwsError) -> bool {
    e.code.as_deref() == Some("ClusterNotFoundException") || e.message.contains("ClusterNotFoundException")
}

/// `name` of `arn:…:targetgroup/<name>/<id>` (the id alone tells a reader nothing).
fn target_group_name(arn: &str) -> &str {
    arn.split_once(":targetgroup/").and_then(|(_, r)| r.split('/').next()).unwrap_or(crate::arn::last_segment(arn))
}

/// Cluster names (not ARNs).
type ClusterNames = Vec<String>;

/// The clusters of `CLUSTERS`, or every cluster of the account when unset.
async fn clusters_in_scope(app: &App) -> Result<ClusterNames, AutopilotError> {
    if !app.config.clusters.is_empty() {
        return Ok(app.config.clusters.clone());
    }
    Ok(crate::adapters::ecs::list_clusters(&app.clients)
        .await
        .map_err(AutopilotError::Aws)?
        .iter()
        .map(|a| crate::arn::last_segment(a).to_string())
        .collect())
}

/// Reads per service run this many at a time (task definitions, the state table).
const WEEKLY_CONCURRENCY: usize = 8;

/// Store a report's JSON and HTML under `prefix`; for each, its S3 console
/// link and a presigned link (or why there is none).
async fn store_report(app: &App, prefix: &str, json_value: &Value, page: String) -> Vec<ReportObject> {
    let bucket = &app.config.evidence_bucket;
    let region = &app.config.settings.console_region;
    let encryption = crate::evidence::Encryption { kms_key_id: app.config.evidence_kms_key.clone() };
    let json_key = format!("{prefix}report.json");
    let html_key = format!("{prefix}report.html");
    let stored_json = crate::adapters::s3::put_json(&app.clients, bucket, &json_key, json_value, &encryption).await;
    let stored_html =
        crate::adapters::s3::put_text(&app.clients, bucket, &html_key, page, "text/html; charset=utf-8", &encryption)
            .await;
    let mut objects = Vec::new();
    for (label, key, stored) in [("HTML", html_key, stored_html), ("JSON", json_key, stored_json)] {
        let links = match stored {
            Ok(()) => Ok(ObjectLinks {
                console: crate::adapters::s3::console_link(bucket, &key, region),
                presigned: crate::adapters::s3::presigned_get(&app.clients, bucket, &key, LINK_LIFETIME).await,
            }),
            Err(e) => Err(e),
        };
        objects.push(ReportObject { label: label.to_string(), key, links });
    }
    objects
}

/// The weekly capacity review over every service in scope: home's and every
/// member account's in every region of the fleet (or of the run's shard),
/// each read and batched with its own clients.
async fn weekly(app: &App, shard: &Shard) -> Result<Outcome, AutopilotError> {
    use crate::reports::weekly::{self as wr, ReportWindow};
    use futures::StreamExt;
    let t = now();
    // Whole hours, so that hourly datapoints line up with CloudWatch's.
    let end = t - t.rem_euclid(wr::HOUR);
    let start = end - wr::WINDOW_SECONDS;
    let week = chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%G-W%V").to_string()).unwrap_or_default();
    let fleet = app.fleet();
    let scopes = run_scopes(&fleet, &app.config.regions, shard)?;
    let reads: Vec<_> =
        scopes.iter().map(|scope| week_of_scope(app, ScopeRun::of(&fleet, scope), scope, (start, end))).collect();
    let (mut judged, mut metric_calls, mut metric_queries, mut report_unread, mut runs) =
        (Vec::new(), 0, 0, Vec::new(), Vec::new());
    for (run, w) in futures::stream::iter(reads).buffered(SCOPE_CONCURRENCY).collect::<Vec<_>>().await {
        judged.extend(w.judged);
        metric_calls += w.metric_calls;
        metric_queries += w.metric_queries;
        report_unread.extend(w.unread);
        runs.push(run);
    }
    let window = ReportWindow { week: week.clone(), start, end, generated_at: iso(t) };
    let report = wr::build(&window, judged, metric_calls, metric_queries, report_unread)
        .with_accounts(runs, (!shard.is_whole_fleet()).then(|| shard.clone()));
    let redactor = crate::telemetry::redactor();
    let mut json_value = serde_json::to_value(&report).unwrap_or(Value::Null);
    redactor.json(&mut json_value);
    // Every text of the page is redacted; the charts' geometry is numbers and is passed over.
    let page = wr::scrub_page(&wr::html(&report), |t| redactor.text(t));
    let bucket = &app.config.evidence_bucket;
    let prefix = format!("reports/weekly/{week}/{}", shard_suffix(shard));
    let objects = store_report(app, &prefix, &json_value, page).await;
    let (subject_line, body) = wr::summary(&report, &objects, &format!("s3://{bucket}/{prefix}"));
    let highlights = report
        .services
        .iter()
        .filter(|s| !s.recommendation_text.is_empty())
        .take(5)
        .map(|s| {
            redactor.text(&format!(
                "{}{}/{}: {}",
                s.label_prefix,
                s.cluster,
                s.service,
                s.recommendation_text.join("; ")
            ))
        })
        .collect();
    let summary =
        ReportSummary { subject_line, body, severity: Severity::Info, highlights, objects: &objects, prefix: &prefix };
    let message_id = publish_summary(app, summary, &redactor).await?;
    let failed = AccountScope::failures(report.accounts.iter().map(|a| &a.scope));
    let mut o = Outcome::new(
        Kind::Report,
        Severity::Info,
        Cause::Expected,
        format!(
            "weekly review {week}: {} services ({} scale-up, {} right-size), {} deployments{}",
            report.services.len(),
            report.scale_up.len(),
            report.right_size.len(),
            report.delivery.deployments,
            fleet_suffix(report.is_fleet(), report.accounts.len(), &failed)
        ),
    );
    o.notified = Some(message_id);
    o.evidence = Some(format!("s3://{bucket}/{prefix}"));
    o.details = Some(json!({
        "report": format!("{prefix}report.json"),
        "html": format!("{prefix}report.html"),
        "services": report.services.len(),
        "scale_up": report.scale_up,
        "right_size": report.right_size,
        "metric_calls": report.metric_calls,
        "metric_queries": report.metric_queries,
        "accounts": report.accounts.len(),
        "failed_accounts": failed,
    }));
    Ok(o)
}

/// What one account and region's weekly reads came to.
#[derive(Default)]
struct ScopeWeek {
    judged: Vec<(crate::reports::weekly::ServiceWeek, crate::reports::weekly::DeliveryFacts)>,
    metric_calls: usize,
    metric_queries: usize,
    /// Reads that failed for more than one service, labelled with the scope.
    unread: Vec<String>,
}

/// Place the App in `scope` and read its week; what fails for the whole
/// scope is named in its run, never the end of the review.
async fn week_of_scope(app: &App, mut run: ScopeRun, scope: &Scope, window: (i64, i64)) -> (ScopeRun, ScopeWeek) {
    let week = match placed(app, &mut run, scope).await {
        Some(placed) => week_of_placed(&placed, &mut run, scope, window).await,
        None => ScopeWeek::default(),
    };
    say_failure(&run, "weekly");
    (run, week)
}

/// One placed App's week: its services, their autoscaling targets and load
/// balancers and metrics in batches, then each service's own reads.
async fn week_of_placed(app: &App, run: &mut ScopeRun, scope: &Scope, (start, end): (i64, i64)) -> ScopeWeek {
    use crate::adapters::{autoscaling, cloudwatch, ecs, elb};
    use crate::reports::weekly::{self as wr, LoadBalancedTarget, MetricAnswers, ServiceRef};
    use futures::StreamExt;
    let label = scope.label_prefix();
    let mut unread = Vec::new();
    // 1. Services: ListServices, DescribeServices ten at a time.
    let clusters = match clusters_in_scope(app).await {
        Ok(c) => c,
        Err(e) => {
            run.fail(format!("clusters not listed: {e}"));
            return ScopeWeek::default();
        }
    };
    let mut snapshots = Vec::new();
    for cluster in clusters {
        let names: Vec<String> = match ecs::list_services(&app.clients, &cluster).await {
            Ok(arns) => arns.iter().map(|a| crate::arn::last_segment(a).to_string()).collect(),
            Err(e) if cluster_absent(&e) && !app.config.clusters.is_empty() => {
                run.clusters_absent.push(cluster.clone());
                continue;
            }
            Err(e) => {
                unread.push(format!("{label}cluster {cluster}: {e}"));
                run.fail(format!("services of cluster {cluster} not listed: {e}"));
                continue;
            }
        };
        match ecs::describe_services(&app.clients, &cluster, &names).await {
            Ok(s) => snapshots.extend(s),
            Err(e) => {
                unread.push(format!("{label}services of {cluster}: {e}"));
                run.fail(format!("services of cluster {cluster} not described: {e}"));
            }
        }
    }
    snapshots.sort_by(|a, b| (&a.cluster, &a.service).cmp(&(&b.cluster, &b.service)));
    // 2. Autoscaling targets, 50 services per call.
    let resources: Vec<String> = snapshots.iter().map(|s| format!("service/{}/{}", s.cluster, s.service)).collect();
    let scaling: Result<Vec<(String, i32, i32)>, _> = if resources.is_empty() {
        Ok(Vec::new())
    } else {
        autoscaling::scalable_targets(&app.clients, &resources).await
    };
    // 3. The load balancer of each target group, 20 per call.
    let tg_arns: Vec<String> = {
        let mut v: Vec<String> = snapshots.iter().flat_map(|s| s.target_group_arns.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let lbs: Result<Vec<elb::TargetGroupLoadBalancers>, _> = if tg_arns.is_empty() {
        Ok(Vec::new())
    } else {
        elb::target_group_load_balancers(&app.clients, &tg_arns).await
    };
    let refs: Vec<ServiceRef> = snapshots
        .iter()
        .map(|s| ServiceRef {
            cluster: s.cluster.clone(),
            service: s.service.clone(),
            targets: s
                .target_group_arns
                .iter()
                .map(|tg| {
                    let lb = lbs
                        .as_ref()
                        .ok()
                        .and_then(|l| l.iter().find(|g| &g.target_group_arn == tg))
                        .and_then(|g| g.load_balancer_arns.first());
                    LoadBalancedTarget::from_arns(tg, lb.map(String::as_str))
                })
                .collect(),
        })
        .collect();

    // 4. Metrics: every service's queries in batches of up to 500 per call.
    let batches = wr::plan_queries(&refs, wr::WINDOW_SECONDS);
    let metric_queries: usize = batches.iter().map(Vec::len).sum();
    let mut answers = MetricAnswers::default();
    for batch in &batches {
        match cloudwatch::metric_data(&app.clients, batch, start, end).await {
            Ok(values) => answers.values.extend(values),
            Err(e) => answers.failed.extend(batch.iter().map(|q| (q.id.clone(), e.to_string()))),
        }
    }

    // 5. Per service: its task definition's size and its delivery records, a few at a time.
    let attribution = app.config.settings.limits.rollback_window_seconds;
    let reads = WeeklyReads { scaling: &scaling, lbs: &lbs, refs: &refs, answers: &answers, start, end, attribution };
    let futures: Vec<_> = snapshots.iter().enumerate().map(|(i, s)| week_of_service(app, &reads, i, s, run)).collect();
    let per_service = futures::stream::iter(futures).buffered(WEEKLY_CONCURRENCY).collect::<Vec<_>>().await;
    ScopeWeek { judged: per_service, metric_calls: batches.len(), metric_queries, unread }
}

/// What every service's weekly reads share.
struct WeeklyReads<'a> {
    scaling: &'a Result<Vec<(String, i32, i32)>, crate::error::AwsError>,
    lbs: &'a Result<Vec<crate::adapters::elb::TargetGroupLoadBalancers>, crate::error::AwsError>,
    refs: &'a [crate::reports::weekly::ServiceRef],
    answers: &'a crate::reports::weekly::MetricAnswers,
    start: i64,
    end: i64,
    attribution: i64,
}

/// One service's week: its task size, autoscaling, metrics and delivery
/// records, judged. What cannot be read is named in its `unread`.
async fn week_of_service(
    app: &App,
    r: &WeeklyReads<'_>,
    i: usize,
    s: &crate::snapshot::ServiceSnapshot,
    run: &ScopeRun,
) -> (crate::reports::weekly::ServiceWeek, crate::reports::weekly::DeliveryFacts) {
    use crate::adapters::ecs;
    use crate::reports::weekly::{
        self as wr, Autoscaling, CapacityFacts, DeliveryFacts, DeploymentRecord, FargateSize, WeekFacts,
    };
    let (scaling, lbs, refs, answers, start, end, attribution) =
        (r.scaling, r.lbs, r.refs, r.answers, r.start, r.end, r.attribution);
    let mut unread = Vec::new();
    let size = match &s.task_definition {
        Some(td) => match ecs::describe_task_definition(&app.clients, td).await {
            Ok(td) => {
                match (td.cpu.as_deref().and_then(wr::parse_cpu), td.memory.as_deref().and_then(wr::parse_memory)) {
                    (Some(cpu), Some(memory)) => Some(FargateSize { cpu, memory }),
                    _ => {
                        unread.push("task size: the task definition names no task-level CPU and memory".into());
                        None
                    }
                }
            }
            Err(e) => {
                unread.push(format!("task definition: {e}"));
                None
            }
        },
        None => None,
    };
    let resource = format!("service/{}/{}", s.cluster, s.service);
    let autoscaling = match scaling {
        Ok(targets) => {
            targets.iter().find(|(r, _, _)| *r == resource).map(|(_, min, max)| Autoscaling { min: *min, max: *max })
        }
        Err(e) => {
            unread.push(format!("autoscaling: {e}"));
            None
        }
    };
    if let Err(e) = lbs
        && !s.target_group_arns.is_empty()
    {
        unread.push(format!("load balancers: {e}"));
    }
    let metrics = wr::service_metrics(i, &refs[i], answers, (start, end), &mut unread);
    let mut delivery = DeliveryFacts::default();
    match app.state.deployments().deployments_since(&s.cluster, &s.service, start).await {
        Ok(d) => delivery.deployments = d,
        Err(e) => unread.push(format!("deployments: {e}")),
    }
    // ECS's own list of the service's deployments fills in those never seen by an event.
    for d in &s.deployments {
        let Some(at) = d.created_at.as_deref().and_then(crate::lenient::parse_time).map(|t| t.timestamp()) else {
            continue;
        };
        if at >= start && !delivery.deployments.iter().any(|r| r.id == d.id) {
            let state = d.rollout_state.clone().unwrap_or_else(|| d.status.clone());
            delivery.deployments.push(DeploymentRecord {
                id: d.id.clone(),
                started_at: at,
                failed: state == "FAILED",
                state,
            });
        }
    }
    let subject = crate::incident::Subject::service(s.cluster.as_str(), s.service.as_str()).at(app.scope());
    match app.state.incidents().since(&subject, start).await {
        Ok(i) => delivery.incidents = i,
        Err(e) => unread.push(format!("incidents: {e}")),
    }
    match app.state.actions().ledger_since(&s.cluster, &s.service, start).await {
        Ok(l) => {
            delivery.rollbacks = l
                .iter()
                .filter(|e| e.action == crate::outcome::ActionKind::Rollback && e.status.may_have_acted())
                .map(|e| e.at)
                .collect()
        }
        Err(e) => unread.push(format!("ledger: {e}")),
    }
    // Lead time: from the commit's time to the pipeline's ECS deploy action
    // succeeding (the ECS action waits for the service to be steady), as
    // pipeline-events recorded it on the service.
    match app.state.pipelines().pipeline_deploys(&s.cluster, &s.service).await {
        Ok(links) => {
            delivery.lead_times = links
                .iter()
                .filter(|l| l.status == "Succeeded")
                .filter_map(|l| {
                    let running_at = l.finished_at.filter(|t| *t >= start)?;
                    let commit = l.commit.as_ref()?;
                    Some(crate::reports::weekly::LeadTimeSample {
                        cluster: s.cluster.clone(),
                        service: s.service.clone(),
                        commit: Some(commit.id.clone()),
                        deployment_id: Some(format!("{} {}", l.pipeline, l.execution_id)),
                        commit_at: commit.created_at?,
                        running_at,
                    })
                })
                .collect();
        }
        Err(e) => unread.push(format!("pipeline deployments: {e}")),
    }
    let facts = WeekFacts {
        account: run.account.clone(),
        region: run.region.clone(),
        label_prefix: app.scope().label_prefix(),
        cluster: s.cluster.clone(),
        service: s.service.clone(),
        capacity: CapacityFacts { size, running: s.running, desired: s.desired, autoscaling },
        metrics,
        delivery,
        unread,
    };
    wr::judge(facts, start, end, attribution)
}

/// Services read at a time by the daily check (each: target health, task
/// definition, log groups, incidents, ledger).
const DAILY_CONCURRENCY: usize = 8;

/// One service's day: its targets, alarms, error lines, incidents and
/// actions, judged. What cannot be read is named in its `unread`.
async fn day_of_service(
    app: &App,
    (account, region): &(Option<String>, String),
    cluster: &str,
    name: &str,
    snapshot: Option<crate::snapshot::ServiceSnapshot>,
    (alarms, alarms_unread): (&[crate::adapters::cloudwatch::FiringAlarm], &Option<String>),
    since: i64,
) -> crate::reports::daily::ServiceDay {
    use crate::adapters::{ecs, elb, logs};
    use crate::reports::daily::{ErrorCount, ServiceFacts, TargetCount, judge};
    let cluster = &cluster.to_string();
    let name = &name.to_string();
    let mut facts = ServiceFacts {
        account: account.clone(),
        region: region.clone(),
        cluster: cluster.clone(),
        service: name.clone(),
        ..Default::default()
    };
    facts.unread.extend(alarms_unread.clone());
    if let Some(s) = &snapshot {
        for tg in &s.target_group_arns {
            match elb::target_health(&app.clients, tg).await {
                Ok(h) => facts.targets.push(TargetCount {
                    target_group: target_group_name(tg).to_string(),
                    healthy: h.healthy(),
                    total: h.targets.len(),
                }),
                Err(e) => facts.unread.push(format!("target health: {e}")),
            }
        }
        // An alarm maps to the service by its ECS dimensions or by one of its target groups.
        // (an alarm's TargetGroup dimension is the ARN's last part, `targetgroup/<name>/<id>`)
        let tg_suffixes: Vec<&str> = s.target_group_arns.iter().filter_map(|a| a.rsplit(':').next()).collect();
        facts.alarms = alarms
            .iter()
            .filter(|a| {
                let dim = |k: &str| a.dimensions.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                (dim("ClusterName") == Some(cluster.as_str()) && dim("ServiceName") == Some(name.as_str()))
                    || dim("TargetGroup").is_some_and(|v| tg_suffixes.contains(&v))
            })
            .map(|a| a.name.clone())
            .collect();
        if let Some(td) = &s.task_definition {
            match ecs::describe_task_definition(&app.clients, td).await {
                Ok(td) => {
                    let mut groups: Vec<String> =
                        td.containers.iter().filter_map(|c| c.awslogs_group().map(str::to_string)).collect();
                    groups.sort();
                    groups.dedup();
                    let (allowed, refused): (Vec<_>, Vec<_>) =
                        groups.into_iter().partition(|g| app.config.log_group_allowed(g));
                    for g in refused {
                        facts.unread.push(format!("log group {g} is outside LOG_GROUP_PREFIXES"));
                    }
                    if !allowed.is_empty() {
                        let mut count = ErrorCount {
                            log_groups: allowed.clone(),
                            errors: 0,
                            method: "FilterLogEvents".into(),
                            capped: false,
                        };
                        for g in &allowed {
                            match logs::count_error_lines(&app.clients, g, since * 1000, ERROR_COUNT_PAGES).await {
                                Ok((n, capped)) => {
                                    count.errors += n;
                                    count.capped |= capped;
                                }
                                Err(e) => facts.unread.push(format!("logs: {e}")),
                            }
                        }
                        facts.errors = Some(count);
                    }
                }
                Err(e) => facts.unread.push(format!("task definition: {e}")),
            }
        }
    }
    let subject = crate::incident::Subject::service(cluster.as_str(), name.as_str()).at(app.scope());
    match app.state.incidents().since(&subject, since).await {
        Ok(i) => facts.incidents = i,
        Err(e) => facts.unread.push(format!("incidents: {e}")),
    }
    match app.state.actions().ledger_since(cluster, name, since).await {
        Ok(l) => facts.ledger = l,
        Err(e) => facts.unread.push(format!("ledger: {e}")),
    }
    facts.snapshot = snapshot;
    judge(facts, since)
}
