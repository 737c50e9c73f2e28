//! A paused deployment's approval notice, and the thread messages that
//! follow it (pure): what changed between the running and the target
//! revision (images, CPU/memory, environment variable NAMES added or
//! removed — never values), the target revision's current health, and the
//! exact commands to continue or roll back.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::buttons;
use super::render::{EventType, Links, Message, subject_line};
use crate::arn::last_segment;
use crate::outcome::{ActionRecord, Cause, Kind, Severity};
use crate::redact::Redactor;
use crate::snapshot::{ServiceSnapshot, TaskDefinitionSnapshot};
use crate::trigger::HookStateChange;

/// What changed from the running revision to the target one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// (container, running image, target image); a container only on one side has `None` there.
    pub images: Vec<(String, Option<String>, Option<String>)>,
    /// Task-level CPU units, (running, target), when they differ.
    pub cpu: Option<(String, String)>,
    /// Task-level memory (MiB), (running, target), when they differ.
    pub memory: Option<(String, String)>,
    /// Environment variable and secret NAMES only the target has ("container/NAME").
    pub env_added: Vec<String>,
    /// Environment variable and secret NAMES only the running revision has.
    pub env_removed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
            && self.cpu.is_none()
            && self.memory.is_none()
            && self.env_added.is_empty()
            && self.env_removed.is_empty()
    }

    /// One line per change, for a person.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (c, from, to) in &self.images {
            out.push(match (from, to) {
                (Some(f), Some(t)) => format!("image of {c}: {f} -> {t}"),
                (None, Some(t)) => format!("container {c} added ({t})"),
                (Some(f), None) => format!("container {c} removed (was {f})"),
                (None, None) => format!("container {c}: no image"),
            });
        }
        if let Some((f, t)) = &self.cpu {
            out.push(format!("CPU: {f} -> {t}"));
        }
        if let Some((f, t)) = &self.memory {
            out.push(format!("memory: {f} -> {t}"));
        }
        if !self.env_added.is_empty() {
            out.push(format!("environment names added: {}", self.env_added.join(", ")));
        }
        if !self.env_removed.is_empty() {
            out.push(format!("environment names removed: {}", self.env_removed.join(", ")));
        }
        out
    }
}

fn names(td: &TaskDefinitionSnapshot) -> std::collections::BTreeSet<String> {
    td.containers
        .iter()
        .flat_map(|c| {
            c.environment
                .iter()
                .map(|e| e.name.as_str())
                .chain(c.secrets.iter().map(|s| s.name.as_str()))
                .map(move |n| format!("{}/{n}", c.name))
        })
        .collect()
}

/// What changed from `running` to `target` (pure). Values of environment
/// variables are never read here: only their names are compared.
pub fn diff(running: &TaskDefinitionSnapshot, target: &TaskDefinitionSnapshot) -> Changes {
    let mut images = Vec::new();
    for c in &target.containers {
        let before = running.containers.iter().find(|r| r.name == c.name);
        match before {
            Some(r) if r.image == c.image => {}
            Some(r) => images.push((c.name.clone(), r.image.clone(), c.image.clone())),
            None => images.push((c.name.clone(), None, c.image.clone())),
        }
    }
    for r in &running.containers {
        if !target.containers.iter().any(|c| c.name == r.name) {
            images.push((r.name.clone(), r.image.clone(), None));
        }
    }
    let changed = |a: &Option<String>, b: &Option<String>| {
        (a != b).then(|| (a.clone().unwrap_or_else(|| "-".into()), b.clone().unwrap_or_else(|| "-".into())))
    };
    let (before, after) = (names(running), names(target));
    Changes {
        images,
        cpu: changed(&running.cpu, &target.cpu),
        memory: changed(&running.memory, &target.memory),
        env_added: after.difference(&before).cloned().collect(),
        env_removed: before.difference(&after).cloned().collect(),
    }
}

