//! Notifications, rendered (pure) after the runbooks' incident-alert and
//! incident-resolved templates. Publishing is `adapters::sns`; the chat form
//! of the same message (Amazon Q Developer custom notification) is
//! [`crate::notify::chat`], built from the fields of [`Message`].

use std::fmt::Write;

use crate::notify::steps::{self, Resolved, Situation};
use crate::outcome::{ActionRecord, Cause, Kind, Severity};
use crate::redact::Redactor;

/// A rendered notification: the plain text (`subject`, `body`) for e-mail,
/// SQS, Lambda and every other subscriber, and what the chat form needs
/// ([`crate::notify::chat::notification`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub subject: String,
    pub body: String,
    pub severity: Severity,
    pub cluster: String,
    pub service: String,
    pub cause: Cause,
    pub kind: Kind,
    /// The incident the message belongs to: chat threads an incident's
    /// messages on it. `None` for one-off notices.
    pub incident: Option<String>,
    /// What happened, as chat's `eventType`.
    pub event_type: EventType,
    /// A few lines for chat, most important first (already redacted).
    pub highlights: Vec<String>,
    /// The runbook's next steps for the cause (or the notice's own).
    pub next_steps: Vec<String>,
    /// Console links and other references: (label, URL or identifier).
    pub links: Vec<(String, String)>,
    /// `s3://bucket/prefix/` of the evidence, when stored.
    pub evidence: Option<String>,
    /// The owning team (service tag `autopilot:team`): the SNS message
    /// attribute `team`, so that a filter policy routes it to that team.
    pub team: Option<String>,
    /// More `metadata.additionalContext` entries of the chat notification:
    /// what a chat button's command needs (see `notify::buttons`).
    pub chat_context: Vec<(String, String)>,
    /// The member account and region the message is about (`None`: home).
    /// Set when it is published from a member's clients (`adapters::sns`):
    /// the subject, body, attributes and chat buttons then name the place.
    pub place: Option<crate::fleet::Place>,
}

impl Message {
    /// The message about a member's subject: its subject line names the
    /// account and region after the severity tag (unless it already names the
    /// account), its body starts with them, and chat reads them (buttons
    /// carry them in their requests).
    pub fn placed(mut self, place: &crate::fleet::Place) -> Self {
        let tag = format!("{} {}", place.account, place.region);
        if !self.subject.contains(&place.account) {
            let subject = match self.subject.split_once("] ") {
                Some((sev, rest)) if self.subject.starts_with('[') => format!("{sev}] {tag} {rest}"),
                _ => format!("{tag} {}", self.subject),
            };
            self.subject = subject_line(&subject);
        }
        let named = self.body.starts_with("Account ");
        // The runbook commands the body prints act where the subject lives.
        let scoped = format!(",\"account\":\"{}\",\"region\":\"{}\",\"cluster\":", place.account, place.region);
        let key = format!("\"{}service#", place.account_region_prefix());
        let mut body: String = self
            .body
            .lines()
            .map(|l| {
                if l.contains("aws lambda invoke") && !l.contains("\"account\":") {
                    l.replace(",\"cluster\":", &scoped)
                } else if l.contains("aws dynamodb") && !l.contains(&key) {
                    l.replace("\"service#", &key)
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        if self.body.ends_with('\n') {
            body.push('\n');
        }
        self.body = body;
        if !named {
            self.body = format!("Account {} in {}\n{}", place.account, place.region, self.body);
        }
        // So do the chat buttons' requests.
        for (_, v) in self.chat_context.iter_mut() {
            if let Ok(serde_json::Value::Object(mut r)) = serde_json::from_str::<serde_json::Value>(v)
                && r.contains_key("action")
                && r.contains_key("cluster")
            {
                r.insert("account".into(), place.account.clone().into());
                r.insert("region".into(), place.region.clone().into());
                *v = canonical_json(&serde_json::Value::Object(r));
            }
        }
        for (k, v) in [("account", &place.account), ("region", &place.region)] {
            if !self.chat_context.iter().any(|(key, _)| key == k) {
                self.chat_context.push((k.to_string(), v.clone()));
            }
        }
        self.place = Some(place.clone());
        self
    }
}

/// Compact JSON with every object's keys in sorted order, whatever
/// serde_json's `preserve_order` feature says: a payload (and the message
/// id hashed over it) is the same text in every build.
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn sorted(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut entries: Vec<(&String, &serde_json::Value)> = m.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

/// The kind of event a message announces (chat's `metadata.eventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    IncidentOpened,
    IncidentUpdate,
    IncidentEscalated,
    IncidentResolved,
    /// An alarm that maps to no service: one notice, no incident.
    AlarmNotice,
    /// A runbook action's decision.
    RunbookAction,
    /// A manual approval waiting in a pipeline (pipeline-events).
    PipelineApproval,
    /// A daily or weekly report's summary (scheduled-reports).
    Report,
    /// A deployment paused at a PAUSE hook, waiting to be continued or rolled back.
    DeploymentApproval,
    /// A person acknowledged an incident (runbook `acknowledge`).
    IncidentAcknowledged,
}

impl EventType {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::IncidentOpened => "incident-opened",
            Self::IncidentUpdate => "incident-update",
            Self::IncidentEscalated => "incident-escalated",
            Self::IncidentResolved => "incident-resolved",
            Self::AlarmNotice => "alarm-notice",
            Self::RunbookAction => "runbook-action",
            Self::PipelineApproval => "pipeline-approval",
            Self::Report => "report",
            Self::DeploymentApproval => "deployment-approval",
            Self::IncidentAcknowledged => "incident-acknowledged",
        }
    }
}

/// The runbook's next steps of a cause, as owned lines: a notice that
/// shows no action (an incident's messages use [`steps::next_steps`]).
pub fn steps_of(cause: Cause) -> Vec<String> {
    cause.next_steps().iter().map(|s| s.to_string()).collect()
}

/// The numbered "Next steps" section of a body.
fn write_steps(b: &mut String, heading: &str, steps: &[String]) {
    let _ = writeln!(b, "{heading}");
    for (i, step) in steps.iter().enumerate() {
        let _ = writeln!(b, "{}. {step}", i + 1);
    }
}

/// SNS subjects: ASCII, no line breaks, under 100 characters.
pub fn subject_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_space = false;
    for c in text.chars() {
        let c = if c.is_ascii_graphic() {
            c
        } else if c.is_whitespace() || c.is_control() {
            ' '
        } else {
            '?'
        };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        out.push(c);
    }
    let trimmed = out.trim();
    if trimmed.len() <= 99 { trimmed.to_string() } else { format!("{}...", &trimmed[..96]) }
}

