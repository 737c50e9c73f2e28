//! Log excerpts (pure): which lines of a container's log a person reads
//! first, redacted.

use crate::redact::Redactor;
use crate::snapshot::LogExcerpt;

/// Words that mark a log line as an error worth showing a person.
const ERROR_WORDS: &[&str] = &[
    "error",
    "exception",
    "fatal",
    "panic",
    "traceback",
    "killed",
    "out of memory",
    "oom",
    "refused",
    "timed out",
    "segfault",
];

pub fn is_error_line(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    ERROR_WORDS.iter().any(|w| lower.contains(w))
}

/// Pure part of [`log_excerpt`].
///
/// The whole stream is redacted first, as one sequence: a private key logged
/// over several events has its body lines in events that look like nothing
/// on their own, and an excerpt must not start in the middle of one.
pub fn excerpt_of(group: &str, stream: &str, messages: &[&str], max_lines: usize, redactor: &Redactor) -> LogExcerpt {
    excerpt_with(group, stream, messages, max_lines, redactor, is_error_line)
}

/// Like [`excerpt_of`], with its own test of what an error line is.
pub fn excerpt_with(
    group: &str,
    stream: &str,
    messages: &[&str],
    max_lines: usize,
    redactor: &Redactor,
    is_error: fn(&str) -> bool,
) -> LogExcerpt {
    let redacted = redactor.lines(messages);
    let errors: Vec<&str> =
        messages.iter().zip(&redacted).filter(|(raw, _)| is_error(raw)).map(|(_, clean)| clean.as_str()).collect();
    let only_errors = !errors.is_empty();
    let chosen: Vec<&str> = if only_errors { errors } else { redacted.iter().map(String::as_str).collect() };
    let start = chosen.len().saturating_sub(max_lines);
    LogExcerpt {
        log_group: group.to_string(),
        log_stream: stream.to_string(),
        lines: chosen[start..].iter().map(|l| one_log_line(l.trim_end())).collect(),
        only_errors,
    }
}

/// A log line as a message shows it: control characters (ANSI colours, NULs,
/// carriage returns) as spaces, and at most [`MAX_LOG_LINE_CHARS`] characters.
pub fn one_log_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len().min(MAX_LOG_LINE_CHARS + 40));
    for (count, c) in line.chars().enumerate() {
        if count == MAX_LOG_LINE_CHARS {
            let rest = line.chars().count() - count;
            out.push_str(&format!(" ...[{rest} more characters]"));
            return out;
        }
        out.push(if c.is_control() && c != '\t' { ' ' } else { c });
    }
    out
}

/// Longer lines are cut: one stack-trace line must not crowd out the alert.
pub const MAX_LOG_LINE_CHARS: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_log_lines_are_cut_and_lose_control_characters() {
        let huge = format!("ERROR {}", "x".repeat(300_000));
        let line = one_log_line(&huge);
        assert!(line.chars().count() < MAX_LOG_LINE_CHARS + 40 && line.contains("more characters]"), "{}", line.len());
        assert_eq!(one_log_line("ERROR \u{1b}[31mred\u{0}\r\nnext \u{fffd}"), "ERROR  [31mred   next \u{fffd}");
        let e = excerpt_of("/ecs/x", "s", &[huge.as_str(), "ERROR ok"], 5, &Redactor::new());
        assert_eq!(e.lines.len(), 2);
        assert!(e.lines.iter().all(|l| l.chars().count() < MAX_LOG_LINE_CHARS + 40));
    }

    #[test]
    fn a_private_key_logged_over_several_events_is_redacted_before_excerpting() {
        let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj";
        let messages =
            ["ERROR could not load -----BEGIN PRIVATE KEY-----", body, "-----END PRIVATE KEY-----", "ERROR giving up"];
        let e = excerpt_of("/ecs/x", "s", &messages, 20, &Redactor::new());
        assert!(e.lines.iter().all(|l| !l.contains(body)), "{:?}", e.lines);
        assert_eq!(e.lines.last().map(String::as_str), Some("ERROR giving up"));
    }
}
