//! Adapters: every AWS call of the crate lives below this module, behind a
//! function that returns plain data ([`crate::snapshot`]) or a typed
//! [`AwsError`] naming the service, operation and resource. Flows and the
//! engine call these functions, never SDK builders.
//!
//! - [`Clients`]: the SDK clients, built once per process from one `SdkConfig`,
//!   each carrying a [`CallCounter`] so every invocation can report its AWS calls.
//! - [`ecs`], [`elb`], [`cloudwatch`], [`logs`], [`autoscaling`]: reads and the
//!   few mutations (UpdateService, StopServiceDeployment) of those services.
//! - [`codepipeline`], [`codebuild`], [`codedeploy`]: what a pipeline
//!   execution, its actions, its builds and its ECS deployment groups say (reads only).
//! - [`gather`]: the runbooks' read-only gathering, composed from the above.
//! - [`s3`]: the evidence store (SSE always, never overwritten).
//! - [`sns`]: the notifier.
//! - [`state`]: the state table, split by concern.

pub mod autoscaling;
pub mod cloudwatch;
pub mod codebuild;
pub mod codedeploy;
pub mod codepipeline;
pub mod ecs;
pub mod elb;
pub mod gather;
pub mod logs;
pub mod s3;
pub mod sns;
pub mod state;

use aws_sdk_ecs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_ecs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::SdkTimeouts;
pub use crate::error::AwsError;

/// Counts requests sent (retries included), per process.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<AtomicU64>);

impl CallCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_ecs::error::BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The clients a function may use. Building one is cheap (no network), so
/// every function builds the same set from its one `SdkConfig`.
#[derive(Debug, Clone)]
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub sns: aws_sdk_sns::Client,
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
    pub codepipeline: aws_sdk_codepipeline::Client,
    pub codebuild: aws_sdk_codebuild::Client,
    pub codedeploy: aws_sdk_codedeploy::Client,
    pub calls: CallCounter,
    /// The configuration's credentials, for what a presigned URL's lifetime
    /// rests on (their expiry; `adapters::s3::presigned_get`).
    pub credentials: Option<aws_sdk_s3::config::SharedCredentialsProvider>,
}

impl Clients {
    /// Load the SDK configuration from the standard chain (environment,
    /// including `AWS_ENDPOINT_URL` for the local test server), every
    /// operation bounded by `timeouts`.
    pub async fn from_env(timeouts: &SdkTimeouts) -> Self {
        Self::load(aws_config::defaults(aws_config::BehaviorVersion::latest()), timeouts).await
    }

    /// Like [`Clients::from_env`], from a loader the caller prepared.
    pub async fn load(loader: aws_config::ConfigLoader, timeouts: &SdkTimeouts) -> Self {
        let bounded = aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(timeouts.attempt)
            .operation_timeout(timeouts.operation)
            .build();
        Self::new(&loader.timeout_config(bounded).load().await)
    }

    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let calls = CallCounter::default();
        // A custom endpoint (moto on 127.0.0.1) cannot serve virtual-hosted
        // bucket names; real S3 keeps the default addressing.
        let path_style = config.endpoint_url().is_some();
        macro_rules! client {
            ($krate:ident) => {{
                let conf = $krate::config::Builder::from(config).interceptor(calls.clone()).build();
                $krate::Client::from_conf(conf)
            }};
        }
        let s3 = {
            let conf = aws_sdk_s3::config::Builder::from(config)
                .force_path_style(path_style)
                .interceptor(calls.clone())
                .build();
            aws_sdk_s3::Client::from_conf(conf)
        };
        Self {
            ecs: client!(aws_sdk_ecs),
            sns: client!(aws_sdk_sns),
            s3,
            dynamodb: client!(aws_sdk_dynamodb),
            cloudwatch: client!(aws_sdk_cloudwatch),
            logs: client!(aws_sdk_cloudwatchlogs),
            elbv2: client!(aws_sdk_elasticloadbalancingv2),
            autoscaling: client!(aws_sdk_applicationautoscaling),
            codepipeline: client!(aws_sdk_codepipeline),
            codebuild: client!(aws_sdk_codebuild),
            codedeploy: client!(aws_sdk_codedeploy),
            calls,
            credentials: config.credentials_provider(),
        }
    }
}

/// Error codes AWS uses for "slow down / try later".
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    "SlowDown",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "ServerException",
];

/// The typed error of one failed call.
pub fn aws_error<E, R>(
    service: &'static str,
    operation: &'static str,
    resource: impl Into<String>,
    err: &SdkError<E, R>,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    AwsError {
        service,
        operation,
        resource: resource.into(),
        code: sdk_error_code(err).map(str::to_string),
        message: sdk_error_message(err),
        retryable: sdk_error_is_retryable(err),
    }
}

/// The code and message of an SDK error, as one line.
fn sdk_error_message<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => error_message(e),
            }
        }
        other => error_message(other),
    }
}

/// Whether retrying the same call later can succeed.
fn sdk_error_is_retryable<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(se) => se.err().code().is_some_and(|c| RETRYABLE_CODES.contains(&c)),
        _ => false,
    }
}

/// The error code of a service error (`ConditionalCheckFailedException`, …).
fn sdk_error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// The full chain of an error, one line, for logs and messages.
fn error_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