/// Which revision the paused deployment brings in, and which one runs now
/// (pure): the target is the service's task definition (ECS sets it when
/// the deployment starts); the running one is the revision of another
/// deployment the service lists, else the newest known-good revision that
/// is not the target.
pub fn revisions(service: &ServiceSnapshot, known_good: &[String]) -> (Option<String>, Option<String>) {
    let target = service.task_definition.clone();
    let other = |td: &str| target.as_deref().is_none_or(|t| last_segment(t) != last_segment(td));
    let running = service
        .deployments
        .iter()
        .filter(|d| !d.task_definition.is_empty() && other(&d.task_definition))
        .map(|d| d.task_definition.clone())
        .next()
        .or_else(|| known_good.iter().find(|td| other(td)).cloned());
    (target, running)
}

/// The target revision's health now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreenHealth {
    pub running: i32,
    pub desired: i32,
    pub pending: i32,
    /// Whose counts these are: the deployment of the target revision, or
    /// the whole service when no deployment lists it.
    pub of: String,
}

impl GreenHealth {
    pub fn line(&self) -> String {
        format!("{} of {} running ({} pending), {}", self.running, self.desired, self.pending, self.of)
    }
}

/// The health of `target` (pure): its deployment's counts, else the service's.
pub fn green_health(service: &ServiceSnapshot, target: Option<&str>) -> GreenHealth {
    let deployment =
        target.and_then(|t| service.deployments.iter().find(|d| last_segment(&d.task_definition) == last_segment(t)));
    match deployment {
        Some(d) => GreenHealth {
            running: d.running,
            desired: d.desired,
            pending: d.pending,
            of: format!("deployment {} of the target revision", d.id),
        },
        None => GreenHealth {
            running: service.running,
            desired: service.desired,
            pending: service.pending,
            of: "whole service (no deployment lists the target revision)".into(),
        },
    }
}

/// The runbook function the commands name: `RUNBOOK_FUNCTION_NAME` when set,
/// else this function's name with its binary replaced by `runbook` (the
/// stack names every function `<stack>-<binary>`).
pub fn runbook_function(configured: Option<&str>, own: Option<&str>) -> String {
    if let Some(name) = configured.filter(|n| !n.trim().is_empty()) {
        return name.to_string();
    }
    match own.and_then(|o| o.rsplit_once("-ecs-events")) {
        Some((stack, "")) => format!("{stack}-runbook"),
        _ => "<stack>-runbook".into(),
    }
}

/// The exact `aws lambda invoke` command of one runbook request.
pub fn invoke_command(function: &str, payload: &serde_json::Value) -> String {
    format!(
        "aws lambda invoke --function-name {function} --cli-binary-format raw-in-base64-out \
         --cli-read-timeout 310 --payload '{}' out.json",
        buttons::canonical_json(payload)
    )
}

/// The two answers' runbook requests for a person at the CLI (`requested_by`
/// to fill in, one request id per answer).
pub fn answer_requests(cluster: &str, service: &str, hook_id: &str) -> (serde_json::Value, serde_json::Value) {
    let answer = |action: &str, id: &str| {
        json!({"action": action, "cluster": cluster, "service": service, "hook_id": hook_id,
            "request_id": buttons::hook_request_id(hook_id, id), "requested_by": "you@example.com"})
    };
    (answer("continue-deployment", "continue"), answer("rollback-deployment", "rollback"))
}

/// The thread of one paused deployment's messages.
pub fn thread(deployment_id: &str) -> String {
    format!("approval-{deployment_id}")
}

/// What changed, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangesRead {
    Read(Changes),
    Unread(String),
}

/// Everything the approval notice shows.
pub struct ApprovalView<'a> {
    pub cluster: &'a str,
    pub service: &'a str,
    pub hook: &'a HookStateChange,
    pub target: Option<&'a str>,
    pub running: Option<&'a str>,
    /// The changes, or why they could not be read.
    pub changes: ChangesRead,
    pub health: Option<GreenHealth>,
    pub runbook_function: &'a str,
    pub region: &'a str,
}

