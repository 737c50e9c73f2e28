//! Notifications: every message a person reads, rendered in one place —
//! incident alerts, updates, escalations, resolutions and reports' summaries
//! ([`render`]), the same messages as chat custom notifications ([`chat`]),
//! a pipeline's failure, resolution and approval notices ([`pipeline`]), and
//! the next steps every incident message carries ([`steps`]: from the cause
//! and what the message shows was done), a paused deployment's approval
//! notice and its answers ([`approval`]), and what chat buttons read
//! ([`buttons`]).
//! Pure: no decisions here, and nothing sent (`adapters::sns` sends).

pub mod approval;
pub mod buttons;
pub mod chat;
pub mod fleet;
pub mod pipeline;
pub mod render;
pub mod steps;
