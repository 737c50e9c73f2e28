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
pub mod fleet;
pub mod gather;
pub mod logs;
pub mod s3;
pub mod sns;
pub mod state;

use aws_sdk_ecs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_ecs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

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
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_ecs::error::BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        // `RUST_LOG=debug` (or `aws_calls=debug`) lists each call: what the bench's counts are made of.
        if tracing::enabled!(target: "aws_calls", tracing::Level::DEBUG)
            && let Some(m) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
        {
            let body = context
                .request()
                .body()
                .bytes()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(300)]).to_string())
                .unwrap_or_default();
            tracing::debug!(target: "aws_calls", service = m.service(), operation = m.name(), body = %body, "aws call");
        }
        Ok(())
    }
}

/// The clients a function may use, each built on its first use from the
/// function's one `SdkConfig` (one HTTP client, so one connector and one TLS
/// configuration, and one credentials cache for all of them): a function
/// builds only the clients its flow reaches, and with link-time optimisation
/// a binary links only those SDK crates. Building the first client loads the
/// TLS roots; nothing of the kind happens before the first event.
#[derive(Debug, Clone)]
pub struct Clients {
    config: aws_config::SdkConfig,
    pub calls: CallCounter,
    /// Where these clients read and act: home, or a member account and
    /// region of the fleet ([`fleet::member_clients`]).
    scope: crate::fleet::Scope,
    ecs: Lazy<aws_sdk_ecs::Client>,
    sns: Lazy<aws_sdk_sns::Client>,
    /// The evidence bucket's configuration (region, credentials, endpoint,
    /// HTTP client): home's, for a member too.
    s3: aws_config::SdkConfig,
    dynamodb: DynamoHandle,
    cloudwatch: Lazy<aws_sdk_cloudwatch::Client>,
    logs: Lazy<aws_sdk_cloudwatchlogs::Client>,
    elbv2: Lazy<aws_sdk_elasticloadbalancingv2::Client>,
    autoscaling: Lazy<aws_sdk_applicationautoscaling::Client>,
    codepipeline: Lazy<aws_sdk_codepipeline::Client>,
    codebuild: Lazy<aws_sdk_codebuild::Client>,
    codedeploy: Lazy<aws_sdk_codedeploy::Client>,
}

/// The accessor (building the client on first use) and the setter (a test's
/// mock, before first use) of each client.
macro_rules! lazy_client {
    ($($field:ident, $set:ident: $krate:ident;)*) => {$(
        pub fn $field(&self) -> &$krate::Client {
            self.$field.0.get_or_init(|| {
                let conf = $krate::config::Builder::from(&self.config).interceptor(self.calls.clone()).build();
                $krate::Client::from_conf(conf)
            })
        }

        pub fn $set(&mut self, client: $krate::Client) {
            self.$field = Lazy::from(client);
        }
    )*};
}

