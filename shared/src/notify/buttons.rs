//! What the chat buttons need from a notification (pure).
//!
//! The stack defines Amazon Q Developer in chat applications custom actions
//! (`AWS::Chatbot::CustomAction` in `infra/template.yaml`): *Acknowledge*,
//! *Diagnose* and *Roll back* on incident alerts, *Continue* and *Roll back*
//! on deployment approval notices. Each is an asynchronous
//! `lambda invoke --invocation-type Event` of the runbook function whose
//! payload is ONE variable read from the notification's
//! `metadata.additionalContext`: the complete runbook request, rendered here
//! as compact JSON (no spaces, so the chat command line keeps it one word).
//! So a command stays short whatever the names, a button shows only on a
//! notification that carries its variable (the attachment's `HAS_VALUE`
//! criterion), and the runbook function re-checks every bound: a button can
//! never do more than the CLI could.

use serde_json::{Value, json};

use super::render::{EventType, Message};

/// Who a button's request says asked (Amazon Q passes no chat user to the
/// command): recorded in the ledger as given, i.e. unverified.
pub const REQUESTED_BY: &str = "chat-button";

/// The `additionalContext` keys the custom actions read (their `Variables`).
pub mod vars {
    pub const ACKNOWLEDGE: &str = "ackPayload";
    pub const DIAGNOSE: &str = "diagnosePayload";
    pub const ROLLBACK: &str = "rollbackPayload";
    pub const CONTINUE_DEPLOYMENT: &str = "continuePayload";
    pub const ROLLBACK_DEPLOYMENT: &str = "rollbackDeploymentPayload";
}

fn compact(v: Value) -> String {
    canonical_json(&v)
}

pub use super::render::canonical_json;

/// The incident alert's buttons (opening alert, updates, escalations of a
/// service incident): acknowledge, diagnose, roll back. None on a
/// resolution, a notice or a pipeline incident.
pub fn incident_context(m: &Message) -> Vec<(String, String)> {
    let incident_message =
        matches!(m.event_type, EventType::IncidentOpened | EventType::IncidentUpdate | EventType::IncidentEscalated);
    if !incident_message || m.cluster.is_empty() || m.service.is_empty() {
        return Vec::new();
    }
    let (cluster, service) = (m.cluster.as_str(), m.service.as_str());
    // A member's service is named with its account and region: a button
    // never acts on a service of the same name elsewhere.
    let request = |action: &str| {
        let mut r = json!({"action": action, "cluster": cluster, "service": service, "requested_by": REQUESTED_BY});
        if let Some(p) = &m.place {
            r["account"] = json!(p.account);
            r["region"] = json!(p.region);
        }
        r
    };
    let mut ack = request("acknowledge");
    if let Some(id) = m.incident.as_deref().filter(|i| !i.is_empty()) {
        ack["incident"] = json!(id);
    }
    vec![
        (vars::ACKNOWLEDGE.into(), compact(ack)),
        (vars::DIAGNOSE.into(), compact(request("diagnose"))),
        (vars::ROLLBACK.into(), compact(request("rollback"))),
    ]
}

/// The request id of a button's answer to a hook: one per hook and answer,
/// so a second press of the same button answers the first result.
pub fn hook_request_id(hook_id: &str, answer: &str) -> String {
    format!("{hook_id}.{answer}")
}

/// The deployment approval notice's buttons: continue, roll back.
pub fn approval_context(cluster: &str, service: &str, hook_id: &str) -> Vec<(String, String)> {
    let answer = |action: &str, id: &str| {
        compact(json!({"action": action, "cluster": cluster, "service": service, "hook_id": hook_id,
            "request_id": hook_request_id(hook_id, id), "requested_by": REQUESTED_BY}))
    };
    vec![
        (vars::CONTINUE_DEPLOYMENT.into(), answer("continue-deployment", "continue")),
        (vars::ROLLBACK_DEPLOYMENT.into(), answer("rollback-deployment", "rollback")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Cause, Kind, Severity};

    fn message(event_type: EventType, cluster: &str) -> Message {
        Message {
            place: None,
            subject: "s".into(),
            body: "b".into(),
            severity: Severity::Sev2,
            cluster: cluster.into(),
            service: "api".into(),
            cause: Cause::ImagePull,
            kind: Kind::EcsTaskStopped,
            incident: Some("inc-1".into()),
            event_type,
            highlights: Vec::new(),
            next_steps: Vec::new(),
            links: Vec::new(),
            evidence: None,
            team: None,
            chat_context: Vec::new(),
        }
    }

    #[test]
    fn an_incident_alert_should_carry_three_runbook_requests_and_a_resolution_none() {
        let ctx = incident_context(&message(EventType::IncidentOpened, "prod"));
        let keys: Vec<&str> = ctx.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, [vars::ACKNOWLEDGE, vars::DIAGNOSE, vars::ROLLBACK]);
        for (_, payload) in &ctx {
            assert!(!payload.contains(' '), "one word on a command line: {payload}");
            let parsed = crate::trigger::Trigger::parse(&serde_json::from_str(payload).unwrap())
                .unwrap_or_else(|e| panic!("{payload}: {e}"));
            assert!(matches!(parsed, crate::trigger::Trigger::Runbook(_)), "{payload}");
        }
        assert!(ctx[0].1.contains("\"incident\":\"inc-1\""), "{}", ctx[0].1);
        assert!(incident_context(&message(EventType::IncidentResolved, "prod")).is_empty());
        assert!(incident_context(&message(EventType::RunbookAction, "prod")).is_empty());
        assert!(incident_context(&message(EventType::IncidentOpened, "")).is_empty(), "a pipeline incident");
    }

    #[test]
    fn an_approval_should_carry_both_answers_as_valid_runbook_requests() {
        let ctx = approval_context("prod", "api", "ecs-pause-e7tK9G_WRJqNF");
        for ((_, payload), action) in ctx.iter().zip(["continue-deployment", "rollback-deployment"]) {
            let request = match crate::trigger::Trigger::parse(&serde_json::from_str(payload).unwrap()) {
                Ok(crate::trigger::Trigger::Runbook(r)) => r,
                other => panic!("{payload}: {other:?}"),
            };
            assert_eq!(serde_json::to_value(request.action).unwrap(), action);
            assert_eq!(request.hook_id.as_deref(), Some("ecs-pause-e7tK9G_WRJqNF"));
            assert!(request.request_id.is_some_and(|id| id.starts_with("ecs-pause-e7tK9G_WRJqNF.")));
        }
        assert_ne!(ctx[0].1, ctx[1].1);
    }
}
