//! Plain snapshots of what the gatherers saw. The SDK's types are not
//! serialisable; these are, so one shape feeds the pure diagnosis, the
//! evidence bundle and the notification.

use serde::{Deserialize, Serialize};

use crate::outcome::{ActionKind, ActionRecord, ActionStatus};
use crate::trigger::TaskStateChange;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    pub cluster: String,
    pub service: String,
    pub service_arn: Option<String>,
    pub status: Option<String>,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub task_definition: Option<String>,
    pub launch_type: Option<String>,
    pub deployments: Vec<DeploymentSnapshot>,
    /// Most recent first, as ECS returns them.
    pub events: Vec<ServiceEventSnapshot>,
    pub target_group_arns: Vec<String>,
    pub circuit_breaker: Option<CircuitBreaker>,
    pub tags: Vec<(String, String)>,
    /// `deploymentController.type`: `ECS`, `CODE_DEPLOY` or `EXTERNAL`
    /// (`None`: not returned, which AWS documents as ECS).
    #[serde(default)]
    pub deployment_controller: Option<String>,
    /// `deploymentConfiguration.strategy`: `ROLLING`, `BLUE_GREEN`, `LINEAR`
    /// or `CANARY` (`None`: not returned, which is ROLLING).
    #[serde(default)]
    pub deployment_strategy: Option<String>,
}

/// One service deployment as ListServiceDeployments lists it (the ECS
/// deployment controller's own record of a deployment, with its ARN for
/// StopServiceDeployment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDeploymentBrief {
    pub arn: String,
    /// PENDING, IN_PROGRESS, SUCCESSFUL, STOPPED, STOP_REQUESTED,
    /// ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS, ROLLBACK_SUCCESSFUL, ROLLBACK_FAILED.
    pub status: String,
    pub status_reason: Option<String>,
    pub target_service_revision_arn: Option<String>,
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentSnapshot {
    pub id: String,
    /// PRIMARY, ACTIVE or INACTIVE.
    pub status: String,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub failed_tasks: i32,
    /// IN_PROGRESS, COMPLETED or FAILED.
    pub rollout_state: Option<String>,
    pub rollout_state_reason: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceEventSnapshot {
    pub created_at: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetHealthSnapshot {
    pub target_group_arn: String,
    pub targets: Vec<TargetSnapshot>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetSnapshot {
    pub id: String,
    pub port: Option<i32>,
    /// healthy, unhealthy, initial, draining, unused, unavailable.
    pub state: String,
    pub reason: Option<String>,
    pub description: Option<String>,
}

impl TargetHealthSnapshot {
    pub fn healthy(&self) -> usize {
        self.targets.iter().filter(|t| t.state == "healthy").count()
    }
}

/// A task definition, reduced to what a runbook reads, environment included
/// (redacted before it leaves the process).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskDefinitionSnapshot {
    pub arn: String,
    pub family: String,
    pub revision: i32,
    pub status: Option<String>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub execution_role_arn: Option<String>,
    pub task_role_arn: Option<String>,
    pub containers: Vec<ContainerDefinitionSnapshot>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerDefinitionSnapshot {
    pub name: String,
    pub image: Option<String>,
    pub essential: Option<bool>,
    pub cpu: i32,
    pub memory: Option<i32>,
    pub memory_reservation: Option<i32>,
    pub environment: Vec<NameValue>,
    /// Names and ARNs of secrets (`valueFrom`); the values never reach us.
    pub secrets: Vec<SecretRef>,
    pub log_driver: Option<String>,
    pub log_options: Vec<(String, String)>,
    pub health_check: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretRef {
    pub name: String,
    pub value_from: String,
}

impl ContainerDefinitionSnapshot {
    fn log_option(&self, key: &str) -> Option<&str> {
        self.log_options.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The awslogs group this container writes to, if it uses awslogs.
    pub fn awslogs_group(&self) -> Option<&str> {
        (self.log_driver.as_deref() == Some("awslogs")).then(|| self.log_option("awslogs-group")).flatten()
    }

    /// `(log group, stream)` of this container's awslogs output for a task id:
    /// the stream is `<awslogs-stream-prefix>/<container>/<task id>`.
    pub fn awslogs_stream(&self, task_id: &str) -> Option<(String, String)> {
        if self.log_driver.as_deref() != Some("awslogs") {
            return None;
        }
        let group = self.log_option("awslogs-group")?;
        let prefix = self.log_option("awslogs-stream-prefix")?;
        Some((group.to_string(), format!("{prefix}/{}/{task_id}", self.name)))
    }
}

impl TaskDefinitionSnapshot {
    /// `family:revision`, the short form people type.
    pub fn short(&self) -> String {
        format!("{}:{}", self.family, self.revision)
    }

    /// Values of environment variables with secret-like names.
    pub fn secret_values(&self) -> Vec<String> {
        self.containers
            .iter()
            .flat_map(|c| c.environment.iter())
            .filter(|nv| crate::redact::is_secret_name(&nv.name))
            .map(|nv| nv.value.clone())
            .collect()
    }
}

/// A log excerpt of the failing container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogExcerpt {
    pub log_group: String,
    pub log_stream: String,
    /// Error lines when there are any, else the last lines; redacted.
    pub lines: Vec<String>,
    pub only_errors: bool,
}

/// CloudWatch datapoints of the service (ECS namespace), oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    pub metric: String,
    pub stat: String,
    pub points: Vec<(String, f64)>,
}

/// A step that failed, named by its API call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GatherError {
    pub step: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Gathered {
    pub service: Option<ServiceSnapshot>,
    pub stopped_tasks: Vec<TaskStateChange>,
    pub task_definition: Option<TaskDefinitionSnapshot>,
    pub target_health: Vec<TargetHealthSnapshot>,
    pub logs: Option<LogExcerpt>,
    pub metrics: Vec<MetricSeries>,
    pub errors: Vec<GatherError>,
}

impl Gathered {
    /// `(healthy, total)` over all target groups, when any were read.
    pub fn target_counts(&self) -> Option<(usize, usize)> {
        if self.target_health.is_empty() {
            return None;
        }
        Some(self.target_health.iter().fold((0, 0), |(h, t), g| (h + g.healthy(), t + g.targets.len())))
    }
}

/// One revision's record in the known-good history
/// (`known-good#<family>:<revision>`): when a deployment of it completed,
/// when one failed, when we rolled away from it. Times are epoch seconds
/// (event times for ECS's reports, the decision's time for our rollbacks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownGood {
    pub task_definition: String,
    /// The first completion recorded: a later deployment of a revision that
    /// completed before it is a redeploy (a rollback), not a fresh release.
    pub first_completed_at: Option<i64>,
    pub completed_at: Option<i64>,
    /// The deployment whose completion is `completed_at`.
    pub completed_by: Option<String>,
    pub failed_at: Option<i64>,
    pub failed_deployment: Option<String>,
    pub rolled_away_at: Option<i64>,
}

/// A revision of the failing family, from ListTaskDefinitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevisionInfo {
    pub arn: String,
    pub active: bool,
}

/// The state of a ledger entry: an action decision's outcome
/// (`executed|planned|skipped|failed`, as in the Outcome), or `executing` —
/// written before a mutating call and finished after it. An `executing`
/// entry found later is an action whose outcome is unknown: it counts as
/// executed until the service is read and it is recorded executed or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LedgerStatus {
    Executing,
    Executed,
    Planned,
    Skipped,
    Failed,
}

