//! Our own observability: JSON logs through `tracing` (one line per
//! decision), and metrics in CloudWatch embedded metric format (EMF).

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

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
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("{level},aws_smithy_runtime=warn,aws_config=warn,hyper=warn"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}

/// One EMF document: CloudWatch extracts the metrics from the log line, no
/// PutMetricData call on the hot path.
pub fn emit_metrics(function: &str, dimensions: &[(&str, &str)], metrics: &[(&str, f64, &str)]) {
    println_flushed(&emf_line(function, dimensions, metrics, chrono::Utc::now().timestamp_millis()));
}

pub fn emf_line(
    function: &str,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, f64, &str)],
    timestamp_ms: i64,
) -> String {
    let mut doc = serde_json::Map::new();
    let mut dims: Vec<&str> = vec!["Function"];
    dims.extend(dimensions.iter().map(|(k, _)| *k));
    let definitions: Vec<serde_json::Value> =
        metrics.iter().map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit})).collect();
    doc.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": "EcsAutopilot", "Dimensions": [dims], "Metrics": definitions}],
        }),
    );
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
    fn emf_line_should_declare_every_metric_and_dimension() {
        let line = super::emf_line("ecs-events", &[("Kind", "alarm")], &[("AwsCalls", 7.0, "Count")], 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0], serde_json::json!(["Function", "Kind"]));
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "AwsCalls");
        assert_eq!(v["AwsCalls"], 7.0);
        assert_eq!(v["Kind"], "alarm");
    }
}
