//! The Outcome every handler returns (docs/ARCHITECTURE.md, "The Outcome"), and the fixed
//! vocabularies inside it.

use serde::{Deserialize, Serialize};

pub use crate::cause::Cause;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    EcsTaskStopped,
    EcsServiceAction,
    EcsDeployment,
    Alarm,
    Pipeline,
    Report,
    Runbook,
    Ignored,
}

/// Severity after the runbooks. Ordered: `Sev1` is the most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    #[serde(rename = "SEV1")]
    Sev1,
    #[serde(rename = "SEV2")]
    Sev2,
    #[serde(rename = "SEV3")]
    Sev3,
    #[serde(rename = "INFO")]
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sev1 => "SEV1",
            Self::Sev2 => "SEV2",
            Self::Sev3 => "SEV3",
            Self::Info => "INFO",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "SEV1" => Some(Self::Sev1),
            "SEV2" => Some(Self::Sev2),
            "SEV3" => Some(Self::Sev3),
            "INFO" => Some(Self::Info),
            _ => None,
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionStatus {
    Executed,
    Planned,
    Skipped,
    Failed,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Executed => "executed",
            Self::Planned => "planned",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        [Self::Executed, Self::Planned, Self::Skipped, Self::Failed].into_iter().find(|s| s.as_str() == word)
    }
}

/// The mutating actions of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    Rollback,
    Scale,
    ForceDeploy,
    ScaleToZero,
    /// ContinueServiceDeployment CONTINUE on a paused deployment's hook (a person's approval).
    ContinueDeployment,
    /// ContinueServiceDeployment ROLLBACK on a paused deployment's hook.
    RollbackDeployment,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::Scale => "scale",
            Self::ForceDeploy => "force-deploy",
            Self::ScaleToZero => "scale-to-zero",
            Self::ContinueDeployment => "continue-deployment",
            Self::RollbackDeployment => "rollback-deployment",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        [
            Self::Rollback,
            Self::Scale,
            Self::ForceDeploy,
            Self::ScaleToZero,
            Self::ContinueDeployment,
            Self::RollbackDeployment,
        ]
        .into_iter()
        .find(|k| k.as_str() == word)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub action: String,
    pub status: ActionStatus,
    pub detail: String,
}

/// What a handler did, as `aws lambda invoke` and the tests read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub kind: Kind,
    pub cluster: Option<String>,
    pub service: Option<String>,
    pub incident: Option<String>,
    pub severity: Severity,
    pub cause: Cause,
    pub summary: String,
    pub notified: Option<String>,
    pub evidence: Option<String>,
    pub actions: Vec<ActionRecord>,
    /// Only for runbook reads and plans: the full diagnosis, checks or plan.
    /// Absent elsewhere, so the fixed fields above stay the whole contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl Outcome {
    pub fn new(kind: Kind, severity: Severity, cause: Cause, summary: impl Into<String>) -> Self {
        Self {
            kind,
            cluster: None,
            service: None,
            incident: None,
            severity,
            cause,
            summary: summary.into(),
            notified: None,
            evidence: None,
            actions: Vec::new(),
            details: None,
        }
    }

    pub fn ignored(summary: impl Into<String>) -> Self {
        Self::new(Kind::Ignored, Severity::Info, Cause::Expected, summary)
    }

    pub fn for_service(mut self, cluster: Option<String>, service: Option<String>) -> Self {
        self.cluster = cluster;
        self.service = service;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_should_serialise_to_the_design_shape() {
        let mut o = Outcome::new(Kind::EcsTaskStopped, Severity::Sev2, Cause::ImagePull, "x")
            .for_service(Some("prod".into()), Some("api".into()));
        o.actions.push(ActionRecord { action: "rollback".into(), status: ActionStatus::Planned, detail: "d".into() });
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["kind"], "ecs-task-stopped");
        assert_eq!(v["severity"], "SEV2");
        assert_eq!(v["cause"], "image-pull");
        assert_eq!(v["incident"], serde_json::Value::Null);
        assert_eq!(v["actions"][0]["status"], "planned");
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        for k in [
            "kind", "cluster", "service", "incident", "severity", "cause", "summary", "notified", "evidence", "actions",
        ] {
            assert!(keys.contains(&k.to_string()), "missing {k}");
        }
    }

    #[test]
    fn every_cause_should_serialise_as_its_vocabulary_word() {
        for c in [Cause::ImagePull, Cause::OutOfMemory, Cause::Http5xx, Cause::ApprovalWaiting, Cause::SpotInterruption]
        {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}
