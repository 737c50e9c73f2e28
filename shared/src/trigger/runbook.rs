//! The manual `runbook` payload (`aws lambda invoke --payload '{…}'`).

use serde::{Deserialize, Serialize};

use super::TriggerError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunbookAction {
    Diagnose,
    HealthCheck,
    Rollback,
    Scale,
    ForceDeploy,
    ScaleToZero,
    CaptureEvidence,
}

impl RunbookAction {
    /// Whether the action changes the service (and so goes through the engine).
    pub fn is_mutating(self) -> bool {
        matches!(self, Self::Rollback | Self::Scale | Self::ForceDeploy | Self::ScaleToZero)
    }
}

/// A validated runbook request. Unknown fields are refused so that a typo
/// (`desired_cont`) never silently falls back to a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookRequest {
    pub action: RunbookAction,
    pub cluster: String,
    pub service: String,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub desired_count: Option<i32>,
    #[serde(default)]
    pub task_definition: Option<String>,
    #[serde(default)]
    pub confirm: Option<String>,
    #[serde(default)]
    pub since_hours: Option<u32>,
    /// Free text recorded in the ledger and the notification.
    #[serde(default)]
    pub reason: Option<String>,
}

impl RunbookRequest {
    pub(crate) fn parse(value: &serde_json::Value) -> Result<Self, TriggerError> {
        let request: Self =
            serde_json::from_value(value.clone()).map_err(|e| TriggerError::malformed("runbook request", e))?;
        request.validate()?;
        Ok(request)
    }

    fn validate(&self) -> Result<(), TriggerError> {
        let what = "runbook request";
        if self.cluster.trim().is_empty() {
            return Err(TriggerError::invalid(what, "cluster", "a cluster name or ARN", "an empty string"));
        }
        if self.service.trim().is_empty() {
            return Err(TriggerError::invalid(what, "service", "a service name or ARN", "an empty string"));
        }
        match self.action {
            RunbookAction::Scale => match self.desired_count {
                None => return Err(TriggerError::missing("runbook request (action scale)", "desired_count")),
                Some(n) if n < 1 => {
                    return Err(TriggerError::invalid(
                        "runbook request (action scale)",
                        "desired_count",
                        "an integer of at least 1 (use scale-to-zero for 0)",
                        &n.to_string(),
                    ));
                }
                Some(_) => {}
            },
            RunbookAction::ScaleToZero if self.confirm.is_none() => {
                return Err(TriggerError::missing(
                    "runbook request (action scale-to-zero)",
                    "confirm (the service name, to confirm)",
                ));
            }
            RunbookAction::CaptureEvidence if self.since_hours == Some(0) => {
                return Err(TriggerError::invalid(
                    "runbook request (action capture-evidence)",
                    "since_hours",
                    "at least 1",
                    "0",
                ));
            }
            _ => {}
        }
        Ok(())
    }
}
