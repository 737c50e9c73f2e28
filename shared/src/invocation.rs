//! The invocation being handled: Lambda's request id and deadline, set once
//! per invocation by `flows::handle` (a task-local, so concurrent tests and
//! spawned work never see another invocation's values).
//!
//! - The request id is the token every conditional claim write carries
//!   (event and request claims, the action lock, opening and closing an
//!   incident): when an SDK retry of a write that succeeded meets its own
//!   condition, the stored token says the write was ours.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Lambda's request id (`Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// Epoch milliseconds when Lambda stops this invocation; `None` when unknown.
    pub deadline_ms: Option<i64>,
}

impl Invocation {
    pub fn new(request_id: impl Into<String>, deadline_ms: Option<i64>) -> Self {
        let request_id = request_id.into();
        let request_id = if request_id.trim().is_empty() { fresh_token() } else { request_id };
        Self { request_id, deadline_ms }
    }

    /// From the Lambda context of one invocation.
    pub fn from_lambda(context: &lambda_runtime::Context) -> Self {
        let deadline = i64::try_from(context.deadline).ok().filter(|d| *d > 0);
        Self::new(context.request_id.clone(), deadline)
    }
}

tokio::task_local! {
    static CURRENT: Invocation;
}

/// Run `work` as `invocation`.
pub async fn scope<F: Future>(invocation: Invocation, work: F) -> F::Output {
    CURRENT.scope(invocation, work).await
}

/// The token of the current invocation's conditional writes. Outside an
/// invocation (tools, tests) a fresh token per call: only the SDK's own
/// retries of that one call then recognise it.
pub fn token() -> String {
    CURRENT.try_with(|i| i.request_id.clone()).unwrap_or_else(|_| fresh_token())
}

/// The current invocation's deadline (epoch milliseconds), when known.
pub fn deadline_ms() -> Option<i64> {
    CURRENT.try_with(|i| i.deadline_ms).ok().flatten()
}

fn fresh_token() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("local-{}-{nanos:x}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inside_an_invocation_the_token_should_be_its_request_id_and_outside_fresh_each_time() {
        assert_ne!(token(), token(), "no invocation: a fresh token per call");
        let inv = Invocation::new("req-7", Some(42_000));
        let (t, d) = scope(inv, async { (token(), deadline_ms()) }).await;
        assert_eq!((t.as_str(), d), ("req-7", Some(42_000)));
        assert!(Invocation::new("  ", None).request_id.starts_with("local-"), "an empty request id is replaced");
    }
}
