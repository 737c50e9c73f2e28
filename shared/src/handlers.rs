//! One entry point per function: recognise the trigger, check it belongs to
//! this function, run the matching flow, log one decision line and metrics.

use serde_json::Value;
use std::time::Instant;

use crate::aws::Clients;
use crate::config::Config;
use crate::error::AutopilotError;
use crate::outcome::{Cause, Kind, Outcome, Severity};
use crate::state::StateStore;
use crate::trigger::Trigger;

/// The five functions (binary names fixed by DESIGN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    EcsEvents,
    AlarmResponder,
    PipelineEvents,
    ScheduledReports,
    Runbook,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Self::EcsEvents => "ecs-events",
            Self::AlarmResponder => "alarm-responder",
            Self::PipelineEvents => "pipeline-events",
            Self::ScheduledReports => "scheduled-reports",
            Self::Runbook => "runbook",
        }
    }

    fn accepts(self, trigger: &Trigger) -> bool {
        matches!(
            (self, trigger),
            (Self::EcsEvents, Trigger::EcsTask(_) | Trigger::EcsServiceAction(_) | Trigger::EcsDeployment(_))
                | (Self::AlarmResponder, Trigger::Alarm { .. })
                | (Self::PipelineEvents, Trigger::Pipeline(_))
                | (Self::ScheduledReports, Trigger::Scheduled { .. })
                | (Self::Runbook, Trigger::Runbook(_))
                | (_, Trigger::Ignored { .. })
        )
    }

    fn expects(self) -> &'static str {
        match self {
            Self::EcsEvents => "aws.ecs Task State Change, Service Action or Deployment State Change events",
            Self::AlarmResponder => "CloudWatch Alarm State Change events (EventBridge, SNS or alarm action)",
            Self::PipelineEvents => "aws.codepipeline execution, stage or action state changes",
            Self::ScheduledReports => "{\"job\": \"daily|weekly|escalate\"} or a Scheduled Event",
            Self::Runbook => "{\"action\": …, \"cluster\": …, \"service\": …}",
        }
    }
}

/// What a function holds for its whole life: built once in `main`.
pub struct App {
    pub function: Function,
    pub config: Config,
    pub clients: Clients,
    pub state: StateStore,
}

impl App {
    /// Read the environment contract and build the clients. A missing
    /// variable fails here, at start, naming it.
    pub async fn from_env(function: Function) -> Result<Self, AutopilotError> {
        let config = Config::from_env()?;
        let clients = Clients::from_env().await;
        Ok(Self::new(function, config, clients))
    }

    pub fn new(function: Function, config: Config, clients: Clients) -> Self {
        let state = StateStore::new(clients.dynamodb.clone(), config.state_table.clone());
        Self { function, config, clients, state }
    }

    /// Handle one invocation.
    pub async fn handle(&self, payload: Value) -> Result<Outcome, AutopilotError> {
        let started = Instant::now();
        let calls_before = self.clients.calls.get();
        crate::telemetry::mark_invocation_start(calls_before);
        let result = self.dispatch(&payload).await;
        let aws_calls = self.clients.calls.get() - calls_before;
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(o) => {
                tracing::info!(
                    function = self.function.name(),
                    decision = "outcome",
                    kind = ?o.kind,
                    cluster = o.cluster.as_deref().unwrap_or(""),
                    service = o.service.as_deref().unwrap_or(""),
                    incident = o.incident.as_deref().unwrap_or(""),
                    severity = o.severity.as_str(),
                    cause = o.cause.as_str(),
                    notified = o.notified.as_deref().unwrap_or(""),
                    actions = o.actions.len(),
                    aws_calls,
                    handler_ms = millis,
                    "{}",
                    o.summary
                );
                crate::telemetry::emit_metrics(
                    self.function.name(),
                    &[],
                    &[
                        ("Invocations", 1.0, "Count"),
                        ("AwsCalls", aws_calls as f64, "Count"),
                        ("HandlerTime", millis, "Milliseconds"),
                    ],
                );
            }
            Err(e) => {
                // The error goes back to Lambda: an asynchronous invocation is
                // retried (if retryable) and then lands in the dead-letter destination.
                tracing::error!(
                    function = self.function.name(),
                    decision = "error",
                    error_type = e.error_type(),
                    retryable = e.is_retryable(),
                    aws_calls,
                    handler_ms = millis,
                    "{e}"
                );
                crate::telemetry::emit_metrics(
                    self.function.name(),
                    &[("ErrorType", e.error_type())],
                    &[("Errors", 1.0, "Count")],
                );
            }
        }
        result
    }

    async fn dispatch(&self, payload: &Value) -> Result<Outcome, AutopilotError> {
        let trigger = Trigger::parse(payload)?;
        if !self.function.accepts(&trigger) {
            return Err(AutopilotError::WrongFunction {
                function: self.function.name(),
                got: describe_trigger(&trigger),
                expected: self.function.expects(),
            });
        }
        match trigger {
            Trigger::EcsTask(_) | Trigger::EcsServiceAction(_) | Trigger::EcsDeployment(_) => {
                // Boxed: the flow's future is deep, and boxing keeps each binary's
                // future type (and stack use) small.
                Box::pin(crate::flows::ecs::handle(self, trigger, payload)).await
            }
            Trigger::Alarm { id, alarm } => Box::pin(crate::flows::alarm::handle(self, &id, &alarm, payload)).await,
            Trigger::Runbook(req) => Box::pin(crate::flows::runbook::handle(self, &req)).await,
            Trigger::Pipeline(e) => Ok(recognised_pipeline(&e)),
            Trigger::Scheduled { job, .. } => Ok(Outcome::new(
                Kind::Report,
                Severity::Info,
                Cause::Expected,
                format!("{job:?} job recognised; reports not built yet"),
            )),
            Trigger::Ignored { detail_type, reason, .. } => {
                Ok(Outcome::ignored(format!("{detail_type} ignored: {reason}")))
            }
        }
    }
}

fn describe_trigger(trigger: &Trigger) -> String {
    match trigger {
        Trigger::EcsTask(e) => format!("{} ({})", e.meta.detail_type, e.meta.source),
        Trigger::EcsServiceAction(e) => format!("{} ({})", e.meta.detail_type, e.meta.source),
        Trigger::EcsDeployment(e) => format!("{} ({})", e.meta.detail_type, e.meta.source),
        Trigger::Pipeline(e) => format!("{} ({})", e.meta.detail_type, e.meta.source),
        Trigger::Alarm { alarm, .. } => format!("the alarm state change of {}", alarm.name),
        Trigger::Scheduled { job, .. } => format!("the scheduled job {job:?}"),
        Trigger::Runbook(r) => format!("a runbook request ({:?})", r.action),
        Trigger::Ignored { detail_type, .. } => detail_type.clone(),
    }
}

/// Pipeline and schedule triggers: their flows are not built yet, so the
/// Outcome says what was recognised and does nothing.
fn recognised_pipeline(e: &crate::trigger::Envelope<crate::trigger::PipelineDetail>) -> Outcome {
    let cause = if e.detail.is_approval() && e.detail.state == "STARTED" {
        Cause::ApprovalWaiting
    } else {
        Cause::PipelineFailed
    };
    Outcome::new(
        Kind::Pipeline,
        Severity::Info,
        cause,
        format!(
            "pipeline {} {} {}; pipeline handling not built yet",
            e.detail.pipeline,
            e.meta.detail_type.trim_start_matches("CodePipeline ").trim_end_matches(" State Change"),
            e.detail.state
        ),
    )
}
