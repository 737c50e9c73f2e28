//! The daily health check (the runbooks' 09:00 check), as plain data and its
//! renderings: the JSON report, a self-contained HTML page (no external
//! assets, no JavaScript) and the SNS summary, worst service first. Pure:
//! the scheduled-reports flow gathers the facts and stores the results.

use maud::{DOCTYPE, Markup, html};
use serde::Serialize;

use crate::error::AwsError;
use crate::redact::{LinkLifetime, Outgoing, OwnLink, PresignedLink};
use crate::reports::fleet::ScopeRun;
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
    /// The account and region it runs in (the function's own at home;
    /// the account unknown only when the function's own is).
    pub account: Option<String>,
    pub region: String,
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
    /// One section per account and region of the run, home first: its
    /// figures, and what failed there, named.
    pub accounts: Vec<AccountDay>,
    /// The accounts and regions this run was restricted to (a shard of the
    /// fleet), when it was.
    pub shard: Option<crate::trigger::Shard>,
}

/// One account and region's part of the daily report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AccountDay {
    #[serde(flatten)]
    pub scope: crate::reports::fleet::AccountScope,
    pub services: usize,
    pub down: usize,
    pub degraded: usize,
    pub healthy: usize,
    pub unknown: usize,
    /// Ids of the incidents open there.
    pub open_incidents: Vec<String>,
    pub incidents_opened: usize,
    pub actions_executed: usize,
    pub deployments: usize,
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
    /// Account and region sections of the run, and how many of them failed.
    pub accounts: usize,
    pub accounts_failed: usize,
}

/// The facts of one service, as read, before they are judged.
#[derive(Debug, Clone, Default)]
pub struct ServiceFacts {
    pub account: Option<String>,
    pub region: String,
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
        account: f.account,
        region: f.region,
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
        a.health.cmp(&b.health).then(b.reasons.len().cmp(&a.reasons.len())).then_with(|| {
            (&a.cluster, &a.service, &a.account, &a.region).cmp(&(&b.cluster, &b.service, &b.account, &b.region))
        })
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
    DailyReport {
        date: date.into(),
        generated_at: generated_at.into(),
        window_hours: 24,
        services,
        totals: t,
        accounts: Vec::new(),
        shard: None,
    }
}

/// The report over the services of every account and region of a run
/// (`runs`, home first): [`build`]'s fleet totals and ordering, one section
/// per account and region with its own figures and failure.
pub fn build_fleet(
    date: &str,
    generated_at: &str,
    services: Vec<ServiceDay>,
    runs: Vec<ScopeRun>,
    shard: Option<crate::trigger::Shard>,
) -> DailyReport {
    let mut r = build(date, generated_at, services);
    r.accounts = runs
        .into_iter()
        .map(|run| {
            let mut a = AccountDay { scope: run.section(), ..Default::default() };
            for s in r.services.iter().filter(|s| run.holds(s.account.as_deref(), &s.region)) {
                a.services += 1;
                match s.health {
                    Health::Down => a.down += 1,
                    Health::Degraded => a.degraded += 1,
                    Health::Healthy => a.healthy += 1,
                    Health::Unknown => a.unknown += 1,
                }
                a.open_incidents.extend(s.incidents.iter().filter(|i| i.closed_at.is_none()).map(|i| i.id.clone()));
                a.incidents_opened += s.incidents.len();
                a.actions_executed += s.actions.iter().filter(|x| x.status == "executed").count();
                a.deployments += s.deployments.len();
            }
            a
        })
        .collect();
    r.totals.accounts = r.accounts.len();
    r.totals.accounts_failed = r.accounts.iter().filter(|a| a.scope.failure.is_some()).count();
    r.shard = shard;
    r
}

impl DailyReport {
    /// Whether the report speaks of accounts: more than one section, a
    /// member's, or a failure. A single-account run reads as it always did.
    pub fn is_fleet(&self) -> bool {
        self.accounts.len() > 1 || self.accounts.iter().any(|a| !a.scope.home || a.scope.failure.is_some())
    }

