//! Where an input must come from (pure). An event is taken for what it
//! says only when it comes from where it must:
//!
//! - its account is this function's own or one named in `ACCOUNTS` — the
//!   envelope's `account`, which EventBridge sets itself (a `PutEvents`
//!   caller cannot claim an `aws.*` source), else the account of the ARN
//!   it names first;
//! - an SNS-wrapped input comes from a topic named in `ALARM_TOPIC_ARNS`;
//! - before an automatic action on an alarm, the alarm as CloudWatch
//!   describes it has the payload's ARN, state and dimensions
//!   ([`alarm_matches`]);
//! - a runbook request through the function URL carries the IAM caller
//!   Lambda authenticated, checked against `RUNBOOK_CALLERS`
//!   ([`caller_allowed`]); a plain invoke's `requested_by` is recorded as
//!   unverified.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{AlarmChange, AlarmState, Trigger};
use crate::arn::account_of;

/// The account an event says it comes from.
pub fn event_account(trigger: &Trigger) -> Option<String> {
    let from_meta = |meta: &super::EventMeta| {
        meta.account
            .clone()
            .filter(|a| !a.trim().is_empty())
            .or_else(|| meta.resources.iter().find_map(|r| account_of(r)).map(str::to_string))
    };
    match trigger {
        Trigger::EcsTask(e) => from_meta(&e.meta),
        Trigger::EcsServiceAction(e) => from_meta(&e.meta),
        Trigger::EcsDeployment(e) => from_meta(&e.meta),
        Trigger::EcsHook(e) => from_meta(&e.meta),
        Trigger::Pipeline(e) => from_meta(&e.meta),
        Trigger::Alarm { alarm, .. } => alarm
            .account
            .clone()
            .filter(|a| !a.trim().is_empty())
            .or_else(|| alarm.arn.as_deref().and_then(account_of).map(str::to_string)),
        // A runbook request names its member account, else it is home's.
        Trigger::Runbook(r) => r.account.clone().filter(|a| !a.trim().is_empty()),
        Trigger::Scheduled { .. } | Trigger::Ignored { .. } => None,
        // The service ARN names the account the hook judges.
        Trigger::DeploymentHook(h) => h.service_arn.split(':').nth(4).map(str::to_string),
    }
}

/// The region an input comes from, when it says: the event's, the alarm's,
/// the runbook request's, the hooked service ARN's.
pub fn event_region(trigger: &Trigger) -> Option<String> {
    let region = match trigger {
        Trigger::EcsTask(e) => e.meta.region.clone(),
        Trigger::EcsServiceAction(e) => e.meta.region.clone(),
        Trigger::EcsDeployment(e) => e.meta.region.clone(),
        Trigger::EcsHook(e) => e.meta.region.clone(),
        Trigger::Pipeline(e) => e.meta.region.clone(),
        Trigger::Alarm { alarm, .. } => alarm.region.clone(),
        Trigger::Runbook(r) => r.region.clone(),
        Trigger::DeploymentHook(h) => h.service_arn.split(':').nth(3).map(str::to_string),
        Trigger::Scheduled { .. } | Trigger::Ignored { .. } => None,
    };
    region.filter(|r| !r.trim().is_empty())
}

/// Why an input is refused: said in the Outcome and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether an event of `account` is in scope: this function's own account
/// (`own`) or one of `extra` (`ACCOUNTS`). An event that names no account
/// (hand-made, a schedule, a runbook request) is not judged by it. With no
/// account known at all (outside Lambda, no `ACCOUNTS`) nothing is refused.
pub fn account_in_scope(own: Option<&str>, extra: &[String], account: Option<&str>) -> Result<(), Refused> {
    let Some(account) = account else { return Ok(()) };
    let scope: Vec<&str> = own.into_iter().chain(extra.iter().map(String::as_str)).collect();
    if scope.is_empty() || scope.contains(&account) {
        return Ok(());
    }
    Err(Refused(format!(
        "event from account {account}, which is not in scope (this function's account {}{}); refused, nothing done",
        own.unwrap_or("unknown"),
        if extra.is_empty() { String::new() } else { format!(", ACCOUNTS {}", extra.join(",")) }
    )))
}

