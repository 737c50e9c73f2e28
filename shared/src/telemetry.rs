//! Our own observability: JSON logs through `tracing` (one line per
//! decision), and metrics in CloudWatch embedded metric format (EMF).
//!
//! Every log line passes through the redactor before it is written: the
//! credential-shaped patterns of [`crate::redact`], and the secret values of
//! every task definition this process has read ([`remember_secrets`]). The
//! same registry redacts outgoing messages and replies ([`redactor`]).

use std::io::Write;

use std::sync::Mutex;
use std::time::Instant;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::redact::Redactor;

/// Secret values of the task definitions this process has read (values of
/// secret-named variables; `valueFrom` references are names and never fetched).
static KNOWN_SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Bounded so that a long-lived process cannot grow without end.
const MAX_KNOWN_SECRETS: usize = 2048;

/// Remember secret values so that every later log line, message and reply of
/// this process redacts them.
pub fn remember_secrets(values: impl IntoIterator<Item = String>) {
    if let Ok(mut known) = KNOWN_SECRETS.lock() {
        for v in values {
            if !known.contains(&v) {
                if known.len() >= MAX_KNOWN_SECRETS {
                    known.remove(0);
                }
                known.push(v);
            }
        }
    }
}

/// A redactor with every secret value this process knows.
pub fn redactor() -> Redactor {
    let known = KNOWN_SECRETS.lock().map(|k| k.clone()).unwrap_or_default();
    Redactor::with_known_secrets(known)
}

/// Redact one JSON log line as JSON (so the line stays valid JSON), or as
/// text when it is not JSON.
pub fn redact_log_line(line: &str) -> String {
    let r = redactor();
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(mut v) => {
            join_invocation_fields(&mut v);
            r.json(&mut v);
            v.to_string()
        }
        Err(_) => r.text(line),
    }
}

/// The runtime's invocation span carries `requestId` and `xrayTraceId`: lift
/// them to the top of every line, as Lambda's own JSON logs name them, so a
/// decision line joins its REPORT line and its failed-invocation record.
fn join_invocation_fields(v: &mut serde_json::Value) {
    let Some(obj) = v.as_object_mut() else { return };
    let Some(span) = obj.remove("span") else { return };
    if let Some(id) = span.get("requestId") {
        obj.insert("requestId".into(), id.clone());
    }
    if let Some(trace) = span.get("xrayTraceId") {
        obj.insert("traceId".into(), trace.clone());
    }
    if let Some(tenant) = span.get("tenantId") {
        obj.insert("tenantId".into(), tenant.clone());
    }
}

/// stdout, one redacted line at a time.
struct RedactingWriter {
    buffer: Vec<u8>,
}

impl Write for RedactingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        // tracing's fmt layer writes one event per writer: redact it whole.
        let text = String::from_utf8_lossy(&self.buffer);
        let mut out = std::io::stdout().lock();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let _ = writeln!(out, "{}", redact_log_line(line));
        }
        let _ = out.flush();
    }
}

fn redacting_stdout() -> RedactingWriter {
    RedactingWriter { buffer: Vec::with_capacity(512) }
}

/// When the current invocation started, and the AWS call count then. Lambda
/// runs one invocation at a time per process, so one slot is enough.
static INVOCATION: Mutex<Option<(Instant, u64)>> = Mutex::new(None);

pub fn mark_invocation_start(aws_calls_so_far: u64) {
    if let Ok(mut slot) = INVOCATION.lock() {
        *slot = Some((Instant::now(), aws_calls_so_far));
    }
}

/// Milliseconds and AWS calls since the invocation started.
pub fn since_invocation_start(aws_calls_now: u64) -> (f64, u64) {
    match INVOCATION.lock().ok().and_then(|s| *s) {
        Some((at, calls)) => (at.elapsed().as_secs_f64() * 1000.0, aws_calls_now.saturating_sub(calls)),
        None => (0.0, 0),
    }
}

/// JSON logs to stdout, which Lambda ships to CloudWatch Logs. Level from
/// `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default `info`); the SDK's own
/// chatter stays at `warn`.
pub fn init_logging() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into())
        .to_ascii_lowercase();
    // `Targets` (target prefix = level, e.g. `info,aws_calls=debug`) rather
    // than `EnvFilter`, whose span-field matching links a regex engine the
    // functions never use.
    let filter: Targets = format!("{level},aws_smithy_runtime=warn,aws_config=warn,hyper=warn")
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO));
    // AWS_LAMBDA_LOG_FORMAT=Text asks for plain lines; JSON is the default.
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    // A second init (tests) is harmless: keep the first subscriber.
    if text {
        let layer = tracing_subscriber::fmt::layer().with_ansi(false).with_target(false).with_writer(redacting_stdout);
        let _ = tracing_subscriber::registry().with(layer.with_filter(filter)).try_init();
    } else {
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(false)
            .with_writer(redacting_stdout);
        let _ = tracing_subscriber::registry().with(layer.with_filter(filter)).try_init();
    }
}

/// Where the metrics go: `METRICS_NAMESPACE` (default `EcsAutopilot`), and
/// the stack (`STACK_NAME`) as a dimension so two stacks in one account keep
/// their series apart.
struct MetricsTarget {
    namespace: String,
    stack: Option<String>,
}

fn metrics_target() -> &'static MetricsTarget {
    static TARGET: std::sync::OnceLock<MetricsTarget> = std::sync::OnceLock::new();
    TARGET.get_or_init(|| MetricsTarget {
        namespace: std::env::var("METRICS_NAMESPACE")
            .ok()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "EcsAutopilot".into()),
        stack: std::env::var("STACK_NAME").ok().filter(|n| !n.trim().is_empty()),
    })
}

