//! Integration tests, one binary (one link): the real function binaries under
//! the Lambda Runtime API, against the local AWS server of scripts/test.sh.

mod actions;
mod alarms;
mod ecs_incidents;
mod functions;