/// The topic of an SNS-wrapped input (`Records[0].Sns.TopicArn`), when the
/// input is one: `Some(None)` for an SNS record that names no topic.
pub fn sns_topic(input: &Value) -> Option<Option<&str>> {
    let record = input.get("Records")?.as_array()?.first()?;
    let sns = record.get("Sns").or_else(|| record.get("sns"))?;
    Some(sns.get("TopicArn").or_else(|| sns.get("topicArn")).and_then(Value::as_str))
}

/// Whether an SNS-wrapped input comes from a topic in `allowed`
/// (`ALARM_TOPIC_ARNS`). With none configured, no SNS input is taken.
pub fn sns_topic_allowed(allowed: &[String], topic: Option<&str>) -> Result<(), Refused> {
    match topic {
        Some(t) if allowed.iter().any(|a| a == t) => Ok(()),
        Some(t) if allowed.is_empty() => Err(Refused(format!(
            "SNS message from topic {t}, but ALARM_TOPIC_ARNS names no topic; SNS inputs are taken only from \
             the configured topics; refused, nothing done"
        ))),
        Some(t) => Err(Refused(format!(
            "SNS message from topic {t}, which is not in ALARM_TOPIC_ARNS ({}); refused, nothing done",
            allowed.join(",")
        ))),
        None => Err(Refused("SNS record without Sns.TopicArn: its source cannot be checked; refused".into())),
    }
}

/// An alarm as CloudWatch describes it now (`DescribeAlarms`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlarmAsRead<'a> {
    pub arn: Option<&'a str>,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: &'a str,
    /// Every dimension of the alarm's metric or of its math's metrics.
    pub dimensions: &'a [(String, String)],
}