/// SNS accepts at most 256 KiB per message (body and attributes): keep the
/// body well inside it, cut on a character boundary, and say so.
pub const MAX_BODY_BYTES: usize = 200 * 1024;

/// The body as it can be published: whole when it fits, else cut with a note.
pub fn fit_body(body: &str) -> std::borrow::Cow<'_, str> {
    fit_body_within(body, MAX_BODY_BYTES)
}

/// Like [`fit_body`], within `max_bytes` (at least 400).
pub fn fit_body_within(body: &str, max_bytes: usize) -> std::borrow::Cow<'_, str> {
    let max_bytes = max_bytes.max(400);
    if body.len() <= max_bytes {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut cut = max_bytes - 200;
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    std::borrow::Cow::Owned(format!(
        "{}\n\n[message cut: {} more bytes than a notification can carry; the evidence bundle has everything]\n",
        &body[..cut],
        body.len() - cut
    ))
}

/// A duration as people say it: `12m 30s`, `2h 5m`, `45s`.
pub use crate::time::human_duration;

/// Console links of a pipeline execution (here, beside the service's:
/// pipeline messages and escalations both use them).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineLinks {
    pub region: String,
    pub pipeline: String,
    pub execution_id: String,
}

impl PipelineLinks {
    pub fn pipeline(&self) -> String {
        format!(
            "https://{r}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{p}/view?region={r}",
            r = self.region,
            p = self.pipeline
        )
    }

    pub fn execution(&self) -> String {
        format!(
            "https://{r}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{p}/executions/{e}/timeline?region={r}",
            r = self.region,
            p = self.pipeline,
            e = self.execution_id
        )
    }
}

/// Console links for a service.
#[derive(Debug, Clone)]
pub struct Links {
    pub region: String,
    pub cluster: String,
    pub service: String,
}

impl Links {
    fn base(&self) -> String {
        format!("https://{0}.console.aws.amazon.com", self.region)
    }
    pub fn service(&self) -> String {
        format!(
            "{}/ecs/v2/clusters/{}/services/{}/health?region={}",
            self.base(),
            self.cluster,
            self.service,
            self.region
        )
    }
    pub fn tasks(&self) -> String {
        format!(
            "{}/ecs/v2/clusters/{}/services/{}/tasks?region={}",
            self.base(),
            self.cluster,
            self.service,
            self.region
        )
    }
    pub fn deployments(&self) -> String {
        format!(
            "{}/ecs/v2/clusters/{}/services/{}/deployments?region={}",
            self.base(),
            self.cluster,
            self.service,
            self.region
        )
    }
    /// CloudWatch's console escapes `/` in log names as `$252F`.
    pub fn log_stream(&self, group: &str, stream: &str) -> String {
        let esc = |s: &str| s.replace('%', "$2525").replace('/', "$252F").replace('[', "$255B").replace(']', "$255D");
        format!(
            "{}/cloudwatch/home?region={}#logsV2:log-groups/log-group/{}/log-events/{}",
            self.base(),
            self.region,
            esc(group),
            esc(stream)
        )
    }
    pub fn evidence(&self, bucket: &str, prefix: &str) -> String {
        format!("https://s3.console.aws.amazon.com/s3/buckets/{bucket}?region={}&prefix={prefix}", self.region)
    }
}

