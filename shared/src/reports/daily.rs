//! The daily health check (the runbooks' 09:00 check), as plain data and its
//! renderings: the JSON report, a self-contained HTML page (no external
//! assets, no JavaScript) and the SNS summary, worst service first. Pure:
//! the scheduled-reports flow gathers the facts and stores the results.

use maud::{DOCTYPE, Markup, html};
use serde::Serialize;

use crate::error::AwsError;
use crate::redact::{LinkLifetime, Outgoing, OwnLink, PresignedLink};
use crate::snapshot::{LedgerEntry, ServiceSnapshot};

/// How a service did over the day, worst first when sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Down,
    Degraded,
    Healthy,
    /// Its facts could not be read.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetCount {
    pub target_group: String,
    pub healthy: usize,
    pub total: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentLine {
    pub id: String,
    pub status: String,
    pub task_definition: String,
    pub created_at: Option<String>,
    /// COMPLETED, FAILED, IN_PROGRESS as ECS reports the rollout.
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentLine {
    pub id: String,
    pub severity: String,
    pub cause: String,
    pub summary: String,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    /// Time to recover, seconds, for resolved ones.
    pub ttr_seconds: Option<i64>,
    pub resolution: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionLine {
    pub at: i64,
    pub action: String,
    pub status: String,
    pub detail: String,
}

/// Error lines counted in the service's log groups over the day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorCount {
    pub log_groups: Vec<String>,
    pub errors: u64,
    /// `FilterLogEvents` (counted client-side) or `Logs Insights`.
    pub method: String,
    /// Counting stopped at the page cap: "at least" `errors`.
    pub capped: bool,
}

/// One service's day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceDay {
    pub cluster: String,
    pub service: String,
    pub health: Health,
    pub reasons: Vec<String>,
    pub status: Option<String>,
    pub running: i32,
    pub desired: i32,
    pub pending: i32,
    pub task_definition: Option<String>,
    pub deployments: Vec<DeploymentLine>,
    pub targets: Vec<TargetCount>,
    pub alarms: Vec<String>,
    pub errors: Option<ErrorCount>,
    pub incidents: Vec<IncidentLine>,
    pub actions: Vec<ActionLine>,
    /// What could not be read (the report says so rather than guessing).
    pub unread: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyReport {
    pub date: String,
    pub generated_at: String,
    pub window_hours: u32,
    pub services: Vec<ServiceDay>,
    pub totals: Totals,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub services: usize,
    pub down: usize,
    pub degraded: usize,
    pub healthy: usize,
    pub unknown: usize,
    pub incidents_opened: usize,
    pub incidents_resolved: usize,
    /// Mean time to recover over the resolved ones, seconds.
    pub mean_ttr_seconds: Option<i64>,
    pub actions_executed: usize,
    pub deployments: usize,
}

/// The facts of one service, as read, before they are judged.
#[derive(Debug, Clone, Default)]
pub struct ServiceFacts {
    pub cluster: String,
    pub service: String,
    pub snapshot: Option<ServiceSnapshot>,
    pub targets: Vec<TargetCount>,
    pub alarms: Vec<String>,
    pub errors: Option<ErrorCount>,
    pub incidents: Vec<IncidentLine>,
    pub ledger: Vec<LedgerEntry>,
    pub unread: Vec<String>,
}

/// Judge one service's day (pure): down when nothing runs or no target is
/// healthy; degraded when short of tasks, alarming, with an open incident, a
/// failed deployment or a failed action; healthy otherwise.
pub fn judge(f: ServiceFacts, since: i64) -> ServiceDay {
    let mut reasons = Vec::new();
    let (status, running, desired, pending, task_definition, deployments) = match &f.snapshot {
        Some(s) => (
            s.status.clone(),
            s.running,
            s.desired,
            s.pending,
            s.task_definition.clone(),
            s.deployments
                .iter()
                .filter(|d| {
                    d.created_at.as_deref().and_then(crate::lenient::parse_time).is_some_and(|t| t.timestamp() >= since)
                })
                .map(|d| DeploymentLine {
                    id: d.id.clone(),
                    status: d.status.clone(),
                    task_definition: crate::arn::last_segment(&d.task_definition).to_string(),
                    created_at: d.created_at.clone(),
                    outcome: d.rollout_state.clone().unwrap_or_else(|| "unknown".into()),
                })
                .collect::<Vec<_>>(),
        ),
        None => (None, 0, 0, 0, None, Vec::new()),
    };
    let mut health = Health::Healthy;
    let mut worse = |h: Health, why: String, reasons: &mut Vec<String>| {
        health = health.min(h);
        reasons.push(why);
    };
    if f.snapshot.is_none() {
        reasons.push("service not readable".into());
    } else {
        if desired > 0 && running == 0 {
            worse(Health::Down, format!("0 of {desired} tasks running"), &mut reasons);
        } else if running < desired {
            worse(Health::Degraded, format!("{running} of {desired} tasks running"), &mut reasons);
        }
        for t in f.targets.iter().filter(|t| t.total > 0) {
            if t.healthy == 0 {
                worse(Health::Down, format!("target group {}: no healthy target", t.target_group), &mut reasons);
            } else if t.healthy < t.total {
                worse(
                    Health::Degraded,
                    format!("target group {}: {}/{} healthy", t.target_group, t.healthy, t.total),
                    &mut reasons,
                );
            }
        }
    }
    for a in &f.alarms {
        worse(Health::Degraded, format!("alarm {a} in ALARM"), &mut reasons);
    }
    for d in deployments.iter().filter(|d| d.outcome == "FAILED") {
        worse(Health::Degraded, format!("deployment {} failed", d.id), &mut reasons);
    }
    for i in f.incidents.iter().filter(|i| i.closed_at.is_none()) {
        worse(Health::Degraded, format!("incident {} open ({})", i.id, i.severity), &mut reasons);
    }
    let actions: Vec<ActionLine> = f
        .ledger
        .iter()
        .filter(|e| e.at >= since)
        .map(|e| ActionLine {
            at: e.at,
            action: e.action.as_str().into(),
            status: e.status.as_str().into(),
            detail: e.detail.clone(),
        })
        .collect();
    if actions.iter().any(|a| a.status == "failed") {
        worse(Health::Degraded, "an automatic action failed".into(), &mut reasons);
    }
    if f.snapshot.is_none() {
        health = Health::Unknown;
    }
    ServiceDay {
        cluster: f.cluster,
        service: f.service,
        health,
        reasons,
        status,
        running,
        desired,
        pending,
        task_definition: task_definition.map(|t| crate::arn::last_segment(&t).to_string()),
        deployments,
        targets: f.targets,
        alarms: f.alarms,
        errors: f.errors,
        incidents: f.incidents,
        actions,
        unread: f.unread,
    }
}

/// The report over all services, worst first (then by how many reasons, then by name).
pub fn build(date: &str, generated_at: &str, mut services: Vec<ServiceDay>) -> DailyReport {
    services.sort_by(|a, b| {
        a.health
            .cmp(&b.health)
            .then(b.reasons.len().cmp(&a.reasons.len()))
            .then_with(|| (&a.cluster, &a.service).cmp(&(&b.cluster, &b.service)))
    });
    let mut t = Totals { services: services.len(), ..Default::default() };
    let mut ttrs = Vec::new();
    for s in &services {
        match s.health {
            Health::Down => t.down += 1,
            Health::Degraded => t.degraded += 1,
            Health::Healthy => t.healthy += 1,
            Health::Unknown => t.unknown += 1,
        }
        t.incidents_opened += s.incidents.len();
        t.incidents_resolved += s.incidents.iter().filter(|i| i.closed_at.is_some()).count();
        ttrs.extend(s.incidents.iter().filter_map(|i| i.ttr_seconds));
        t.actions_executed += s.actions.iter().filter(|a| a.status == "executed").count();
        t.deployments += s.deployments.len();
    }
    t.mean_ttr_seconds = (!ttrs.is_empty()).then(|| ttrs.iter().sum::<i64>() / ttrs.len() as i64);
    DailyReport { date: date.into(), generated_at: generated_at.into(), window_hours: 24, services, totals: t }
}

fn health_word(h: Health) -> &'static str {
    match h {
        Health::Down => "DOWN",
        Health::Degraded => "DEGRADED",
        Health::Healthy => "healthy",
        Health::Unknown => "UNKNOWN",
    }
}