impl Clients {
    /// Load the SDK configuration from the standard chain (environment,
    /// including `AWS_ENDPOINT_URL` for the local test server), every
    /// operation bounded by `timeouts`.
    ///
    /// Lambda hands the function's credentials in the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`):
    /// where they are, they are read from there. The default chain would
    /// build its web-identity provider's STS client at load time, and with
    /// it an HTTPS connector, reading the CA bundle and every file under
    /// /etc/ssl/certs before the first event (measured: the better part of
    /// a cold start). Without them (a developer's profile) the default chain
    /// stays.
    pub async fn from_env(timeouts: &SdkTimeouts) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
            loader =
                loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
        }
        Self::load(loader, timeouts).await
    }

    /// Like [`Clients::from_env`], from a loader the caller prepared.
    pub async fn load(loader: aws_config::ConfigLoader, timeouts: &SdkTimeouts) -> Self {
        let bounded = aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(timeouts.attempt)
            .operation_timeout(timeouts.operation)
            .build();
        Self::new(&loader.timeout_config(bounded).http_client(shared_https_client()).load().await)
    }

    /// Nothing is built yet: each client on its first use.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let calls = CallCounter::default();
        let dynamodb = {
            let (config, calls) = (config.clone(), calls.clone());
            DynamoHandle::lazy(move || {
                let conf = aws_sdk_dynamodb::config::Builder::from(&config).interceptor(calls.clone()).build();
                aws_sdk_dynamodb::Client::from_conf(conf)
            })
        };
        Self {
            config: config.clone(),
            calls,
            scope: crate::fleet::Scope::Home,
            ecs: Lazy::default(),
            sns: Lazy::default(),
            s3: config.clone(),
            dynamodb,
            cloudwatch: Lazy::default(),
            logs: Lazy::default(),
            elbv2: Lazy::default(),
            autoscaling: Lazy::default(),
            codepipeline: Lazy::default(),
            codebuild: Lazy::default(),
            codedeploy: Lazy::default(),
        }
    }

    /// The state table's client, built on first use (shared with the
    /// [`state::StateStore`] of this function through [`Clients::dynamodb_handle`]).
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamodb
    }

    /// A test's mock, before first use.
    pub fn set_dynamodb(&mut self, client: aws_sdk_dynamodb::Client) {
        self.dynamodb = DynamoHandle::from(client);
    }

    /// The same DynamoDB client as [`Clients::dynamodb`], not built yet if
    /// no call has needed it: what the state store holds.
    pub fn dynamodb_handle(&self) -> DynamoHandle {
        self.dynamodb.clone()
    }

    lazy_client! {
        ecs, set_ecs: aws_sdk_ecs;
        sns, set_sns: aws_sdk_sns;
        cloudwatch, set_cloudwatch: aws_sdk_cloudwatch;
        logs, set_logs: aws_sdk_cloudwatchlogs;
        elbv2, set_elbv2: aws_sdk_elasticloadbalancingv2;
        autoscaling, set_autoscaling: aws_sdk_applicationautoscaling;
        codepipeline, set_codepipeline: aws_sdk_codepipeline;
        codebuild, set_codebuild: aws_sdk_codebuild;
        codedeploy, set_codedeploy: aws_sdk_codedeploy;
    }

    /// The credentials S3 is called and its links are signed with (what a
    /// presigned URL's lifetime rests on): home's, a member's clients too.
    pub fn credentials(&self) -> Option<aws_credential_types::provider::SharedCredentialsProvider> {
        self.s3.credentials_provider()
    }

    /// Where these clients read and act.
    pub fn scope(&self) -> &crate::fleet::Scope {
        &self.scope
    }

    /// The region these clients call (`AWS_REGION` at home, the member's
    /// region for a member), when the configuration names one.
    pub fn region(&self) -> Option<&str> {
        self.config.region().map(|r| r.as_ref())
    }

    /// Clients of a member built from `config` (its region and credentials)
    /// that publish, store evidence and keep state where these do (home's
    /// topic, bucket and table: the same clients) and count their calls
    /// with these.
    pub(crate) fn for_member(&self, config: &aws_config::SdkConfig, place: &crate::fleet::Place) -> Self {
        let mut member = Self::new(config);
        member.calls = self.calls.clone();
        member.scope = crate::fleet::Scope::Member(place.clone());
        // Built now from home's configuration: the cells are shared, and a
        // member's first use must not build them with its own region.
        let _ = self.sns();
        member.sns = self.sns.clone();
        member.s3 = self.s3.clone();
        member.dynamodb = self.dynamodb.clone();
        member
    }

    /// The evidence bucket's configuration: home's region, credentials,
    /// endpoint and HTTP client, whichever scope these clients act in.
    pub(crate) fn s3_config(&self) -> &aws_config::SdkConfig {
        &self.s3
    }
}

