//! Typed triggers: every input a function accepts, recognised from its shape.
//!
//! `Trigger::parse` takes the raw invocation JSON and returns what it is —
//! or a [`TriggerError`] naming what was expected and what arrived. Nothing
//! here panics on outside data; nothing here talks to AWS.

pub mod alarm;
pub mod ecs;
pub mod hook;
pub mod pipeline;
pub mod runbook;
pub mod trust;

use aws_lambda_events::cloudwatch_alarms::CloudWatchAlarm;
use aws_lambda_events::sns::SnsEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lenient;

pub use alarm::{AlarmChange, AlarmKind, AlarmOrigin, AlarmState, MetricRef};
pub use ecs::{ContainerState, DeploymentStateChange, HookStateChange, ServiceAction, TaskStateChange};
pub use hook::HookInvocation;
pub use pipeline::{PipelineDetail, PipelineLevel};
pub use runbook::{RunbookAction, RunbookRequest};

pub use crate::error::TriggerError;

/// The EventBridge envelope as AWS and re-publishers really send it
/// (`aws_lambda_events`' `EventBridgeEvent` refuses an integer `version` and
/// a `+0000` offset in `time`). `version` is not read at all: it is `"0"`,
/// `0`, `0.0` or absent depending on the sender. `time` takes any offset
/// style ([`lenient::parse_time`]); `resources` may be `null`; `detail`
/// may be an object or a JSON string.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawEnvelope {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    id: Option<String>,
    detail_type: String,
    source: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    account: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_time")]
    time: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    region: Option<String>,
    #[serde(default, deserialize_with = "lenient::strings_or_null")]
    resources: Vec<String>,
    #[serde(default)]
    detail: Value,
}

/// Envelope facts shared by every EventBridge-delivered trigger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventMeta {
    /// EventBridge event id: the idempotency key.
    pub id: String,
    pub source: String,
    pub detail_type: String,
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub resources: Vec<String>,
    /// The SNS message id when the event arrived wrapped in SNS.
    pub sns_message_id: Option<String>,
}

/// An ECS event with its envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub meta: EventMeta,
    pub detail: T,
}

/// The scheduled jobs of `scheduled-reports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Job {
    Daily,
    Weekly,
    Escalate,
}

/// Account ids or region names of a [`Shard`].
type Names = Vec<String>;

/// The part of the fleet one run of a scheduled job covers (`"accounts"`
/// and `"regions"` of the job input): empty lists mean all of it. One
/// schedule per group of accounts fans a fleet out, each run within its own
/// timeout; each shard's report is stored under a key of its own
/// (`reports::fleet::shard_suffix`). Which accounts and regions are in the
/// fleet is checked where the fleet is known (`reports::fleet::run_scopes`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
}

impl Shard {
    pub fn is_whole_fleet(&self) -> bool {
        self.accounts.is_empty() && self.regions.is_empty()
    }

    /// `"accounts"` and `"regions"` of a job input (an object): each a list
    /// of strings, or one comma-separated string; accounts twelve digits,
    /// regions region names. Sorted and deduplicated.
    fn parse(input: &Value, what: &str) -> Result<Self, TriggerError> {
        let list = |field: &str, expected: &str, valid: fn(&str) -> bool| -> Result<Names, TriggerError> {
            let items: Vec<String> = match input.get(field) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::String(text)) => text.split(',').map(|s| s.trim().to_string()).collect(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str().map(|s| s.trim().to_string()).ok_or_else(|| {
                            TriggerError::invalid(
                                what,
                                field,
                                expected,
                                &format!("an item that is {}", describe_json(i)),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => return Err(TriggerError::invalid(what, field, expected, &describe_json(other))),
            };
            let mut items: Vec<String> = items.into_iter().filter(|s| !s.is_empty()).collect();
            if let Some(bad) = items.iter().find(|s| !valid(s)) {
                return Err(TriggerError::invalid(what, field, expected, &format!("{bad:?}")));
            }
            items.sort();
            items.dedup();
            Ok(items)
        };
        Ok(Self {
            accounts: list("accounts", "a list of twelve-digit account ids", |a| {
                a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
            })?,
            regions: list("regions", "a list of region names (us-east-1)", |r| {
                r.contains('-') && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })?,
        })
    }
}

impl Job {
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "daily" => Some(Self::Daily),
            "weekly" => Some(Self::Weekly),
            "escalate" | "escalation" => Some(Self::Escalate),
            _ => None,
        }
    }
}

