//! `STATE_TABLE`: idempotency of events, open incidents, incident history,
//! known-good revisions. Every write that decides "who acts" is conditional,
//! so concurrent invocations of the same function agree on one winner.
//!
//! Item layout (key schema fixed by DESIGN.md: `pk`, `sk`, TTL `expires_at`):
//!
//! | pk                          | sk                          | what |
//! |-----------------------------|-----------------------------|------|
//! | `event#<event id>`          | `event`                     | claim of one delivery (lease while processing, then done; 7 days) |
//! | `service#<cluster>/<svc>`   | `incident#open`             | the open incident of a service (at most one) |
//! | `service#<cluster>/<svc>`   | `incident#<opened>#<id>`    | a closed incident (90 days) |
//! | `service#<cluster>/<svc>`   | `known-good#latest`         | last task definition that reached steady state |
//! | `service#<cluster>/<svc>`   | `deployment#<id>`           | deployments seen, with their state and time |
//! | `service#<cluster>/<svc>`   | `lock`                      | lease lock of the action engine (owner, expires_at) |
//! | `service#<cluster>/<svc>`   | `hold`                      | automatic actions stopped after a failed action, until a person clears it |
//! | `service#<cluster>/<svc>`   | `ledger#<time>#<action>#<id>` | every action decision: executed, planned, skipped, failed (90 days) |

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;

use crate::aws::{sdk_error_code, sdk_error_is_retryable, sdk_error_message};
use crate::error::AutopilotError;
use crate::outcome::{Cause, Severity};

const DAY: i64 = 24 * 60 * 60;
/// How long a claim protects an event that is still being processed; a
/// crashed invocation's claim expires so that Lambda's retry can take over.
pub const CLAIM_LEASE_SECONDS: i64 = 120;

type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First delivery (or a retry after a crashed attempt): process it.
    New,
    /// Already processed, or being processed right now.
    Duplicate,
}

/// An incident as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: String,
    pub cluster: String,
    pub service: String,
    pub cause: Cause,
    pub severity: Severity,
    pub summary: String,
    pub opened_at: i64,
    pub last_event_at: i64,
    pub last_notified_at: Option<i64>,
    /// Failed tasks counted into this incident.
    pub failures: u32,
    /// Events of any kind counted into this incident.
    pub events: u32,
    pub evidence: Option<String>,
    pub message_id: Option<String>,
    /// Notes for the resolution message ("ECS circuit breaker rolled back", …).
    pub notes: Vec<String>,
    /// What opened it: `ecs` or `alarm:<name>`. An alarm's OK resolves only
    /// the incident that alarm opened; ECS's steady state resolves any.
    pub source: String,
}

impl Incident {
    /// A new incident id: time-ordered, readable, unique per service and second.
    pub fn new_id(cluster: &str, service: &str, now: i64) -> String {
        use sha2::{Digest, Sha256};
        let when = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default().format("%Y%m%d-%H%M%S");
        let digest = Sha256::digest(format!("{cluster}/{service}/{now}").as_bytes());
        format!("inc-{when}-{}", crate::trigger::hex(&digest[..3]))
    }
}

fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::Sev1 => 1,
        Severity::Sev2 => 2,
        Severity::Sev3 => 3,
        Severity::Info => 4,
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn get_s(item: &Item, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}
fn get_n(item: &Item, k: &str) -> Option<i64> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

pub fn service_key(cluster: &str, service: &str) -> String {
    format!("service#{cluster}/{service}")
}

fn cause_of(text: &str) -> Cause {
    serde_json::from_value(serde_json::Value::String(text.to_string())).unwrap_or(Cause::Unknown)
}

