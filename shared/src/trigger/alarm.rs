//! CloudWatch alarm state changes, normalised from the three ways they arrive:
//! EventBridge `CloudWatch Alarm State Change` (`detail`), the Lambda alarm
//! action (`alarmData`, typed by `aws_lambda_events`), and the classic SNS
//! alarm notification (`AlarmName`, `NewStateValue`, `Trigger`).

use crate::lenient;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use super::TriggerError;

/// Where the alarm came from; kept for logs and for deduplication keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlarmOrigin {
    EventBridge,
    Sns,
    LambdaAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "OK" => Some(Self::Ok),
            "ALARM" => Some(Self::Alarm),
            "INSUFFICIENT_DATA" => Some(Self::InsufficientData),
            _ => None,
        }
    }
}

/// What kind of alarm this is, from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlarmKind {
    Metric,
    MetricMath,
    AnomalyDetection,
    Composite,
}

/// One metric an alarm watches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricRef {
    pub namespace: Option<String>,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
    pub stat: Option<String>,
    pub period: Option<i64>,
}

/// An alarm state change, whatever its delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmChange {
    pub origin: AlarmOrigin,
    pub name: String,
    pub arn: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub state: AlarmState,
    pub previous_state: Option<AlarmState>,
    pub reason: String,
    /// When the state changed, as AWS wrote it.
    pub timestamp: Option<String>,
    pub description: Option<String>,
    pub kind: AlarmKind,
    pub metrics: Vec<MetricRef>,
    /// The math or anomaly-band expression, for metric-math alarms.
    pub expression: Option<String>,
    /// The rule of a composite alarm.
    pub alarm_rule: Option<String>,
    /// Set when a composite's actions are suppressed (`WaitPeriod`, `ExtensionPeriod`, `Alarm`).
    pub actions_suppressed_by: Option<String>,
    pub threshold: Option<f64>,
    pub comparison: Option<String>,
}

impl AlarmChange {
    /// The alarm `detail` of EventBridge and the `alarmData` of the Lambda
    /// alarm action share one shape.
    pub(crate) fn from_alarm_data(
        origin: AlarmOrigin,
        data: &Value,
        arn: Option<String>,
        account: Option<String>,
        region: Option<String>,
    ) -> Result<Self, TriggerError> {
        let what = "CloudWatch alarm data";
        let name = str_field(data, "alarmName").ok_or_else(|| TriggerError::missing(what, "alarmName"))?.to_string();
        let state_obj = data.get("state").ok_or_else(|| TriggerError::missing(what, "state"))?;
        let state_text = str_field(state_obj, "value").ok_or_else(|| TriggerError::missing(what, "state.value"))?;
        let state = AlarmState::parse(state_text)
            .ok_or_else(|| TriggerError::invalid(what, "state.value", "OK, ALARM or INSUFFICIENT_DATA", state_text))?;
        let previous_state = data.get("previousState").and_then(|p| str_field(p, "value")).and_then(AlarmState::parse);
        let config = data.get("configuration").cloned().unwrap_or(Value::Null);
        let (kind, metrics, expression) = match config.get("alarmRule") {
            Some(_) => (AlarmKind::Composite, Vec::new(), None),
            None => metrics_of_configuration(&config),
        };
        let threshold = state_obj
            .get("reasonData")
            .and_then(reason_data)
            .and_then(|rd| rd.get("threshold").and_then(Value::as_f64));
        let region = region_code(region.as_deref(), arn.as_deref());
        Ok(Self {
            origin,
            name,
            arn,
            account,
            region,
            state,
            previous_state,
            reason: str_field(state_obj, "reason").unwrap_or_default().to_string(),
            timestamp: str_field(state_obj, "timestamp").map(str::to_string),
            description: str_field(&config, "description").map(str::to_string),
            kind,
            metrics,
            expression,
            alarm_rule: str_field(&config, "alarmRule").map(str::to_string),
            actions_suppressed_by: str_field(state_obj, "actionsSuppressedBy").map(str::to_string),
            threshold,
            comparison: None,
        })
    }