/// One stored report object (`report.html`, `report.json`) and where people
/// open it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportObject {
    /// `HTML`, `JSON`.
    pub label: String,
    pub key: String,
    /// Why there is nothing to open, when the object was not stored.
    pub links: Result<ObjectLinks, AwsError>,
}

/// The two links of a stored object: the S3 console page (durable: it opens
/// after sign-in as long as the object is kept) and a presigned URL (opens
/// without sign-in, for a stated time), or why it could not be made.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectLinks {
    pub console: OwnLink,
    pub presigned: Result<PresignedLink, AwsError>,
}

impl ReportObject {
    /// The console link, for chat (which shows links to people who sign in).
    pub fn console(&self) -> Option<(String, String)> {
        self.links.as_ref().ok().map(|l| (format!("{} report (S3 console)", self.label), l.console.url().to_string()))
    }
}

/// The closing section of a report summary: where the objects are kept and,
/// per object, its console link and its presigned link with how long that
/// opens. Our links go in as [`OwnLink`]s: redaction leaves them whole.
pub fn links_section(out: &mut Outgoing, objects: &[ReportObject], kept_at: &str) {
    out.text(format!("Full report (kept in the evidence bucket at {kept_at}):\n"));
    for o in objects {
        match &o.links {
            Err(why) => {
                out.text(format!("- {}: not stored: {why}\n", o.label));
            }
            Ok(links) => {
                out.text(format!(
                    "- {} in the S3 console (sign-in needed; opens as long as the object is kept): ",
                    o.label
                ));
                out.link(&links.console).text("\n");
                match &links.presigned {
                    Ok(p) => {
                        out.text(format!("  {} presigned, {}: ", o.label, presigned_lifetime(p)));
                        out.link(&p.link).text("\n");
                    }
                    Err(why) => {
                        out.text(format!("  {} presigned: no link ({why})\n", o.label));
                    }
                }
            }
        }
    }
}

