//! The one error type of the crate, and its mapping to the Lambda error
//! response (a stable `errorType` saying whether a retry can help).

use lambda_runtime::Diagnostic;

use crate::trigger::TriggerError;

#[derive(Debug, thiserror::Error)]
pub enum AutopilotError {
    /// The input is not one this function handles: retrying cannot help, the
    /// asynchronous invocation lands in the dead-letter destination.
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] TriggerError),
    #[error("{function} does not handle {got}; send it {expected}")]
    WrongFunction { function: &'static str, got: String, expected: &'static str },
    /// A required setting is absent or unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// An AWS call failed in a way the handler could not degrade around.
    #[error("AWS {service}.{operation} failed for {resource}: {message}")]
    Aws { service: &'static str, operation: &'static str, resource: String, message: String, retryable: bool },
    #[error("state table {table}: {message}")]
    State { table: String, message: String },
}

impl AutopilotError {
    /// Stable error type names, read by alarms and by the dead-letter triage.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) | Self::WrongFunction { .. } => "InvalidEvent",
            Self::Config(_) => "Configuration",
            Self::Aws { retryable: true, .. } => "AwsRetryable",
            Self::Aws { retryable: false, .. } => "AwsFailure",
            Self::State { .. } => "StateFailure",
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Aws { retryable: true, .. } | Self::State { .. })
    }
}

impl From<AutopilotError> for Diagnostic {
    fn from(e: AutopilotError) -> Self {
        Diagnostic { error_type: e.error_type().into(), error_message: e.to_string() }
    }
}
