//! The invocation being handled: Lambda's request id and deadline, set once
//! per invocation by `flows::handle` (a task-local, so concurrent tests and
//! spawned work never see another invocation's values).
//!
//! - The request id is the token every conditional claim write carries
//!   (event and request claims, the action lock, opening and closing an
//!   incident): when an SDK retry of a write that succeeded meets its own
//!   condition, the stored token says the write was ours.
//! - The deadline bounds how long this invocation can hold anything: every
//!   lease it takes lasts until then plus [`LEASE_MARGIN_SECONDS`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// Added to the holder's lifetime, for clock skew between Lambda and DynamoDB
/// and for the last writes after the deadline is read.
pub const LEASE_MARGIN_SECONDS: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Lambda's request id (`Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// Epoch milliseconds when Lambda stops this invocation; `None` when unknown.
    pub deadline_ms: Option<i64>,
    /// The function's own account, from the invoked function's ARN: events
    /// of other accounts are out of scope (`trigger::trust`).
    pub account: Option<String>,
}

impl Invocation {
    pub fn new(request_id: impl Into<String>, deadline_ms: Option<i64>) -> Self {
        let request_id = request_id.into();
        let request_id = if request_id.trim().is_empty() { fresh_token() } else { request_id };
        Self { request_id, deadline_ms, account: None }
    }

    /// The same invocation, run by the function whose ARN is `function_arn`.
    pub fn of_function(mut self, function_arn: &str) -> Self {
        self.account = crate::arn::account_of(function_arn).map(str::to_string);
        self
    }

    /// From the Lambda context of one invocation.
    pub fn from_lambda(context: &lambda_runtime::Context) -> Self {
        let deadline = i64::try_from(context.deadline).ok().filter(|d| *d > 0);
        Self::new(context.request_id.clone(), deadline).of_function(&context.invoked_function_arn)
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

/// The account of the function handling the current invocation, when known.
pub fn own_account() -> Option<String> {
    CURRENT.try_with(|i| i.account.clone()).ok().flatten()
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

/// Until when (epoch seconds) a lease taken at `now` must hold (pure): past
/// the last moment its holder can still run — its deadline when known, else
/// `now` plus the function's whole timeout — plus a margin. A lease that
/// expired therefore always means its holder is gone.
pub fn lease_until(now: i64, deadline_ms: Option<i64>, timeout_seconds: i64) -> i64 {
    let lives_until = match deadline_ms {
        // Round up: a holder may run into the last started second.
        Some(ms) => ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) > 0),
        None => now.saturating_add(timeout_seconds.max(0)),
    };
    lives_until.max(now).saturating_add(LEASE_MARGIN_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_the_deadline_is_known_a_lease_should_outlast_it_by_the_margin() {
        let now = 1_800_000_000;
        // (deadline ms, timeout, expected lease end)
        let cases = [
            (Some((now + 300) * 1000), 300, now + 300 + LEASE_MARGIN_SECONDS),
            (Some((now + 90) * 1000 + 1), 300, now + 91 + LEASE_MARGIN_SECONDS),
            // A deadline already past (clock skew): still a margin from now.
            (Some((now - 5) * 1000), 300, now + LEASE_MARGIN_SECONDS),
        ];
        for (deadline, timeout, expected) in cases {
            assert_eq!(lease_until(now, deadline, timeout), expected, "{deadline:?}");
        }
    }

    #[test]
    fn when_the_deadline_is_unknown_a_lease_should_last_the_whole_timeout_plus_the_margin() {
        let now = 1_800_000_000;
        for timeout in [1, 90, 300, 900] {
            assert_eq!(lease_until(now, None, timeout), now + timeout + LEASE_MARGIN_SECONDS);
        }
    }

    #[tokio::test]
    async fn inside_an_invocation_the_token_should_be_its_request_id_and_outside_fresh_each_time() {
        assert_ne!(token(), token(), "no invocation: a fresh token per call");
        let inv = Invocation::new("req-7", Some(42_000));
        let (t, d) = scope(inv, async { (token(), deadline_ms()) }).await;
        assert_eq!((t.as_str(), d), ("req-7", Some(42_000)));
        assert!(Invocation::new("  ", None).request_id.starts_with("local-"), "an empty request id is replaced");
    }
}
