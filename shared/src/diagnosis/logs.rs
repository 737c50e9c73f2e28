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
pub fn excerpt_of(group: &str, stream: &str, messages: &[&str], max_lines: usize, redactor: &Redactor) -> LogExcerpt {
    let errors: Vec<&str> = messages.iter().copied().filter(|m| is_error_line(m)).collect();
    let only_errors = !errors.is_empty();
    let chosen = if only_errors { errors } else { messages.to_vec() };
    let start = chosen.len().saturating_sub(max_lines);
    LogExcerpt {
        log_group: group.to_string(),
        log_stream: stream.to_string(),
        lines: chosen[start..].iter().map(|l| redactor.text(l.trim_end())).collect(),
        only_errors,
    }
}
