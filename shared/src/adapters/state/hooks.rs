//! Paused deployment hooks in the state table (`hook#<hook id>` / `hook`,
//! 15 days: a pause hook times out after 14 days at most): what the
//! approval notice announced — the service, the paused service deployment
//! and the thread — so that `continue-deployment` and `rollback-deployment`
//! (a chat button carries only the hook id) find the deployment to answer.

use serde::{Deserialize, Serialize};

use super::{DAY, StateStore, get_s, n, s};
use crate::error::AutopilotError;

/// One paused hook, as its approval notice announced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRecord {
    pub hook_id: String,
    pub cluster: String,
    pub service: String,
    pub service_deployment_arn: String,
    /// The thread of the approval notice (answers are announced there).
    pub thread: String,
    pub target: Option<String>,
    pub announced_at: i64,
}

fn pk(hook_id: &str) -> String {
    format!("hook#{hook_id}")
}
const SK: &str = "hook";

/// Paused hooks. A typed view of the one state table.
#[derive(Clone, Copy)]
pub struct HookStore<'a> {
    state: &'a StateStore,
}

impl StateStore {
    pub fn hooks(&self) -> HookStore<'_> {
        HookStore { state: self }
    }
}

impl HookStore<'_> {
    /// Record (or record again: the same hook is the same facts) a paused hook.
    pub async fn put(self, hook: &HookRecord) -> Result<(), AutopilotError> {
        let record = serde_json::to_string(hook).unwrap_or_default();
        let st = self.state;
        st.client
            .put_item()
            .table_name(&st.table)
            .item("pk", s(pk(&hook.hook_id)))
            .item("sk", s(SK))
            .item("record", s(record))
            .item("cluster", s(&hook.cluster))
            .item("service", s(&hook.service))
            .item("expires_at", n(hook.announced_at + 15 * DAY))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| st.err("PutItem (hook)", e))
    }

    /// The hook's record, when its notice announced it.
    pub async fn get(self, hook_id: &str) -> Result<Option<HookRecord>, AutopilotError> {
        let st = self.state;
        let item = st
            .client
            .get_item()
            .table_name(&st.table)
            .key("pk", s(pk(hook_id)))
            .key("sk", s(SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| st.err("GetItem (hook)", e))?;
        Ok(item.item().and_then(|i| get_s(i, "record")).and_then(|r| serde_json::from_str(&r).ok()))
    }
}
