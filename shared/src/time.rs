//! Wall-clock helpers. Decisions take `now` as an argument; only the shells
//! (flows, the engine) read the clock, through [`now`].

/// Epoch seconds, now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Epoch seconds as an ISO-8601 UTC timestamp (`2026-11-20T14:02:11Z`).
pub fn iso(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A duration as people say it: `45s`, `12m 3s`, `3h 5m`, `2d 4h`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m {sec}s"),
        (h, m, _) if h < 48 => format!("{h}h {m}m"),
        (h, _, _) => format!("{}d {}h", h / 24, h % 24),
    }
}