/// Where the incident's evidence is, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvidenceStatus {
    /// `s3://bucket/prefix/`
    Stored(String),
    NotCaptured(String),
}

/// Everything an alert or update shows.
#[derive(Debug, Clone)]
pub struct AlertView<'a> {
    pub update: bool,
    pub kind: Kind,
    pub severity: Severity,
    pub cause: Cause,
    pub cluster: &'a str,
    pub service: &'a str,
    pub incident: &'a str,
    /// Short label of the problem: "crash loop", "deployment failed", "task failed", …
    pub problem: &'a str,
    pub opened_at: &'a str,
    pub impact: Vec<String>,
    pub status: String,
    pub findings: Vec<String>,
    pub log_lines: Vec<String>,
    pub log_source: Option<(String, String)>,
    pub actions: &'a [ActionRecord],
    pub evidence: EvidenceStatus,
    pub evidence_location: Option<(String, String)>,
    pub links: Links,
}

pub fn render_alert(v: &AlertView<'_>, redactor: &Redactor) -> Message {
    let update = if v.update { "UPDATE " } else { "" };
    let subject = subject_line(&format!(
        "[{}] {}/{}: {update}{} - {}",
        v.severity,
        v.cluster,
        v.service,
        v.problem,
        v.cause.headline()
    ));
    let mut b = String::new();
    let _ = writeln!(b, "{} - {}", if v.update { "INCIDENT UPDATE" } else { "INCIDENT ALERT" }, v.severity);
    let _ = writeln!(b);
    let _ = writeln!(b, "Service:   {}/{}", v.cluster, v.service);
    let _ = writeln!(b, "Incident:  {}", v.incident);
    let _ = writeln!(b, "Problem:   {} - {} ({})", v.problem, v.cause.headline(), v.cause);
    let _ = writeln!(b, "Started:   {}", v.opened_at);
    let _ = writeln!(b, "Status:    {}", v.status);
    if !v.impact.is_empty() {
        let _ = writeln!(b, "Impact:    {}", v.impact.join("; "));
    }
    let _ = writeln!(b);
    let _ = writeln!(b, "Findings");
    for f in &v.findings {
        let _ = writeln!(b, "- {f}");
    }
    if !v.log_lines.is_empty() {
        let _ = writeln!(b);
        match &v.log_source {
            Some((g, s)) => {
                let _ = writeln!(b, "Log excerpt ({g} {s}, last {} lines)", v.log_lines.len());
            }
            None => {
                let _ = writeln!(b, "Log excerpt");
            }
        }
        for l in &v.log_lines {
            let _ = writeln!(b, "    {l}");
        }
    }
    let _ = writeln!(b);
    let _ = writeln!(b, "Actions taken");
    if v.actions.is_empty() {
        let _ = writeln!(b, "- none: diagnosis and notification only");
    }
    for a in v.actions {
        let _ = writeln!(b, "- {} {}: {}", a.action, a.status.as_str(), a.detail);
    }
    let _ = writeln!(b);
    let next_steps = steps::next_steps(&Situation {
        cause: v.cause,
        cluster: v.cluster,
        service: v.service,
        actions: v.actions,
        resolved: None,
    });
    write_steps(&mut b, &format!("Next steps (runbook: {})", v.cause), &next_steps);
    let _ = writeln!(b);
    match &v.evidence {
        EvidenceStatus::Stored(uri) => {
            let _ = writeln!(b, "Evidence: {uri} (manifest.json lists every object with its SHA-256)");
        }
        EvidenceStatus::NotCaptured(why) => {
            let _ = writeln!(b, "Evidence: NOT CAPTURED - {why}");
        }
    }
    let _ = writeln!(b);
    let _ = writeln!(b, "Console");
    let _ = writeln!(b, "- Service health: {}", v.links.service());
    let _ = writeln!(b, "- Tasks: {}", v.links.tasks());
    let _ = writeln!(b, "- Deployments: {}", v.links.deployments());
    if let Some((g, s)) = &v.log_source {
        let _ = writeln!(b, "- Logs: {}", v.links.log_stream(g, s));
    }
    if let Some((bucket, prefix)) = &v.evidence_location {
        let _ = writeln!(b, "- Evidence: {}", v.links.evidence(bucket, prefix));
    }
    let mut highlights = vec![format!("Status: {}", v.status)];
    if !v.impact.is_empty() {
        highlights.push(format!("Impact: {}", v.impact.join("; ")));
    }
    highlights.extend(v.findings.iter().cloned());
    highlights.extend(v.actions.iter().map(|a| format!("Action: {} {}: {}", a.action, a.status.as_str(), a.detail)));
    if let EvidenceStatus::NotCaptured(why) = &v.evidence {
        highlights.push(format!("Evidence NOT CAPTURED: {why}"));
    }
    let mut links = vec![
        ("Service health".to_string(), v.links.service()),
        ("Tasks".to_string(), v.links.tasks()),
        ("Deployments".to_string(), v.links.deployments()),
    ];
    if let Some((g, s)) = &v.log_source {
        links.push(("Logs".into(), v.links.log_stream(g, s)));
    }
    if let Some((bucket, prefix)) = &v.evidence_location {
        links.push(("Evidence".into(), v.links.evidence(bucket, prefix)));
    }
    Message {
        place: None,
        subject: redactor.text(&subject),
        body: redactor.text(&b),
        severity: v.severity,
        cluster: v.cluster.into(),
        service: v.service.into(),
        cause: v.cause,
        kind: v.kind,
        incident: Some(v.incident.into()),
        event_type: if v.update { EventType::IncidentUpdate } else { EventType::IncidentOpened },
        highlights: highlights.iter().map(|h| redactor.text(h)).collect(),
        next_steps: next_steps.iter().map(|s| redactor.text(s)).collect(),
        links,
        evidence: match &v.evidence {
            EvidenceStatus::Stored(uri) => Some(uri.clone()),
            EvidenceStatus::NotCaptured(_) => None,
        },
        team: None,
        chat_context: Vec::new(),
    }
}