    /// The classic notification CloudWatch publishes to an SNS topic.
    pub(crate) fn from_sns_message(message: &Value) -> Result<Self, TriggerError> {
        let parsed: SnsAlarmMessage = serde_json::from_value(message.clone())
            .map_err(|e| TriggerError::malformed("CloudWatch alarm SNS message", e))?;
        let what = "CloudWatch alarm SNS message";
        let state = AlarmState::parse(&parsed.new_state_value).ok_or_else(|| {
            TriggerError::invalid(what, "NewStateValue", "OK, ALARM or INSUFFICIENT_DATA", &parsed.new_state_value)
        })?;
        let mut metrics = Vec::new();
        let mut expression = None;
        let mut kind = AlarmKind::Metric;
        let trigger = parsed.trigger.unwrap_or(Value::Null);
        if let Some(name) = str_field(&trigger, "MetricName") {
            metrics.push(MetricRef {
                namespace: str_field(&trigger, "Namespace").map(str::to_string),
                name: name.to_string(),
                dimensions: sns_dimensions(trigger.get("Dimensions")),
                stat: str_field(&trigger, "Statistic")
                    .or_else(|| str_field(&trigger, "ExtendedStatistic"))
                    .map(str::to_string),
                period: trigger.get("Period").and_then(Value::as_i64),
            });
        } else if let Some(list) = trigger.get("Metrics").and_then(Value::as_array) {
            kind = AlarmKind::MetricMath;
            for m in list {
                if let Some(expr) = str_field(m, "Expression") {
                    if expr.contains("ANOMALY_DETECTION_BAND") {
                        kind = AlarmKind::AnomalyDetection;
                    }
                    expression.get_or_insert_with(|| expr.to_string());
                }
                if let Some(stat) = m.get("MetricStat") {
                    let metric = stat.get("Metric").cloned().unwrap_or(Value::Null);
                    if let Some(name) = str_field(&metric, "MetricName") {
                        metrics.push(MetricRef {
                            namespace: str_field(&metric, "Namespace").map(str::to_string),
                            name: name.to_string(),
                            dimensions: sns_dimensions(metric.get("Dimensions")),
                            stat: str_field(stat, "Stat").map(str::to_string),
                            period: stat.get("Period").and_then(Value::as_i64),
                        });
                    }
                }
            }
        }
        if parsed.alarm_rule.is_some() {
            kind = AlarmKind::Composite;
        }
        Ok(Self {
            origin: AlarmOrigin::Sns,
            name: parsed.alarm_name,
            account: parsed.aws_account_id,
            region: region_code(parsed.region.as_deref(), parsed.alarm_arn.as_deref()),
            arn: parsed.alarm_arn,
            state,
            previous_state: parsed.old_state_value.as_deref().and_then(AlarmState::parse),
            reason: parsed.new_state_reason.unwrap_or_default(),
            timestamp: parsed.state_change_time,
            description: parsed.alarm_description,
            kind,
            metrics,
            expression,
            alarm_rule: parsed.alarm_rule,
            actions_suppressed_by: None,
            threshold: lenient_f64(trigger.get("Threshold")),
            comparison: str_field(&trigger, "ComparisonOperator").map(str::to_string),
        })
    }

    /// A stable key for "this alarm entered this state at this time", shared by
    /// every delivery of the same transition.
    pub fn transition_key(&self) -> String {
        let when = self
            .timestamp
            .as_deref()
            .and_then(lenient::parse_time)
            .map(|t| t.timestamp_millis().to_string())
            .unwrap_or_else(|| self.timestamp.clone().unwrap_or_default());
        format!("alarm:{}:{:?}:{}", self.name, self.state, when)
    }

