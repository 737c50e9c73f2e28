//! Why a task stopped (placeholder signature; implemented with its table tests).

use crate::outcome::Cause;
use crate::trigger::TaskStateChange;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopClassification {
    pub cause: Cause,
    pub failure: bool,
    pub container: Option<String>,
    pub explanation: String,
}

pub fn classify_stop(_task: &TaskStateChange) -> StopClassification {
    todo!()
}