/// One EMF document: CloudWatch extracts the metrics from the log line, no
/// PutMetricData call on the hot path. Every metric is published per
/// function (and stack), and once more with the extra dimensions given.
pub fn emit_metrics(function: &str, dimensions: &[(&str, &str)], metrics: &[(&str, f64, &str)]) {
    let target = metrics_target();
    println_flushed(&emf_line(
        &target.namespace,
        target.stack.as_deref(),
        function,
        dimensions,
        metrics,
        chrono::Utc::now().timestamp_millis(),
    ));
}

/// A failed invocation, counted by its class (`NeedsPerson`, `Retryable`,
/// `InProgress`, `InvalidEvent`: [`crate::error::ErrorClass`]) per function
/// and stack. The self-alarms page on `NeedsPerson`; the others are there to
/// be graphed. (The invocation wrapper's `Errors` metric, by `ErrorType`,
/// stays as it was.)
pub fn count_error(function: &str, error: &crate::error::AutopilotError) {
    emit_metrics(function, &[], &error_class_metric(error));
}

fn error_class_metric(error: &crate::error::AutopilotError) -> [(&'static str, f64, &'static str); 1] {
    [(error.class().metric(), 1.0, "Count")]
}

pub fn emf_line(
    namespace: &str,
    stack: Option<&str>,
    function: &str,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, f64, &str)],
    timestamp_ms: i64,
) -> String {
    let mut doc = serde_json::Map::new();
    let mut base: Vec<&str> = Vec::new();
    if stack.is_some() {
        base.push("Stack");
    }
    base.push("Function");
    let mut sets = vec![base.clone()];
    if !dimensions.is_empty() {
        let mut detailed = base;
        detailed.extend(dimensions.iter().map(|(k, _)| *k));
        sets.push(detailed);
    }
    let definitions: Vec<serde_json::Value> =
        metrics.iter().map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit})).collect();
    doc.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": sets, "Metrics": definitions}],
        }),
    );
    if let Some(stack) = stack {
        doc.insert("Stack".into(), stack.into());
    }
    doc.insert("Function".into(), function.into());
    for (k, v) in dimensions {
        doc.insert((*k).into(), (*v).into());
    }
    for (name, value, _) in metrics {
        doc.insert((*name).into(), (*value).into());
    }
    serde_json::Value::Object(doc).to_string()
}

fn println_flushed(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_lines_stay_json_and_lose_remembered_secrets_and_credential_shapes() {
        super::remember_secrets(["s3cr3t-db-password-value".to_string()]);
        let line = r#"{"level":"INFO","message":"connect failed: s3cr3t-db-password-value","url":"postgres://app:hunter2x@db/x"}"#;
        let out = super::redact_log_line(line);
        let v: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert!(!out.contains("s3cr3t-db-password-value") && !out.contains("hunter2x"), "{out}");
        assert_eq!(v["level"], "INFO");
        assert!(super::redact_log_line("not json password=abc123def").contains("REDACTED"));
    }

    #[test]
    fn the_invocation_span_becomes_top_level_request_and_trace_ids() {
        let line = r#"{"level":"INFO","decision":"outcome","span":{"requestId":"8f5a-1","xrayTraceId":"Root=1-abc","name":"Lambda runtime invoke"}}"#;
        let v: serde_json::Value = serde_json::from_str(&super::redact_log_line(line)).unwrap();
        assert_eq!(v["requestId"], "8f5a-1");
        assert_eq!(v["traceId"], "Root=1-abc");
        assert!(v.get("span").is_none());
    }

    #[test]
    fn a_failed_invocation_should_be_counted_by_its_class_per_stack_and_function() {
        use crate::error::{AutopilotError, TriggerError};
        let cases = [
            (AutopilotError::InProgress { what: "event e-1".into(), until: "t".into() }, "InProgress"),
            (AutopilotError::InvalidEvent(TriggerError::missing("runbook request", "action")), "InvalidEvent"),
            (AutopilotError::Config("x".into()), "NeedsPerson"),
        ];
        for (e, metric) in cases {
            let m = super::error_class_metric(&e);
            let line = super::emf_line("EcsAutopilot", Some("prod-ap"), "alarm-responder", &[], &m, 1);
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let cw = &v["_aws"]["CloudWatchMetrics"][0];
            // What the template's self-alarms read: the metric, in the namespace, by Stack and Function.
            assert_eq!(cw["Dimensions"], serde_json::json!([["Stack", "Function"]]), "{e}");
            assert_eq!(cw["Metrics"], serde_json::json!([{"Name": metric, "Unit": "Count"}]), "{e}");
            assert_eq!((v[metric].as_f64(), v["Function"].as_str()), (Some(1.0), Some("alarm-responder")), "{e}");
        }
    }

    #[test]
    fn emf_line_should_declare_every_metric_per_function_and_per_extra_dimension() {
        let line = super::emf_line(
            "Team",
            Some("prod-ap"),
            "ecs-events",
            &[("Kind", "alarm")],
            &[("Errors", 1.0, "Count")],
            1,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "Team");
        assert_eq!(m["Dimensions"], serde_json::json!([["Stack", "Function"], ["Stack", "Function", "Kind"]]));
        assert_eq!(m["Metrics"][0]["Name"], "Errors");
        assert_eq!(
            (v["Errors"].as_f64(), v["Stack"].as_str(), v["Kind"].as_str()),
            (Some(1.0), Some("prod-ap"), Some("alarm"))
        );
        let plain = super::emf_line("EcsAutopilot", None, "runbook", &[], &[("Invocations", 1.0, "Count")], 1);
        let v: serde_json::Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Function"]]));
    }
}