impl LedgerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Executing => "executing",
            Self::Executed => "executed",
            Self::Planned => "planned",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        [Self::Executing, Self::Executed, Self::Planned, Self::Skipped, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == word)
    }

    /// Whether the entry may have changed the service: budgets, cooldowns
    /// and the rollback loop checks count it.
    pub fn may_have_acted(self) -> bool {
        matches!(self, Self::Executing | Self::Executed)
    }
}

impl From<ActionStatus> for LedgerStatus {
    fn from(s: ActionStatus) -> Self {
        match s {
            ActionStatus::Executed => Self::Executed,
            ActionStatus::Planned => Self::Planned,
            ActionStatus::Skipped => Self::Skipped,
            ActionStatus::Failed => Self::Failed,
        }
    }
}

/// One ledger record, as the budget and loop checks read it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LedgerEntry {
    pub at: i64,
    pub action: ActionKind,
    pub status: LedgerStatus,
    pub automatic: bool,
    pub from: Option<String>,
    pub to: Option<String>,
    pub detail: String,
    /// Its sort key in the state table, once written.
    pub key: Option<String>,
    /// A published message announced it (`announced_at` on the entry).
    #[serde(skip)]
    pub announced: bool,
}

impl LedgerEntry {
    /// The entry as a message shows it; an unfinished (`executing`) entry
    /// counts as executed, as the engine counts it.
    pub fn record(&self) -> ActionRecord {
        let status = match self.status {
            LedgerStatus::Executing | LedgerStatus::Executed => ActionStatus::Executed,
            LedgerStatus::Planned => ActionStatus::Planned,
            LedgerStatus::Skipped => ActionStatus::Skipped,
            LedgerStatus::Failed => ActionStatus::Failed,
        };
        ActionRecord { action: self.action.as_str().into(), status, detail: self.detail.clone() }
    }
}

/// The answer to a paused deployment lifecycle hook (ContinueServiceDeployment `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookAction {
    Continue,
    Rollback,
}

impl HookAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "CONTINUE",
            Self::Rollback => "ROLLBACK",
        }
    }
}
