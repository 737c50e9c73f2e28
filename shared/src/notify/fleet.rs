//! The notice of a member account the central functions cannot reach: its
//! role could not be assumed, so its events are not handled there until it
//! can (pure).

use std::fmt::Write;

use crate::fleet::Place;
use crate::outcome::{Cause, Kind, Severity};
use crate::redact::Redactor;

use super::render::{EventType, Message, subject_line};

/// What the notice says.
#[derive(Debug, Clone, Copy)]
pub struct UnreachableView<'a> {
    pub place: &'a Place,
    /// The role assumed and why it failed (the STS error, as one line).
    pub role_arn: &'a str,
    pub reason: &'a str,
    /// The input that could not be handled (`ECS Task State Change (aws.ecs)`).
    pub input: &'a str,
    pub cluster: Option<&'a str>,
    pub service: Option<&'a str>,
    pub kind: Kind,
}

pub fn render_unreachable(v: &UnreachableView<'_>, redactor: &Redactor) -> Message {
    let (account, region) = (v.place.account.as_str(), v.place.region.as_str());
    let subject = subject_line(&format!("[SEV2] account {account} {region}: member role cannot be assumed"));
    let what = match (v.cluster, v.service) {
        (Some(c), Some(s)) => format!(" about {c}/{s}"),
        (Some(c), None) => format!(" about cluster {c}"),
        _ => String::new(),
    };
    let mut b = String::new();
    let _ = writeln!(b, "ACCOUNT UNREACHABLE - {account} in {region}");
    let _ = writeln!(b, "Role: {}", v.role_arn);
    let _ = writeln!(b, "Reason: {}", v.reason);
    let _ = writeln!(b);
    let _ = writeln!(
        b,
        "An input{what} ({}) from this account was not handled: nothing was read there and no action was taken. \
         Its events keep arriving; each hour this stays so, one more notice is sent.",
        v.input
    );
    let next_steps = vec![
        format!(
            "Check that the member stack (infra/member.yaml, the StackSet instance) is deployed in {account} and \
             {region}: aws cloudformation list-stack-instances --stack-set-name <member stack set> --stack-instance-account {account}"
        ),
        format!(
            "Check the role's trust: it must name this central account and function roles, and the external id set \
             as MEMBER_EXTERNAL_ID: aws iam get-role --role-name {} (in {account})",
            v.role_arn.rsplit('/').next().unwrap_or(v.role_arn)
        ),
        "Until it is fixed, handle this account's incidents by hand with its own credentials.".to_string(),
    ];
    for s in &next_steps {
        let _ = writeln!(b, "- {s}");
    }
    Message {
        place: None,
        subject,
        body: redactor.text(&b),
        severity: Severity::Sev2,
        cluster: v.cluster.unwrap_or_default().to_string(),
        service: v.service.unwrap_or_default().to_string(),
        cause: Cause::Unknown,
        kind: v.kind,
        incident: Some(format!("unreachable-{account}-{region}")),
        event_type: EventType::AlarmNotice,
        highlights: vec![format!("account {account} {region}: role cannot be assumed"), redactor.text(v.reason)],
        next_steps,
        links: Vec::new(),
        evidence: None,
        team: None,
        chat_context: vec![("account".into(), account.into()), ("region".into(), region.into())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_names_the_account_the_region_the_role_and_the_reason() {
        let place = Place { account: "444455556666".into(), region: "eu-west-1".into() };
        let m = render_unreachable(
            &UnreachableView {
                place: &place,
                role_arn: "arn:aws:iam::444455556666:role/ecs-autopilot-member",
                reason: "AccessDenied: not authorized to perform sts:AssumeRole",
                input: "ECS Task State Change (aws.ecs)",
                cluster: Some("prod"),
                service: Some("api"),
                kind: Kind::EcsTaskStopped,
            },
            &crate::telemetry::redactor(),
        );
        assert!(m.subject.contains("444455556666") && m.subject.contains("eu-west-1"), "{}", m.subject);
        assert!(m.subject.len() < 100 && m.subject.is_ascii());
        for want in ["ecs-autopilot-member", "AccessDenied", "prod/api", "list-stack-instances"] {
            assert!(m.body.contains(want), "{want} missing:\n{}", m.body);
        }
        assert_eq!(m.severity, Severity::Sev2);
    }
}
