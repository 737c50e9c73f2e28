//! The application context: what a function holds for its whole life
//! (configuration, SDK clients, the state store), built once in `main`, and
//! the one routing table of triggers to functions.

use crate::actions::engine::Engine;
use crate::adapters::AwsError;
use crate::adapters::Clients;
use crate::adapters::fleet::{MemberCredentials, MemberRole, member_clients};
use crate::adapters::gather::{Depth, GatherRequest};
use crate::adapters::state::StateStore;
use crate::config::Config;
use crate::error::AutopilotError;
use crate::fleet::{Fleet, Place, Scope};
use crate::trigger::Trigger;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
                got: describe(trigger),
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

/// What a function holds for its whole life: built once in `main`. An
/// input of a member account runs with the same App placed there
/// ([`App::at`]): its clients read and act in that account and region, its
/// state keys carry the place.
#[derive(Clone)]
pub struct App {
    pub function: Function,
    pub config: Config,
    pub clients: Clients,
    pub state: StateStore,
    /// The clients of each member placed so far, kept for the warm
    /// instance (with their credentials, renewed before they expire).
    members: Arc<Mutex<HashMap<Place, Member>>>,
}

type Member = (Clients, Option<MemberCredentials>);

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
        Self { function, config, clients, state, members: Arc::default() }
    }

    /// Where this App reads and acts.
    pub fn scope(&self) -> &Scope {
        self.clients.scope()
    }

    /// Home and the fleet as this function knows them: its own account (from
    /// the invocation), its region, `ACCOUNTS`.
    pub fn fleet(&self) -> Fleet {
        Fleet {
            home_account: crate::invocation::own_account(),
            home_region: std::env::var("AWS_REGION").unwrap_or_else(|_| self.config.settings.console_region.clone()),
            members: self.config.accounts.clone(),
        }
    }

    /// This App placed in `scope`: home is this App; a member gets its
    /// clients (built once per warm instance, with the member role assumed
    /// when it is another account) and its keys. An account whose role
    /// cannot be assumed is an error naming the role and the reason, before
    /// anything is read there.
    pub async fn at(&self, scope: &Scope) -> Result<App, AwsError> {
        let Scope::Member(place) = scope else {
            return Ok(self.clone());
        };
        let cached = self.members.lock().ok().and_then(|m| m.get(place).cloned());
        let (clients, credentials) = match cached {
            Some(member) => member,
            None => {
                let role = MemberRole {
                    name: self.config.member_role_name.clone(),
                    external_id: self.config.member_external_id.clone(),
                    session_name: format!("ecs-autopilot-{}", self.function.name()),
                };
                let member = member_clients(&self.clients, place, &role, self.fleet().assumes(scope)).await;
                if let Ok(mut m) = self.members.lock() {
                    m.insert(place.clone(), member.clone());
                }
                member
            }
        };
        if let Some(c) = &credentials {
            c.check().await?;
        }
        let mut config = self.config.clone();
        config.settings.console_region = place.region.clone();
        Ok(App { function: self.function, config, clients, state: self.state.at(scope), members: self.members.clone() })
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

/// What an input is, for messages and errors.
pub fn describe(trigger: &Trigger) -> String {
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
