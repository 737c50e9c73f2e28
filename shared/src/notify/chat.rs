//! Chat: every [`Message`] as an Amazon Q Developer in chat applications
//! (formerly AWS Chatbot) **custom notification**, and the SNS message that
//! carries it (pure; `adapters::sns::publish` sends what [`sns_message`]
//! builds).
//!
//! The chat integration drops SNS messages that are neither AWS events nor
//! its custom-notification schema
//! (<https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html>,
//! "Event schema"):
//!
//! ```json
//! {"version": "1.0", "source": "custom", "id": "…",
//!  "content": {"textType": "client-markdown", "title": "…", "description": "…",
//!              "nextSteps": ["…"], "keywords": ["…"]},
//!  "metadata": {"threadId": "…", "summary": "…", "eventType": "…",
//!               "relatedResources": ["…"], "additionalContext": {"…": "…"}}}
//! ```
//!
//! **Delivery.** One `Publish` with `MessageStructure=json`: the key `https`
//! carries this notification (the chat integration subscribes to the topic
//! over HTTPS), `default` carries today's plain text, which SNS delivers to
//! every protocol without a key of its own (e-mail, SQS, Lambda, HTTP, …;
//! SNS Publish API, `MessageStructure`). Other HTTPS subscribers of the topic
//! receive the JSON too.
//!
//! **Limits.** The AWS page names the required fields but no lengths, so
//! the limits in [`limits`] are our own, chosen conservatively after the
//! tightest chat client (Slack's Block Kit: a text object holds at most 3,000
//! characters, a header 150): text is cut on character boundaries with
//! [`CUT`]. The whole notification stays under
//! [`limits::NOTIFICATION_BYTES`], and the SNS message with the plain text
//! under [`MAX_SNS_MESSAGE_BYTES`] (SNS takes 256 KiB with the attributes).
//!
//! **Threading.** `metadata.threadId` is the incident id, so an incident's
//! alert, updates, escalations and resolution share one chat thread; a
//! notice without an incident threads on its service (`cluster/service`).
//!
//! **Adding a message kind** (approval notices, report summaries): build a
//! [`Message`] with its own [`EventType`] (`PipelineApproval`, `Report`
//! exist), `incident` set when it belongs to one, `highlights` for the chat
//! text, `next_steps` and `links`; publish it with `adapters::sns::publish`.
//! Nothing here changes; add it to the tests below, which validate every
//! kind against [`validate`].

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::notify::render::{EventType, Message, fit_body_within};

pub const VERSION: &str = "1.0";
pub const SOURCE: &str = "custom";
pub const TEXT_TYPE: &str = "client-markdown";
/// Marks text cut to fit a limit.
pub const CUT: &str = "…(cut)";

/// Our own limits (the AWS page states none; see the module doc).
pub mod limits {
    /// Slack's header block takes 150 characters.
    pub const TITLE_CHARS: usize = 150;
    /// Slack's text object takes 3,000 characters.
    pub const DESCRIPTION_CHARS: usize = 3_000;
    pub const NEXT_STEPS: usize = 10;
    pub const NEXT_STEP_CHARS: usize = 300;
    pub const KEYWORDS: usize = 10;
    pub const KEYWORD_CHARS: usize = 50;
    pub const ID_CHARS: usize = 128;
    pub const THREAD_ID_CHARS: usize = 128;
    pub const SUMMARY_CHARS: usize = 300;
    pub const EVENT_TYPE_CHARS: usize = 64;
    pub const RELATED_RESOURCES: usize = 10;
    pub const RELATED_RESOURCE_CHARS: usize = 1_024;
    pub const CONTEXT_KEYS: usize = 20;
    pub const CONTEXT_VALUE_CHARS: usize = 1_000;
    /// The whole notification, serialized.
    pub const NOTIFICATION_BYTES: usize = 64 * 1024;
}

/// The SNS `Message` with `MessageStructure=json`, at most this long: SNS
/// takes 256 KiB for message and attributes; 6 KiB stay for the subject and
/// the five attributes.
pub const MAX_SNS_MESSAGE_BYTES: usize = 250 * 1024;

/// The limits one rendering uses; [`notification`] falls back to the tight
/// set when pathological text (escapes) would pass the byte limit.
struct Budget {
    description: usize,
    next_steps: usize,
    related: usize,
    context_value: usize,
}

const NORMAL: Budget = Budget {
    description: limits::DESCRIPTION_CHARS,
    next_steps: limits::NEXT_STEPS,
    related: limits::RELATED_RESOURCES,
    context_value: limits::CONTEXT_VALUE_CHARS,
};
const TIGHT: Budget = Budget { description: 1_000, next_steps: 3, related: 3, context_value: 200 };

/// `text` within `max` characters, cut on a character boundary with [`CUT`].
pub fn cut_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(CUT.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(CUT);
    out
}

/// The thread an incident's messages share.
pub fn thread_id(m: &Message) -> Option<String> {
    match &m.incident {
        Some(id) if !id.is_empty() => Some(cut_chars(id, limits::THREAD_ID_CHARS)),
        _ if !m.cluster.is_empty() && !m.service.is_empty() => {
            Some(cut_chars(&format!("{}/{}", m.cluster, m.service), limits::THREAD_ID_CHARS))
        }
        _ => None,
    }
}

