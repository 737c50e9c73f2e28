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