/// Every input the functions accept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "trigger", rename_all = "kebab-case")]
pub enum Trigger {
    EcsTask(Envelope<TaskStateChange>),
    EcsServiceAction(Envelope<ServiceAction>),
    EcsDeployment(Envelope<DeploymentStateChange>),
    /// `ECS Hook State Change`: a deployment lifecycle hook changed status.
    EcsHook(Envelope<HookStateChange>),
    Alarm {
        id: String,
        alarm: AlarmChange,
    },
    Pipeline(Envelope<PipelineDetail>),
    Scheduled {
        job: Job,
        id: Option<String>,
        /// The accounts and regions this run covers (all when empty).
        #[serde(default)]
        shard: Shard,
    },
    Runbook(RunbookRequest),
    /// ECS invoking the deployment lifecycle hook (`deployment-hook`).
    DeploymentHook(HookInvocation),
    /// Recognised, deliberately not handled (e.g. container-instance changes).
    Ignored {
        source: String,
        detail_type: String,
        reason: String,
    },
}

const EXPECTED_INPUTS: &str = "an EventBridge event (`source` and `detail-type`), an SNS envelope \
(`Records[].Sns`), a CloudWatch alarm action (`alarmData`), a schedule (`{\"job\": \"daily|weekly|escalate\"}`) \
a runbook request (`{\"action\": …}`) \
or an ECS deployment lifecycle hook payload (`executionDetails`)";

impl Trigger {
    /// Recognise any accepted input from its JSON.
    pub fn parse(input: &Value) -> Result<Self, TriggerError> {
        let Some(obj) = input.as_object() else {
            return Err(TriggerError::Unrecognised { expected: EXPECTED_INPUTS.into(), got: describe_json(input) });
        };
        if obj.contains_key("Records") {
            return Self::from_sns(input);
        }
        if obj.contains_key("requestContext") && (obj.contains_key("rawPath") || obj.contains_key("body")) {
            return Self::from_function_url(input);
        }
        if obj.contains_key("alarmData") && obj.contains_key("source") && !obj.contains_key("detail") {
            return Self::from_alarm_action(input);
        }
        if obj.contains_key("detail-type") || (obj.contains_key("source") && obj.contains_key("detail")) {
            return Self::from_eventbridge(input, None);
        }
        if let Some(job) = obj.get("job") {
            let text = job.as_str().unwrap_or_default();
            let job = Job::parse(text).ok_or_else(|| {
                TriggerError::invalid("schedule input", "job", "one of daily, weekly, escalate", &job.to_string())
            })?;
            let shard = Shard::parse(input, "schedule input")?;
            return Ok(Self::Scheduled { job, id: None, shard });
        }
        if obj.contains_key("action") {
            return RunbookRequest::parse(input).map(Self::Runbook);
        }
        if HookInvocation::recognised(obj) {
            return HookInvocation::parse(input).map(Self::DeploymentHook);
        }
        Err(TriggerError::Unrecognised { expected: EXPECTED_INPUTS.into(), got: describe_json(input) })
    }

