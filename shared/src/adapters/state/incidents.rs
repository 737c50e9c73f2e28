//! Incidents: at most one open incident per service (`incident#open`),
//! closed ones kept as history (90 days).
//!
//! Opening and closing are the writes that decide who alerts and who sends
//! the resolution; both carry the invocation's token (`created_by`,
//! `closing_by`) so that an SDK retry after a lost response knows the write
//! was its own. Closing first marks the open item `closing_by` (the deciding
//! write), then keeps the history, then deletes the open item; an item left
//! marked by a closer that died is read as closed and replaced by the next
//! incident.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::{Conditional, DAY, Item, StateStore, get_n, get_s, keys, n, rfc3339, s, written_by};
use crate::adapters::aws_error;
use crate::error::AutopilotError;
use crate::outcome::{Cause, Severity};

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
        format!("inc-{when}-{}", crate::arn::hex(&digest[..3]))
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

fn cause_of(text: &str) -> Cause {
    Cause::parse(text).unwrap_or(Cause::Unknown)
}

fn incident_from(item: &Item) -> Option<Incident> {
    let pk = get_s(item, "pk")?;
    let (cluster, service) = keys::parse_service(&pk)?;
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

impl StateStore {
    pub async fn open_incident(&self, cluster: &str, service: &str) -> Result<Option<Incident>, AutopilotError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::service(cluster, service)))
            .key("sk", s(keys::OPEN_INCIDENT))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.err("GetItem (open incident)", e))?;
        Ok(resp.item().filter(|i| !i.contains_key("closing_by")).and_then(incident_from))
    }

    /// Open an incident unless the service already has one. `Ok(false)`: another
    /// invocation opened it first.
    pub async fn create_incident(&self, incident: &Incident) -> Result<bool, AutopilotError> {
        let token = crate::invocation::token();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::service(&incident.cluster, &incident.service)))
            .item("sk", s(keys::OPEN_INCIDENT))
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
            .item("created_by", s(&token))
            // Safety net only: open incidents are closed by their resolution
            // signal or expired by the next event after the window.
            .item("expires_at", n(incident.opened_at + 30 * DAY))
            // An item a closer marked and never deleted is closed: replace it.
            .condition_expression("attribute_not_exists(pk) OR attribute_exists(closing_by)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match self.conditional("PutItem (open incident)", result)? {
            Conditional::Written(_) => true,
            Conditional::Refused(old) => written_by(old.as_ref(), "created_by", &token),
        })
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
            .key("pk", s(keys::service(&incident.cluster, &incident.service)))
            .key("sk", s(keys::OPEN_INCIDENT))
            .update_expression("SET last_event_at = :now ADD events :one, failures :failed")
            .condition_expression("incident_id = :id")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":failed", n(failed as i64))
            .expression_attribute_values(":id", s(&incident.id))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        Ok(self
            .conditional("UpdateItem (record event)", result)?
            .written()
            .and_then(|r| r.attributes().and_then(incident_from)))
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
            .key("pk", s(keys::service(&incident.cluster, &incident.service)))
            .key("sk", s(keys::OPEN_INCIDENT))
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
        Ok(self.conditional("UpdateItem (claim update)", result)?.written().is_some())
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
            .key("pk", s(keys::service(&incident.cluster, &incident.service)))
            .key("sk", s(keys::OPEN_INCIDENT))
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
            Err(e) => self.conditional::<(), _, _>("UpdateItem (delivery)", Err(e)).map(|_| ()),
        }
    }

    /// Add a note to the open incident (shown in its resolution).
    pub async fn add_note(&self, incident: &Incident, note: &str) -> Result<(), AutopilotError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::service(&incident.cluster, &incident.service)))
            .key("sk", s(keys::OPEN_INCIDENT))
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
        let token = crate::invocation::token();
        // The deciding write: mark the open incident as ours to close.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::service(cluster, service)))
            .key("sk", s(keys::OPEN_INCIDENT))
            .update_expression("SET closing_by = :token, closing_at = :now")
            .condition_expression("incident_id = :id AND (attribute_not_exists(closing_by) OR closing_by = :token)")
            .expression_attribute_values(":id", s(incident_id))
            .expression_attribute_values(":token", s(&token))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let marked = match self.conditional("UpdateItem (close incident)", result)? {
            Conditional::Written(out) => out.attributes().cloned(),
            Conditional::Refused(old) if written_by(old.as_ref(), "closing_by", &token) => old,
            // Closed (or being closed) by another invocation, or another incident now.
            Conditional::Refused(_) => return Ok(None),
        };
        let closed = marked.as_ref().and_then(incident_from);
        if let Some(inc) = &closed {
            let opened = rfc3339(inc.opened_at);
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(keys::service(cluster, service)))
                .item("sk", s(keys::closed_incident(&opened, &inc.id)))
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
                tracing::warn!(incident = %inc.id, error = %aws_error("dynamodb", "PutItem (incident history)", &self.table, &e), "incident history not written");
            }
        }
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::service(cluster, service)))
            .key("sk", s(keys::OPEN_INCIDENT))
            .condition_expression("closing_by = :token")
            .expression_attribute_values(":token", s(&token))
            .send()
            .await;
        // Refused: already deleted (a retry after a lost response) or replaced by a new incident.
        if let Err(e) = self.conditional("DeleteItem (close incident)", delete) {
            // Left marked, the item reads as closed and the next incident replaces it.
            tracing::warn!(incident = incident_id, error = %e, "closed incident's open item not deleted");
        }
        Ok(closed)
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
        item.insert("pk".into(), s(keys::service("prod", "api")));
        item.insert("incident_id".into(), s("inc-1"));
        item.insert("cause".into(), s("out-of-memory"));
        item.insert("severity".into(), s("SEV2"));
        item.insert("failures".into(), n(7));
        let inc = incident_from(&item).unwrap();
        assert_eq!((inc.cluster.as_str(), inc.service.as_str()), ("prod", "api"));
        assert_eq!((inc.cause, inc.severity, inc.failures), (Cause::OutOfMemory, Severity::Sev2, 7));
    }
}
