//! ecs-autopilot's shared library: everything the Lambda functions do lives
//! here; the binaries under `functions/` only name their flow.
//!
//! Module map, in layers. A module imports only from its own layer or the
//! layers above it in this list (checked by `tests/layering.rs`):
//!
//! 1. **Vocabulary and helpers** (no I/O, no AWS types):
//!    [`outcome`] (the Outcome JSON, severities, actions), [`cause`] (the cause
//!    vocabulary and its one catalogue), [`error`] (error types), [`config`]
//!    (the environment contract and limits), [`arn`] and [`time`] helpers,
//!    [`iam`] (the IAM actions each function's calls need: the table the
//!    template is checked against), [`invocation`] (the request id and deadline of the invocation at hand),
//!    [`redact`] (secrets never leave), [`lenient`] (serde for AWS's mixed
//!    JSON types), [`telemetry`] (JSON logs, embedded-metric-format metrics).
//! 2. **Triggers and pure decisions**: [`trigger`] (every accepted input as a
//!    typed [`Trigger`]), [`snapshot`] (plain data read from AWS),
//!    [`diagnosis`] (stop classification, severity, alarms, log excerpts),
//!    [`render`] (alert, update and resolution texts), [`chat`] (the same
//!    messages as Amazon Q Developer custom notifications, and their schema
//!    check), [`evidence`] (bundle building), [`daily_report`] (the daily
//!    health check's data and renderings), [`weekly_report`] (the weekly
//!    capacity review: metric batches, sizing, delivery metrics, charts), [`incident`] (the incident machine:
//!    subjects, records, transitions — pure; and its one shell and subject
//!    kinds, which sit between the engine and the flows).
//! 3. **Adapters** ([`adapters`]): every AWS call, with typed errors — the
//!    state store, ECS/ELB/CloudWatch/Logs/Auto Scaling reads and the ECS
//!    mutations, gathering, the evidence store, the notifier.
//! 4. **The bounded-action engine** ([`actions`]): modes, locks, budgets,
//!    cooldowns, the ledger, deployment controllers, the verification of
//!    calls whose outcome is unknown, and the pure rollback and scale planners.
//! 5. **The application context** ([`context`]): configuration, clients and
//!    stores built once per process, and the one routing table of triggers
//!    to functions.
//! 6. **Flows** ([`flows`]): one per function (`flows::ecs::FLOW`, …), the
//!    runbooks as code, and the invocation wrapper every binary calls.

pub mod arn;
pub mod cause;
pub mod config;
pub mod error;
pub mod fleet;
pub mod iam;
pub mod invocation;
pub mod lenient;
pub mod outcome;
pub mod redact;
pub mod telemetry;
pub mod time;

pub mod diagnosis;
pub mod evidence;
pub mod incident;
pub mod notify;
pub mod pipeline;
pub mod reports;
pub mod snapshot;
pub mod trigger;

pub mod adapters;

pub mod actions;

pub mod context;

pub mod flows;

pub use config::Config;
pub use error::AutopilotError;
pub use outcome::{ActionRecord, ActionStatus, Cause, Kind, Outcome, Severity};
pub use trigger::Trigger;
