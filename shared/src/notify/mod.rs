//! Notifications: every message a person reads, rendered in one place —
//! incident alerts, updates, escalations, resolutions and reports' summaries
//! ([`render`]), the same messages as chat custom notifications ([`chat`]),
//! and a pipeline's failure, resolution and approval notices ([`pipeline`]).
//! Pure: no decisions here, and nothing sent (`adapters::sns` sends).

pub mod chat;
pub mod pipeline;
pub mod render;