    /// The services of one section, worst first.
    pub fn services_of<'a>(&'a self, a: &'a AccountDay) -> impl Iterator<Item = &'a ServiceDay> + 'a {
        self.services.iter().filter(move |s| s.account == a.scope.account && s.region == a.scope.region)
    }
}

/// One section's figures in a line.
fn account_line(a: &AccountDay) -> String {
    match &a.scope.failure {
        Some(why) if a.services == 0 => format!("{}: NOT REPORTED - {why}", a.scope.label),
        failure => {
            let mut line = format!(
                "{}: {} services - {} down, {} degraded, {} healthy, {} unreadable; {} open incident(s){}",
                a.scope.label,
                a.services,
                a.down,
                a.degraded,
                a.healthy,
                a.unknown,
                a.open_incidents.len(),
                if a.open_incidents.is_empty() { String::new() } else { format!(" ({})", a.open_incidents.join(", ")) }
            );
            if let Some(why) = failure {
                line.push_str(&format!("; PARTLY READ - {why}"));
            }
            if !a.scope.clusters_absent.is_empty() {
                line.push_str(&format!("; no cluster {} there", a.scope.clusters_absent.join(", ")));
            }
            line
        }
    }
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
    let fleet = r.is_fleet();
    let subject = if fleet {
        format!(
            "[DAILY] {}: {} services, {} accounts - {} down, {} degraded, {} healthy{}",
            r.date,
            t.services,
            t.accounts,
            t.down,
            t.degraded,
            t.healthy,
            if t.accounts_failed > 0 { format!(", {} failed", t.accounts_failed) } else { String::new() }
        )
    } else {
        format!(
            "[DAILY] {}: {} services - {} down, {} degraded, {} healthy",
            r.date, t.services, t.down, t.degraded, t.healthy
        )
    };
    let mut b = String::new();
    b.push_str(&format!("DAILY HEALTH CHECK - {} (last {} h)\n\n", r.date, r.window_hours));
    if fleet {
        b.push_str(&format!(
            "Fleet: {} account/region(s){}{}\n",
            t.accounts,
            if t.accounts_failed > 0 { format!(", {} failed", t.accounts_failed) } else { String::new() },
            r.shard
                .as_ref()
                .map(|s| format!(" (this run: accounts {} regions {})", or_all(&s.accounts), or_all(&s.regions)))
                .unwrap_or_default()
        ));
    }
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
    let mut omitted = 0;
    if fleet {
        b.push_str("Per account:\n");
        for a in &r.accounts {
            b.push_str(&format!("- {}\n", account_line(a)));
        }
        for a in r.accounts.iter().filter(|a| a.services > 0) {
            if b.len() < SUMMARY_LINES_BYTES {
                b.push_str(&format!("\n{} ({} services):\n", a.scope.label, a.services));
            }
            for s in r.services_of(a) {
                push_within(&mut b, &service_line(s), &mut omitted);
            }
        }
    } else {
        for s in &r.services {
            push_within(&mut b, &service_line(s), &mut omitted);
        }
        // A single account whose reads failed says so too.
        for a in r.accounts.iter().filter(|a| a.scope.failure.is_some()) {
            b.push_str(&format!("\n{}\n", account_line(a)));
        }
    }
    omitted_note(&mut b, omitted);
    b.push('\n');
    let mut body = Outgoing::new();
    body.text(b);
    links_section(&mut body, objects, kept_at);
    (subject, body)
}

/// How much of a summary the per-service lines may fill: SNS carries
/// 256 KiB (`notify::render::MAX_BODY_BYTES` cuts at 200 KiB), and the
/// links to the full report come after them.
pub const SUMMARY_LINES_BYTES: usize = 150 * 1024;

/// Add `line` unless the summary's lines are full; count it otherwise.
pub fn push_within(b: &mut String, line: &str, omitted: &mut usize) {
    if *omitted == 0 && b.len() + line.len() <= SUMMARY_LINES_BYTES {
        b.push_str(line);
    } else {
        *omitted += 1;
    }
}