fn kind_word(m: &Message) -> String {
    serde_json::to_value(m.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// A stable id: the same message renders the same id (a retry is one event).
fn notification_id(m: &Message) -> String {
    let mut h = Sha256::new();
    h.update(m.event_type.as_str().as_bytes());
    h.update([0]);
    h.update(m.incident.as_deref().unwrap_or_default().as_bytes());
    h.update([0]);
    h.update(m.subject.as_bytes());
    h.update([0]);
    h.update(m.body.as_bytes());
    let digest = h.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("ecs-autopilot-{}-{hex}", m.event_type.as_str())
}

fn description(m: &Message, max: usize) -> String {
    let mut lines = Vec::new();
    let mut head = format!("*{}*", m.severity);
    if !m.cluster.is_empty() || !m.service.is_empty() {
        head.push_str(&format!(" · `{}/{}`", m.cluster, m.service));
    }
    if !matches!(m.event_type, EventType::RunbookAction) {
        head.push_str(&format!(" · {} (`{}`)", m.cause.headline(), m.cause));
    }
    lines.push(head);
    if let Some(id) = &m.incident {
        lines.push(format!("Incident `{id}`"));
    }
    lines.extend(m.highlights.iter().map(|h| format!("• {h}")));
    if let Some(e) = &m.evidence {
        lines.push(format!("Evidence: `{e}`"));
    }
    if !m.links.is_empty() {
        lines.push(m.links.iter().map(|(label, url)| format!("[{label}]({url})")).collect::<Vec<_>>().join(" · "));
    }
    cut_chars(&lines.join("\n"), max)
}

fn render(m: &Message, b: &Budget) -> Value {
    let mut keywords: Vec<String> = Vec::new();
    for k in [m.severity.as_str().to_string(), m.cause.as_str().to_string(), m.cluster.clone(), m.service.clone()] {
        let k = cut_chars(&k, limits::KEYWORD_CHARS);
        if !k.is_empty() && !keywords.contains(&k) && keywords.len() < limits::KEYWORDS {
            keywords.push(k);
        }
    }
    let next_steps: Vec<String> =
        m.next_steps.iter().take(b.next_steps).map(|s| cut_chars(s, limits::NEXT_STEP_CHARS)).collect();
    let mut related: Vec<String> = Vec::new();
    if !m.cluster.is_empty() && !m.service.is_empty() {
        related.push(format!("ecs-service:{}/{}", m.cluster, m.service));
    }
    if let Some(e) = &m.evidence {
        related.push(e.clone());
    }
    related.extend(m.links.iter().map(|(_, url)| url.clone()));
    let related: Vec<String> =
        related.iter().take(b.related).map(|r| cut_chars(r, limits::RELATED_RESOURCE_CHARS)).collect();
    let mut context = Map::new();
    let mut put = |k: &str, v: &str| {
        if !v.is_empty() {
            context.insert(k.into(), Value::String(cut_chars(v, b.context_value)));
        }
    };
    put("incident", m.incident.as_deref().unwrap_or_default());
    put("cluster", &m.cluster);
    put("service", &m.service);
    put("severity", m.severity.as_str());
    put("cause", m.cause.as_str());
    put("kind", &kind_word(m));
    put("evidence", m.evidence.as_deref().unwrap_or_default());
    // What the chat buttons' commands read: whole runbook requests, never cut.
    let buttons = super::buttons::incident_context(m);
    for (k, v) in buttons.iter().chain(m.chat_context.iter()) {
        context.insert(k.clone(), Value::String(v.clone()));
    }
    let mut metadata = Map::new();
    if !buttons.is_empty() || !m.chat_context.is_empty() {
        // Custom action buttons on this notification (as published stacks
        // that attach them set it; absent elsewhere).
        metadata.insert("enableCustomActions".into(), Value::Bool(true));
    }
    if let Some(t) = thread_id(m) {
        metadata.insert("threadId".into(), Value::String(t));
    }
    metadata.insert("summary".into(), Value::String(cut_chars(&m.subject, limits::SUMMARY_CHARS)));
    metadata.insert("eventType".into(), Value::String(m.event_type.as_str().into()));
    metadata.insert("relatedResources".into(), json!(related));
    metadata.insert("additionalContext".into(), Value::Object(context));
    json!({
        "version": VERSION,
        "source": SOURCE,
        "id": notification_id(m),
        "content": {
            "textType": TEXT_TYPE,
            "title": cut_chars(&m.subject, limits::TITLE_CHARS),
            "description": description(m, b.description),
            "nextSteps": next_steps,
            "keywords": keywords,
        },
        "metadata": Value::Object(metadata),
    })
}

/// The custom notification of a message, within [`limits`].
pub fn notification(m: &Message) -> Value {
    let v = render(m, &NORMAL);
    if v.to_string().len() <= limits::NOTIFICATION_BYTES { v } else { render(m, &TIGHT) }
}

/// The SNS `Message` for `MessageStructure=json`: `default` (plain text,
/// for every protocol without its own key) and `https` (the custom
/// notification), within [`MAX_SNS_MESSAGE_BYTES`]: the plain text is cut
/// further when the two together would not fit.
pub fn sns_message(m: &Message) -> String {
    let chat = notification(m).to_string();
    let mut budget = crate::notify::render::MAX_BODY_BYTES;
    loop {
        let body = fit_body_within(&m.body, budget);
        let whole = json!({"default": body.as_ref(), "https": chat}).to_string();
        if whole.len() <= MAX_SNS_MESSAGE_BYTES || budget <= 400 {
            return whole;
        }
        // Each byte cut from the text removes at least one byte of its JSON.
        budget = budget.saturating_sub(whole.len() - MAX_SNS_MESSAGE_BYTES + 64);
    }
}

/// What the schema check found wrong, naming the field (`content.title`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatSchemaError {
    #[error("{field}: required field missing")]
    Missing { field: String },
    #[error("{field}: expected {expected}")]
    WrongType { field: String, expected: &'static str },
    #[error("{field}: must be {expected:?}, found {found:?}")]
    WrongValue { field: String, expected: &'static str, found: String },
    #[error("{field}: must not be empty")]
    Empty { field: String },
    #[error("{field}: {len} characters, at most {max}")]
    TooLong { field: String, len: usize, max: usize },
    #[error("{field}: {len} items, at most {max}")]
    TooMany { field: String, len: usize, max: usize },
    #[error("{field}: unknown field")]
    Unknown { field: String },
    #[error("notification: {bytes} bytes, at most {max}")]
    TooLarge { bytes: usize, max: usize },
}

fn obj<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, ChatSchemaError> {
    v.as_object().ok_or_else(|| ChatSchemaError::WrongType { field: field.into(), expected: "an object" })
}

fn known(o: &Map<String, Value>, prefix: &str, allowed: &[&str]) -> Result<(), ChatSchemaError> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ChatSchemaError::Unknown { field: format!("{prefix}{k}") }),
        None => Ok(()),
    }
}