    /// The first value of a dimension across the alarm's metrics.
    pub fn dimension(&self, key: &str) -> Option<&str> {
        self.metrics.iter().find_map(|m| m.dimensions.get(key).map(String::as_str))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsAlarmMessage {
    alarm_name: String,
    #[serde(default)]
    alarm_description: Option<String>,
    #[serde(default, rename = "AWSAccountId", deserialize_with = "lenient::opt_string")]
    aws_account_id: Option<String>,
    new_state_value: String,
    #[serde(default)]
    new_state_reason: Option<String>,
    #[serde(default)]
    state_change_time: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    alarm_arn: Option<String>,
    #[serde(default)]
    old_state_value: Option<String>,
    #[serde(default)]
    trigger: Option<Value>,
    #[serde(default)]
    alarm_rule: Option<String>,
}

/// The region code (`us-east-1`) of an alarm. Classic SNS alarm messages
/// name the region for people (`"Region": "US East (N. Virginia)"`): the
/// alarm ARN's region is taken then, else the display name is looked up.
/// An unknown display name is kept as it came (and links fall back).
pub fn region_code(region: Option<&str>, alarm_arn: Option<&str>) -> Option<String> {
    let is_code =
        |r: &str| !r.is_empty() && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let region = region.map(str::trim).filter(|r| !r.is_empty());
    if let Some(r) = region.filter(|r| is_code(r)) {
        return Some(r.to_string());
    }
    let from_arn = alarm_arn.and_then(|a| a.split(':').nth(3)).filter(|r| is_code(r));
    if let Some(r) = from_arn {
        return Some(r.to_string());
    }
    let region = region?;
    let wanted = region.to_ascii_lowercase();
    REGION_NAMES
        .iter()
        .find(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(&wanted)))
        .map(|(code, _)| code.to_string())
        .or_else(|| Some(region.to_string()))
}

/// Region codes and the display names AWS has used for them in alarm
/// notifications (the older "EU (…)" and the newer "Europe (…)" both).
const REGION_NAMES: &[(&str, &[&str])] = &[
    ("us-east-1", &["US East (N. Virginia)", "US East (Northern Virginia)"]),
    ("us-east-2", &["US East (Ohio)"]),
    ("us-west-1", &["US West (N. California)", "US West (Northern California)"]),
    ("us-west-2", &["US West (Oregon)"]),
    ("af-south-1", &["Africa (Cape Town)"]),
    ("ap-east-1", &["Asia Pacific (Hong Kong)"]),
    ("ap-east-2", &["Asia Pacific (Taipei)"]),
    ("ap-south-1", &["Asia Pacific (Mumbai)"]),
    ("ap-south-2", &["Asia Pacific (Hyderabad)"]),
    ("ap-southeast-1", &["Asia Pacific (Singapore)"]),
    ("ap-southeast-2", &["Asia Pacific (Sydney)"]),
    ("ap-southeast-3", &["Asia Pacific (Jakarta)"]),
    ("ap-southeast-4", &["Asia Pacific (Melbourne)"]),
    ("ap-southeast-5", &["Asia Pacific (Malaysia)"]),
    ("ap-southeast-7", &["Asia Pacific (Thailand)"]),
    ("ap-northeast-1", &["Asia Pacific (Tokyo)"]),
    ("ap-northeast-2", &["Asia Pacific (Seoul)"]),
    ("ap-northeast-3", &["Asia Pacific (Osaka)", "Asia Pacific (Osaka-Local)"]),
    ("ca-central-1", &["Canada (Central)"]),
    ("ca-west-1", &["Canada West (Calgary)"]),
    ("eu-central-1", &["EU (Frankfurt)", "Europe (Frankfurt)"]),
    ("eu-central-2", &["EU (Zurich)", "Europe (Zurich)"]),
    ("eu-west-1", &["EU (Ireland)", "Europe (Ireland)"]),
    ("eu-west-2", &["EU (London)", "Europe (London)"]),
    ("eu-west-3", &["EU (Paris)", "Europe (Paris)"]),
    ("eu-south-1", &["EU (Milan)", "Europe (Milan)"]),
    ("eu-south-2", &["EU (Spain)", "Europe (Spain)"]),
    ("eu-north-1", &["EU (Stockholm)", "Europe (Stockholm)"]),
    ("il-central-1", &["Israel (Tel Aviv)"]),
    ("me-south-1", &["Middle East (Bahrain)"]),
    ("me-central-1", &["Middle East (UAE)"]),
    ("mx-central-1", &["Mexico (Central)"]),
    ("sa-east-1", &["South America (Sao Paulo)", "South America (São Paulo)"]),
    ("us-gov-east-1", &["AWS GovCloud (US-East)"]),
    ("us-gov-west-1", &["AWS GovCloud (US-West)", "AWS GovCloud (US)"]),
    ("cn-north-1", &["China (Beijing)"]),
    ("cn-northwest-1", &["China (Ningxia)"]),
];

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn lenient_f64(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `reasonData` is a JSON document inside a string.
fn reason_data(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) => serde_json::from_str(s).ok(),
        Value::Object(_) => Some(v.clone()),
        _ => None,
    }
}

