//! The application context: what a function holds for its whole life
//! (configuration, SDK clients, the state store), built once in `main`, and
//! the one routing table of triggers to functions.

use crate::actions::engine::Engine;
use crate::adapters::Clients;
use crate::adapters::gather::{Depth, GatherRequest};
use crate::adapters::state::StateStore;
use crate::config::Config;
use crate::error::AutopilotError;
use crate::trigger::Trigger;

/// The six functions (binary names fixed by docs/ARCHITECTURE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    EcsEvents,
    AlarmResponder,
    PipelineEvents,
    ScheduledReports,
    Runbook,
    DeploymentHook,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Self::EcsEvents => "ecs-events",
            Self::AlarmResponder => "alarm-responder",
            Self::PipelineEvents => "pipeline-events",
            Self::ScheduledReports => "scheduled-reports",
            Self::Runbook => "runbook",
            Self::DeploymentHook => "deployment-hook",
        }
    }

    /// The routing table, written once: which function handles a trigger.
    /// `None` for triggers every function may answer (recognised and ignored).
    pub fn for_trigger(trigger: &Trigger) -> Option<Self> {
        match trigger {
            Trigger::EcsTask(_) | Trigger::EcsServiceAction(_) | Trigger::EcsDeployment(_) | Trigger::EcsHook(_) => {
                Some(Self::EcsEvents)
            }
            Trigger::Alarm { .. } => Some(Self::AlarmResponder),
            Trigger::Pipeline(_) => Some(Self::PipelineEvents),
            Trigger::Scheduled { .. } => Some(Self::ScheduledReports),
            Trigger::Runbook(_) => Some(Self::Runbook),
            Trigger::DeploymentHook(_) => Some(Self::DeploymentHook),
            Trigger::Ignored { .. } => None,
        }
    }

    /// Refuse a trigger that belongs to another function, naming what this one takes.
    pub fn check(self, trigger: &Trigger) -> Result<(), AutopilotError> {
        match Self::for_trigger(trigger) {
            Some(f) if f != self => Err(AutopilotError::WrongFunction {
                function: self.name(),
                got: describe_trigger(trigger),
                expected: self.expects(),
            }),
            _ => Ok(()),
        }
    }

    pub fn expects(self) -> &'static str {
        match self {
            Self::EcsEvents => "aws.ecs Task State Change, Service Action or Deployment State Change events",
            Self::AlarmResponder => "CloudWatch Alarm State Change events (EventBridge, SNS or alarm action)",
            Self::PipelineEvents => "aws.codepipeline execution, stage or action state changes",
            Self::ScheduledReports => "{\"job\": \"daily|weekly|escalate\"} or a Scheduled Event",
            Self::Runbook => "{\"action\": …, \"cluster\": …, \"service\": …}",
            Self::DeploymentHook => {
                "an ECS deployment lifecycle hook payload (executionDetails.serviceArn, lifecycleStage, hookDetails)"
            }
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
        let clients = Clients::from_env(&config.settings.sdk_timeouts).await;
        Ok(Self::new(function, config, clients))
    }

    pub fn new(function: Function, config: Config, clients: Clients) -> Self {
        let state = StateStore::new(clients.dynamodb_handle(), config.state_table.clone());
        Self { function, config, clients, state }
    }

    /// What to gather for a service, within this function's settings.
    pub fn gather_request(&self, cluster: &str, service: &str, depth: Depth) -> GatherRequest {
        GatherRequest {
            cluster: cluster.into(),
            service: service.into(),
            depth,
            log_lines: self.config.settings.log_lines,
            log_group_prefixes: self.config.log_group_prefixes.clone(),
            ..Default::default()
        }
    }

    /// The bounded-action engine, as this function runs it.
    pub fn engine(&self) -> Engine<'_> {
        Engine { function: self.function.name(), config: &self.config, clients: &self.clients, state: &self.state }
    }
}

fn describe_trigger(trigger: &Trigger) -> String {
    match trigger {
        Trigger::EcsTask(e) => format!("{} ({})", e.meta.detail_type, e.meta.source),
        Trigger::EcsServiceAction(e) => format!("{} ({})", e.meta.detail_type, e.meta.source),
        Trigger::EcsDeployment(e) => format!("{} ({})", e.meta.detail_type, e.meta.source),
        Trigger::EcsHook(e) => format!("{} ({})", e.meta.detail_type, e.meta.source),
        Trigger::Pipeline(e) => format!("{} ({})", e.meta.detail_type, e.meta.source),
        Trigger::Alarm { alarm, .. } => format!("the alarm state change of {}", alarm.name),
        Trigger::Scheduled { job, .. } => format!("the scheduled job {job:?}"),
        Trigger::Runbook(r) => format!("a runbook request ({:?})", r.action),
        Trigger::DeploymentHook(h) => format!("an ECS deployment lifecycle hook call ({})", h.stage_name()),
        Trigger::Ignored { detail_type, .. } => detail_type.clone(),
    }
}
