//! What an alarm means (pure): its cause from the metrics it watches, its
//! severity from the runbooks' thresholds, and which runbook answers it.

use crate::outcome::{Cause, Severity};
use crate::trigger::AlarmChange;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmRunbook {
    /// Saturation: add tasks within bounds.
    ScaleOut,
    /// Errors or unhealthy tasks: roll back if a deployment just happened.
    RollbackIfRecentDeploy,
    /// Diagnose and notify only.
    Diagnose,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlarmAssessment {
    pub cause: Cause,
    pub severity: Severity,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub explanation: String,
    pub runbook: AlarmRunbook,
}

/// The cause from a metric name.
pub fn cause_of_metric(name: &str) -> Option<Cause> {
    Some(match name {
        "CPUUtilization" | "CpuUtilized" | "CPUUtilized" => Cause::HighCpu,
        "MemoryUtilization" | "MemoryUtilized" => Cause::HighMemory,
        "UnHealthyHostCount" | "HealthyHostCount" => Cause::UnhealthyTargets,
        "HTTPCode_Target_5XX_Count"
        | "HTTPCode_ELB_5XX_Count"
        | "HTTPCode_ELB_502_Count"
        | "HTTPCode_ELB_503_Count"
        | "HTTPCode_ELB_504_Count" => Cause::Http5xx,
        "TargetResponseTime" => Cause::Latency,
        "RunningTaskCount" | "DesiredTaskCount" => Cause::TaskCountLow,
        _ => return None,
    })
}

/// The observed value in a state reason: `… [91.2 (20/11/26 14:00:00), …]`.
pub fn value_in_reason(reason: &str) -> Option<f64> {
    let start = reason.find('[')? + 1;
    let rest = &reason[start..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'E' || c == 'e'))?;
    rest[..end].parse().ok()
}

pub fn assess(alarm: &AlarmChange) -> AlarmAssessment {
    // Metric math: the most specific cause among the metrics wins (a 5xx rate
    // divides 5xx by RequestCount; RequestCount alone says nothing).
    let causes: Vec<Cause> = alarm.metrics.iter().filter_map(|m| cause_of_metric(&m.name)).collect();
    let is_4xx = alarm.metrics.iter().any(|m| m.name.contains("4XX"));
    let cause = causes.first().copied().unwrap_or(Cause::OtherAlarm);
    let value = value_in_reason(&alarm.reason);
    let threshold = alarm.threshold;
    let level = value.or(threshold);
    let is_rate = alarm.expression.as_deref().is_some_and(|e| e.contains('/'));
    let severity = match cause {
        Cause::HighCpu => match level {
            Some(v) if v > 85.0 => Severity::Sev2,
            _ => Severity::Sev3,
        },
        Cause::HighMemory => match level {
            Some(v) if v > 90.0 => Severity::Sev2,
            _ => Severity::Sev3,
        },
        Cause::Http5xx => match (is_rate, level) {
            (true, Some(v)) if v <= 5.0 => Severity::Sev3,
            _ => Severity::Sev2,
        },
        Cause::Latency => Severity::Sev3,
        Cause::UnhealthyTargets | Cause::TaskCountLow => Severity::Sev2,
        _ if is_4xx => Severity::Sev3,
        _ => Severity::Sev3,
    };
    let runbook = match cause {
        Cause::HighCpu | Cause::HighMemory => AlarmRunbook::ScaleOut,
        Cause::Http5xx | Cause::UnhealthyTargets | Cause::Latency | Cause::TaskCountLow => {
            AlarmRunbook::RollbackIfRecentDeploy
        }
        _ => AlarmRunbook::Diagnose,
    };
    let metrics: Vec<&str> = alarm.metrics.iter().map(|m| m.name.as_str()).collect();
    let explanation = format!(
        "alarm {} is {:?}{}{}: {}",
        alarm.name,
        alarm.state,
        if metrics.is_empty() { String::new() } else { format!(" on {}", metrics.join(", ")) },
        match (value, threshold) {
            (Some(v), Some(t)) => format!(" (value {v}, threshold {t})"),
            (Some(v), None) => format!(" (value {v})"),
            _ => String::new(),
        },
        alarm.reason.chars().take(300).collect::<String>()
    );
    AlarmAssessment { cause, severity, value, threshold, explanation, runbook }
}

/// Whether an alarm may trigger automatic actions. Only alarms the operator
/// designates may: by name (the stack's alarm-name prefix) or by the alarm
/// tag `autopilot:actions` = `on`. Anyone who can create, tag or set the state
/// of some other alarm must not be able to roll a service back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Designation {
    ByPrefix(String),
    ByTag,
    /// Not designated: why, for the message.
    Not(String),
}

