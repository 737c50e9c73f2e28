//! The crate's error types and their mapping to the Lambda error response
//! (a stable `errorType` saying whether a retry can help).
//!
//! - [`TriggerError`]: an input that is not one of ours (never retried).
//! - [`AwsError`]: one failed AWS call, naming the service, the operation
//!   and the resource, and whether retrying can help. Every adapter returns it.
//! - [`AutopilotError`]: what a handler returns to Lambda.

use lambda_runtime::Diagnostic;

/// Why an input could not be turned into a trigger.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TriggerError {
    #[error("unrecognised input: expected {expected}; got {got}")]
    Unrecognised { expected: String, got: String },
    #[error("{what}: missing field `{field}`")]
    Missing { what: String, field: String },
    #[error("{what}: field `{field}` must be {expected}, got {got}")]
    Invalid { what: String, field: String, expected: String, got: String },
    #[error("{what} is malformed: {reason}")]
    Malformed { what: String, reason: String },
}

impl TriggerError {
    pub(crate) fn missing(what: &str, field: &str) -> Self {
        Self::Missing { what: what.into(), field: field.into() }
    }
    pub(crate) fn invalid(what: &str, field: &str, expected: &str, got: &str) -> Self {
        Self::Invalid { what: what.into(), field: field.into(), expected: expected.into(), got: got.into() }
    }
    pub(crate) fn malformed(what: &str, reason: impl std::fmt::Display) -> Self {
        Self::Malformed { what: what.into(), reason: reason.to_string() }
    }
}

/// One AWS call that failed. Built by the adapters from the SDK's error
/// (`adapters::aws_error`); the flows only read it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{service}:{operation} on {resource}: {message}")]
pub struct AwsError {
    /// The SDK's service name: `ecs`, `dynamodb`, `s3`, …
    pub service: &'static str,
    /// The API operation: `DescribeServices`, `PutItem`, …
    pub operation: &'static str,
    /// What was asked for: `prod/api`, a table, a bucket and key, …
    pub resource: String,
    /// The error code when the service sent one (`ThrottlingException`).
    pub code: Option<String>,
    /// The code and message, or the transport failure, as one line.
    pub message: String,
    /// Whether the same call later can succeed (throttling, 5xx, timeouts).
    pub retryable: bool,
}

impl AwsError {
    /// An answer that is not an SDK error but still fails the call (a
    /// described service that is missing, an empty response).
    pub fn answer(
        service: &'static str,
        operation: &'static str,
        resource: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        Self { service, operation, resource: resource.into(), code: None, message: why.into(), retryable: false }
    }

    pub fn code_is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

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
    #[error("AWS {}.{} failed for {}: {}", .0.service, .0.operation, .0.resource, .0.message)]
    Aws(AwsError),
    /// A state-table call failed: the safety records cannot be trusted, so
    /// the invocation fails and Lambda retries.
    #[error("state table {}: {}: {}", .0.resource, .0.operation, .0.message)]
    State(AwsError),
    /// Another invocation holds the claim of this event (or request) and may
    /// still be processing it: answered as an error so that the caller (Lambda's
    /// retry, the CLI) comes back later — never as a duplicate, which would
    /// lose the event if that invocation dies.
    #[error("{what} is still being processed by another invocation (its claim holds until {until}); retry later")]
    InProgress { what: String, until: String },
    /// A runbook `request_id` reused for a different request: nothing done.
    #[error(
        "request_id {request_id:?} was first used for a different request (payload hash {first_hash}, this one {this_hash}); nothing done: use a new request_id"
    )]
    RequestIdConflict { request_id: String, first_hash: String, this_hash: String },
}

impl AutopilotError {
    /// Stable error type names, read by alarms and by the dead-letter triage.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) | Self::WrongFunction { .. } => "InvalidEvent",
            Self::Config(_) => "Configuration",
            Self::Aws(e) if e.retryable => "AwsRetryable",
            Self::Aws(_) => "AwsFailure",
            Self::State(_) => "StateFailure",
            Self::InProgress { .. } => "InProgress",
            Self::RequestIdConflict { .. } => "RequestIdConflict",
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Aws(AwsError { retryable: true, .. }) | Self::State(_) | Self::InProgress { .. })
    }
}

