//! `detail` of CodePipeline execution, stage and action state changes.
//!
//! Typed here rather than with `aws_lambda_events`' CodePipeline type, which
//! requires an integer `version` and drops `execution-result`: V2 pipelines
//! send `version` as `1.0` and the failure details live in `execution-result`.

use crate::lenient;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PipelineLevel {
    Execution,
    Stage,
    Action,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PipelineDetail {
    pub pipeline: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub version: Option<String>,
    #[serde(default)]
    pub execution_id: Option<String>,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    /// STARTED, SUCCEEDED, RESUMED, FAILED, CANCELED, SUPERSEDED, STOPPING,
    /// STOPPED, ABANDONED.
    pub state: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default, rename = "type")]
    pub action_type: Option<ActionType>,
    #[serde(default)]
    pub execution_result: Option<ExecutionResult>,
    #[serde(default)]
    pub execution_trigger: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionType {
    #[serde(default)]
    pub owner: Option<String>,
    /// Source, Build, Test, Deploy, Approval, Invoke.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExecutionResult {
    #[serde(default)]
    pub external_execution_url: Option<String>,
    #[serde(default)]
    pub external_execution_summary: Option<String>,
    #[serde(default)]
    pub external_execution_id: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
}

impl PipelineLevel {
    /// The level of a CodePipeline `detail-type`.
    pub fn of(detail_type: &str) -> Option<Self> {
        match detail_type {
            "CodePipeline Pipeline Execution State Change" => Some(Self::Execution),
            "CodePipeline Stage Execution State Change" => Some(Self::Stage),
            "CodePipeline Action Execution State Change" => Some(Self::Action),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Execution => "execution",
            Self::Stage => "stage",
            Self::Action => "action",
        }
    }
}

impl PipelineDetail {
    pub fn is_approval(&self) -> bool {
        self.action_type
            .as_ref()
            .and_then(|t| t.category.as_deref())
            .is_some_and(|c| c.eq_ignore_ascii_case("approval"))
    }
}