/// How long a presigned link opens, in words.
pub fn presigned_lifetime(p: &PresignedLink) -> String {
    let until = chrono::DateTime::from_timestamp(p.expires_at, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| p.expires_at.to_string());
    let length = crate::notify::render::human_duration(p.lifetime_seconds);
    match p.basis {
        LinkLifetime::Full => format!("opens without sign-in for {length}, until {until}"),
        LinkLifetime::CutToCredentials => {
            format!("opens without sign-in for {length}, until {until}, when the credentials that signed it expire")
        }
        LinkLifetime::UntilSessionEnds => format!(
            "opens without sign-in until the function's role session that signed it ends (within hours; {until} at the latest)"
        ),
    }
}

/// The SNS summary: totals, then one line per service, worst first, and
/// where the full report is, each link with how long it opens. The subject
/// is plain text; the body is an [`Outgoing`] text whose own links
/// redaction leaves whole.
pub fn summary(r: &DailyReport, objects: &[ReportObject], kept_at: &str) -> (String, Outgoing) {
    let t = &r.totals;
    let subject = format!(
        "[DAILY] {}: {} services - {} down, {} degraded, {} healthy",
        r.date, t.services, t.down, t.degraded, t.healthy
    );
    let mut b = String::new();
    b.push_str(&format!("DAILY HEALTH CHECK - {} (last {} h)\n\n", r.date, r.window_hours));
    b.push_str(&format!(
        "{} services: {} down, {} degraded, {} healthy, {} unreadable\n",
        t.services, t.down, t.degraded, t.healthy, t.unknown
    ));
    b.push_str(&format!(
        "Incidents: {} opened, {} resolved{}; actions executed: {}; deployments: {}\n\n",
        t.incidents_opened,
        t.incidents_resolved,
        t.mean_ttr_seconds
            .map(|s| format!(", mean time to recover {}", crate::notify::render::human_duration(s)))
            .unwrap_or_default(),
        t.actions_executed,
        t.deployments
    ));
    for s in &r.services {
        let why = if s.reasons.is_empty() { String::new() } else { format!(" - {}", s.reasons.join("; ")) };
        let errors = s
            .errors
            .as_ref()
            .map(|e| format!(", {}{} error lines", e.errors, if e.capped { "+" } else { "" }))
            .unwrap_or_default();
        b.push_str(&format!(
            "{:9} {}/{}: {}/{} running{errors}{why}\n",
            health_word(s.health),
            s.cluster,
            s.service,
            s.running,
            s.desired
        ));
    }
    b.push('\n');
    let mut body = Outgoing::new();
    body.text(b);
    links_section(&mut body, objects, kept_at);
    (subject, body)
}