/// SNS alarm dimensions: `[{"name": …, "value": …}]` (either case).
fn sns_dimensions(v: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for d in v.and_then(Value::as_array).into_iter().flatten() {
        let name = str_field(d, "name").or_else(|| str_field(d, "Name"));
        let value = str_field(d, "value").or_else(|| str_field(d, "Value"));
        if let (Some(n), Some(v)) = (name, value) {
            out.insert(n.to_string(), v.to_string());
        }
    }
    out
}

/// Metrics of an EventBridge/alarm-action configuration. Metric-math entries
/// carry `expression` instead of `metricStat`, which is why this reads JSON
/// rather than `aws_lambda_events`' metric type (that one requires
/// `metricStat` and a `u16` period, which a one-day period overflows).
fn metrics_of_configuration(config: &Value) -> (AlarmKind, Vec<MetricRef>, Option<String>) {
    let mut kind = AlarmKind::Metric;
    let mut metrics = Vec::new();
    let mut expression = None;
    for m in config.get("metrics").and_then(Value::as_array).into_iter().flatten() {
        if let Some(expr) = str_field(m, "expression") {
            kind = if expr.contains("ANOMALY_DETECTION_BAND") {
                AlarmKind::AnomalyDetection
            } else if kind == AlarmKind::AnomalyDetection {
                kind
            } else {
                AlarmKind::MetricMath
            };
            expression.get_or_insert_with(|| expr.to_string());
        }
        let Some(stat) = m.get("metricStat") else { continue };
        let metric = stat.get("metric").cloned().unwrap_or(Value::Null);
        let Some(name) = str_field(&metric, "name") else { continue };
        let dimensions = metric
            .get("dimensions")
            .and_then(Value::as_object)
            .map(|o| o.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
            .unwrap_or_default();
        metrics.push(MetricRef {
            namespace: str_field(&metric, "namespace").map(str::to_string),
            name: name.to_string(),
            dimensions,
            stat: str_field(stat, "stat").map(str::to_string),
            period: stat.get("period").and_then(Value::as_i64),
        });
    }
    (kind, metrics, expression)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_display_name_should_become_its_code() {
        assert_eq!(region_code(Some("US East (N. Virginia)"), None).as_deref(), Some("us-east-1"));
        assert_eq!(region_code(Some("EU (Ireland)"), None).as_deref(), Some("eu-west-1"));
        assert_eq!(region_code(Some("Europe (Ireland)"), None).as_deref(), Some("eu-west-1"));
        assert_eq!(region_code(Some("  asia pacific (tokyo) "), None).as_deref(), Some("ap-northeast-1"));
        assert_eq!(region_code(Some("South America (São Paulo)"), None).as_deref(), Some("sa-east-1"));
    }

    #[test]
    fn the_alarm_arn_region_should_win_over_a_display_name_and_codes_stay() {
        let arn = "arn:aws:cloudwatch:eu-central-1:111122223333:alarm:api-cpu";
        assert_eq!(region_code(Some("Somewhere (New)"), Some(arn)).as_deref(), Some("eu-central-1"));
        assert_eq!(region_code(Some("us-west-2"), Some(arn)).as_deref(), Some("us-west-2"));
        assert_eq!(region_code(None, Some(arn)).as_deref(), Some("eu-central-1"));
        assert_eq!(region_code(Some("Somewhere (New)"), None).as_deref(), Some("Somewhere (New)"), "kept as it came");
        assert_eq!(region_code(None, None), None);
        assert_eq!(region_code(Some(""), Some("not-an-arn")), None);
    }
}