    fn from_eventbridge(input: &Value, sns_message_id: Option<String>) -> Result<Self, TriggerError> {
        let event: RawEnvelope =
            serde_json::from_value(input.clone()).map_err(|e| TriggerError::malformed("EventBridge event", e))?;
        let meta = EventMeta {
            // Every real EventBridge event has an id; hand-made ones may not,
            // and must not share one idempotency key, so they get their content hash.
            id: event.id.filter(|id| !id.trim().is_empty()).unwrap_or_else(|| content_id(input)),
            source: event.source,
            detail_type: event.detail_type,
            time: event.time,
            account: event.account,
            region: event.region,
            resources: event.resources,
            sns_message_id,
        };
        let detail = match event.detail {
            // Some re-publishers put the alarm under `alarmData` on an EventBridge envelope.
            Value::Null => input.get("alarmData").cloned().unwrap_or(Value::Null),
            // EventBridge Scheduler's default notification sends `"detail": "{}"`,
            // and some re-publishers stringify the detail: read the JSON inside.
            Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
            other => other,
        };
        let typed = |what: &str| format!("`{}` detail from {}", what, meta.source);
        match (meta.source.as_str(), meta.detail_type.as_str()) {
            ("aws.ecs", "ECS Task State Change") => {
                let what = typed("ECS Task State Change");
                let detail: TaskStateChange =
                    serde_json::from_value(detail).map_err(|e| TriggerError::malformed(&what, e))?;
                let detail = ecs::complete_task(detail, &meta.resources, &what)?;
                Ok(Self::EcsTask(Envelope { meta, detail }))
            }
            ("aws.ecs", "ECS Service Action") => {
                let what = typed("ECS Service Action");
                let detail: ServiceAction =
                    serde_json::from_value(detail).map_err(|e| TriggerError::malformed(&what, e))?;
                let detail = ecs::complete_service_action(detail, &meta.resources, &what)?;
                Ok(Self::EcsServiceAction(Envelope { meta, detail }))
            }
            ("aws.ecs", "ECS Deployment State Change") => {
                let detail = serde_json::from_value(detail)
                    .map_err(|e| TriggerError::malformed(&typed("ECS Deployment State Change"), e))?;
                Ok(Self::EcsDeployment(Envelope { meta, detail }))
            }
            ("aws.ecs", "ECS Hook State Change") => {
                let what = typed("ECS Hook State Change");
                let detail: HookStateChange =
                    serde_json::from_value(detail).map_err(|e| TriggerError::malformed(&what, e))?;
                let detail = ecs::complete_hook(detail, &meta.resources, &what)?;
                Ok(Self::EcsHook(Envelope { meta, detail }))
            }
            ("aws.ecs", "ECS Container Instance State Change") => Ok(Self::Ignored {
                source: meta.source,
                detail_type: meta.detail_type,
                reason: "container-instance changes concern EC2 capacity, not Fargate services".into(),
            }),
            ("aws.cloudwatch", "CloudWatch Alarm State Change") => {
                let alarm = AlarmChange::from_alarm_data(
                    AlarmOrigin::EventBridge,
                    &detail,
                    meta.resources.first().cloned(),
                    meta.account.clone(),
                    meta.region.clone(),
                )?;
                // The transition, not the delivery, is the idempotency key: the same
                // state change may also arrive through SNS or the alarm action.
                Ok(Self::Alarm { id: alarm.transition_key(), alarm })
            }
            ("aws.codepipeline", dt) if dt.starts_with("CodePipeline ") && dt.ends_with("Execution State Change") => {
                let detail: PipelineDetail =
                    serde_json::from_value(detail).map_err(|e| TriggerError::malformed(&typed(dt), e))?;
                // Every CodePipeline state change names its execution: incidents are per execution.
                if detail.execution_id.as_deref().is_none_or(|x| x.trim().is_empty()) {
                    return Err(TriggerError::missing(&typed(dt), "detail.execution-id"));
                }
                Ok(Self::Pipeline(Envelope { meta, detail }))
            }
            ("aws.events" | "aws.scheduler", "Scheduled Event") => {
                let job = detail
                    .get("job")
                    .and_then(Value::as_str)
                    .and_then(Job::parse)
                    .or_else(|| meta.resources.iter().find_map(|r| job_from_rule_arn(r)))
                    .ok_or_else(|| {
                        TriggerError::missing(
                            "Scheduled Event (give the job as the target input {\"job\": …} or name the rule …-daily/-weekly/-escalate)",
                            "detail.job",
                        )
                    })?;
                let shard = Shard::parse(&detail, "Scheduled Event detail")?;
                Ok(Self::Scheduled { job, id: Some(meta.id), shard })
            }
            (source, detail_type) => Err(TriggerError::Unrecognised {
                expected: "an event of aws.ecs (Task State Change, Service Action, Deployment State Change, Hook State Change), \
aws.cloudwatch (CloudWatch Alarm State Change), aws.codepipeline (Pipeline/Stage/Action Execution State Change) \
or a Scheduled Event"
                    .into(),
                got: format!("source {source:?} with detail-type {detail_type:?}"),
            }),
        }
    }