/// Everything a resolution shows.
#[derive(Debug, Clone)]
pub struct ResolvedView<'a> {
    pub kind: Kind,
    pub severity: Severity,
    pub cause: Cause,
    pub cluster: &'a str,
    pub service: &'a str,
    pub incident: &'a str,
    pub problem: &'a str,
    pub opened_at: &'a str,
    pub resolved_at: &'a str,
    pub resolved_by: &'a str,
    pub time_to_recover_seconds: i64,
    pub failures: u32,
    pub notes: &'a [String],
    pub evidence: Option<&'a str>,
    pub links: Links,
    /// The post-incident report, when it was stored.
    pub report: Option<&'a str>,
    /// The incident's action decisions, oldest first (for the next steps).
    pub actions: &'a [ActionRecord],
}

pub fn render_resolved(v: &ResolvedView<'_>, redactor: &Redactor) -> Message {
    let ttr = human_duration(v.time_to_recover_seconds);
    let subject = subject_line(&format!(
        "[RESOLVED] {}/{}: {} - {} (recovered in {ttr})",
        v.cluster,
        v.service,
        v.problem,
        v.cause.headline()
    ));
    let mut b = String::new();
    let _ = writeln!(b, "INCIDENT RESOLVED - was {}", v.severity);
    let _ = writeln!(b);
    let _ = writeln!(b, "Service:          {}/{}", v.cluster, v.service);
    let _ = writeln!(b, "Incident:         {}", v.incident);
    let _ = writeln!(b, "Problem:          {} - {} ({})", v.problem, v.cause.headline(), v.cause);
    let _ = writeln!(b, "Started:          {}", v.opened_at);
    let _ = writeln!(b, "Resolved:         {} by {}", v.resolved_at, v.resolved_by);
    let _ = writeln!(b, "Time to recover:  {ttr} ({} s)", v.time_to_recover_seconds);
    let _ = writeln!(b, "Failed tasks:     {}", v.failures);
    let _ = writeln!(b);
    let _ = writeln!(b, "What was done");
    if v.notes.is_empty() {
        let _ = writeln!(b, "- no automatic action; the service recovered");
    }
    for n in v.notes {
        let _ = writeln!(b, "- {n}");
    }
    if let Some(e) = v.evidence {
        let _ = writeln!(b);
        let _ = writeln!(b, "Evidence: {e}");
    }
    let _ = writeln!(b);
    let next_steps = steps::next_steps(&Situation {
        cause: v.cause,
        cluster: v.cluster,
        service: v.service,
        actions: v.actions,
        resolved: Some(Resolved { report: v.report }),
    });
    write_steps(&mut b, &format!("Next steps (runbook: {})", v.cause), &next_steps);
    let _ = writeln!(b);
    let _ = writeln!(b, "- Service health: {}", v.links.service());
    let mut highlights = vec![
        format!("Resolved {} by {}", v.resolved_at, v.resolved_by),
        format!("Time to recover: {ttr}; was {}; {} failed task(s)", v.severity, v.failures),
    ];
    if v.notes.is_empty() {
        highlights.push("No automatic action; the service recovered".into());
    }
    highlights.extend(v.notes.iter().cloned());
    Message {
        place: None,
        subject: redactor.text(&subject),
        body: redactor.text(&b),
        severity: v.severity,
        cluster: v.cluster.into(),
        service: v.service.into(),
        cause: v.cause,
        kind: v.kind,
        incident: Some(v.incident.into()),
        event_type: EventType::IncidentResolved,
        highlights: highlights.iter().map(|h| redactor.text(h)).collect(),
        next_steps: next_steps.iter().map(|h| redactor.text(h)).collect(),
        links: vec![("Service health".into(), v.links.service())],
        evidence: v.evidence.map(str::to_string),
        team: None,
        chat_context: Vec::new(),
    }
}