fn when(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

/// The self-contained HTML page (maud escapes every value).
pub fn html(r: &DailyReport) -> String {
    let page: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Daily health check " (r.date) }
                style { (STYLE) }
            }
            body {
                h1 { "Daily health check — " (r.date) }
                p.meta { "Last " (r.window_hours) " hours, generated " (r.generated_at) "." }
                table.totals {
                    tr { th { "services" } th { "down" } th { "degraded" } th { "healthy" } th { "unreadable" } th { "incidents opened / resolved" } th { "mean time to recover" } th { "actions executed" } th { "deployments" } }
                    tr {
                        td { (r.totals.services) } td.down { (r.totals.down) } td.degraded { (r.totals.degraded) } td.healthy { (r.totals.healthy) } td { (r.totals.unknown) }
                        td { (r.totals.incidents_opened) " / " (r.totals.incidents_resolved) }
                        td { (r.totals.mean_ttr_seconds.map(crate::notify::render::human_duration).unwrap_or_else(|| "-".into())) }
                        td { (r.totals.actions_executed) } td { (r.totals.deployments) }
                    }
                }
                @for s in &r.services {
                    section class=(health_word(s.health).to_ascii_lowercase()) {
                        h2 { span.badge { (health_word(s.health)) } " " (s.cluster) "/" (s.service) }
                        @if !s.reasons.is_empty() { ul.reasons { @for why in &s.reasons { li { (why) } } } }
                        p { (s.running) " running / " (s.desired) " desired / " (s.pending) " pending"
                            @if let Some(td) = &s.task_definition { " — " code { (td) } }
                            @if let Some(st) = &s.status { " — " (st) } }
                        @if !s.targets.is_empty() {
                            h3 { "Targets" }
                            ul { @for t in &s.targets { li { code { (t.target_group) } ": "
                                @if t.total == 0 { "no registered targets" } @else { (t.healthy) "/" (t.total) " healthy" } } } }
                        }
                        @if !s.deployments.is_empty() {
                            h3 { "Deployments" }
                            table { tr { th { "id" } th { "revision" } th { "started" } th { "outcome" } }
                                @for d in &s.deployments { tr { td { code { (d.id) } } td { (d.task_definition) } td { (d.created_at.as_deref().and_then(crate::lenient::parse_time).map(|t| when(t.timestamp())).unwrap_or_default()) } td { (d.outcome) } } } }
                        }
                        @if !s.alarms.is_empty() {
                            h3 { "Alarms in ALARM" }
                            ul { @for a in &s.alarms { li { (a) } } }
                        }
                        @if let Some(e) = &s.errors {
                            p { "Error lines: " strong { (e.errors) @if e.capped { "+" } } " (" (e.method) " over " (e.log_groups.join(", ")) ")" }
                        }
                        @if !s.incidents.is_empty() {
                            h3 { "Incidents" }
                            table { tr { th { "incident" } th { "severity" } th { "cause" } th { "opened" } th { "resolved" } th { "time to recover" } }
                                @for i in &s.incidents { tr {
                                    td { code { (i.id) } br; (i.summary) } td { (i.severity) } td { (i.cause) } td { (when(i.opened_at)) }
                                    td { (i.closed_at.map(when).unwrap_or_else(|| "open".into())) }
                                    td { (i.ttr_seconds.map(crate::notify::render::human_duration).unwrap_or_else(|| "-".into())) }
                                } } }
                        }
                        @if !s.actions.is_empty() {
                            h3 { "Actions" }
                            ul { @for a in &s.actions { li { (when(a.at)) " " (a.action) " " strong { (a.status) } ": " (a.detail) } } }
                        }
                        @if !s.unread.is_empty() {
                            p.unread { "Not read: " (s.unread.join("; ")) }
                        }
                    }
                }
            }
        }
    };
    page.into_string()
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}h1{font-size:1.5em}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
section{border-left:6px solid #9c9;padding:.25em 1em;margin:1em 0}section.down{border-color:#d33}\
section.degraded{border-color:#e90}section.unknown{border-color:#999}.badge{font-size:.8em;padding:.1em .4em;background:#eee}\
td.down{color:#d33}td.degraded{color:#c70}td.healthy{color:#393}.unread{color:#777}.meta{color:#555}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::DeploymentSnapshot;

    const DAY0: i64 = 1_795_000_000;

    fn facts(name: &str, running: i32, desired: i32) -> ServiceFacts {
        ServiceFacts {
            cluster: "prod".into(),
            service: name.into(),
            snapshot: Some(ServiceSnapshot { running, desired, status: Some("ACTIVE".into()), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn services_are_judged_and_listed_worst_first() {
        let down = judge(facts("down", 0, 2), DAY0);
        let mut alarming = facts("alarming", 2, 2);
        alarming.alarms = vec!["api-5xx".into()];
        let alarming = judge(alarming, DAY0);
        let fine = judge(facts("fine", 3, 3), DAY0);
        let unread = judge(ServiceFacts { cluster: "prod".into(), service: "gone".into(), ..Default::default() }, DAY0);
        let mut deployed = facts("deployed", 2, 2);
        if let Some(s) = deployed.snapshot.as_mut() {
            s.deployments = vec![
                DeploymentSnapshot {
                    id: "ecs-svc/new".into(),
                    rollout_state: Some("FAILED".into()),
                    created_at: Some("2026-11-20T10:00:00Z".into()),
                    ..Default::default()
                },
                DeploymentSnapshot {
                    id: "ecs-svc/old".into(),
                    rollout_state: Some("COMPLETED".into()),
                    created_at: Some("2020-01-01T00:00:00Z".into()),
                    ..Default::default()
                },
            ];
        }
        let deployed = judge(deployed, DAY0);
        assert_eq!(deployed.deployments.len(), 1, "only the last 24 hours");
        assert_eq!(deployed.health, Health::Degraded);
        let r = build("2026-11-20", "2026-11-20T09:00:00Z", vec![fine, alarming, unread, down, deployed]);
        let order: Vec<(&str, Health)> = r.services.iter().map(|s| (s.service.as_str(), s.health)).collect();
        assert_eq!(order[0], ("down", Health::Down));
        assert_eq!(order.last(), Some(&("gone", Health::Unknown)));
        assert_eq!((r.totals.down, r.totals.degraded, r.totals.healthy, r.totals.unknown), (1, 2, 1, 1));
        let (subject, body) = summary(&r, &[], "s3://ev/reports/daily/2026-11-20/");
        let body = body.render(&crate::redact::Redactor::new());
        assert!(subject.contains("1 down"), "{subject}");
        let down_at = body.find("prod/down").unwrap();
        let fine_at = body.find("prod/fine").unwrap();
        assert!(down_at < fine_at, "worst first:\n{body}");
        assert!(body.contains("kept in the evidence bucket at s3://ev/reports/daily/2026-11-20/"), "{body}");
    }

    /// A presigned URL as the SDK writes it, signature and all.
    const PRESIGNED: &str = "http://127.0.0.1:5000/ev/reports/daily/2026-11-20/report.html?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAY34FZKBOKMUTVV7A%2F20261120%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261120T090000Z&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEHYaCXVzLWVhc3QtMSJHMEUCIQ&X-Amz-Signature=2f9d3b1c0e8a7f6d5c4b3a29180f7e6d5c4b3a2918f0e1d2c3b4a59687f6e5d4";

    fn objects(basis: LinkLifetime, lifetime_seconds: i64) -> Vec<ReportObject> {
        let signed_at = 1_795_165_200; // 2026-11-20T09:00:00Z
        vec![
            ReportObject {
                label: "HTML".into(),
                key: "reports/daily/2026-11-20/report.html".into(),
                links: Ok(ObjectLinks {
                    console: OwnLink::new(
                        "https://us-east-1.console.aws.amazon.com/s3/object/ev?region=us-east-1&bucketType=general&prefix=reports/daily/2026-11-20/report.html",
                    ),
                    presigned: Ok(PresignedLink {
                        link: OwnLink::new(PRESIGNED),
                        signed_at,
                        expires_at: signed_at + lifetime_seconds,
                        lifetime_seconds,
                        basis,
                    }),
                }),
            },
            ReportObject {
                label: "JSON".into(),
                key: "reports/daily/2026-11-20/report.json".into(),
                links: Err(AwsError::answer(
                    "s3",
                    "PutObject",
                    "s3://ev/reports/daily/2026-11-20/report.json",
                    "AccessDenied",
                )),
            },
        ]
    }

    #[test]
    fn the_summary_links_should_leave_unredacted_and_say_how_long_the_presigned_one_opens() {
        let mut down = facts("down", 0, 2);
        // Text of the report that is not ours: a presigned URL someone logged, and a password.
        down.alarms = vec![format!("see {PRESIGNED} password=hunter2x9")];
        let r = build("2026-11-20", "2026-11-20T09:00:00Z", vec![judge(down, DAY0)]);
        let (_, body) = summary(&r, &objects(LinkLifetime::Full, 7 * 24 * 3600), "s3://ev/reports/daily/2026-11-20/");
        let text = body.render(&crate::redact::Redactor::new());
        let ours: Vec<&str> = text.lines().filter(|l| l.contains(PRESIGNED)).collect();
        assert_eq!(ours.len(), 1, "our presigned link once, whole: {text}");
        assert!(
            ours[0]
                .starts_with("  HTML presigned, opens without sign-in for 7d 0h, until 2026-11-27T09:00:00Z: http://"),
            "{text}"
        );
        assert!(text.contains("- HTML in the S3 console (sign-in needed; opens as long as the object is kept): https://us-east-1.console.aws.amazon.com/s3/object/ev?"), "{text}");
        assert!(
            text.contains(
                "- JSON: not stored: s3:PutObject on s3://ev/reports/daily/2026-11-20/report.json: AccessDenied"
            ),
            "{text}"
        );
        // The same URL in the report's own text is not ours: its signature goes.
        let alarm_line = text.lines().find(|l| l.contains("prod/down")).unwrap();
        assert!(
            alarm_line.contains("X-Amz-Signature=***REDACTED***") && alarm_line.contains("password=***REDACTED***"),
            "{alarm_line}"
        );
        assert_eq!(body.links().len(), 2, "console and presigned link of the stored object");
    }

    #[test]
    fn a_link_cut_by_its_credentials_or_bounded_by_a_role_session_should_say_so() {
        let p = |basis, secs| match &objects(basis, secs)[0].links {
            Ok(l) => presigned_lifetime(l.presigned.as_ref().unwrap()),
            Err(_) => unreachable!(),
        };
        assert_eq!(
            p(LinkLifetime::CutToCredentials, 5 * 3600),
            "opens without sign-in for 5h 0m, until 2026-11-20T14:00:00Z, when the credentials that signed it expire"
        );
        assert_eq!(
            p(LinkLifetime::UntilSessionEnds, 7 * 24 * 3600),
            "opens without sign-in until the function's role session that signed it ends (within hours; 2026-11-27T09:00:00Z at the latest)"
        );
    }

    #[test]
    fn the_html_is_self_contained_and_escapes_what_it_shows() {
        let mut f = facts("api", 1, 2);
        f.alarms = vec!["<script>alert(1)</script>".into()];
        let r = build("2026-11-20", "now", vec![judge(f, DAY0)]);
        let page = html(&r);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(!page.contains("<script>"), "escaped");
        assert!(page.contains("&lt;script&gt;"));
        for external in ["http://", "https://", "<link", "src="] {
            assert!(!page.contains(external), "no external asset ({external})");
        }
    }
}
