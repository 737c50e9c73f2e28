//! Integration tests, one binary (one link): the real function binaries under
//! the Lambda Runtime API, against the local AWS server of scripts/test.sh;
//! and (`faults`) what the local server cannot produce, through the SDK's
//! own test support.

mod actions;
mod alarms;
mod daily_report;
mod ecs_incidents;
mod engine_faults;
mod escalation;
mod faults;
mod functions;
mod incident_core;
mod lost_responses;
mod redaction;
mod redelivery;
mod stale_triggers;
mod timeouts;