/// The post-incident report of a resolved incident.
#[derive(Debug, Clone)]
pub struct IncidentReportView<'a> {
    pub incident: &'a crate::incident::Record,
    /// The subject's ledger since the incident opened.
    pub ledger: &'a [crate::snapshot::LedgerEntry],
    pub resolved_at: i64,
    pub resolved_by: &'a str,
}

/// The incident report in Markdown, after the runbooks' template: title,
/// date, duration, severity, impact, timeline, root cause, resolution,
/// follow-up checklist. The machine fills in what it knows; the checklist is
/// for the people who review it.
pub fn render_incident_report(v: &IncidentReportView<'_>, redactor: &Redactor) -> String {
    let inc = v.incident;
    let duration = human_duration(v.resolved_at - inc.opened_at);
    let problem = inc.problem_text();
    let mut b = String::new();
    let _ = writeln!(b, "# Incident report: {} — {} ({})", inc.subject.label(), problem, inc.id);
    let _ = writeln!(b);
    let _ = writeln!(b, "| | |");
    let _ = writeln!(b, "|---|---|");
    let _ = writeln!(b, "| Date | {} |", crate::time::iso(inc.opened_at));
    let _ = writeln!(b, "| Duration | {duration} ({} s) |", v.resolved_at - inc.opened_at);
    let _ = writeln!(b, "| Severity | {} |", inc.severity);
    let _ = writeln!(b, "| Subject | {} |", inc.subject.label());
    let _ = writeln!(b, "| Cause | {} ({}) |", inc.cause.headline(), inc.cause);
    let _ = writeln!(b, "| Opened by | {} |", inc.headline);
    let problems: Vec<String> = inc.problems.iter().map(|p| p.key.describe()).collect();
    let _ = writeln!(b, "| Problems | {} |", problems.join(", "));
    let _ = writeln!(b);
    let _ = writeln!(b, "## Impact");
    let _ = writeln!(b);
    for i in &inc.impact {
        let _ = writeln!(b, "- {i}");
    }
    let _ = writeln!(b, "- {} failed task(s) counted, {} signal(s) received", inc.failures.total, inc.events);
    let _ = writeln!(b);
    let _ = writeln!(b, "## Timeline (UTC)");
    let _ = writeln!(b);
    let mut timeline: Vec<(i64, String)> = vec![(inc.opened_at, format!("incident opened: {}", inc.summary()))];
    if let Some(at) = inc.alert_at {
        timeline.push((at, "alert sent".into()));
    }
    for p in &inc.problems {
        if p.first_at != inc.opened_at {
            timeline.push((p.first_at, format!("{} ({})", p.label, p.key.describe())));
        }
        if let (Some(at), Some(by)) = (p.cleared_at, &p.cleared_by) {
            timeline.push((at, format!("{} cleared by {by}", p.key.describe())));
        }
    }
    for e in v.ledger {
        timeline.push((e.at, format!("{} {}: {}", e.action.as_str(), e.status.as_str(), e.detail)));
    }
    if inc.escalations > 0 {
        timeline.push((inc.last_message_at.unwrap_or(inc.opened_at), format!("escalated {} time(s)", inc.escalations)));
    }
    if let Some(ack) = &inc.acknowledged {
        timeline.push((ack.at, format!("acknowledged by {} (at {})", redactor.text(&ack.by), ack.severity)));
    }
    timeline.push((v.resolved_at, format!("resolved by {}", v.resolved_by)));
    timeline.sort_by_key(|(at, _)| *at);
    for (at, what) in timeline {
        let _ = writeln!(b, "- {} — {what}", crate::time::iso(at));
    }
    if !inc.notes.is_empty() {
        let _ = writeln!(b);
        let _ = writeln!(b, "Notes recorded during the incident:");
        for n in &inc.notes {
            let _ = writeln!(b, "- {n}");
        }
    }
    let _ = writeln!(b);
    let _ = writeln!(b, "## Root cause (as diagnosed)");
    let _ = writeln!(b);
    let _ = writeln!(
        b,
        "{} (`{}`), as diagnosed from the stop reasons, service events and logs in the evidence.",
        inc.cause.headline(),
        inc.cause
    );
    let _ = writeln!(b);
    let _ = writeln!(b, "## Resolution");
    let _ = writeln!(b);
    let executed: Vec<_> = v
        .ledger
        .iter()
        .filter(|e| matches!(e.status, crate::snapshot::LedgerStatus::Executed))
        .map(|e| format!("{} ({})", e.action.as_str(), e.detail))
        .collect();
    if executed.is_empty() {
        let _ = writeln!(b, "Recovered without an automatic action; resolved by {}.", v.resolved_by);
    } else {
        let _ = writeln!(b, "Actions executed: {}. Resolved by {}.", executed.join("; "), v.resolved_by);
    }
    if let Some(e) = &inc.evidence {
        let _ = writeln!(b);
        let _ = writeln!(b, "Evidence: {e}");
    }
    let _ = writeln!(b);
    let _ = writeln!(b, "## Follow-up");
    let _ = writeln!(b);
    for item in [
        "Confirm the root cause above against the evidence bundle (or correct it)",
        "Decide whether the failing change is fixed, reverted or retried",
        "Add or tune the alarm that should have caught this earlier",
        "Update the runbook if a step was missing or wrong",
        "Share this report with the owning team",
    ] {
        let _ = writeln!(b, "- [ ] {item}");
    }
    let actions: Vec<ActionRecord> = v.ledger.iter().map(crate::snapshot::LedgerEntry::record).collect();
    let (cluster, service) = inc.subject.as_service().unwrap_or_default();
    for step in steps::follow_ups(&Situation {
        cause: inc.cause,
        cluster,
        service,
        actions: &actions,
        resolved: Some(Resolved::default()),
    }) {
        let _ = writeln!(b, "- [ ] {step}");
    }
    redactor.text(&b)
}