fn string<'a>(v: &'a Value, field: &str, max: usize) -> Result<&'a str, ChatSchemaError> {
    let s = v.as_str().ok_or_else(|| ChatSchemaError::WrongType { field: field.into(), expected: "a string" })?;
    if s.is_empty() {
        return Err(ChatSchemaError::Empty { field: field.into() });
    }
    let len = s.chars().count();
    if len > max {
        return Err(ChatSchemaError::TooLong { field: field.into(), len, max });
    }
    Ok(s)
}

fn optional<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    field: &str,
    max: usize,
) -> Result<Option<&'a str>, ChatSchemaError> {
    o.get(key).map(|v| string(v, field, max)).transpose()
}

fn strings(v: &Value, field: &str, items: usize, chars: usize) -> Result<(), ChatSchemaError> {
    let a = v.as_array().ok_or_else(|| ChatSchemaError::WrongType { field: field.into(), expected: "an array" })?;
    if a.len() > items {
        return Err(ChatSchemaError::TooMany { field: field.into(), len: a.len(), max: items });
    }
    for (i, s) in a.iter().enumerate() {
        string(s, &format!("{field}[{i}]"), chars)?;
    }
    Ok(())
}

fn exact(o: &Map<String, Value>, key: &str, field: &str, expected: &'static str) -> Result<(), ChatSchemaError> {
    let v = o.get(key).ok_or_else(|| ChatSchemaError::Missing { field: field.into() })?;
    let s = v.as_str().ok_or_else(|| ChatSchemaError::WrongType { field: field.into(), expected: "a string" })?;
    if s != expected {
        return Err(ChatSchemaError::WrongValue { field: field.into(), expected, found: s.into() });
    }
    Ok(())
}