/// The approval notice: one per hook.
pub fn render_approval(v: &ApprovalView<'_>, redactor: &Redactor) -> Message {
    let (cluster, service, hook) = (v.cluster, v.service, v.hook);
    let target = v.target.map(last_segment).unwrap_or("unknown");
    let running = v.running.map(last_segment).unwrap_or("unknown");
    let stage = hook.lifecycle_stage.as_deref().unwrap_or("a lifecycle stage");
    let subject = subject_line(&format!("[APPROVAL] {cluster}/{service}: deployment of {target} paused at {stage}"));
    let (cont, roll) = answer_requests(cluster, service, &hook.hook_id);
    let mut highlights = vec![format!("target {target} (running {running}), paused at {stage}")];
    let change_lines = match &v.changes {
        ChangesRead::Read(c) if c.is_empty() => {
            vec!["no change of images, CPU/memory or environment names".to_string()]
        }
        ChangesRead::Read(c) => c.lines(),
        ChangesRead::Unread(why) => vec![format!("changes not read: {why}")],
    };
    highlights.extend(change_lines.iter().cloned());
    let health = v.health.as_ref().map(GreenHealth::line).unwrap_or_else(|| "not read".into());
    highlights.push(format!("target health: {health}"));
    if let Some(at) = &hook.expires_at {
        highlights.push(format!("ECS takes the hook's timeout action at {at}"));
    }
    let links = Links { region: v.region.into(), cluster: cluster.into(), service: service.into() };
    let mut b = String::new();
    b.push_str(&format!("DEPLOYMENT APPROVAL - {cluster}/{service}\n\n"));
    b.push_str(&format!("Deployment:  {}\n", hook.service_deployment_arn));
    b.push_str(&format!("Paused at:   {stage} (hook {})\n", hook.hook_id));
    b.push_str(&format!("Target:      {}\n", v.target.unwrap_or("unknown")));
    b.push_str(&format!("Running:     {}\n", v.running.unwrap_or("unknown")));
    if let Some(at) = &hook.expires_at {
        b.push_str(&format!("Expires at:  {at} (then ECS takes the hook's timeout action)\n"));
    }
    b.push_str("\nWhat changed (environment: names only):\n");
    for l in &change_lines {
        b.push_str(&format!("- {l}\n"));
    }
    b.push_str(&format!("\nTarget revision health: {health}\n"));
    b.push_str("\nContinue the deployment:\n");
    b.push_str(&format!("  {}\n", invoke_command(v.runbook_function, &cont)));
    b.push_str("Roll it back:\n");
    b.push_str(&format!("  {}\n", invoke_command(v.runbook_function, &roll)));
    b.push_str("(add \"dry_run\": true to see the plan first; the runbook re-checks every bound)\n");
    b.push_str(&format!("\n- Deployments: {}\n- Service health: {}\n", links.deployments(), links.service()));
    Message {
        place: None,
        subject: redactor.text(&subject),
        body: redactor.text(&b),
        severity: Severity::Info,
        cluster: cluster.into(),
        service: service.into(),
        cause: Cause::Expected,
        kind: Kind::EcsDeployment,
        incident: Some(thread(hook.deployment_id())),
        event_type: EventType::DeploymentApproval,
        highlights: highlights.iter().map(|h| redactor.text(h)).collect(),
        next_steps: vec![
            "Check the target revision's health and what changed, then Continue or Roll back.".into(),
            format!(
                "Unanswered, ECS takes the hook's timeout action{}.",
                match &hook.expires_at {
                    Some(at) => format!(" at {at}"),
                    None => String::new(),
                }
            ),
        ],
        links: vec![("Deployments".into(), links.deployments()), ("Service health".into(), links.service())],
        evidence: None,
        team: None,
        chat_context: buttons::approval_context(cluster, service, &hook.hook_id),
    }
}

/// A runbook decision announced in a thread (a hook's answer in the
/// approval thread, an acknowledgement in the incident's).
pub struct ThreadNote<'a> {
    pub cluster: &'a str,
    pub service: &'a str,
    pub thread: &'a str,
    pub event_type: EventType,
    pub headline: &'a str,
    pub record: Option<&'a ActionRecord>,
    pub requested_by: &'a str,
}

