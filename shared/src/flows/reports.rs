//! `scheduled-reports`: the daily and weekly reports and the escalation
//! job. Not built yet: the flow recognises its input and says what it saw.

use serde_json::Value;

use super::{Flow, FlowFuture};
use crate::context::{App, Function};
use crate::outcome::{Cause, Kind, Outcome, Severity};
use crate::trigger::Trigger;

pub const FLOW: Flow = Flow { function: Function::ScheduledReports, run };

fn run<'a>(_app: &'a App, trigger: Trigger, _raw: &'a Value) -> FlowFuture<'a> {
    Box::pin(async move {
        match trigger {
            Trigger::Scheduled { job, .. } => Ok(Outcome::new(
                Kind::Report,
                Severity::Info,
                Cause::Expected,
                format!("{job:?} job recognised; reports not built yet"),
            )),
            other => Ok(Outcome::ignored(format!("{:?} is not a scheduled job", other.kind()))),
        }
    })
}