fn incident_from(item: &Item) -> Option<Incident> {
    let pk = get_s(item, "pk")?;
    let (cluster, service) = pk.strip_prefix("service#")?.split_once('/')?;
    Some(Incident {
        id: get_s(item, "incident_id")?,
        cluster: cluster.to_string(),
        service: service.to_string(),
        cause: cause_of(&get_s(item, "cause").unwrap_or_default()),
        severity: Severity::parse(&get_s(item, "severity").unwrap_or_default()).unwrap_or(Severity::Sev3),
        summary: get_s(item, "summary").unwrap_or_default(),
        opened_at: get_n(item, "opened_at").unwrap_or_default(),
        last_event_at: get_n(item, "last_event_at").unwrap_or_default(),
        last_notified_at: get_n(item, "last_notified_at"),
        failures: get_n(item, "failures").unwrap_or_default().max(0) as u32,
        events: get_n(item, "events").unwrap_or_default().max(0) as u32,
        evidence: get_s(item, "evidence"),
        message_id: get_s(item, "message_id"),
        notes: item
            .get("notes")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
        source: get_s(item, "source").unwrap_or_else(|| "ecs".into()),
    })
}

/// The state table.
#[derive(Debug, Clone)]
pub struct StateStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl StateStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn err<E, R>(&self, op: &str, e: aws_sdk_dynamodb::error::SdkError<E, R>) -> AutopilotError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let retryable = sdk_error_is_retryable(&e);
        AutopilotError::State {
            table: self.table.clone(),
            message: format!("{op}: {}{}", sdk_error_message(&e), if retryable { " (retryable)" } else { "" }),
        }
    }

    /// A conditional write's result: `Some(output)` when it happened, `None`
    /// when its condition said no (another invocation won), an error otherwise.
    fn conditional<T, E, R>(
        &self,
        op: &str,
        result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
    ) -> Result<Option<T>, AutopilotError>
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        match result {
            Ok(out) => Ok(Some(out)),
            Err(e) if sdk_error_code(&e) == Some("ConditionalCheckFailedException") => Ok(None),
            Err(e) => Err(self.err(op, e)),
        }
    }

    /// Claim one delivery of an event. EventBridge delivers at least once;
    /// only the first claim (or one whose lease expired) processes it.
    pub async fn claim_event(&self, event_id: &str, function: &str, now: i64) -> Result<Claim, AutopilotError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("event#{event_id}")))
            .item("sk", s("event"))
            .item("function", s(function))
            .item("status", s("processing"))
            .item("lease_until", n(now + CLAIM_LEASE_SECONDS))
            .item("received_at", n(now))
            .item("expires_at", n(now + 7 * DAY))
            .condition_expression("attribute_not_exists(pk) OR (#st = :processing AND lease_until < :now)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":processing", s("processing"))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        Ok(self.conditional("PutItem (claim event)", result)?.map_or(Claim::Duplicate, |_| Claim::New))
    }

    /// Mark a claimed event done, with what was decided.
    pub async fn complete_event(&self, event_id: &str, summary: &str) -> Result<(), AutopilotError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("event#{event_id}")))
            .key("sk", s("event"))
            .update_expression("SET #st = :done, summary = :summary REMOVE lease_until")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":summary", s(summary.chars().take(500).collect::<String>()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("UpdateItem (complete event)", e))
    }

    /// Give a claim back after a failure, so that Lambda's retry processes it.
    pub async fn release_event(&self, event_id: &str) -> Result<(), AutopilotError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("event#{event_id}")))
            .key("sk", s("event"))
            .condition_expression("#st = :processing")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":processing", s("processing"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("DeleteItem (release event)", e))
    }

    pub async fn open_incident(&self, cluster: &str, service: &str) -> Result<Option<Incident>, AutopilotError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(service_key(cluster, service)))
            .key("sk", s("incident#open"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.err("GetItem (open incident)", e))?;
        Ok(resp.item().and_then(incident_from))
    }

    /// Open an incident unless the service already has one. `Ok(false)`: another
    /// invocation opened it first.
    pub async fn create_incident(&self, incident: &Incident) -> Result<bool, AutopilotError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(service_key(&incident.cluster, &incident.service)))
            .item("sk", s("incident#open"))
            .item("incident_id", s(&incident.id))
            .item("cause", s(incident.cause.as_str()))
            .item("severity", s(incident.severity.as_str()))
            .item("sev_rank", n(severity_rank(incident.severity)))
            .item("summary", s(&incident.summary))
            .item("opened_at", n(incident.opened_at))
            .item("last_event_at", n(incident.last_event_at))
            .item("last_notified_at", n(incident.last_notified_at.unwrap_or(incident.opened_at)))
            .item("failures", n(incident.failures as i64))
            .item("events", n(incident.events as i64))
            .item("source", s(&incident.source))
            // Safety net only: open incidents are closed by their resolution
            // signal or expired by the next event after the window.
            .item("expires_at", n(incident.opened_at + 30 * DAY))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        Ok(self.conditional("PutItem (open incident)", result)?.is_some())
    }

    /// Count one more event (and failure) into the open incident `id`; returns
    /// the incident after the update, or `None` if it is no longer open.
    pub async fn record_event(
        &self,
        incident: &Incident,
        failed: bool,
        now: i64,
    ) -> Result<Option<Incident>, AutopilotError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(service_key(&incident.cluster, &incident.service)))
            .key("sk", s("incident#open"))
            .update_expression("SET last_event_at = :now ADD events :one, failures :failed")
            .condition_expression("incident_id = :id")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":failed", n(failed as i64))
            .expression_attribute_values(":id", s(&incident.id))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        Ok(self.conditional("UpdateItem (record event)", result)?.and_then(|r| r.attributes().and_then(incident_from)))
    }

    /// Decide, once across concurrent invocations, whether an update goes out:
    /// the severity rises, or the last notification is older than `interval`.
    /// The winner's claim also stores the new severity and cause.
    pub async fn claim_update(
        &self,
        incident: &Incident,
        severity: Severity,
        cause: Cause,
        now: i64,
        interval_seconds: i64,
    ) -> Result<bool, AutopilotError> {
        let severity = severity.min(incident.severity);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(service_key(&incident.cluster, &incident.service)))
            .key("sk", s("incident#open"))
            .update_expression("SET last_notified_at = :now, severity = :sev, sev_rank = :rank, cause = :cause")
            .condition_expression("incident_id = :id AND (sev_rank > :rank OR last_notified_at < :cutoff)")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":sev", s(severity.as_str()))
            .expression_attribute_values(":rank", n(severity_rank(severity)))
            .expression_attribute_values(":cause", s(cause.as_str()))
            .expression_attribute_values(":cutoff", n(now - interval_seconds))
            .expression_attribute_values(":id", s(&incident.id))
            .send()
            .await;
        Ok(self.conditional("UpdateItem (claim update)", result)?.is_some())
    }

    /// Store what the opening notification and evidence produced.
    pub async fn set_delivery(
        &self,
        incident: &Incident,
        message_id: Option<&str>,
        evidence: Option<&str>,
    ) -> Result<(), AutopilotError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(service_key(&incident.cluster, &incident.service)))
            .key("sk", s("incident#open"))
            .condition_expression("incident_id = :id")
            .expression_attribute_values(":id", s(&incident.id));
        let mut sets = Vec::new();
        if let Some(m) = message_id {
            sets.push("message_id = :m");
            req = req.expression_attribute_values(":m", s(m));
        }
        if let Some(ev) = evidence {
            sets.push("evidence = :e");
            req = req.expression_attribute_values(":e", s(ev));
        }
        if sets.is_empty() {
            return Ok(());
        }
        match req.update_expression(format!("SET {}", sets.join(", "))).send().await {
            Ok(_) => Ok(()),
            Err(e) if sdk_error_code(&e) == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(self.err("UpdateItem (delivery)", e)),
        }
    }

    /// Add a note to the open incident (shown in its resolution).
    pub async fn add_note(&self, incident: &Incident, note: &str) -> Result<(), AutopilotError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(service_key(&incident.cluster, &incident.service)))
            .key("sk", s("incident#open"))
            .update_expression("SET notes = list_append(if_not_exists(notes, :empty), :note)")
            .condition_expression("incident_id = :id")
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(":note", AttributeValue::L(vec![s(note)]))
            .expression_attribute_values(":id", s(&incident.id))
            .send()
            .await;
        self.conditional("UpdateItem (note)", result).map(|_| ())
    }

    /// Close the open incident `id` (once: the winner gets it back) and keep
    /// it in the history.
    pub async fn close_incident(
        &self,
        cluster: &str,
        service: &str,
        incident_id: &str,
        resolution: &str,
        now: i64,
    ) -> Result<Option<Incident>, AutopilotError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(service_key(cluster, service)))
            .key("sk", s("incident#open"))
            .condition_expression("incident_id = :id")
            .expression_attribute_values(":id", s(incident_id))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .send()
            .await;
        let closed = match result {
            Ok(r) => r.attributes().and_then(incident_from),
            Err(e) if sdk_error_code(&e) == Some("ConditionalCheckFailedException") => None,
            Err(e) => return Err(self.err("DeleteItem (close incident)", e)),
        };
        if let Some(inc) = &closed {
            let opened = chrono::DateTime::from_timestamp(inc.opened_at, 0).unwrap_or_default().to_rfc3339();
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(service_key(cluster, service)))
                .item("sk", s(format!("incident#{opened}#{}", inc.id)))
                .item("incident_id", s(&inc.id))
                .item("cause", s(inc.cause.as_str()))
                .item("severity", s(inc.severity.as_str()))
                .item("summary", s(&inc.summary))
                .item("opened_at", n(inc.opened_at))
                .item("closed_at", n(now))
                .item("resolution", s(resolution))
                .item("failures", n(inc.failures as i64))
                .item("expires_at", n(now + 90 * DAY));
            // History is a record, not a decision: a failed write is logged, not fatal.
            if let Err(e) = put.send().await {
                tracing::warn!(incident = %inc.id, error = %sdk_error_message(&e), "incident history not written");
            }
        }
        Ok(closed)
    }

    /// Remember a task definition that reached steady state.
    pub async fn record_known_good(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        deployment_id: &str,
        now: i64,
    ) -> Result<(), AutopilotError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(service_key(cluster, service)))
            .item("sk", s("known-good#latest"))
            .item("task_definition", s(task_definition))
            .item("deployment_id", s(deployment_id))
            .item("recorded_at", n(now))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("PutItem (known good)", e))
    }

    pub async fn known_good(&self, cluster: &str, service: &str) -> Result<Option<String>, AutopilotError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(service_key(cluster, service)))
            .key("sk", s("known-good#latest"))
            .send()
            .await
            .map_err(|e| self.err("GetItem (known good)", e))?;
        Ok(resp.item().and_then(|i| get_s(i, "task_definition")))
    }

    /// Remember a deployment's state change (when it started, how it ended).
    pub async fn record_deployment(
        &self,
        cluster: &str,
        service: &str,
        deployment_id: &str,
        state: &str,
        now: i64,
    ) -> Result<(), AutopilotError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(service_key(cluster, service)))
            .key("sk", s(format!("deployment#{deployment_id}")))
            .update_expression("SET #st = :state, updated_at = :now, first_seen_at = if_not_exists(first_seen_at, :now), expires_at = :exp")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":state", s(state))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":exp", n(now + 30 * DAY))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("UpdateItem (deployment)", e))
    }
}