/// The message of a [`ThreadNote`].
pub fn render_thread_note(n: &ThreadNote<'_>, redactor: &Redactor) -> Message {
    let ThreadNote { cluster, service, thread, event_type, headline, record, requested_by } = *n;
    let subject = subject_line(&format!("[INFO] {cluster}/{service}: {headline}"));
    let mut highlights = vec![format!("{headline} (requested by {requested_by})")];
    let mut body = format!(
        "{}\n\nService:  {cluster}/{service}\nThread:   {thread}\nBy:       {requested_by}\n",
        headline.to_uppercase()
    );
    if let Some(r) = record {
        highlights.push(format!("{} {}: {}", r.action, r.status.as_str(), r.detail));
        body.push_str(&format!("Action:   {}\nStatus:   {}\nDetail:   {}\n", r.action, r.status.as_str(), r.detail));
    }
    Message {
        place: None,
        subject: redactor.text(&subject),
        body: redactor.text(&body),
        severity: Severity::Info,
        cluster: cluster.into(),
        service: service.into(),
        cause: Cause::Unknown,
        kind: Kind::Runbook,
        incident: Some(thread.to_string()),
        event_type,
        highlights: highlights.iter().map(|h| redactor.text(h)).collect(),
        next_steps: Vec::new(),
        links: Vec::new(),
        evidence: None,
        team: None,
        chat_context: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ContainerDefinitionSnapshot, DeploymentSnapshot, NameValue, SecretRef};

    fn td(rev: i32, image: &str, cpu: &str, env: &[(&str, &str)], secrets: &[&str]) -> TaskDefinitionSnapshot {
        TaskDefinitionSnapshot {
            arn: format!("arn:aws:ecs:eu-west-1:1:task-definition/api:{rev}"),
            family: "api".into(),
            revision: rev,
            cpu: Some(cpu.into()),
            memory: Some("512".into()),
            containers: vec![ContainerDefinitionSnapshot {
                name: "app".into(),
                image: Some(image.into()),
                environment: env.iter().map(|(n, v)| NameValue { name: (*n).into(), value: (*v).into() }).collect(),
                secrets: secrets
                    .iter()
                    .map(|n| SecretRef { name: (*n).into(), value_from: "arn:aws:ssm:x".into() })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_diff_should_name_images_sizes_and_environment_names_never_values() {
        let running = td(1, "repo/api:1.0", "256", &[("LOG_LEVEL", "info"), ("OLD_FLAG", "on")], &["DB_PASSWORD"]);
        let target = td(2, "repo/api:1.1", "512", &[("LOG_LEVEL", "debug"), ("NEW_FLAG", "s3cr3t-value")], &[]);
        let c = diff(&running, &target);
        assert_eq!(c.images, vec![("app".into(), Some("repo/api:1.0".into()), Some("repo/api:1.1".into()))]);
        assert_eq!(c.cpu, Some(("256".into(), "512".into())));
        assert_eq!(c.memory, None);
        assert_eq!(c.env_added, vec!["app/NEW_FLAG".to_string()]);
        assert_eq!(c.env_removed, vec!["app/DB_PASSWORD".to_string(), "app/OLD_FLAG".to_string()]);
        let text = c.lines().join("\n");
        assert!(!text.contains("s3cr3t-value") && !text.contains("debug") && !text.contains("info"), "{text}");
        assert!(diff(&running, &running).is_empty());
    }

    fn service(td: &str, deployments: &[(&str, i32, i32)]) -> ServiceSnapshot {
        ServiceSnapshot {
            cluster: "prod".into(),
            service: "api".into(),
            desired: 2,
            running: 3,
            task_definition: Some(td.into()),
            deployments: deployments
                .iter()
                .map(|(t, running, desired)| DeploymentSnapshot {
                    id: format!("ecs-svc/{t}"),
                    status: "PRIMARY".into(),
                    task_definition: (*t).into(),
                    running: *running,
                    desired: *desired,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_running_revision_should_be_another_deployments_else_the_newest_known_good() {
        let s = service(
            "arn:x:task-definition/api:2",
            &[("arn:x:task-definition/api:2", 1, 2), ("arn:x:task-definition/api:1", 2, 2)],
        );
        assert_eq!(
            revisions(&s, &[]),
            (Some("arn:x:task-definition/api:2".into()), Some("arn:x:task-definition/api:1".into()))
        );
        let alone = service("arn:x:task-definition/api:2", &[("arn:x:task-definition/api:2", 1, 2)]);
        let known = ["arn:x:task-definition/api:2".to_string(), "arn:x:task-definition/api:1".to_string()];
        assert_eq!(revisions(&alone, &known).1.as_deref(), Some("arn:x:task-definition/api:1"));
        assert_eq!(revisions(&alone, &[]).1, None);
        let h = green_health(&s, Some("arn:x:task-definition/api:2"));
        assert_eq!((h.running, h.desired), (1, 2));
        assert!(h.of.contains("ecs-svc/"), "{}", h.of);
        let whole = green_health(&s, Some("arn:x:task-definition/api:9"));
        assert_eq!((whole.running, whole.desired), (3, 2));
    }

    #[test]
    fn the_runbook_function_should_be_configured_or_follow_the_stack_naming() {
        assert_eq!(runbook_function(Some("ops-runbook"), Some("x-ecs-events")), "ops-runbook");
        assert_eq!(runbook_function(None, Some("autopilot-ecs-events")), "autopilot-runbook");
        assert_eq!(runbook_function(Some(" "), Some("local")), "<stack>-runbook");
    }

    #[test]
    fn the_notice_should_carry_both_commands_the_changes_and_the_buttons() {
        let hook = HookStateChange {
            event_name: "HOOK_AWAITING_ACTION".into(),
            hook_id: "ecs-pause-e7tK9G".into(),
            lifecycle_stage: Some("POST_TEST_TRAFFIC_SHIFT".into()),
            expires_at: Some("2026-03-05T16:04:41Z".into()),
            service_deployment_arn: "arn:aws:ecs:us-west-2:1:service-deployment/prod/api/0EYS".into(),
            ..Default::default()
        };
        let changes =
            diff(&td(1, "repo/api:1.0", "256", &[], &[]), &td(2, "repo/api:1.1", "256", &[("NEW", "v")], &[]));
        let view = ApprovalView {
            cluster: "prod",
            service: "api",
            hook: &hook,
            target: Some("arn:aws:ecs:us-west-2:1:task-definition/api:2"),
            running: Some("arn:aws:ecs:us-west-2:1:task-definition/api:1"),
            changes: ChangesRead::Read(changes),
            health: None,
            runbook_function: "autopilot-runbook",
            region: "us-west-2",
        };
        let m = render_approval(&view, &Redactor::default());
        assert_eq!(m.event_type, EventType::DeploymentApproval);
        assert_eq!(m.incident.as_deref(), Some("approval-0EYS"));
        for needle in [
            "\"action\":\"continue-deployment\"",
            "\"action\":\"rollback-deployment\"",
            "--function-name autopilot-runbook",
            "repo/api:1.0 -> repo/api:1.1",
            "app/NEW",
            "POST_TEST_TRAFFIC_SHIFT",
        ] {
            assert!(m.body.contains(needle), "{needle} in\n{}", m.body);
        }
        assert!(m.subject.len() < 100 && m.subject.is_ascii(), "{}", m.subject);
        let keys: Vec<&str> = m.chat_context.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, [buttons::vars::CONTINUE_DEPLOYMENT, buttons::vars::ROLLBACK_DEPLOYMENT]);
        let n = super::super::chat::notification(&m);
        super::super::chat::validate(&n).unwrap();
        assert_eq!(n["metadata"]["enableCustomActions"], true);
    }
}
