//! Incidents: one pure machine, one shell, and what differs per subject.
//!
//! - [`machine`] (pure): `step(record, input, ctx) -> (record', effects)`,
//!   every rule of an incident's life, table-tested with no AWS at all.
//! - [`subject`] (pure): what an incident is about, and its state-table key.
//! - `shell` (I/O): the one driver — read the record, step, write it with
//!   `version = :v`, carry out the effects, feed their results back.
//! - `approval` (I/O): a paused deployment's approval notice, the runbook's
//!   answers to its hook, and acknowledgements of an open incident.

pub mod approval;
pub mod machine;
pub mod pipeline;
pub mod service;
pub mod shell;
pub mod subject;

pub use machine::{Policy, Record};
pub use subject::Subject;