/// Say how many service lines the summary left out (the full report lists them).
pub fn omitted_note(b: &mut String, omitted: usize) {
    if omitted > 0 {
        b.push_str(&format!(
            "... and {omitted} more service(s), not listed here (a notification carries 256 KiB): see the full report\n"
        ));
    }
}

fn service_line(s: &ServiceDay) -> String {
    let why = if s.reasons.is_empty() { String::new() } else { format!(" - {}", s.reasons.join("; ")) };
    let errors = s
        .errors
        .as_ref()
        .map(|e| format!(", {}{} error lines", e.errors, if e.capped { "+" } else { "" }))
        .unwrap_or_default();
    format!(
        "{:9} {}/{}: {}/{} running{errors}{why}\n",
        health_word(s.health),
        s.cluster,
        s.service,
        s.running,
        s.desired
    )
}

fn or_all(v: &[String]) -> String {
    if v.is_empty() { "all".into() } else { v.join(", ") }
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
                @if r.is_fleet() {
                    h2 { "Accounts" }
                    table.accounts {
                        tr { th { "account" } th { "region" } th { "services" } th { "down" } th { "degraded" } th { "healthy" } th { "unreadable" } th { "open incidents" } th { "not reported" } }
                        @for a in &r.accounts {
                            tr {
                                td { (a.scope.account.as_deref().unwrap_or("-")) @if a.scope.home { " (home)" } } td { (a.scope.region) }
                                td { (a.services) } td.down { (a.down) } td.degraded { (a.degraded) } td.healthy { (a.healthy) } td { (a.unknown) }
                                td { (a.open_incidents.join(", ")) }
                                td.failure { (a.scope.failure.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                    @for a in &r.accounts {
                        div.account {
                            h2 { "Account " (a.scope.label) }
                            p.meta { (account_line(a)) }
                            @for s in r.services_of(a) { (service_section(s)) }
                        }
                    }
                } @else {
                    @for s in &r.services { (service_section(s)) }
                    @for a in r.accounts.iter().filter(|a| a.scope.failure.is_some()) { p.failure { (account_line(a)) } }
                }
            }
        }
    };
    page.into_string()
}

/// One service's section of the page.
fn service_section(s: &ServiceDay) -> Markup {
    html! {
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

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}h1{font-size:1.5em}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
section{border-left:6px solid #9c9;padding:.25em 1em;margin:1em 0}section.down{border-color:#d33}\
section.degraded{border-color:#e90}section.unknown{border-color:#999}.badge{font-size:.8em;padding:.1em .4em;background:#eee}\
td.down{color:#d33}td.degraded{color:#c70}td.healthy{color:#393}.unread{color:#777}.meta{color:#555}\
.failure{color:#d33}div.account{border-top:2px solid #ccc;margin-top:1.5em}";

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

    fn at(mut f: ServiceFacts, account: &str) -> ServiceFacts {
        f.account = Some(account.into());
        f.region = "us-east-1".into();
        f
    }

    fn run(account: &str, home: bool, failure: Option<&str>) -> ScopeRun {
        ScopeRun {
            account: Some(account.into()),
            region: "us-east-1".into(),
            home,
            failure: failure.map(str::to_string),
            clusters_absent: Vec::new(),
        }
    }

    #[test]
    fn a_fleet_report_has_a_section_per_account_names_failures_and_totals_the_fleet() {
        let mut open = at(facts("api", 2, 2), "444455556666");
        open.incidents = vec![IncidentLine {
            id: "inc-a".into(),
            severity: "SEV2".into(),
            cause: "essential-exit".into(),
            summary: "crash".into(),
            opened_at: DAY0,
            closed_at: None,
            ttr_seconds: None,
            resolution: None,
        }];
        let services = vec![
            judge(at(facts("api", 2, 2), "111122223333"), DAY0),
            judge(open, DAY0),
            judge(at(facts("web", 2, 2), "444455556666"), DAY0),
            judge(at(facts("api", 0, 2), "777788889999"), DAY0),
        ];
        let runs = vec![
            run("111122223333", true, None),
            run("444455556666", false, None),
            run("777788889999", false, None),
            run("999988887777", false, Some("the member role cannot be assumed (AccessDenied)")),
        ];
        let r = build_fleet("2026-11-20", "now", services, runs, None);
        assert!(r.is_fleet());
        assert_eq!((r.totals.services, r.totals.accounts, r.totals.accounts_failed), (4, 4, 1));
        let a: Vec<(&str, usize, usize, usize, &[String])> = r
            .accounts
            .iter()
            .map(|a| (a.scope.label.as_str(), a.services, a.degraded, a.down, a.open_incidents.as_slice()))
            .collect();
        assert_eq!(a[0], ("home 111122223333 us-east-1", 1, 0, 0, &[][..]));
        assert_eq!(a[1], ("444455556666 us-east-1", 2, 1, 0, &["inc-a".to_string()][..]));
        assert_eq!(a[2], ("777788889999 us-east-1", 1, 0, 1, &[][..]));
        assert_eq!(r.accounts[3].scope.failure.as_deref(), Some("the member role cannot be assumed (AccessDenied)"));
        let (subject, body) = summary(&r, &[], "s3://ev/reports/daily/2026-11-20/");
        assert_eq!(subject, "[DAILY] 2026-11-20: 4 services, 4 accounts - 1 down, 1 degraded, 2 healthy, 1 failed");
        let body = body.render(&crate::redact::Redactor::new());
        for want in [
            "- 444455556666 us-east-1: 2 services - 0 down, 1 degraded, 1 healthy, 0 unreadable; 1 open incident(s) (inc-a)",
            "- 999988887777 us-east-1: NOT REPORTED - the member role cannot be assumed (AccessDenied)",
            "\n777788889999 us-east-1 (1 services):\nDOWN      prod/api: 0/2 running",
        ] {
            assert!(body.contains(want), "{want} in\n{body}");
        }
        let page = html(&r);
        for want in ["Account 444455556666 us-east-1", "Account home 111122223333 us-east-1", "AccessDenied"] {
            assert!(page.contains(want), "{want}");
        }
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["services"][0]["account"], "777788889999", "worst first across the fleet");
        assert_eq!(json["accounts"][1]["open_incidents"][0], "inc-a");
    }

    #[test]
    fn a_summary_of_thousands_of_services_keeps_its_links_and_says_what_it_left_out() {
        let services: Vec<ServiceDay> = (0..5000)
            .map(|i| {
                let mut f = facts(&format!("service-with-a-longish-name-{i}"), 0, 2);
                f.alarms = vec![format!("alarm-{i}-5xx")];
                judge(f, DAY0)
            })
            .collect();
        let r = build("2026-11-20", "now", services);
        let (_, body) = summary(&r, &objects(LinkLifetime::Full, 3600), "s3://ev/reports/daily/2026-11-20/");
        let text = body.render(&crate::redact::Redactor::new());
        assert!(text.len() < crate::notify::render::MAX_BODY_BYTES, "{}", text.len());
        assert!(text.contains("more service(s), not listed here"), "the omission is said");
        assert!(text.contains("- HTML in the S3 console"), "the links survive");
    }

    #[test]
    fn a_single_account_report_reads_as_before() {
        let services = vec![judge(facts("api", 2, 2), DAY0)];
        let before = build("2026-11-20", "now", services.clone());
        let mut home = run("111122223333", true, None);
        home.account = None;
        let mut s = services;
        s[0].region = "us-east-1".into();
        home.region = "us-east-1".into();
        let after = build_fleet("2026-11-20", "now", s, vec![home], None);
        assert!(!after.is_fleet());
        assert_eq!(after.accounts[0].services, 1);
        let text = |r: &DailyReport| {
            let (subject, body) = summary(r, &[], "s3://ev/x/");
            (subject, body.render(&crate::redact::Redactor::new()))
        };
        assert_eq!(text(&before), text(&after));
        assert_eq!(html(&before), html(&after));
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
