//! The scheduled reports as pure data, decisions and renderings: the daily
//! health check ([`daily`]) and the weekly capacity review ([`weekly`]),
//! across the fleet ([`fleet`]: the scopes of a run, per-account sections,
//! shard keys); `flows::reports` reads AWS for them and stores and announces
//! them.

pub mod daily;
pub mod fleet;
pub mod weekly;