/// Whether the alarm CloudWatch describes is the one the payload speaks
/// for: the same ARN (when the payload names one), in ALARM, and every
/// dimension the payload's metrics carry (the service they map to) is one
/// of the alarm's. A payload that claims dimensions the real alarm does not
/// have would act on a service the alarm never watched.
pub fn alarm_matches(payload: &AlarmChange, read: &AlarmAsRead<'_>) -> Result<(), Refused> {
    if let (Some(said), Some(is)) = (payload.arn.as_deref(), read.arn)
        && said != is
    {
        return Err(Refused(format!(
            "the payload names alarm ARN {said} but CloudWatch's alarm {} is {is}; no automatic action",
            payload.name
        )));
    }
    if payload.state == AlarmState::Alarm && read.state != "ALARM" {
        return Err(Refused(format!("the alarm is {} now, not ALARM; no automatic action", read.state)));
    }
    let said: BTreeMap<&str, &str> =
        payload.metrics.iter().flat_map(|m| m.dimensions.iter().map(|(k, v)| (k.as_str(), v.as_str()))).collect();
    let missing: Vec<String> = said
        .iter()
        .filter(|(k, v)| !read.dimensions.iter().any(|(rk, rv)| rk == *k && rv == *v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !missing.is_empty() {
        return Err(Refused(format!(
            "the payload's dimensions {} are not the alarm's as CloudWatch describes it ({}); no automatic action",
            missing.join(","),
            if read.dimensions.is_empty() {
                "none".to_string()
            } else {
                read.dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
            }
        )));
    }
    Ok(())
}

/// Who asked for a runbook action.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Caller {
    /// A plain `lambda:InvokeFunction`: Lambda does not tell the function
    /// who invoked it, so `requested_by` is what the caller claims.
    #[default]
    Unverified,
    /// The IAM principal Lambda authenticated on the function URL.
    Iam(String),
}

impl Caller {
    /// What the ledger records as the requester.
    pub fn requested_by(&self, claimed: Option<&str>) -> String {
        match (self, claimed) {
            (Self::Iam(arn), None) => arn.clone(),
            (Self::Iam(arn), Some(c)) => format!("{arn} (says {c})"),
            (Self::Unverified, Some(c)) => format!("unverified: {c}"),
            (Self::Unverified, None) => "unverified: plain invoke".into(),
        }
    }
}

/// `*` matches any run of characters (ARN patterns of `RUNBOOK_CALLERS`).
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// Whether `caller` may run `action` under `policy` (`RUNBOOK_CALLERS`:
/// action name or `*` → ARN patterns). An empty policy lets every caller
/// IAM authenticated run every action; otherwise the caller must match a
/// pattern listed under the action or under `*`. A plain invoke is not
/// judged (it cannot be: see [`Caller::Unverified`]).
pub fn caller_allowed(policy: &[(String, Vec<String>)], action: &str, caller: &Caller) -> Result<(), Refused> {
    let Caller::Iam(arn) = caller else { return Ok(()) };
    if policy.is_empty() {
        return Ok(());
    }
    let allowed =
        policy.iter().filter(|(a, _)| a == action || a == "*").flat_map(|(_, patterns)| patterns).any(|p| glob(p, arn));
    if allowed {
        Ok(())
    } else {
        Err(Refused(format!(
            "caller {arn} may not run {action}: RUNBOOK_CALLERS lists no pattern for it under {action:?} or \"*\"; \
             refused, nothing done"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ecs_event(account: &str) -> Value {
        json!({
            "version": "0", "id": "e-1", "detail-type": "ECS Task State Change", "source": "aws.ecs",
            "account": account, "time": "2026-12-06T09:00:00Z", "region": "us-east-1",
            "resources": [format!("arn:aws:ecs:us-east-1:{account}:task/prod/0123456789abcdef0")],
            "detail": {
                "clusterArn": format!("arn:aws:ecs:us-east-1:{account}:cluster/prod"),
                "taskArn": format!("arn:aws:ecs:us-east-1:{account}:task/prod/0123456789abcdef0"),
                "group": "service:api", "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
                "stopCode": "EssentialContainerExited", "stoppedReason": "Essential container in task exited",
                "containers": []
            }
        })
    }

    #[test]
    fn an_event_of_another_account_is_refused_naming_both_accounts() {
        let own = Some("111122223333");
        let theirs = Trigger::parse(&ecs_event("444455556666")).expect("parses");
        let account = event_account(&theirs);
        assert_eq!(account.as_deref(), Some("444455556666"));
        let refused = account_in_scope(own, &[], account.as_deref()).expect_err("out of scope");
        assert!(refused.0.contains("444455556666") && refused.0.contains("111122223333"), "{refused}");
        let ours = Trigger::parse(&ecs_event("111122223333")).expect("parses");
        assert_eq!(account_in_scope(own, &[], event_account(&ours).as_deref()), Ok(()));
        // ACCOUNTS widens the scope (the fleet's members).
        assert_eq!(account_in_scope(own, &["444455556666".into()], account.as_deref()), Ok(()));
        // Nothing known: nothing to judge by.
        assert_eq!(account_in_scope(None, &[], account.as_deref()), Ok(()));
    }

    #[test]
    fn without_an_envelope_account_the_first_arn_speaks_for_the_event() {
        let mut e = ecs_event("444455556666");
        e.as_object_mut().expect("object").remove("account");
        let t = Trigger::parse(&e).expect("parses");
        assert_eq!(event_account(&t).as_deref(), Some("444455556666"));
    }

    #[test]
    fn sns_inputs_are_taken_only_from_the_configured_topics() {
        let topic = "arn:aws:sns:us-east-1:111122223333:alarms";
        let input = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"TopicArn": topic, "Message": "{}"}}]});
        assert_eq!(sns_topic(&input), Some(Some(topic)));
        assert_eq!(sns_topic(&json!({"source": "aws.ecs"})), None);
        assert!(sns_topic_allowed(&[topic.into()], Some(topic)).is_ok());
        let other =
            sns_topic_allowed(&[topic.into()], Some("arn:aws:sns:us-east-1:444455556666:x")).expect_err("other");
        assert!(other.0.contains("444455556666:x") && other.0.contains("ALARM_TOPIC_ARNS"), "{other}");
        assert!(sns_topic_allowed(&[], Some(topic)).is_err(), "no topic configured: none taken");
        assert!(sns_topic_allowed(&[topic.into()], None).is_err(), "an unnamed topic cannot be checked");
    }

    fn alarm(dims: &[(&str, &str)]) -> AlarmChange {
        let dims: serde_json::Map<String, Value> = dims.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let data = json!({
            "alarmName": "api-5xx",
            "state": {"value": "ALARM", "reason": "Threshold Crossed", "timestamp": "2026-12-06T09:00:00.000+0000"},
            "configuration": {"metrics": [{"id": "m1", "metricStat": {"metric": {
                "namespace": "AWS/ECS", "name": "CPUUtilization", "dimensions": dims}, "period": 60, "stat": "Average"}}]}
        });
        AlarmChange::from_alarm_data(
            super::super::AlarmOrigin::EventBridge,
            &data,
            Some("arn:aws:cloudwatch:us-east-1:111122223333:alarm:api-5xx".into()),
            Some("111122223333".into()),
            Some("us-east-1".into()),
        )
        .expect("alarm")
    }

    #[test]
    fn an_alarm_acts_only_when_cloudwatch_describes_the_same_alarm_in_alarm_with_the_payloads_dimensions() {
        let payload = alarm(&[("ClusterName", "prod"), ("ServiceName", "api")]);
        let dims =
            vec![("ClusterName".to_string(), "prod".to_string()), ("ServiceName".to_string(), "api".to_string())];
        let arn = "arn:aws:cloudwatch:us-east-1:111122223333:alarm:api-5xx";
        let read = AlarmAsRead { arn: Some(arn), state: "ALARM", dimensions: &dims };
        assert_eq!(alarm_matches(&payload, &read), Ok(()));
        let ok = AlarmAsRead { state: "OK", ..read.clone() };
        assert!(alarm_matches(&payload, &ok).expect_err("OK").0.contains("OK now"));
        let elsewhere =
            AlarmAsRead { arn: Some("arn:aws:cloudwatch:us-east-1:444455556666:alarm:api-5xx"), ..read.clone() };
        assert!(alarm_matches(&payload, &elsewhere).is_err());
        let other_service =
            vec![("ClusterName".to_string(), "prod".to_string()), ("ServiceName".to_string(), "web".to_string())];
        let forged = AlarmAsRead { dimensions: &other_service, ..read.clone() };
        let refused = alarm_matches(&payload, &forged).expect_err("dimensions differ");
        assert!(refused.0.contains("ServiceName=api") && refused.0.contains("ServiceName=web"), "{refused}");
    }

    #[test]
    fn globs_match_whole_arns_with_stars_anywhere() {
        let arn = "arn:aws:sts::111122223333:assumed-role/oncall/alice";
        for (p, want) in [
            ("arn:aws:sts::111122223333:assumed-role/oncall/*", true),
            ("*:assumed-role/oncall/*", true),
            ("*", true),
            (arn, true),
            ("arn:aws:sts::111122223333:assumed-role/dev/*", false),
            ("arn:aws:sts::111122223333:assumed-role/oncall", false),
            ("*alice*bob", false),
            ("arn*oncall*alice", true),
        ] {
            assert_eq!(glob(p, arn), want, "{p}");
        }
    }

    #[test]
    fn a_function_url_caller_runs_only_the_actions_listed_for_it() {
        let policy = vec![
            ("rollback".to_string(), vec!["arn:aws:sts::111122223333:assumed-role/oncall/*".to_string()]),
            ("*".to_string(), vec!["arn:aws:sts::111122223333:assumed-role/platform/*".to_string()]),
        ];
        let oncall = Caller::Iam("arn:aws:sts::111122223333:assumed-role/oncall/alice".into());
        let platform = Caller::Iam("arn:aws:sts::111122223333:assumed-role/platform/bob".into());
        let dev = Caller::Iam("arn:aws:sts::111122223333:assumed-role/dev/eve".into());
        assert!(caller_allowed(&policy, "rollback", &oncall).is_ok());
        assert!(caller_allowed(&policy, "scale", &oncall).is_err());
        assert!(caller_allowed(&policy, "scale", &platform).is_ok());
        let refused = caller_allowed(&policy, "rollback", &dev).expect_err("dev");
        assert!(refused.0.contains("assumed-role/dev/eve") && refused.0.contains("rollback"), "{refused}");
        assert!(caller_allowed(&[], "rollback", &dev).is_ok(), "no policy: IAM is the gate");
        assert!(caller_allowed(&policy, "rollback", &Caller::Unverified).is_ok());
        assert_eq!(Caller::Unverified.requested_by(Some("alice@example.com")), "unverified: alice@example.com");
        assert_eq!(oncall.requested_by(None), "arn:aws:sts::111122223333:assumed-role/oncall/alice");
    }
}