/// What a failed invocation asks of a person; each class is its own metric
/// (`telemetry::count_error`), and the self-alarms page on
/// [`ErrorClass::NeedsPerson`] alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Nothing will fix itself: a setting is missing or unusable, or AWS
    /// refused a call for good (access denied, a key disabled, a table
    /// missing, a request AWS calls invalid). Pages.
    NeedsPerson,
    /// AWS or the state table failed in a way a later attempt can get past
    /// (throttling, 5xx, timeouts): Lambda retries an asynchronous invocation
    /// twice, then the failed-invocations queue (and its alarm) keeps it.
    Retryable,
    /// Another invocation holds this event's (or request's) claim: the retry
    /// a redelivered event gets by design. Never pages.
    InProgress,
    /// The input was refused (not one this function takes, sent to the wrong
    /// function, or a runbook `request_id` reused for another request): the
    /// answer names why; an asynchronous one lands in the failed-invocations
    /// queue. Never pages by itself.
    InvalidEvent,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 4] = [Self::NeedsPerson, Self::Retryable, Self::InProgress, Self::InvalidEvent];

    /// The metric counting it (namespace `METRICS_NAMESPACE`, dimensions
    /// `Stack`, `Function`): the self-alarms' contract with the template.
    pub fn metric(self) -> &'static str {
        match self {
            Self::NeedsPerson => "NeedsPerson",
            Self::Retryable => "Retryable",
            Self::InProgress => "InProgress",
            Self::InvalidEvent => "InvalidEvent",
        }
    }

    pub fn pages(self) -> bool {
        self == Self::NeedsPerson
    }
}

impl AutopilotError {
    /// Which class of error this is (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::InvalidEvent(_) | Self::WrongFunction { .. } | Self::RequestIdConflict { .. } => {
                ErrorClass::InvalidEvent
            }
            Self::InProgress { .. } => ErrorClass::InProgress,
            Self::Config(_) => ErrorClass::NeedsPerson,
            Self::Aws(e) | Self::State(e) if e.retryable => ErrorClass::Retryable,
            Self::Aws(_) | Self::State(_) => ErrorClass::NeedsPerson,
        }
    }
}

impl From<AutopilotError> for Diagnostic {
    fn from(e: AutopilotError) -> Self {
        Diagnostic { error_type: e.error_type().into(), error_message: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_should_be_stable_and_say_whether_a_retry_can_help() {
        let aws = |retryable| AwsError { retryable, ..AwsError::answer("dynamodb", "PutItem", "state", "x") };
        let cases = [
            (AutopilotError::InvalidEvent(TriggerError::missing("runbook request", "service")), "InvalidEvent", false),
            (AutopilotError::Config("x".into()), "Configuration", false),
            (AutopilotError::Aws(aws(true)), "AwsRetryable", true),
            (AutopilotError::Aws(aws(false)), "AwsFailure", false),
            (AutopilotError::State(aws(false)), "StateFailure", true),
            (
                AutopilotError::InProgress { what: "event e-1".into(), until: "2026-11-20T14:05:00Z".into() },
                "InProgress",
                true,
            ),
            (
                AutopilotError::RequestIdConflict {
                    request_id: "r".into(),
                    first_hash: "a".into(),
                    this_hash: "b".into(),
                },
                "RequestIdConflict",
                false,
            ),
        ];
        for (e, error_type, retryable) in cases {
            assert_eq!((e.error_type(), e.is_retryable()), (error_type, retryable), "{e}");
        }
    }

    /// Every variant (and both sides of each AWS failure) has its class; a new
    /// variant fails to compile in `class` until it is given one, and here
    /// until it is listed.
    #[test]
    fn every_error_should_have_the_class_that_says_whether_it_needs_a_person() {
        let aws = |retryable| AwsError { retryable, ..AwsError::answer("dynamodb", "PutItem", "state", "x") };
        let cases = [
            (
                AutopilotError::InvalidEvent(TriggerError::missing("runbook request", "service")),
                ErrorClass::InvalidEvent,
            ),
            (
                AutopilotError::WrongFunction {
                    function: "runbook",
                    got: "an alarm".into(),
                    expected: "a runbook request",
                },
                ErrorClass::InvalidEvent,
            ),
            (
                AutopilotError::RequestIdConflict {
                    request_id: "r".into(),
                    first_hash: "a".into(),
                    this_hash: "b".into(),
                },
                ErrorClass::InvalidEvent,
            ),
            (
                AutopilotError::InProgress { what: "event e-1".into(), until: "2026-11-20T14:05:00Z".into() },
                ErrorClass::InProgress,
            ),
            (AutopilotError::Config("STATE_TABLE is not set".into()), ErrorClass::NeedsPerson),
            (AutopilotError::Aws(aws(true)), ErrorClass::Retryable),
            (AutopilotError::Aws(aws(false)), ErrorClass::NeedsPerson),
            (AutopilotError::State(aws(true)), ErrorClass::Retryable),
            (AutopilotError::State(aws(false)), ErrorClass::NeedsPerson),
        ];
        for (e, class) in &cases {
            assert_eq!(e.class(), *class, "{e}");
            // Only what needs a person pages; InProgress and InvalidEvent never do.
            assert_eq!(e.class().pages(), *class == ErrorClass::NeedsPerson, "{e}");
        }
        // Every class is reached, and each metric name is distinct.
        for class in ErrorClass::ALL {
            assert!(cases.iter().any(|(e, _)| e.class() == class), "{class:?}");
        }
        let names: std::collections::BTreeSet<_> = ErrorClass::ALL.iter().map(|c| c.metric()).collect();
        assert_eq!(names.len(), ErrorClass::ALL.len());
    }
}
