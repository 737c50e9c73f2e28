//! CloudWatch Logs: the failing container's log excerpt, and log exports
//! for capture-evidence (one running export per account at a time).

use super::{AwsError, Clients, aws_error};
use crate::redact::Redactor;
use crate::snapshot::LogExcerpt;

/// The last `max_lines` error lines of a stream (or its last lines when none
/// look like errors), redacted.
pub async fn log_excerpt(
    clients: &Clients,
    group: &str,
    stream: &str,
    max_lines: usize,
    redactor: &Redactor,
) -> Result<LogExcerpt, AwsError> {
    tail_excerpt(clients, (group, stream), 500, max_lines, redactor, crate::diagnosis::logs::is_error_line).await
}

/// The last `max_lines` lines of a build log that say why the build failed
/// (test failures, non-zero exits, the failed phase), redacted.
pub async fn build_log_excerpt(
    clients: &Clients,
    group: &str,
    stream: &str,
    max_lines: usize,
    redactor: &Redactor,
) -> Result<LogExcerpt, AwsError> {
    tail_excerpt(clients, (group, stream), 1000, max_lines, redactor, crate::pipeline::is_build_error_line).await
}

/// The excerpt of the last `limit` events of a stream, error lines by `is_error`.
async fn tail_excerpt(
    clients: &Clients,
    (group, stream): (&str, &str),
    limit: i32,
    max_lines: usize,
    redactor: &Redactor,
    is_error: fn(&str) -> bool,
) -> Result<LogExcerpt, AwsError> {
    let resp = clients
        .logs()
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(false)
        .limit(limit)
        .send()
        .await
        .map_err(|e| aws_error("logs", "GetLogEvents", format!("{group} {stream}"), &e))?;
    let messages: Vec<&str> = resp.events().iter().filter_map(|e| e.message()).collect();
    Ok(crate::diagnosis::logs::excerpt_with(group, stream, &messages, max_lines, redactor, is_error))
}

/// The id of a CloudWatch Logs export task.
pub type ExportTaskId = String;

/// An export task running or pending in the account, if any.
pub async fn active_export(clients: &Clients) -> Result<Option<ExportTaskId>, AwsError> {
    use aws_sdk_cloudwatchlogs::types::ExportTaskStatusCode;
    let logs = &clients.logs();
    let active = |status: ExportTaskStatusCode| async move {
        let resp = logs
            .describe_export_tasks()
            .status_code(status.clone())
            .send()
            .await
            .map_err(|e| aws_error("logs", "DescribeExportTasks", "account", &e))?;
        // Check the status on each task too: not every endpoint applies the filter.
        Ok::<_, AwsError>(
            resp.export_tasks()
                .iter()
                .find(|t| t.status().and_then(|s| s.code()) == Some(&status))
                .map(|t| t.task_id().unwrap_or("?").to_string()),
        )
    };
    let (running, pending) = tokio::join!(active(ExportTaskStatusCode::Running), active(ExportTaskStatusCode::Pending));
    Ok(running?.or(pending?))
}

/// CreateExportTask of `group` between `from` and `to` (epoch seconds) into
/// `bucket`/`prefix`; the export task id.
pub async fn export_log_group(
    clients: &Clients,
    group: &str,
    task_name: &str,
    from: i64,
    to: i64,
    bucket: &str,
    prefix: &str,
) -> Result<String, AwsError> {
    let r = clients
        .logs()
        .create_export_task()
        .task_name(task_name)
        .log_group_name(group)
        .from(from * 1000)
        .to(to * 1000)
        .destination(bucket)
        .destination_prefix(prefix)
        .send()
        .await
        .map_err(|e| aws_error("logs", "CreateExportTask", group, &e))?;
    Ok(r.task_id().unwrap_or("?").to_string())
}

/// Error-looking lines of `group` since `since_ms` (epoch milliseconds),
/// counted client-side over `FilterLogEvents` pages (Logs Insights is not
/// available everywhere, the local server among them): `(count, capped)`,
/// capped when `max_pages` were read and more remained.
pub async fn count_error_lines(
    clients: &Clients,
    group: &str,
    since_ms: i64,
    max_pages: usize,
) -> Result<(u64, bool), AwsError> {
    let mut count = 0u64;
    let mut token = None;
    for _ in 0..max_pages {
        let resp = clients
            .logs()
            .filter_log_events()
            .log_group_name(group)
            .start_time(since_ms)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| aws_error("logs", "FilterLogEvents", group, &e))?;
        count += resp
            .events()
            .iter()
            .filter_map(|e| e.message())
            .filter(|m| crate::diagnosis::logs::is_error_line(m))
            .count() as u64;
        token = resp.next_token().map(str::to_string);
        if token.is_none() {
            return Ok((count, false));
        }
    }
    Ok((count, true))
}

/// How many error-looking lines a stream holds since `since_ms` (epoch
/// milliseconds), over its first page of events (up to 1,000): `(count, lines read)`.
pub async fn error_lines_since(
    clients: &Clients,
    group: &str,
    stream: &str,
    since_ms: i64,
) -> Result<(u64, u64), AwsError> {
    let resp = clients
        .logs()
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_time(since_ms)
        .start_from_head(true)
        .limit(1000)
        .send()
        .await
        .map_err(|e| aws_error("logs", "GetLogEvents", format!("{group} {stream}"), &e))?;
    let messages: Vec<&str> = resp.events().iter().filter_map(|e| e.message()).collect();
    let errors = messages.iter().filter(|m| crate::diagnosis::logs::is_error_line(m)).count();
    Ok((errors as u64, messages.len() as u64))
}