/// The one HTTP client of every SDK client of the process: hyper 1 with
/// rustls, proxies from the environment, as the SDK's default, but on
/// `ring` instead of aws-lc (the SDK crates' `default-https-client` feature
/// is off, so aws-lc is not linked at all: a smaller binary, same TLS 1.2/1.3),
/// built once, so all clients share one connector cache (one rustls
/// configuration with the roots parsed once, one connection pool) where each
/// client would otherwise build its own. Its connector, and with it the TLS
/// roots, is built when the first SDK client is.
pub(crate) fn shared_https_client() -> aws_sdk_ecs::config::SharedHttpClient {
    use aws_smithy_http_client::{ConnectorBuilder, proxy::ProxyConfig, tls};
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut builder =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring));
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    })
}

/// A client built on its first use, shared by every clone of its
/// [`Clients`]: a function's clients, and a member's kept for the warm
/// instance, are each built once however often they are cloned.
#[derive(Debug)]
struct Lazy<C>(Arc<OnceLock<C>>);

impl<C> Clone for Lazy<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<C> Default for Lazy<C> {
    fn default() -> Self {
        Self(Arc::new(OnceLock::new()))
    }
}

impl<C> From<C> for Lazy<C> {
    fn from(client: C) -> Self {
        Self(Arc::new(OnceLock::from(client)))
    }
}

/// A DynamoDB client given (a test's mock) or built on first use; clones
/// share it. Dereferences to the client.
#[derive(Clone)]
pub struct DynamoHandle(Arc<DynamoCell>);

struct DynamoCell {
    client: OnceLock<aws_sdk_dynamodb::Client>,
    build: Option<Box<dyn Fn() -> aws_sdk_dynamodb::Client + Send + Sync>>,
}

impl DynamoHandle {
    fn lazy(build: impl Fn() -> aws_sdk_dynamodb::Client + Send + Sync + 'static) -> Self {
        Self(Arc::new(DynamoCell { client: OnceLock::new(), build: Some(Box::new(build)) }))
    }
}

impl From<aws_sdk_dynamodb::Client> for DynamoHandle {
    fn from(client: aws_sdk_dynamodb::Client) -> Self {
        Self(Arc::new(DynamoCell { client: OnceLock::from(client), build: None }))
    }
}

impl std::ops::Deref for DynamoHandle {
    type Target = aws_sdk_dynamodb::Client;

    fn deref(&self) -> &aws_sdk_dynamodb::Client {
        self.0.client.get_or_init(|| match &self.0.build {
            Some(build) => build(),
            // A given client fills the cell at construction.
            None => unreachable!("a DynamoHandle without a builder holds its client"),
        })
    }
}

impl std::fmt::Debug for DynamoHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoHandle").field("built", &self.0.client.get().is_some()).finish()
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

/// A mutating call (UpdateService, StopServiceDeployment) that failed, and
/// whether the service may have applied it all the same.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct MutationError {
    pub error: AwsError,
    /// The request may have reached the service and been applied: a timeout,
    /// a broken connection or an unreadable answer, a 5xx, or a throttle that
    /// ended the SDK's retries (an earlier attempt may have been applied and
    /// its answer lost). `false` only for a clear refusal — a 4xx such as
    /// InvalidParameterException or AccessDenied, which ECS answers before
    /// changing anything — or a request that was never built.
    pub may_have_applied: bool,
}

/// The typed error of a failed mutating call, and whether it may have been applied.
pub fn mutation_error<E>(
    service: &'static str,
    operation: &'static str,
    resource: impl Into<String>,
    err: &SdkError<E, aws_sdk_ecs::config::http::HttpResponse>,
) -> MutationError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let may_have_applied = match err {
        SdkError::ConstructionFailure(_) => false,
        SdkError::ServiceError(se) => {
            se.raw().status().is_server_error() || se.err().code().is_some_and(|c| RETRYABLE_CODES.contains(&c))
        }
        // Timeouts, dispatch and response failures: the request may have been sent.
        _ => true,
    };
    MutationError { error: aws_error(service, operation, resource, err), may_have_applied }
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
