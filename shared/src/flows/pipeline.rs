//! `pipeline-events`: CodePipeline execution, stage and action state changes.
//! Not built yet: the flow recognises its input and says what it saw.

use serde_json::Value;

use super::{Flow, FlowFuture};
use crate::context::{App, Function};
use crate::outcome::{Cause, Kind, Outcome, Severity};
use crate::trigger::{Envelope, PipelineDetail, Trigger};

pub const FLOW: Flow = Flow { function: Function::PipelineEvents, run };

fn run<'a>(_app: &'a App, trigger: Trigger, _raw: &'a Value) -> FlowFuture<'a> {
    Box::pin(async move {
        match trigger {
            Trigger::Pipeline(e) => Ok(recognised(&e)),
            other => Ok(Outcome::ignored(format!("{:?} is not a pipeline event", other.kind()))),
        }
    })
}

fn recognised(e: &Envelope<PipelineDetail>) -> Outcome {
    let cause = if e.detail.is_approval() && e.detail.state == "STARTED" {
        Cause::ApprovalWaiting
    } else {
        Cause::PipelineFailed
    };
    Outcome::new(
        Kind::Pipeline,
        Severity::Info,
        cause,
        format!(
            "pipeline {} {} {}; pipeline handling not built yet",
            e.detail.pipeline,
            e.meta.detail_type.trim_start_matches("CodePipeline ").trim_end_matches(" State Change"),
            e.detail.state
        ),
    )
}