/// The schema check: the fields AWS requires (`version` "1.0", `source`
/// "custom", `content.description`), the types of every optional field,
/// `textType` "client-markdown" when given, no unknown fields, and our
/// [`limits`].
pub fn validate(v: &Value) -> Result<(), ChatSchemaError> {
    let bytes = v.to_string().len();
    if bytes > limits::NOTIFICATION_BYTES {
        return Err(ChatSchemaError::TooLarge { bytes, max: limits::NOTIFICATION_BYTES });
    }
    let top = obj(v, "notification")?;
    known(top, "", &["version", "source", "id", "content", "metadata"])?;
    exact(top, "version", "version", VERSION)?;
    exact(top, "source", "source", SOURCE)?;
    optional(top, "id", "id", limits::ID_CHARS)?;

    let content =
        obj(top.get("content").ok_or_else(|| ChatSchemaError::Missing { field: "content".into() })?, "content")?;
    known(content, "content.", &["textType", "title", "description", "nextSteps", "keywords"])?;
    if content.contains_key("textType") {
        exact(content, "textType", "content.textType", TEXT_TYPE)?;
    }
    optional(content, "title", "content.title", limits::TITLE_CHARS)?;
    let description =
        content.get("description").ok_or_else(|| ChatSchemaError::Missing { field: "content.description".into() })?;
    string(description, "content.description", limits::DESCRIPTION_CHARS)?;
    if let Some(steps) = content.get("nextSteps") {
        strings(steps, "content.nextSteps", limits::NEXT_STEPS, limits::NEXT_STEP_CHARS)?;
    }
    if let Some(k) = content.get("keywords") {
        strings(k, "content.keywords", limits::KEYWORDS, limits::KEYWORD_CHARS)?;
    }

    let Some(metadata) = top.get("metadata") else { return Ok(()) };
    let metadata = obj(metadata, "metadata")?;
    known(
        metadata,
        "metadata.",
        &["threadId", "summary", "eventType", "relatedResources", "additionalContext", "enableCustomActions"],
    )?;
    if let Some(flag) = metadata.get("enableCustomActions")
        && !flag.is_boolean()
    {
        return Err(ChatSchemaError::WrongType { field: "metadata.enableCustomActions".into(), expected: "a boolean" });
    }
    optional(metadata, "threadId", "metadata.threadId", limits::THREAD_ID_CHARS)?;
    optional(metadata, "summary", "metadata.summary", limits::SUMMARY_CHARS)?;
    if let Some(e) = optional(metadata, "eventType", "metadata.eventType", limits::EVENT_TYPE_CHARS)?
        && !e.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(ChatSchemaError::WrongValue {
            field: "metadata.eventType".into(),
            expected: "lower-case words joined by '-'",
            found: e.into(),
        });
    }
    if let Some(r) = metadata.get("relatedResources") {
        strings(r, "metadata.relatedResources", limits::RELATED_RESOURCES, limits::RELATED_RESOURCE_CHARS)?;
    }
    if let Some(c) = metadata.get("additionalContext") {
        let c = obj(c, "metadata.additionalContext")?;
        if c.len() > limits::CONTEXT_KEYS {
            return Err(ChatSchemaError::TooMany {
                field: "metadata.additionalContext".into(),
                len: c.len(),
                max: limits::CONTEXT_KEYS,
            });
        }
        for (k, v) in c {
            string(v, &format!("metadata.additionalContext.{k}"), limits::CONTEXT_VALUE_CHARS)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::render::{
        AlertView, EscalationView, EvidenceStatus, Links, ResolvedView, render_alert, render_escalation,
        render_resolved,
    };
    use crate::outcome::{ActionRecord, ActionStatus, Cause, Kind, Severity};
    use crate::redact::Redactor;

    fn links() -> Links {
        Links { region: "eu-west-1".into(), cluster: "prod".into(), service: "api".into() }
    }

    fn alert_view<'a>(update: bool, actions: &'a [ActionRecord], log_lines: Vec<String>) -> AlertView<'a> {
        AlertView {
            update,
            kind: Kind::EcsTaskStopped,
            severity: Severity::Sev2,
            cause: Cause::OutOfMemory,
            cluster: "prod",
            service: "api",
            incident: "inc-20261120-prod-api-1",
            problem: "crash loop",
            opened_at: "2026-11-20T14:02:10Z",
            impact: vec!["1 of 3 tasks running (0 pending)".into()],
            status: "OPEN - crash loop: 5 tasks failed".into(),
            findings: vec![
                "task 0a1b2c stopped: OutOfMemoryError: Container killed due to memory usage (exit 137)".into(),
                "task definition api:42 gives the container 512 MiB".into(),
            ],
            log_lines,
            log_source: Some(("/ecs/api".into(), "api/api/0a1b2c".into())),
            actions,
            evidence: EvidenceStatus::Stored("s3://ev/incidents/prod/api/inc-20261120-prod-api-1/".into()),
            evidence_location: Some(("ev".into(), "incidents/prod/api/inc-20261120-prod-api-1/".into())),
            links: links(),
        }
    }

    fn rollback() -> Vec<ActionRecord> {
        vec![ActionRecord {
            action: "rollback".into(),
            status: ActionStatus::Executed,
            detail: "roll back api:42 -> api:41 (UpdateService)".into(),
        }]
    }

    fn alert() -> Message {
        render_alert(&alert_view(false, &[], vec!["ERROR java.lang.OutOfMemoryError".into()]), &Redactor::new())
    }

    fn update() -> Message {
        render_alert(&alert_view(true, &rollback(), Vec::new()), &Redactor::new())
    }

    fn resolved() -> Message {
        let notes = vec!["rollback executed: roll back api:42 -> api:41".to_string()];
        render_resolved(
            &ResolvedView {
                kind: Kind::EcsServiceAction,
                severity: Severity::Sev2,
                cause: Cause::OutOfMemory,
                cluster: "prod",
                service: "api",
                incident: "inc-20261120-prod-api-1",
                problem: "crash loop",
                opened_at: "2026-11-20T14:02:10Z",
                resolved_at: "2026-11-20T14:14:40Z",
                resolved_by: "SERVICE_STEADY_STATE",
                time_to_recover_seconds: 750,
                failures: 12,
                notes: &notes,
                evidence: Some("s3://ev/incidents/prod/api/inc-20261120-prod-api-1/"),
                links: links(),
                report: Some("s3://ev/incidents/prod/api/inc-20261120-prod-api-1/report.md"),
                actions: &rollback(),
            },
            &Redactor::new(),
        )
    }

    fn escalation() -> Message {
        let tried = vec!["rollback skipped: budget of 1 per 30 minutes used".to_string()];
        render_escalation(
            &EscalationView {
                severity: Severity::Sev1,
                cause: Cause::ImagePull,
                cluster: "prod",
                service: "api",
                incident: "inc-20261120-prod-api-1",
                problem: "service down",
                opened_at: "2026-11-20T14:02:10Z",
                open_for_seconds: 1_200,
                nth: 2,
                tried: &tried,
                evidence: None,
                links: links(),
                pipeline: None,
                actions: &[ActionRecord {
                    action: "rollback".into(),
                    status: ActionStatus::Skipped,
                    detail: "budget exhausted: 1 automatic rollback in the last 30 minutes (limit 1)".into(),
                }],
            },
            &Redactor::new(),
        )
    }

    /// The two notices the flows build directly (runbook action, unmapped
    /// alarm), in the same shape.
    fn runbook_action() -> Message {
        Message {
            place: None,
            subject: "[SEV3] prod/api: scale executed (runbook)".into(),
            body: "RUNBOOK ACTION - SEV3\n\nService:  prod/api\nAction:   scale\n".into(),
            severity: Severity::Sev3,
            cluster: "prod".into(),
            service: "api".into(),
            cause: Cause::Unknown,
            kind: Kind::Runbook,
            incident: None,
            event_type: EventType::RunbookAction,
            highlights: vec!["scale executed: desired 3 -> 5".into()],
            next_steps: Vec::new(),
            links: vec![("Service health".into(), links().service())],
            evidence: None,
            team: None,
            chat_context: Vec::new(),
        }
    }

    fn alarm_notice() -> Message {
        Message {
            place: None,
            subject: "[SEV3] alarm orders-latency: latency (no ECS service mapped)".into(),
            body: "ALARM - SEV3\n".into(),
            severity: Severity::Sev3,
            cluster: String::new(),
            service: String::new(),
            cause: Cause::Latency,
            kind: Kind::Alarm,
            incident: None,
            event_type: EventType::AlarmNotice,
            highlights: vec!["Alarm orders-latency is Alarm (was Ok)".into()],
            next_steps: crate::notify::render::steps_of(Cause::Latency),
            links: Vec::new(),
            evidence: None,
            team: None,
            chat_context: Vec::new(),
        }
    }

    /// The daily report's summary, shaped as `flows::reports` sends it.
    fn report_summary() -> Message {
        Message {
            place: None,
            subject: "[SEV2] daily health 2026-12-02: 1 down, 2 degraded, 14 healthy".into(),
            body: "DAILY HEALTH CHECK - 2026-12-02\n".into(),
            severity: Severity::Sev2,
            cluster: String::new(),
            service: String::new(),
            cause: Cause::Expected,
            kind: Kind::Report,
            incident: None,
            event_type: EventType::Report,
            highlights: vec!["prod/api: Down running 0 of 3".into(), "prod/web: Degraded 1 alarm in ALARM".into()],
            next_steps: Vec::new(),
            links: vec![
                (
                    "report.html".into(),
                    "https://evidence.s3.amazonaws.com/reports/daily/2026-12-02/report.html?X-Amz-Expires=3600".into(),
                ),
                ("report.json".into(), "not stored: AccessDenied".into()),
            ],
            evidence: Some("s3://evidence/reports/daily/2026-12-02/".into()),
            team: None,
            chat_context: Vec::new(),
        }
    }

    fn every_kind() -> Vec<(&'static str, Message)> {
        vec![
            ("alert", alert()),
            ("update", update()),
            ("resolution", resolved()),
            ("escalation", escalation()),
            ("runbook action", runbook_action()),
            ("alarm notice", alarm_notice()),
            ("report summary", report_summary()),
        ]
    }

    /// A paused deployment's approval notice, as `incident::approval` renders it.
    fn approval() -> Message {
        let hook = crate::trigger::HookStateChange {
            event_name: "HOOK_AWAITING_ACTION".into(),
            hook_id: "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw".into(),
            hook_type: Some("PAUSE".into()),
            lifecycle_stage: Some("POST_TEST_TRAFFIC_SHIFT".into()),
            expires_at: Some("2026-11-20T16:04:41Z".into()),
            service_deployment_arn:
                "arn:aws:ecs:eu-west-1:111122223333:service-deployment/prod/api/0EYSiB0qap8xf0N76FsbE".into(),
            ..Default::default()
        };
        crate::notify::approval::render_approval(
            &crate::notify::approval::ApprovalView {
                cluster: "prod",
                service: "api",
                hook: &hook,
                target: Some("arn:aws:ecs:eu-west-1:111122223333:task-definition/api:43"),
                running: Some("arn:aws:ecs:eu-west-1:111122223333:task-definition/api:42"),
                changes: crate::notify::approval::ChangesRead::Unread("example".into()),
                health: None,
                runbook_function: "autopilot-runbook",
                region: "eu-west-1",
            },
            &Redactor::new(),
        )
    }

    /// The custom notifications the chat buttons are checked against
    /// (`infra/tests/test_chat_buttons.py` reads them): every kind, as the
    /// renderers produce it. `UPDATE_CHAT_FIXTURES=1` rewrites them.
    fn with_payloads_parsed(v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, with_payloads_parsed(v))).collect()),
            Value::Array(a) => Value::Array(a.into_iter().map(with_payloads_parsed).collect()),
            Value::String(s) if s.starts_with('{') => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            other => other,
        }
    }

    #[test]
    fn a_members_alert_names_its_account_and_region_and_its_buttons_act_there() {
        let place = crate::fleet::Place { account: "444455556666".into(), region: "eu-west-1".into() };
        // An alert with a held service prints runbook and DynamoDB commands.
        let mut home = update();
        home.body.push_str(
            "aws lambda invoke --function-name x-runbook --cli-binary-format raw-in-base64-out --cli-read-timeout 310 --payload '{\"action\":\"diagnose\",\"cluster\":\"prod\",\"service\":\"api\"}' out.json\n\
             aws dynamodb delete-item --table-name x-state --key '{\"pk\":{\"S\":\"service#prod/api\"},\"sk\":{\"S\":\"hold\"}}'\n",
        );
        let m = home.clone().placed(&place);
        assert!(m.body.contains(r#""S":"444455556666/eu-west-1/service#prod/api""#), "{}", m.body);
        assert!(m.subject.contains("] 444455556666 eu-west-1 "), "{}", m.subject);
        assert!(m.subject.len() < 100 && m.subject.is_ascii());
        assert!(m.body.starts_with("Account 444455556666 in eu-west-1"), "{}", m.body);
        for line in m.body.lines().filter(|l| l.contains("aws lambda invoke")) {
            assert!(line.contains(r#""account":"444455556666","region":"eu-west-1","cluster":"#), "{line}");
        }
        assert!(m.body.lines().any(|l| l.contains("aws lambda invoke")), "the alert prints a command");
        let n = notification(&m);
        validate(&n).unwrap_or_else(|e| panic!("{e}"));
        let ctx = &n["metadata"]["additionalContext"];
        assert_eq!(ctx["account"], "444455556666");
        assert_eq!(ctx["region"], "eu-west-1");
        for var in [super::super::buttons::vars::ROLLBACK, super::super::buttons::vars::DIAGNOSE] {
            let req: Value = serde_json::from_str(ctx[var].as_str().expect(var)).expect("payload JSON");
            assert_eq!((req["account"].as_str(), req["region"].as_str()), (Some("444455556666"), Some("eu-west-1")));
        }
        // Home's messages are as they were.
        let n = notification(&home);
        assert!(n["metadata"]["additionalContext"].get("account").is_none());
        let placed_twice = m.clone().placed(&place);
        assert_eq!((placed_twice.subject, placed_twice.body), (m.subject, m.body), "placing is idempotent");
    }

    #[test]
    fn the_chat_button_fixtures_are_what_the_renderers_produce() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/tests/notifications");
        let mut kinds = every_kind();
        kinds.push(("approval", approval()));
        let update = std::env::var("UPDATE_CHAT_FIXTURES").is_ok_and(|v| v == "1");
        for (_, m) in kinds {
            let n = notification(&m);
            validate(&n).unwrap_or_else(|e| panic!("{}: {e}", m.event_type.as_str()));
            let path = dir.join(format!("{}.json", m.event_type.as_str()));
            let text = format!("{}\n", serde_json::to_string_pretty(&n).expect("json"));
            if update {
                std::fs::create_dir_all(&dir).expect("fixture dir");
                std::fs::write(&path, &text).expect("write fixture");
            }
            let kept = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_CHAT_FIXTURES=1 writes it)", path.display()));
            // As JSON, not text: `cargo test --workspace` turns on serde_json's
            // `preserve_order`, which changes the key order but not the document.
            // The button payloads are JSON inside strings: compared parsed too.
            let kept: serde_json::Value = serde_json::from_str(&kept).expect("fixture is JSON");
            assert_eq!(
                with_payloads_parsed(kept),
                with_payloads_parsed(n),
                "{} is stale: UPDATE_CHAT_FIXTURES=1 rewrites it",
                path.display()
            );
        }
    }

    #[test]
    fn every_message_kind_renders_a_custom_notification_that_passes_the_schema_check() {
        for (name, m) in every_kind() {
            let n = notification(&m);
            validate(&n).unwrap_or_else(|e| panic!("{name}: {e}\n{n:#}"));
            assert_eq!(n["version"], "1.0");
            assert_eq!(n["source"], "custom");
            assert_eq!(n["content"]["textType"], "client-markdown");
            assert_eq!(n["metadata"]["eventType"], m.event_type.as_str(), "{name}");
            let keywords = n["content"]["keywords"].as_array().expect("keywords");
            assert!(keywords.contains(&json!(m.severity.as_str())), "{name}: severity is a keyword: {n:#}");
            assert!(keywords.contains(&json!(m.cause.as_str())), "{name}: cause is a keyword: {n:#}");
            // The SNS message decodes into the plain text and the same notification.
            let sns: Value = serde_json::from_str(&sns_message(&m)).expect("sns message is JSON");
            assert_eq!(sns["default"], m.body.as_str(), "{name}");
            let chat: Value = serde_json::from_str(sns["https"].as_str().expect("https is a string")).expect("chat");
            validate(&chat).unwrap_or_else(|e| panic!("{name} (decoded from SNS): {e}"));
            assert_eq!(chat, n);
        }
    }

    #[test]
    fn event_types_name_what_happened() {
        let kinds: Vec<&str> = every_kind().iter().map(|(_, m)| m.event_type.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "incident-opened",
                "incident-update",
                "incident-resolved",
                "incident-escalated",
                "runbook-action",
                "alarm-notice",
                "report"
            ]
        );
        assert_eq!(EventType::PipelineApproval.as_str(), "pipeline-approval");
        assert_eq!(EventType::Report.as_str(), "report");
    }

    #[test]
    fn messages_of_one_incident_share_a_thread() {
        let thread = |m: &Message| notification(m)["metadata"]["threadId"].clone();
        let (a, u, r, e) = (alert(), update(), resolved(), escalation());
        assert_eq!(thread(&a), json!("inc-20261120-prod-api-1"));
        assert_eq!(thread(&a), thread(&u));
        assert_eq!(thread(&a), thread(&r));
        assert_eq!(thread(&a), thread(&e));
        assert_ne!(notification(&a)["id"], notification(&u)["id"], "each message is its own event");
        assert_eq!(notification(&a)["id"], notification(&alert())["id"], "the same message keeps its id");
        assert_eq!(thread(&runbook_action()), json!("prod/api"), "a notice threads on its service");
        assert!(notification(&alarm_notice())["metadata"].get("threadId").is_none());
    }

    #[test]
    fn the_notification_carries_next_steps_links_and_context() {
        let n = notification(&alert());
        let steps: Vec<&str> =
            n["content"]["nextSteps"].as_array().expect("steps").iter().filter_map(Value::as_str).collect();
        let expected: Vec<&str> = Cause::OutOfMemory.next_steps().iter().take(limits::NEXT_STEPS).copied().collect();
        assert_eq!(steps, expected, "no action decided: the runbook's steps as written");
        let related = n["metadata"]["relatedResources"].as_array().expect("related");
        assert_eq!(related[0], "ecs-service:prod/api");
        assert!(related.iter().any(|r| r.as_str().is_some_and(|r| r.contains("/ecs/v2/clusters/prod/services/api"))));
        let ctx = &n["metadata"]["additionalContext"];
        assert_eq!(ctx["incident"], "inc-20261120-prod-api-1");
        assert_eq!(ctx["cluster"], "prod");
        assert_eq!(ctx["service"], "api");
        assert_eq!(ctx["severity"], "SEV2");
        assert_eq!(ctx["cause"], "out-of-memory");
        assert_eq!(ctx["evidence"], "s3://ev/incidents/prod/api/inc-20261120-prod-api-1/");
        let d = n["content"]["description"].as_str().expect("description");
        assert!(d.starts_with("*SEV2* · `prod/api` · "), "{d}");
        assert!(d.contains("Status: OPEN - crash loop"), "{d}");
        let u = notification(&update());
        assert!(u["content"]["description"].as_str().is_some_and(|d| d.contains("Action: rollback executed")), "{u:#}");
    }

    /// The numbered "Next steps" lines of a body.
    fn body_steps(body: &str) -> Vec<String> {
        let start = body.find("Next steps").expect("a Next steps section");
        body[start..]
            .lines()
            .skip(1)
            .map_while(|l| l.split_once(". ").filter(|(n, _)| n.parse::<u32>().is_ok()).map(|(_, t)| t.to_string()))
            .collect()
    }

    #[test]
    fn chat_next_steps_are_the_bodys_next_steps_and_know_what_was_done() {
        for (name, m) in
            [("alert", alert()), ("update", update()), ("resolution", resolved()), ("escalation", escalation())]
        {
            let n = notification(&m);
            let chat: Vec<String> = n["content"]["nextSteps"]
                .as_array()
                .expect("steps")
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            let body: Vec<String> = body_steps(&m.body)
                .iter()
                .take(limits::NEXT_STEPS)
                .map(|s| cut_chars(s, limits::NEXT_STEP_CHARS))
                .collect();
            assert!(!chat.is_empty(), "{name}");
            assert_eq!(chat, body, "{name}: one list for the text and chat");
        }
        // The update shows the executed rollback: never advised again, its target to confirm.
        let u = update();
        let steps = body_steps(&u.body);
        assert!(steps[0].starts_with("Confirm prod/api is healthy on api:41"), "{steps:#?}");
        assert!(steps[0].contains("The failing revision was api:42"), "{steps:#?}");
        assert!(!steps.iter().any(|s| s.to_lowercase().contains("roll back")), "{steps:#?}");
        // The resolution points at its report first, then at what to verify.
        let r = body_steps(&resolved().body);
        assert!(r[0].contains("report.md"), "{r:#?}");
        assert!(r[1].starts_with("Verify prod/api still runs api:41"), "{r:#?}");
        // The escalation's rollback was refused by the budget: what to do instead.
        let e = body_steps(&escalation().body);
        assert!(e[0].starts_with("The automatic rollback was refused by the budget"), "{e:#?}");
        assert!(e[1].contains("--function-name <stack>-runbook"), "{e:#?}");
    }

    #[test]
    fn a_huge_alert_stays_within_every_limit() {
        // 5,000 log lines of 200 characters (1 MB), and findings far past
        // what chat shows: SNS still gets at most 250 KiB, chat its limits.
        let lines: Vec<String> =
            (0..5_000).map(|i| format!("{i:05} ERROR é \"quoted\"\t{}", "x".repeat(180))).collect();
        let mut v = alert_view(false, &[], lines);
        v.findings = (0..400).map(|i| format!("finding {i}: {}", "ü".repeat(500))).collect();
        let m = render_alert(&v, &Redactor::new());
        assert!(m.body.len() > 1_000_000);
        let n = notification(&m);
        validate(&n).unwrap_or_else(|e| panic!("{e}"));
        let d = n["content"]["description"].as_str().expect("description");
        assert_eq!(d.chars().count(), limits::DESCRIPTION_CHARS);
        assert!(d.ends_with(CUT), "cut and marked: …{}", &d[d.len() - 40..]);
        let sns = sns_message(&m);
        assert!(sns.len() <= MAX_SNS_MESSAGE_BYTES, "{} bytes", sns.len());
        let sns: Value = serde_json::from_str(&sns).expect("json");
        let text = sns["default"].as_str().expect("default");
        assert!(text.contains("[message cut:"), "the plain text says it was cut");
        let chat: Value = serde_json::from_str(sns["https"].as_str().expect("https")).expect("chat");
        assert_eq!(chat, n);
    }

    #[test]
    fn text_of_control_characters_still_fits_through_the_tight_budget() {
        // JSON escapes a control character into six bytes: the worst case.
        let mut m = alert();
        m.highlights = vec!["\u{1}".repeat(20_000)];
        m.next_steps = (0..50).map(|_| "\u{2}".repeat(1_000)).collect();
        m.links = (0..50).map(|i| (format!("l{i}"), format!("https://x/{}", "\u{3}".repeat(2_000)))).collect();
        let n = notification(&m);
        validate(&n).unwrap_or_else(|e| panic!("{e}"));
        assert!(sns_message(&m).len() <= MAX_SNS_MESSAGE_BYTES);
    }

    #[test]
    fn cutting_keeps_character_boundaries_and_marks_the_cut() {
        assert_eq!(cut_chars("short", 10), "short");
        let cut = cut_chars(&"é".repeat(100), 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(cut.ends_with(CUT));
    }

    #[test]
    fn the_schema_check_names_the_field_that_is_wrong() {
        let good = notification(&alert());
        let broken = |f: &dyn Fn(&mut Value)| {
            let mut v = good.clone();
            f(&mut v);
            validate(&v).expect_err("must be refused")
        };
        assert_eq!(
            broken(&|v| v["version"] = json!("2.0")),
            ChatSchemaError::WrongValue { field: "version".into(), expected: "1.0", found: "2.0".into() }
        );
        assert_eq!(
            broken(&|v| v["source"] = json!("aws.ecs")),
            ChatSchemaError::WrongValue { field: "source".into(), expected: "custom", found: "aws.ecs".into() }
        );
        assert_eq!(
            broken(&|v| {
                v.as_object_mut().map(|o| o.remove("version"));
            }),
            ChatSchemaError::Missing { field: "version".into() }
        );
        assert_eq!(
            broken(&|v| {
                v["content"].as_object_mut().map(|o| o.remove("description"));
            }),
            ChatSchemaError::Missing { field: "content.description".into() }
        );
        assert_eq!(
            broken(&|v| v["content"]["textType"] = json!("markdown")),
            ChatSchemaError::WrongValue {
                field: "content.textType".into(),
                expected: "client-markdown",
                found: "markdown".into()
            }
        );
        assert_eq!(
            broken(&|v| v["content"]["title"] = json!(7)),
            ChatSchemaError::WrongType { field: "content.title".into(), expected: "a string" }
        );
        assert_eq!(
            broken(&|v| v["content"]["description"] = json!("x".repeat(3_001))),
            ChatSchemaError::TooLong { field: "content.description".into(), len: 3_001, max: 3_000 }
        );
        assert_eq!(
            broken(&|v| v["content"]["keywords"] = json!(["SEV2", 3])),
            ChatSchemaError::WrongType { field: "content.keywords[1]".into(), expected: "a string" }
        );
        assert_eq!(
            broken(&|v| v["content"]["nextSteps"] = json!(vec!["step"; 11])),
            ChatSchemaError::TooMany { field: "content.nextSteps".into(), len: 11, max: 10 }
        );
        assert_eq!(
            broken(&|v| v["metadata"]["threadid"] = json!("typo")),
            ChatSchemaError::Unknown { field: "metadata.threadid".into() }
        );
        assert_eq!(
            broken(&|v| v["metadata"]["eventType"] = json!("Incident Opened")),
            ChatSchemaError::WrongValue {
                field: "metadata.eventType".into(),
                expected: "lower-case words joined by '-'",
                found: "Incident Opened".into()
            }
        );
        assert_eq!(
            broken(&|v| v["metadata"]["additionalContext"]["cluster"] = json!(["prod"])),
            ChatSchemaError::WrongType { field: "metadata.additionalContext.cluster".into(), expected: "a string" }
        );
        assert!(matches!(
            broken(&|v| v["metadata"]["summary"] = json!("y".repeat(70_000))),
            ChatSchemaError::TooLarge { .. }
        ));
        // The minimal notification AWS documents passes.
        validate(&json!({"version": "1.0", "source": "custom", "content": {"description": "hello"}})).expect("minimal");
    }
}