/// An escalation: an incident open longer than the escalation delay.
#[derive(Debug, Clone)]
pub struct EscalationView<'a> {
    pub severity: Severity,
    pub cause: Cause,
    pub cluster: &'a str,
    pub service: &'a str,
    pub incident: &'a str,
    pub problem: &'a str,
    pub opened_at: &'a str,
    pub open_for_seconds: i64,
    /// 1 for the first escalation; a SEV1 is re-announced.
    pub nth: u32,
    /// What was tried: the incident's notes and the actions in the ledger.
    pub tried: &'a [String],
    pub evidence: Option<&'a str>,
    pub links: Links,
    /// Set for a pipeline execution's incident: it is named and linked as one.
    pub pipeline: Option<PipelineLinks>,
    /// The incident's action decisions, oldest first (for the next steps).
    pub actions: &'a [ActionRecord],
}

pub fn render_escalation(v: &EscalationView<'_>, redactor: &Redactor) -> Message {
    let open_for = human_duration(v.open_for_seconds);
    let again = if v.nth > 1 { format!(" (reminder {})", v.nth - 1) } else { String::new() };
    let (what, label) = match &v.pipeline {
        Some(p) => ("Pipeline: ", format!("pipeline {} execution {}", p.pipeline, p.execution_id)),
        None => ("Service:  ", format!("{}/{}", v.cluster, v.service)),
    };
    let short = match &v.pipeline {
        Some(p) => format!("pipeline {}", p.pipeline),
        None => format!("{}/{}", v.cluster, v.service),
    };
    let subject =
        subject_line(&format!("[{}] ESCALATION {short}: {} unresolved for {open_for}{again}", v.severity, v.problem));
    let mut b = String::new();
    let _ = writeln!(b, "INCIDENT ESCALATION - {} still open after {open_for}{again}", v.severity);
    let _ = writeln!(b);
    let _ = writeln!(b, "{what} {label}");
    let _ = writeln!(b, "Incident:  {}", v.incident);
    let _ = writeln!(b, "Problem:   {} - {} ({})", v.problem, v.cause.headline(), v.cause);
    let _ = writeln!(b, "Started:   {}", v.opened_at);
    let _ = writeln!(b);
    let _ = writeln!(b, "What was tried");
    if v.tried.is_empty() {
        let _ = writeln!(b, "- nothing automatic: this needs a person");
    }
    for t in v.tried {
        let _ = writeln!(b, "- {t}");
    }
    let _ = writeln!(b);
    let next_steps = steps::next_steps(&Situation {
        cause: v.cause,
        cluster: v.cluster,
        service: v.service,
        actions: v.actions,
        resolved: None,
    });
    write_steps(&mut b, &format!("Next steps ({})", v.cause.as_str()), &next_steps);
    if let Some(e) = v.evidence {
        let _ = writeln!(b);
        let _ = writeln!(b, "Evidence: {e}");
    }
    let links = match &v.pipeline {
        Some(p) => vec![("Execution".to_string(), p.execution()), ("Pipeline".to_string(), p.pipeline())],
        None => vec![("Service health".into(), v.links.service()), ("Deployments".into(), v.links.deployments())],
    };
    let _ = writeln!(b);
    for (label, url) in &links {
        let _ = writeln!(b, "- {label}: {url}");
    }
    let mut highlights = vec![format!("Still open after {open_for}{again}; started {}", v.opened_at)];
    if v.tried.is_empty() {
        highlights.push("Nothing automatic was tried: this needs a person".into());
    }
    highlights.extend(v.tried.iter().map(|t| format!("Tried: {t}")));
    Message {
        place: None,
        subject: redactor.text(&subject),
        body: redactor.text(&b),
        severity: v.severity,
        cluster: v.cluster.into(),
        service: v.service.into(),
        cause: v.cause,
        kind: Kind::Report,
        incident: Some(v.incident.into()),
        event_type: EventType::IncidentEscalated,
        highlights: highlights.iter().map(|h| redactor.text(h)).collect(),
        next_steps: next_steps.iter().map(|s| redactor.text(s)).collect(),
        links,
        evidence: v.evidence.map(str::to_string),
        team: None,
        chat_context: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ActionStatus;

    #[test]
    fn an_incident_report_follows_the_template_with_a_timeline_and_checklist() {
        use crate::incident::Subject;
        use crate::incident::machine::{Ctx, Input, Policy, ProblemKey, ProblemSignal, step};
        use crate::snapshot::{LedgerEntry, LedgerStatus};
        let subject = Subject::service("prod", "api");
        let policy = Policy {
            window_seconds: 3600,
            update_interval_seconds: 900,
            escalate_after_seconds: 900,
            crash_loop_threshold: 3,
        };
        let ctx = Ctx {
            subject: &subject,
            now: 1_795_000_000,
            token: "req",
            lease_until: 1_795_000_300,
            salt: "salt",
            policy: &policy,
        };
        let signal = ProblemSignal {
            key: ProblemKey::Tasks,
            label: "crash loop".into(),
            kind: Kind::EcsTaskStopped,
            at: 1_795_000_000,
            severity: Severity::Sev2,
            cause: Some(Cause::OutOfMemory),
            revision: Some("api:42".into()),
            task: None,
            news: false,
            note: None,
        };
        let inc = step(None, &Input::Problem(signal), &ctx).record.expect("opened");
        let ack = Input::Acknowledge { by: "bob@example.com".into(), at: 1_795_000_100 };
        let mut inc = step(Some(&inc), &ack, &ctx).record.expect("acknowledged");
        inc.alert_at = Some(1_795_000_002);
        inc.impact = vec!["1 of 3 tasks running (0 pending)".into()];
        inc.evidence = Some("s3://ev/incidents/prod/api/inc-1/".into());
        let ledger = vec![LedgerEntry {
            at: 1_795_000_001,
            action: crate::outcome::ActionKind::Rollback,
            status: LedgerStatus::Executed,
            automatic: true,
            from: None,
            to: None,
            detail: "roll back api:42 -> api:41 (UpdateService)".into(),
            key: None,
            announced: false,
        }];
        let md = render_incident_report(
            &IncidentReportView {
                incident: &inc,
                ledger: &ledger,
                resolved_at: 1_795_000_750,
                resolved_by: "SERVICE_STEADY_STATE",
            },
            &Redactor::new(),
        );
        for section in [
            "# Incident report: prod/api",
            "| Duration | 12m 30s",
            "| Severity | SEV2 |",
            "## Impact",
            "1 of 3 tasks running",
            "## Timeline (UTC)",
            "## Root cause (as diagnosed)",
            "## Resolution",
            "Actions executed: rollback",
            "## Follow-up",
            "- [ ] ",
        ] {
            assert!(md.contains(section), "missing {section:?}:\n{md}");
        }
        let opened = md.find("incident opened").unwrap();
        let rolled = md.find("rollback executed").unwrap();
        let resolved = md.find("resolved by SERVICE_STEADY_STATE").unwrap();
        assert!(opened < rolled && rolled < resolved, "the timeline is in time order:\n{md}");
        let acknowledged = md.find("acknowledged by bob@example.com (at SEV2)").expect("the acknowledgement");
        assert!(rolled < acknowledged && acknowledged < resolved, "in its place in the timeline:\n{md}");
    }

    #[test]
    fn a_body_larger_than_sns_accepts_is_cut_on_a_char_boundary_and_says_so() {
        let huge = "é".repeat(MAX_BODY_BYTES);
        let fitted = fit_body(&huge);
        assert!(fitted.len() <= MAX_BODY_BYTES, "{}", fitted.len());
        assert!(fitted.contains("[message cut:"));
        assert_eq!(fit_body("short"), "short");
    }

    #[test]
    fn subjects_should_be_ascii_single_line_and_short() {
        let s = subject_line(&format!(
            "[SEV2] prod/api: crash loop \u{2014} out of memory\nsecond line {}",
            "x".repeat(200)
        ));
        assert!(s.is_ascii());
        assert!(!s.contains('\n') && !s.contains('\r'));
        assert!(s.len() < 100, "{} chars", s.len());
        assert!(s.starts_with("[SEV2] prod/api: crash loop ? out of memory second line"));
    }

    fn view<'a>(actions: &'a [ActionRecord], evidence: EvidenceStatus) -> AlertView<'a> {
        AlertView {
            update: false,
            kind: Kind::EcsTaskStopped,
            severity: Severity::Sev2,
            cause: Cause::OutOfMemory,
            cluster: "prod",
            service: "api",
            incident: "inc-1",
            problem: "crash loop",
            opened_at: "2026-11-20T14:02:10Z",
            impact: vec!["1 of 3 tasks running (0 pending)".into()],
            status: "OPEN - crash loop: 5 tasks failed".into(),
            findings: vec!["task abc stopped: OutOfMemoryError (exit 137)".into()],
            log_lines: vec!["ERROR connect postgres://app:hunter2@db/app".into()],
            log_source: Some(("/ecs/api".into(), "api/api/abc".into())),
            actions,
            evidence,
            evidence_location: None,
            links: Links { region: "eu-west-1".into(), cluster: "prod".into(), service: "api".into() },
        }
    }

    #[test]
    fn alerts_should_follow_the_runbook_template() {
        let actions = [ActionRecord {
            action: "rollback".into(),
            status: ActionStatus::Executed,
            detail: "roll back api:42 -> api:41".into(),
        }];
        let m = render_alert(
            &view(&actions, EvidenceStatus::Stored("s3://b/incidents/prod/api/inc-1/".into())),
            &Redactor::new(),
        );
        assert_eq!(m.subject, "[SEV2] prod/api: crash loop - out of memory");
        let sections = [
            "INCIDENT ALERT - SEV2",
            "Service:   prod/api",
            "Impact:",
            "Findings",
            "Log excerpt",
            "Actions taken",
            "- rollback executed: roll back api:42 -> api:41",
            "Next steps (runbook: out-of-memory)",
            "Evidence: s3://b/",
            "Console",
            "eu-west-1.console.aws.amazon.com/ecs/v2/clusters/prod/services/api",
        ];
        let mut at = 0;
        for s in sections {
            let found = m.body[at..].find(s).unwrap_or_else(|| panic!("{s:?} missing or out of order:\n{}", m.body));
            at += found;
        }
        assert!(!m.body.contains("hunter2"), "credential-shaped text is redacted:\n{}", m.body);
    }

    #[test]
    fn a_platform_mismatch_alert_has_its_own_headline_and_next_steps() {
        let mut v = view(&[], EvidenceStatus::Stored("s3://b/p/".into()));
        v.cause = Cause::PlatformMismatch;
        let m = render_alert(&v, &Redactor::new());
        assert!(m.subject.ends_with("image built for another CPU architecture"), "{}", m.subject);
        assert!(m.body.contains("runbook: platform-mismatch"), "{}", m.body);
        assert!(m.body.contains("runtimePlatform.cpuArchitecture"), "{}", m.body);
        assert_eq!(m.cause, Cause::PlatformMismatch);
    }

    #[test]
    fn an_alert_without_evidence_says_why() {
        let m =
            render_alert(&view(&[], EvidenceStatus::NotCaptured("AccessDenied on PutObject".into())), &Redactor::new());
        assert!(m.body.contains("Evidence: NOT CAPTURED - AccessDenied on PutObject"), "{}", m.body);
        assert!(m.body.contains("- none: diagnosis and notification only"));
    }

    #[test]
    fn resolutions_carry_the_time_to_recover_and_what_was_done() {
        let notes = vec!["rollback executed: roll back api:42 -> api:41".to_string()];
        let m = render_resolved(
            &ResolvedView {
                kind: Kind::EcsServiceAction,
                severity: Severity::Sev2,
                cause: Cause::OutOfMemory,
                cluster: "prod",
                service: "api",
                incident: "inc-1",
                problem: "crash loop",
                opened_at: "t0",
                resolved_at: "t1",
                resolved_by: "SERVICE_STEADY_STATE",
                time_to_recover_seconds: 750,
                failures: 12,
                notes: &notes,
                evidence: None,
                links: Links { region: "us-east-1".into(), cluster: "prod".into(), service: "api".into() },
                report: None,
                actions: &[],
            },
            &Redactor::new(),
        );
        assert_eq!(m.subject, "[RESOLVED] prod/api: crash loop - out of memory (recovered in 12m 30s)");
        assert!(
            m.body.contains("Time to recover:  12m 30s (750 s)") && m.body.contains("Failed tasks:     12"),
            "{}",
            m.body
        );
        assert!(m.body.contains("- rollback executed"), "{}", m.body);
    }

    #[test]
    fn durations_should_read_like_people_say_them() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(750), "12m 30s");
        assert_eq!(human_duration(7500), "2h 5m");
        assert_eq!(human_duration(-3), "0s");
        assert_eq!(human_duration(3 * 86400 + 7200), "3d 2h");
    }

    #[test]
    fn log_links_should_escape_like_the_console() {
        let l = Links { region: "eu-west-1".into(), cluster: "prod".into(), service: "api".into() };
        let url = l.log_stream("/ecs/api", "api/api/abc");
        assert!(url.ends_with("log-group/$252Fecs$252Fapi/log-events/api$252Fapi$252Fabc"), "{url}");
    }
}
