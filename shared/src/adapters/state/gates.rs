//! The deployment gate's records (`gate#<revision id>#<stage>#<weight>`,
//! 30 days): when the gate first saw a stage (step) of a target revision —
//! so that a Lambda retry of the first call, whose payload carries no
//! `hookDetails` of ours yet, continues the same bake — and the last
//! verdict, with `passed_at` once the revision passed the gate.

use aws_sdk_dynamodb::types::ReturnValue;

use super::{DAY, StateStore, get_n, keys, n, s};
use crate::error::AutopilotError;

/// Gate records of one service. A typed view of the one state table.
#[derive(Clone, Copy)]
pub struct GateStore<'a> {
    state: &'a StateStore,
}

impl StateStore {
    pub fn gates(&self) -> GateStore<'_> {
        GateStore { state: self }
    }
}

/// One step the gate judges: a service, a target revision, a stage and the
/// target's production weight (a linear or canary step).
#[derive(Debug, Clone, Copy)]
pub struct GateStep<'a> {
    pub cluster: &'a str,
    pub service: &'a str,
    pub revision_id: &'a str,
    pub stage: &'a str,
    pub weight: f64,
}

impl GateStep<'_> {
    fn sk(&self) -> String {
        keys::gate(self.revision_id, self.stage, self.weight)
    }
}

impl GateStore<'_> {
    /// When the gate first saw `step`: `now` for the first call, the stored
    /// time for every later one (one conditional-free `if_not_exists` write).
    pub async fn first_seen(self, step: GateStep<'_>, now: i64) -> Result<i64, AutopilotError> {
        let st = self.state;
        let out = st
            .client
            .update_item()
            .table_name(&st.table)
            .key("pk", s(keys::service(self.state.scope(), step.cluster, step.service)))
            .key("sk", s(step.sk()))
            .update_expression("SET since = if_not_exists(since, :now), expires_at = :exp")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":exp", n(now + 30 * DAY))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| st.err("UpdateItem (gate first seen)", e))?;
        Ok(out.attributes().and_then(|a| get_n(a, "since")).unwrap_or(now))
    }

    /// The verdict of a call; `passed` sets `passed_at` (kept: the first pass).
    pub async fn record_verdict(
        self,
        step: GateStep<'_>,
        revision_arn: &str,
        status: &str,
        reason: &str,
        at: i64,
    ) -> Result<(), AutopilotError> {
        let st = self.state;
        let passed = if status == "SUCCEEDED" { ", passed_at = if_not_exists(passed_at, :at)" } else { "" };
        st.client
            .update_item()
            .table_name(&st.table)
            .key("pk", s(keys::service(self.state.scope(), step.cluster, step.service)))
            .key("sk", s(step.sk()))
            .update_expression(format!(
                "SET revision = :rev, stage = :stage, verdict = :v, reason = :why, judged_at = :at, expires_at = :exp{passed}"
            ))
            .expression_attribute_values(":rev", s(revision_arn))
            .expression_attribute_values(":stage", s(step.stage))
            .expression_attribute_values(":v", s(status))
            .expression_attribute_values(":why", s(reason))
            .expression_attribute_values(":at", n(at))
            .expression_attribute_values(":exp", n(at + 30 * DAY))
            .send()
            .await
            .map_err(|e| st.err("UpdateItem (gate verdict)", e))?;
        Ok(())
    }
}
