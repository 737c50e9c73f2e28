//! Integration tests, one binary (one link): the real function binaries under
//! the Lambda Runtime API, against the local AWS server of scripts/test.sh;
//! and (`faults`) what the local server cannot produce, through the SDK's
//! own test support. The adversity suite: `races` (randomized interleavings
//! over five processes) and `fault_matrix` (every call of the opening paths
//! faulted, the process killed at each), through the recording fault proxy.

mod actions;
mod alarms;
mod approvals;
mod chat;
mod daily_report;
mod deployment_controllers;
mod deployment_hook;
mod ecs_incidents;
mod engine_faults;
mod escalation;
mod fault_matrix;
mod faults;
mod first_failure;
mod fleet;
mod fleet_reports;
mod functions;
mod incident_core;
mod lost_responses;
mod next_steps;
mod pipeline;
mod races;
mod redaction;
mod redelivery;
mod report_links;
mod stale_triggers;
mod timeouts;
mod trusted_sources;
mod truth;
mod unknown_outcomes;
mod weekly_report;
