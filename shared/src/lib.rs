//! ecs-autopilot's shared library: everything the Lambda functions do lives
//! here; the binaries under `functions/` only wire it up.
//!
//! Module map:
//! - [`actions`]   — the bounded-action engine: modes, locks, budgets, ledger, planners.
//! - [`trigger`]   — recognise every accepted input (ECS, alarm, pipeline,
//!   schedule, runbook; direct or through SNS) as a typed [`trigger::Trigger`].
//! - [`outcome`]   — the Outcome JSON and the fixed cause/severity vocabulary.
//! - [`config`]    — the environment contract and tunable settings.
//! - [`handlers`]  — one entry point per function: trigger in, Outcome out.
//! - [`aws`]       — SDK clients built once, call counting, SDK error helpers.
//! - [`error`]     — the error type and its Lambda `Diagnostic` mapping.
//! - [`telemetry`] — JSON logs and embedded-metric-format metrics.
//! - [`diagnosis`] — pure decisions: stop classification, severity, findings.
//! - [`redact`]    — secrets never leave: env values, credential-shaped text.
//! - [`lenient`]   — serde helpers for fields AWS sends in several JSON types.

pub mod actions;
pub mod aws;
pub mod config;
pub mod diagnosis;
pub mod error;
pub mod evidence;
pub mod flows;
pub mod gather;
pub mod handlers;
pub mod lenient;
pub mod notify;
pub mod outcome;
pub mod redact;
pub mod snapshot;
pub mod state;
pub mod telemetry;
pub mod trigger;

pub use config::Config;
pub use error::AutopilotError;
pub use outcome::{ActionRecord, ActionStatus, Cause, Kind, Outcome, Severity};
pub use trigger::Trigger;