/// Decide the designation (pure). `tag` is the value of `autopilot:actions`
/// when the tags were read, `Err(why)` when they could not be (fail closed).
pub fn designation(alarm_name: &str, prefix: Option<&str>, tag: Result<Option<&str>, &str>) -> Designation {
    if let Some(p) = prefix.filter(|p| !p.is_empty())
        && alarm_name.starts_with(p)
    {
        return Designation::ByPrefix(p.to_string());
    }
    let outside = match prefix.filter(|p| !p.is_empty()) {
        Some(p) => format!("its name is outside the alarm-name prefix {p:?}"),
        None => "no alarm-name prefix is configured".to_string(),
    };
    match tag {
        Ok(Some(v)) if v.trim().eq_ignore_ascii_case("on") => Designation::ByTag,
        Ok(Some(v)) => Designation::Not(format!("{outside} and its tag autopilot:actions is {v:?}, not \"on\"")),
        Ok(None) => Designation::Not(format!("{outside} and it has no tag autopilot:actions=on")),
        Err(why) => Designation::Not(format!("{outside} and its tags could not be read ({why})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_alarms_designated_by_prefix_or_tag_may_act() {
        use Designation::*;
        let p = Some("prod-autopilot-");
        assert_eq!(designation("prod-autopilot-api-5xx", p, Ok(None)), ByPrefix("prod-autopilot-".into()));
        assert_eq!(designation("team-api-cpu", p, Ok(Some("on"))), ByTag);
        assert_eq!(designation("team-api-cpu", None, Ok(Some(" ON "))), ByTag);
        for (name, prefix, tag) in [
            ("team-api-cpu", p, Ok(None)),
            ("team-api-cpu", p, Ok(Some("yes"))),
            ("team-api-cpu", p, Err("AccessDenied")),
            ("anything", None, Ok(None)),
            ("prod-autopilot", p, Ok(None)),
        ] {
            let d = designation(name, prefix, tag);
            assert!(matches!(&d, Not(why) if !why.is_empty()), "{name}: {d:?}");
        }
        let Not(why) = designation("x", p, Err("AccessDenied")) else { panic!() };
        assert!(why.contains("prefix") && why.contains("AccessDenied"), "{why}");
    }
    use crate::trigger::{AlarmKind, AlarmOrigin, AlarmState, MetricRef};

    fn alarm(metrics: &[&str], reason: &str, threshold: Option<f64>, expression: Option<&str>) -> AlarmChange {
        AlarmChange {
            origin: AlarmOrigin::EventBridge,
            name: "a".into(),
            arn: None,
            account: None,
            region: None,
            state: AlarmState::Alarm,
            previous_state: None,
            reason: reason.into(),
            timestamp: None,
            description: None,
            kind: if expression.is_some() { AlarmKind::MetricMath } else { AlarmKind::Metric },
            metrics: metrics.iter().map(|m| MetricRef { name: m.to_string(), ..Default::default() }).collect(),
            expression: expression.map(str::to_string),
            alarm_rule: None,
            actions_suppressed_by: None,
            threshold,
            comparison: None,
        }
    }

    #[test]
    fn each_alarm_shape_gets_its_cause_severity_and_runbook() {
        use Cause::*;
        use Severity::*;
        let cases = [
            (alarm(&["CPUUtilization"], "3 datapoints [91.2 (20/11/26 14:00:00)] > 85", None, None), HighCpu, Sev2),
            (alarm(&["CPUUtilization"], "[75.0 (x)]", None, None), HighCpu, Sev3),
            (alarm(&["CPUUtilization"], "no numbers here", Some(90.0), None), HighCpu, Sev2),
            (alarm(&["MemoryUtilization"], "[93.5 (x)]", None, None), HighMemory, Sev2),
            (
                alarm(&["MemoryUtilized", "MemoryReserved"], "[88 (x)]", Some(90.0), Some("100*(m1/m2)")),
                HighMemory,
                Sev3,
            ),
            (
                alarm(&["RequestCount", "HTTPCode_Target_5XX_Count"], "[7.3 (x)]", Some(5.0), Some("(m2/m1)*100")),
                Http5xx,
                Sev2,
            ),
            (
                alarm(&["RequestCount", "HTTPCode_Target_5XX_Count"], "[3.1 (x)]", Some(2.0), Some("(m2/m1)*100")),
                Http5xx,
                Sev3,
            ),
            (alarm(&["HTTPCode_ELB_5XX_Count"], "[120 (x)]", Some(50.0), None), Http5xx, Sev2),
            (alarm(&["TargetResponseTime"], "[1.82 (x)]", None, Some("ANOMALY_DETECTION_BAND(m1, 2)")), Latency, Sev3),
            (alarm(&["UnHealthyHostCount"], "[2.0 (x)]", Some(1.0), None), UnhealthyTargets, Sev2),
            (alarm(&["RunningTaskCount"], "[0.0 (x)]", Some(2.0), None), TaskCountLow, Sev2),
            (alarm(&["HTTPCode_Target_4XX_Count"], "[400 (x)]", None, None), OtherAlarm, Sev3),
            (alarm(&["ApproximateNumberOfMessagesVisible"], "[9000 (x)]", None, None), OtherAlarm, Sev3),
            (alarm(&[], "child alarm transitioned", None, None), OtherAlarm, Sev3),
        ];
        for (a, cause, severity) in cases {
            let got = assess(&a);
            assert_eq!((got.cause, got.severity), (cause, severity), "{:?} {}", a.metrics, a.reason);
        }
    }

    #[test]
    fn runbooks_follow_the_cause() {
        assert_eq!(assess(&alarm(&["CPUUtilization"], "", None, None)).runbook, AlarmRunbook::ScaleOut);
        assert_eq!(
            assess(&alarm(&["HTTPCode_Target_5XX_Count"], "", None, None)).runbook,
            AlarmRunbook::RollbackIfRecentDeploy
        );
        assert_eq!(assess(&alarm(&["Foo"], "", None, None)).runbook, AlarmRunbook::Diagnose);
    }

    #[test]
    fn values_are_read_from_reasons() {
        assert_eq!(value_in_reason("Threshold Crossed: 1 datapoint [7.3 (20/11/26 14:00:00)] was greater"), Some(7.3));
        assert_eq!(value_in_reason("[1.0E-4 (x)]"), Some(0.0001));
        assert_eq!(value_in_reason("nothing"), None);
        assert_eq!(value_in_reason("[ (x)]"), None);
    }
}