impl StateStore {
    /// Take the service's lease lock. `Ok(Err(owner))`: someone else holds it.
    pub async fn acquire_lock(
        &self,
        cluster: &str,
        service: &str,
        owner: &str,
        now: i64,
        lease_seconds: i64,
    ) -> Result<Result<(), String>, AutopilotError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(service_key(cluster, service)))
            .item("sk", s("lock"))
            .item("owner", s(owner))
            .item("acquired_at", n(now))
            .item("lease_until", n(now + lease_seconds))
            .item("expires_at", n(now + lease_seconds + DAY))
            .condition_expression("attribute_not_exists(pk) OR lease_until < :now")
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Ok(())),
            Err(e) if sdk_error_code(&e) == Some("ConditionalCheckFailedException") => {
                let holder = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("pk", s(service_key(cluster, service)))
                    .key("sk", s("lock"))
                    .consistent_read(true)
                    .send()
                    .await
                    .ok()
                    .and_then(|r| r.item().and_then(|i| get_s(i, "owner")))
                    .unwrap_or_else(|| "another invocation".into());
                Ok(Err(holder))
            }
            Err(e) => Err(self.err("PutItem (lock)", e)),
        }
    }

    pub async fn release_lock(&self, cluster: &str, service: &str, owner: &str) -> Result<(), AutopilotError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(service_key(cluster, service)))
            .key("sk", s("lock"))
            .condition_expression("#o = :owner")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        self.conditional("DeleteItem (lock)", result).map(|_| ())
    }

    /// Append one decision to the service's ledger.
    pub async fn append_ledger(
        &self,
        cluster: &str,
        service: &str,
        entry: &crate::actions::LedgerEntry,
        extra: &[(&str, String)],
    ) -> Result<(), AutopilotError> {
        use sha2::{Digest, Sha256};
        let when = chrono::DateTime::from_timestamp(entry.at, 0).unwrap_or_default().to_rfc3339();
        let digest = Sha256::digest(format!("{entry:?}{extra:?}").as_bytes());
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(service_key(cluster, service)))
            .item("sk", s(format!("ledger#{when}#{}#{}", entry.action, crate::trigger::hex(&digest[..4]))))
            .item("at", n(entry.at))
            .item("action", s(&entry.action))
            .item("status", s(&entry.status))
            .item("automatic", AttributeValue::Bool(entry.automatic))
            .item("detail", s(&entry.detail))
            .item("expires_at", n(entry.at + 90 * DAY));
        if let Some(f) = &entry.from {
            req = req.item("from", s(f));
        }
        if let Some(t) = &entry.to {
            req = req.item("to", s(t));
        }
        for (k, v) in extra {
            req = req.item(*k, s(v));
        }
        req.send().await.map(|_| ()).map_err(|e| self.err("PutItem (ledger)", e))
    }

    /// Ledger entries of the service since `since` (epoch seconds), oldest first.
    pub async fn ledger_since(
        &self,
        cluster: &str,
        service: &str,
        since: i64,
    ) -> Result<Vec<crate::actions::LedgerEntry>, AutopilotError> {
        let from = chrono::DateTime::from_timestamp(since, 0).unwrap_or_default().to_rfc3339();
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(service_key(cluster, service)))
                .expression_attribute_values(":from", s(format!("ledger#{from}")))
                .expression_attribute_values(":to", s("ledger#~"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.err("Query (ledger)", e))?;
            for item in resp.items() {
                out.push(crate::actions::LedgerEntry {
                    at: get_n(item, "at").unwrap_or_default(),
                    action: get_s(item, "action").unwrap_or_default(),
                    status: get_s(item, "status").unwrap_or_default(),
                    automatic: item.get("automatic").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
                    from: get_s(item, "from"),
                    to: get_s(item, "to"),
                    detail: get_s(item, "detail").unwrap_or_default(),
                });
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// The hold left by a failed action, if any: `(since, reason)`.
    pub async fn hold(&self, cluster: &str, service: &str) -> Result<Option<(i64, String)>, AutopilotError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(service_key(cluster, service)))
            .key("sk", s("hold"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.err("GetItem (hold)", e))?;
        Ok(resp.item().map(|i| (get_n(i, "since").unwrap_or_default(), get_s(i, "reason").unwrap_or_default())))
    }

    pub async fn set_hold(&self, cluster: &str, service: &str, reason: &str, now: i64) -> Result<(), AutopilotError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(service_key(cluster, service)))
            .item("sk", s("hold"))
            .item("since", n(now))
            .item("reason", s(reason))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("PutItem (hold)", e))
    }

    pub async fn clear_hold(&self, cluster: &str, service: &str) -> Result<(), AutopilotError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(service_key(cluster, service)))
            .key("sk", s("hold"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("DeleteItem (hold)", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_ids_should_be_readable_and_distinct_per_service() {
        let a = Incident::new_id("prod", "api", 1_795_000_000);
        let b = Incident::new_id("prod", "web", 1_795_000_000);
        assert!(a.starts_with("inc-20"), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, Incident::new_id("prod", "api", 1_795_000_000));
    }

    #[test]
    fn stored_incidents_should_round_trip() {
        let mut item = Item::new();
        item.insert("pk".into(), s("service#prod/api"));
        item.insert("incident_id".into(), s("inc-1"));
        item.insert("cause".into(), s("out-of-memory"));
        item.insert("severity".into(), s("SEV2"));
        item.insert("failures".into(), n(7));
        let inc = incident_from(&item).unwrap();
        assert_eq!((inc.cluster.as_str(), inc.service.as_str()), ("prod", "api"));
        assert_eq!((inc.cause, inc.severity, inc.failures), (Cause::OutOfMemory, Severity::Sev2, 7));
    }
}