    /// A runbook request through the function URL (payload format 2.0): the
    /// request is the body; the caller is the IAM principal Lambda
    /// authenticated (`requestContext.authorizer.iam.userArn`). A URL
    /// request without one (a URL whose auth type is NONE) is refused.
    fn from_function_url(input: &Value) -> Result<Self, TriggerError> {
        let what = "function URL request";
        let caller = input
            .pointer("/requestContext/authorizer/iam/userArn")
            .and_then(Value::as_str)
            .filter(|a| a.starts_with("arn:"))
            .ok_or_else(|| {
                TriggerError::missing(
                    "function URL request (the URL must use AuthType AWS_IAM; no IAM caller, nothing done)",
                    "requestContext.authorizer.iam.userArn",
                )
            })?
            .to_string();
        if let Some(method) = input.pointer("/requestContext/http/method").and_then(Value::as_str)
            && !method.eq_ignore_ascii_case("POST")
        {
            return Err(TriggerError::invalid(what, "requestContext.http.method", "POST", method));
        }
        let body = match input.get("body") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) | None => return Err(TriggerError::missing(what, "body")),
            Some(other) => return Err(TriggerError::invalid(what, "body", "a JSON text", &describe_json(other))),
        };
        let body = if input.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false) {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(body.trim())
                .map_err(|e| TriggerError::invalid(what, "body", "base64 (isBase64Encoded is true)", &e.to_string()))?;
            String::from_utf8(bytes)
                .map_err(|_| TriggerError::invalid(what, "body", "UTF-8 JSON", "bytes that are not UTF-8"))?
        } else {
            body
        };
        let request: Value = serde_json::from_str(&body).map_err(|e| TriggerError::malformed(what, e))?;
        let mut request = RunbookRequest::parse(&request)?;
        request.caller = trust::Caller::Iam(caller);
        Ok(Self::Runbook(request))
    }

    fn from_alarm_action(input: &Value) -> Result<Self, TriggerError> {
        // The typed shape first; a payload missing envelope fields (hand-made
        // tests, re-publishers) is still read from its alarm data.
        let (arn, account, region) = match serde_json::from_value::<CloudWatchAlarm<Value, Value>>(input.clone()) {
            Ok(action) => (action.alarm_arn, action.account_id, action.region),
            Err(e) => {
                tracing::debug!(error = %e, "alarm action envelope not in the documented shape; reading alarmData");
                let field = |k: &str| input.get(k).and_then(Value::as_str).map(str::to_string);
                (field("alarmArn"), field("accountId"), field("region"))
            }
        };
        let data = input.get("alarmData").cloned().unwrap_or(Value::Null);
        let alarm = AlarmChange::from_alarm_data(AlarmOrigin::LambdaAction, &data, arn, account, region)?;
        Ok(Self::Alarm { id: alarm.transition_key(), alarm })
    }

    fn from_sns(input: &Value) -> Result<Self, TriggerError> {
        let records = input.get("Records").and_then(Value::as_array).ok_or_else(|| {
            TriggerError::invalid("SNS event", "Records", "an array of records", &describe_json(&input["Records"]))
        })?;
        // Lambda's SNS integration delivers exactly one record per invocation.
        let record = match records.as_slice() {
            [one] => one,
            [] => return Err(TriggerError::missing("SNS event", "Records[0]")),
            many => {
                return Err(TriggerError::invalid(
                    "SNS event",
                    "Records",
                    "exactly one record",
                    &format!("{} records", many.len()),
                ));
            }
        };
        // The typed shape first (aws_lambda_events); a record missing envelope
        // fields is still read from `Sns.Message`, which is all we need.
        let (message_text, message_id) = match serde_json::from_value::<SnsEvent>(input.clone()) {
            Ok(event) => {
                let sns = event.records.into_iter().next().map(|r| r.sns);
                (sns.as_ref().map(|m| Value::String(m.message.clone())), sns.map(|m| m.message_id))
            }
            Err(e) => {
                tracing::debug!(error = %e, "SNS record not in the documented shape; reading Sns.Message");
                (
                    record.pointer("/Sns/Message").cloned(),
                    record.pointer("/Sns/MessageId").and_then(Value::as_str).map(str::to_string),
                )
            }
        };
        let message: Value = match message_text {
            Some(Value::String(text)) => serde_json::from_str(&text).map_err(|_| {
                TriggerError::invalid(
                    "SNS event",
                    "Records[0].Sns.Message",
                    "a JSON ECS event or CloudWatch alarm",
                    &format!("text starting {:?}", text.chars().take(60).collect::<String>()),
                )
            })?,
            Some(obj @ Value::Object(_)) => obj,
            Some(other) => {
                return Err(TriggerError::invalid(
                    "SNS event",
                    "Records[0].Sns.Message",
                    "a JSON string",
                    &describe_json(&other),
                ));
            }
            None => return Err(TriggerError::missing("SNS event", "Records[0].Sns.Message")),
        };
        if message.get("detail-type").is_some() {
            return Self::from_eventbridge(&message, message_id);
        }
        if message.get("AlarmName").is_some() && message.get("NewStateValue").is_some() {
            let alarm = AlarmChange::from_sns_message(&message)?;
            return Ok(Self::Alarm { id: alarm.transition_key(), alarm });
        }
        if message.get("alarmData").is_some() {
            return Self::from_alarm_action(&message);
        }
        Err(TriggerError::Unrecognised {
            expected: "an SNS message holding an EventBridge event (`detail-type`) or a CloudWatch alarm (`AlarmName`, `NewStateValue`)".into(),
            got: describe_json(&message),
        })
    }

    /// The `kind` this trigger gets in the Outcome.
    pub fn kind(&self) -> crate::outcome::Kind {
        use crate::outcome::Kind;
        match self {
            Self::EcsTask(_) => Kind::EcsTaskStopped,
            Self::EcsServiceAction(_) => Kind::EcsServiceAction,
            Self::EcsDeployment(_) | Self::EcsHook(_) => Kind::EcsDeployment,
            Self::Alarm { .. } => Kind::Alarm,
            Self::Pipeline(_) => Kind::Pipeline,
            Self::Scheduled { .. } => Kind::Report,
            Self::Runbook(_) => Kind::Runbook,
            Self::DeploymentHook(_) => Kind::EcsDeployment,
            Self::Ignored { .. } => Kind::Ignored,
        }
    }

    /// `(cluster, service)` where the trigger names them.
    pub fn cluster_service(&self) -> (Option<String>, Option<String>) {
        match self {
            Self::EcsTask(e) => (
                Some(ecs::cluster_name(&e.detail.cluster_arn).to_string()),
                e.detail.service_name().map(str::to_string),
            ),
            Self::EcsServiceAction(e) => service_of(&e.meta.resources, &e.detail.cluster_arn),
            Self::EcsDeployment(e) => service_of(&e.meta.resources, ""),
            Self::EcsHook(e) => service_of(std::slice::from_ref(&e.detail.service_arn), &e.detail.cluster_arn),
            Self::Alarm { alarm, .. } => {
                (alarm.dimension("ClusterName").map(str::to_string), alarm.dimension("ServiceName").map(str::to_string))
            }
            Self::Runbook(r) => {
                (Some(ecs::cluster_name(&r.cluster).to_string()), Some(ecs::last_segment(&r.service).to_string()))
            }
            Self::DeploymentHook(h) => (Some(h.cluster.clone()), Some(h.service.clone())),
            Self::Pipeline(_) | Self::Scheduled { .. } | Self::Ignored { .. } => (None, None),
        }
    }

    /// The idempotency key: the EventBridge id, or the alarm transition.
    pub fn event_id(&self) -> Option<&str> {
        match self {
            Self::EcsTask(e) => Some(&e.meta.id),
            Self::EcsServiceAction(e) => Some(&e.meta.id),
            Self::EcsDeployment(e) => Some(&e.meta.id),
            Self::EcsHook(e) => Some(&e.meta.id),
            Self::Pipeline(e) => Some(&e.meta.id),
            Self::Alarm { id, .. } => Some(id),
            Self::Scheduled { id, .. } => id.as_deref(),
            // Not a claim key: repeated calls of one stage are answered anew (hookDetails carry the state).
            Self::DeploymentHook(_) => None,
            Self::Runbook(_) | Self::Ignored { .. } => None,
        }
    }
}

fn service_of(resources: &[String], cluster_arn: &str) -> (Option<String>, Option<String>) {
    resources
        .iter()
        .find_map(|r| ecs::service_from_arn(r, cluster_arn))
        .map(|(c, s)| (Some(c.to_string()), Some(s.to_string())))
        .unwrap_or_else(|| {
            let cluster = (!cluster_arn.is_empty()).then(|| ecs::cluster_name(cluster_arn).to_string());
            (cluster, None)
        })
}

fn job_from_rule_arn(arn: &str) -> Option<Job> {
    let name = ecs::last_segment(arn).to_ascii_lowercase();
    ["daily", "weekly", "escalate"].into_iter().find(|j| name.contains(j)).and_then(Job::parse)
}

/// A short, safe description of unexpected JSON for error messages: its type,
/// and for objects their keys (never values, which may be secret).
fn describe_json(v: &Value) -> String {
    match v {
        Value::Object(o) => {
            let keys: Vec<&str> = o.keys().map(String::as_str).take(12).collect();
            format!("an object with keys [{}]", keys.join(", "))
        }
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::String(_) => "a string".into(),
        Value::Number(_) => "a number".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Null => "null".into(),
    }
}

fn content_id(v: &Value) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(v.to_string().as_bytes());
    format!("sha256-{}", crate::arn::hex(&digest[..16]))
}

#[cfg(test)]
mod fixture_tests;
