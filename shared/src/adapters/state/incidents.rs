//! Incidents: at most one open incident per subject (`incident#open` under
//! the subject's partition), closed ones kept as history (90 days), open ones
//! listed through the sparse index [`OPEN_INDEX`].
//!
//! The record and the decisions about it are in [`crate::lifecycle`]; this
//! module applies them with conditional writes:
//!
//! - Opening is a put that only succeeds when no live incident exists; it
//!   carries the invocation's token (`created_by`) so that an SDK retry after
//!   a lost response knows the write was its own. The opening alert starts
//!   *pending* (`alert_by`, `alert_until`); only [`StateStore::mark_delivered`],
//!   written after a successful publish, sets `alert_at`.
//! - Closing first marks the open item `closing_by` (the deciding write, which
//!   also takes it out of the open index), then keeps the history, then
//!   deletes the open item; an item left marked by a closer that died is read
//!   as closed and replaced by the next incident.
//! - Severity is only ever raised by a write (`sev_rank > :rank`).

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::{Conditional, DAY, Item, StateStore, get_n, get_s, keys, n, rfc3339, s, written_by};
use crate::adapters::aws_error;
use crate::error::AutopilotError;
pub use crate::lifecycle::Incident;
use crate::lifecycle::{Alert, FailedTask, Subject};
use crate::outcome::{Cause, Severity};

/// The sparse global secondary index of open incidents: hash `open_index`
/// (always [`OPEN_INDEX_VALUE`]), range `open_since` (the opening time).
/// Only open incidents carry `open_index`, so the index holds exactly them.
pub const OPEN_INDEX: &str = "open-incidents";
pub const OPEN_INDEX_VALUE: &str = "open";

fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::Sev1 => 1,
        Severity::Sev2 => 2,
        Severity::Sev3 => 3,
        Severity::Info => 4,
    }
}

fn string_set(item: &Item, k: &str) -> Vec<String> {
    item.get(k).and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default()
}

/// A list attribute of strings (other elements skipped).
fn string_list(item: &Item, k: &str) -> Vec<String> {
    item.get(k)
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        .unwrap_or_default()
}

fn incident_from(item: &Item) -> Option<Incident> {
    let subject = Subject::parse(&get_s(item, "pk")?)?;
    let alert = match (get_n(item, "alert_at"), get_s(item, "alert_by")) {
        (Some(at), _) => Alert::Delivered { at },
        (None, Some(by)) => Alert::Pending { by, until: get_n(item, "alert_until").unwrap_or_default() },
        // Written before alerts had a state: its opening went out with it.
        (None, None) => Alert::Delivered { at: get_n(item, "last_notified_at").unwrap_or_default() },
    };
    let mut failed_tasks: Vec<FailedTask> =
        string_set(item, "failed_tasks").iter().filter_map(|t| FailedTask::decode(t)).collect();
    failed_tasks.sort();
    Some(Incident {
        id: get_s(item, "incident_id")?,
        subject,
        cause: Cause::parse(&get_s(item, "cause").unwrap_or_default()).unwrap_or(Cause::Unknown),
        severity: Severity::parse(&get_s(item, "severity").unwrap_or_default()).unwrap_or(Severity::Sev3),
        summary: get_s(item, "summary").unwrap_or_default(),
        opened_at: get_n(item, "opened_at").unwrap_or_default(),
        last_event_at: get_n(item, "last_event_at").unwrap_or_default(),
        alert,
        last_notified_at: get_n(item, "last_notified_at"),
        failed_tasks,
        events: get_n(item, "events").unwrap_or_default().max(0) as u32,
        evidence: get_s(item, "evidence"),
        message_id: get_s(item, "message_id"),
        notes: string_list(item, "notes"),
        source: get_s(item, "source").unwrap_or_else(|| "ecs".into()),
        announced: string_set(item, "announced"),
        escalations: get_n(item, "escalations").unwrap_or_default().max(0) as u32,
        impact: string_list(item, "impact"),
        team: get_s(item, "team"),
    })
}

/// What the opening alert delivered, stored once it was published.
#[derive(Debug, Clone, Default)]
pub struct Delivery<'a> {
    pub message_id: Option<&'a str>,
    pub evidence: Option<&'a str>,
    pub severity: Option<Severity>,
    pub cause: Option<Cause>,
    pub summary: Option<&'a str>,
    /// Appended to the incident's notes (already redacted).
    pub notes: &'a [String],
    /// Ledger keys the message announced.
    pub announced: &'a [String],
    /// Failed tasks the diagnosis found (counted once each).
    pub failed_tasks: &'a [FailedTask],
    /// The impact the alert stated, for the incident report.
    pub impact: &'a [String],
    /// The owning team the alert was routed to.
    pub team: Option<&'a str>,
}

/// One attempt to claim an update (see [`StateStore::claim_update`]).
#[derive(Debug, Clone, Copy)]
pub struct UpdateClaim<'a> {
    pub reason: crate::lifecycle::UpdateReason,
    /// The severity this invocation observed (written only when it rises).
    pub severity: Severity,
    pub cause: Option<Cause>,
    /// The first ledger key to announce, for an action update.
    pub first_unannounced: Option<&'a str>,
    pub now: i64,
    pub interval_seconds: i64,
}

impl StateStore {
    /// An update of the subject's open-incident item (callers add the expression).
    fn update_open(
        &self,
        subject: &Subject,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.table).key("pk", s(subject.key())).key("sk", s(keys::OPEN_INCIDENT))
    }

    pub async fn open_incident(&self, subject: &Subject) -> Result<Option<Incident>, AutopilotError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(subject.key()))
            .key("sk", s(keys::OPEN_INCIDENT))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.err("GetItem (open incident)", e))?;
        // Marked closing by another invocation: closed. By us: our own retry
        // finishing what it began.
        let token = crate::invocation::token();
        Ok(resp.item().filter(|i| get_s(i, "closing_by").is_none_or(|by| by == token)).and_then(incident_from))
    }

    /// The subject's incidents opened since `since` (closed ones from the
    /// history, and the open one), oldest first, for the daily report.
    pub async fn incidents_since(
        &self,
        subject: &Subject,
        since: i64,
    ) -> Result<Vec<crate::daily_report::IncidentLine>, AutopilotError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(subject.key()))
                .expression_attribute_values(":from", s(format!("incident#{}", rfc3339(since))))
                .expression_attribute_values(":to", s("incident#~"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.err("Query (incidents)", e))?;
            for item in resp.items() {
                let Some(id) = get_s(item, "incident_id") else { continue };
                let opened_at = get_n(item, "opened_at").unwrap_or_default();
                if opened_at < since {
                    continue;
                }
                let closed_at = get_n(item, "closed_at").or_else(|| get_n(item, "closing_at"));
                out.push(crate::daily_report::IncidentLine {
                    id,
                    severity: get_s(item, "severity").unwrap_or_default(),
                    cause: get_s(item, "cause").unwrap_or_default(),
                    summary: get_s(item, "summary").unwrap_or_default(),
                    opened_at,
                    closed_at,
                    ttr_seconds: closed_at.map(|c| c - opened_at),
                    resolution: get_s(item, "resolution"),
                });
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        // A closing item and its history entry are one incident.
        out.sort_by_key(|i| (i.opened_at, i.closed_at.is_none()));
        out.dedup_by(|a, b| a.id == b.id);
        Ok(out)
    }

    /// Every open incident, oldest first (the open index; eventually consistent).
    pub async fn open_incidents(&self) -> Result<Vec<Incident>, AutopilotError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OPEN_INDEX)
                .key_condition_expression("open_index = :open")
                .expression_attribute_values(":open", s(OPEN_INDEX_VALUE))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.err("Query (open incidents)", e))?;
            out.extend(resp.items().iter().filter(|i| !i.contains_key("closing_by")).filter_map(incident_from));
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Open an incident unless the subject already has one. `Ok(false)`:
    /// another invocation opened it first.
    pub async fn create_incident(&self, incident: &Incident) -> Result<bool, AutopilotError> {
        let token = crate::invocation::token();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(incident.subject.key()))
            .item("sk", s(keys::OPEN_INCIDENT))
            .item("incident_id", s(&incident.id))
            .item("cause", s(incident.cause.as_str()))
            .item("severity", s(incident.severity.as_str()))
            .item("sev_rank", n(severity_rank(incident.severity)))
            .item("summary", s(&incident.summary))
            .item("opened_at", n(incident.opened_at))
            .item("last_event_at", n(incident.last_event_at))
            .item("events", n(incident.events as i64))
            .item("source", s(&incident.source))
            .item("created_by", s(&token))
            .item("open_index", s(OPEN_INDEX_VALUE))
            .item("open_since", n(incident.opened_at))
            // Safety net only: open incidents are closed by their resolution
            // signal or expired by the next event after the window.
            .item("expires_at", n(incident.opened_at + 30 * DAY));
        match &incident.alert {
            Alert::Pending { by, until } => put = put.item("alert_by", s(by)).item("alert_until", n(*until)),
            Alert::Delivered { at } => put = put.item("alert_at", n(*at)).item("last_notified_at", n(*at)),
        }
        if !incident.failed_tasks.is_empty() {
            put = put.item(
                "failed_tasks",
                AttributeValue::Ss(incident.failed_tasks.iter().map(FailedTask::encode).collect()),
            );
        }
        let result = put
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

    /// Take over sending the pending opening alert of incident `id`: ours
    /// when we are its sender already or the sender's lease is over. Returns
    /// the incident as stored after the claim, or `None` when someone else
    /// holds it or it was delivered meanwhile.
    pub async fn claim_opening_alert(
        &self,
        incident: &Incident,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<Incident>, AutopilotError> {
        let token = crate::invocation::token();
        let result = self
            .update_open(&incident.subject)
            .update_expression("SET alert_by = :token, alert_until = :until")
            .condition_expression(
                "incident_id = :id AND attribute_not_exists(closing_by) AND attribute_not_exists(alert_at) \
                 AND (alert_by = :token OR alert_until < :now)",
            )
            .expression_attribute_values(":id", s(&incident.id))
            .expression_attribute_values(":token", s(&token))
            .expression_attribute_values(":until", n(lease_until))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        Ok(self
            .conditional("UpdateItem (claim opening alert)", result)?
            .written()
            .and_then(|r| r.attributes().and_then(incident_from)))
    }

    /// Count one more event (and, once per task, its failed task) into the
    /// open incident `id`; returns the incident after the update, or `None`
    /// if it is no longer open.
    pub async fn record_event(
        &self,
        incident: &Incident,
        failed: Option<&FailedTask>,
        now: i64,
    ) -> Result<Option<Incident>, AutopilotError> {
        let mut req = self
            .update_open(&incident.subject)
            .condition_expression("incident_id = :id AND attribute_not_exists(closing_by)")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":id", s(&incident.id));
        req = match failed {
            // A string set: the same task reported twice (or a retried write) counts once.
            Some(task) => req
                .update_expression("SET last_event_at = :now ADD events :one, failed_tasks :task")
                .expression_attribute_values(":task", AttributeValue::Ss(vec![task.encode()])),
            None => req.update_expression("SET last_event_at = :now ADD events :one"),
        };
        let result = req.return_values(ReturnValue::AllNew).send().await;
        Ok(self
            .conditional("UpdateItem (record event)", result)?
            .written()
            .and_then(|r| r.attributes().and_then(incident_from)))
    }

    /// Raise the incident's severity (never lowers it); `Ok(true)` when raised.
    pub async fn raise_severity(&self, incident: &Incident, severity: Severity) -> Result<bool, AutopilotError> {
        let result = self
            .update_open(&incident.subject)
            .update_expression("SET severity = :sev, sev_rank = :rank")
            .condition_expression("incident_id = :id AND sev_rank > :rank")
            .expression_attribute_values(":sev", s(severity.as_str()))
            .expression_attribute_values(":rank", n(severity_rank(severity)))
            .expression_attribute_values(":id", s(&incident.id))
            .send()
            .await;
        Ok(self.conditional("UpdateItem (raise severity)", result)?.written().is_some())
    }

    /// Decide, once across concurrent invocations, that an update goes out
    /// now, for `reason`; returns the incident as stored after the claim (its
    /// severity is the one to announce), or `None` when it is not due any
    /// more (another invocation sent it, or the incident closed).
    ///
    /// - The severity rises: only while the stored one is milder (so a stale
    ///   milder reading can never lower it).
    /// - An action to announce: while its ledger key is not yet announced.
    /// - The interval: while the last message is older than the interval.
    pub async fn claim_update(
        &self,
        incident: &Incident,
        claim: &UpdateClaim<'_>,
    ) -> Result<Option<Incident>, AutopilotError> {
        use crate::lifecycle::UpdateReason;
        let UpdateClaim { reason, severity, cause, first_unannounced, now, interval_seconds } = *claim;
        let mut sets = vec!["last_notified_at = :now"];
        let mut req = self
            .update_open(&incident.subject)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":id", s(&incident.id));
        let base = "incident_id = :id AND attribute_not_exists(closing_by) AND attribute_exists(alert_at)";
        let condition = match reason {
            UpdateReason::SeverityRose(_) => {
                sets.push("severity = :sev");
                sets.push("sev_rank = :rank");
                req = req
                    .expression_attribute_values(":sev", s(severity.as_str()))
                    .expression_attribute_values(":rank", n(severity_rank(severity)));
                format!("{base} AND sev_rank > :rank")
            }
            UpdateReason::Action => match first_unannounced {
                Some(key) => {
                    req = req.expression_attribute_values(":key", s(key));
                    format!("{base} AND (attribute_not_exists(announced) OR NOT contains(announced, :key))")
                }
                None => base.to_string(),
            },
            UpdateReason::News => base.to_string(),
            UpdateReason::Interval => {
                req = req.expression_attribute_values(":cutoff", n(now - interval_seconds));
                format!("{base} AND (attribute_not_exists(last_notified_at) OR last_notified_at <= :cutoff)")
            }
        };
        // The cause is refined, never replaced: only an unknown one is set.
        if let Some(c) = cause.filter(|c| *c != Cause::Unknown)
            && incident.cause == Cause::Unknown
        {
            sets.push("cause = :cause");
            req = req.expression_attribute_values(":cause", s(c.as_str()));
        }
        let result = req
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(condition)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        Ok(self
            .conditional("UpdateItem (claim update)", result)?
            .written()
            .and_then(|r| r.attributes().and_then(incident_from)))
    }

    /// The opening alert was published: record it, with what it carried.
    /// Severity only rises here too; when a concurrent signal raised it
    /// higher meanwhile, the stored one stays.
    pub async fn mark_delivered(&self, incident: &Incident, d: &Delivery<'_>, now: i64) -> Result<(), AutopilotError> {
        if let Some((cluster, service)) = incident.subject.as_service() {
            self.mark_ledger_announced(cluster, service, d.announced, now).await;
        }
        match self.write_delivery(incident, d, now, d.severity).await? {
            true => Ok(()),
            // Refused only by the severity guard (or a closed incident): without it.
            false => self.write_delivery(incident, d, now, None).await.map(|_| ()),
        }
    }

    async fn write_delivery(
        &self,
        incident: &Incident,
        d: &Delivery<'_>,
        now: i64,
        severity: Option<Severity>,
    ) -> Result<bool, AutopilotError> {
        let mut sets = vec!["alert_at = :now", "last_notified_at = :now"];
        let mut adds = Vec::new();
        let mut condition = "incident_id = :id".to_string();
        let mut req = self
            .update_open(&incident.subject)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":id", s(&incident.id));
        if let Some(m) = d.message_id {
            sets.push("message_id = :m");
            req = req.expression_attribute_values(":m", s(m));
        }
        if let Some(ev) = d.evidence {
            sets.push("evidence = :e");
            req = req.expression_attribute_values(":e", s(ev));
        }
        if let Some(sev) = severity {
            sets.push("severity = :sev");
            sets.push("sev_rank = :rank");
            condition.push_str(" AND sev_rank >= :rank");
            req = req
                .expression_attribute_values(":sev", s(sev.as_str()))
                .expression_attribute_values(":rank", n(severity_rank(sev)));
        }
        if let Some(c) = d.cause {
            sets.push("cause = :cause");
            req = req.expression_attribute_values(":cause", s(c.as_str()));
        }
        if let Some(summary) = d.summary {
            sets.push("summary = :summary");
            req = req.expression_attribute_values(":summary", s(summary));
        }
        if let Some(team) = d.team {
            sets.push("team = :team");
            req = req.expression_attribute_values(":team", s(team));
        }
        if !d.notes.is_empty() {
            sets.push("notes = list_append(if_not_exists(notes, :empty), :notes)");
            req = req
                .expression_attribute_values(":empty", AttributeValue::L(vec![]))
                .expression_attribute_values(":notes", AttributeValue::L(d.notes.iter().map(s).collect()));
        }
        if !d.impact.is_empty() {
            sets.push("impact = :impact");
            req = req.expression_attribute_values(":impact", AttributeValue::L(d.impact.iter().map(s).collect()));
        }
        if !d.failed_tasks.is_empty() {
            adds.push("failed_tasks :failed");
            req = req.expression_attribute_values(
                ":failed",
                AttributeValue::Ss(d.failed_tasks.iter().map(FailedTask::encode).collect()),
            );
        }
        if !d.announced.is_empty() {
            adds.push("announced :announced");
            req = req.expression_attribute_values(":announced", AttributeValue::Ss(d.announced.to_vec()));
        }
        let mut expression = format!("SET {} REMOVE alert_by, alert_until", sets.join(", "));
        if !adds.is_empty() {
            expression.push_str(&format!(" ADD {}", adds.join(", ")));
        }
        let result = req.update_expression(expression).condition_expression(condition).send().await;
        Ok(self.conditional("UpdateItem (alert delivered)", result)?.written().is_some())
    }

    /// After an update was published: remember the actions it announced and
    /// its notes (already redacted).
    pub async fn mark_announced(
        &self,
        incident: &Incident,
        announced: &[String],
        notes: &[String],
    ) -> Result<(), AutopilotError> {
        if announced.is_empty() && notes.is_empty() {
            return Ok(());
        }
        if let Some((cluster, service)) = incident.subject.as_service() {
            self.mark_ledger_announced(cluster, service, announced, crate::time::now()).await;
        }
        let mut req = self
            .update_open(&incident.subject)
            .condition_expression("incident_id = :id")
            .expression_attribute_values(":id", s(&incident.id));
        let mut expression = String::new();
        if !notes.is_empty() {
            expression.push_str("SET notes = list_append(if_not_exists(notes, :empty), :notes) ");
            req = req
                .expression_attribute_values(":empty", AttributeValue::L(vec![]))
                .expression_attribute_values(":notes", AttributeValue::L(notes.iter().map(s).collect()));
        }
        if !announced.is_empty() {
            expression.push_str("ADD announced :announced");
            req = req.expression_attribute_values(":announced", AttributeValue::Ss(announced.to_vec()));
        }
        let result = req.update_expression(expression.trim_end()).send().await;
        self.conditional("UpdateItem (announced)", result).map(|_| ())
    }

    /// Count one escalation sent (by the escalation job); `Ok(false)` when
    /// another run counted it first (`expected` is the count it read).
    pub async fn count_escalation(&self, incident: &Incident, expected: u32, now: i64) -> Result<bool, AutopilotError> {
        let result = self
            .update_open(&incident.subject)
            .update_expression("SET escalations = :next, escalated_at = :now")
            .condition_expression(
                "incident_id = :id AND attribute_not_exists(closing_by) \
                 AND (attribute_not_exists(escalations) OR escalations = :expected)",
            )
            .expression_attribute_values(":id", s(&incident.id))
            .expression_attribute_values(":next", n(expected as i64 + 1))
            .expression_attribute_values(":expected", n(expected as i64))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        Ok(self.conditional("UpdateItem (escalation)", result)?.written().is_some())
    }

    /// Begin closing the open incident `id`: the deciding write, once across
    /// invocations (a retry of our own gets it again). Marks it `closing_by`
    /// us and takes it out of the open index; returns it as it stood, or
    /// `None` when another invocation closes it or another incident is open.
    pub async fn begin_close(
        &self,
        subject: &Subject,
        incident_id: &str,
        now: i64,
    ) -> Result<Option<Incident>, AutopilotError> {
        let token = crate::invocation::token();
        let result = self
            .update_open(subject)
            .update_expression("SET closing_by = :token, closing_at = :now REMOVE open_index")
            // Never while another live invocation is sending the opening
            // alert: a resolution must not precede the alert it resolves.
            .condition_expression(
                "incident_id = :id AND (attribute_not_exists(closing_by) OR closing_by = :token) \
                 AND (attribute_exists(alert_at) OR attribute_not_exists(alert_by) OR alert_by = :token \
                 OR alert_until < :now)",
            )
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
            Conditional::Refused(Some(old))
                if get_s(&old, "incident_id").as_deref() == Some(incident_id)
                    && get_s(&old, "closing_by").is_none()
                    && let Some(Alert::Pending { until, .. }) = incident_from(&old).map(|i| i.alert) =>
            {
                return Err(AutopilotError::InProgress {
                    what: format!("the opening alert of incident {incident_id}"),
                    until: rfc3339(until),
                });
            }
            // Closed (or being closed) by another invocation, or another incident now.
            Conditional::Refused(_) => return Ok(None),
        };
        Ok(marked.as_ref().and_then(incident_from))
    }

    /// Give a begun closing back (its resolution could not be sent): the
    /// incident is open again, and the retry resolves it.
    pub async fn abandon_close(&self, subject: &Subject, incident_id: &str) -> Result<(), AutopilotError> {
        let result = self
            .update_open(subject)
            .update_expression("SET open_index = :open REMOVE closing_by, closing_at")
            .condition_expression("incident_id = :id AND closing_by = :token")
            .expression_attribute_values(":id", s(incident_id))
            .expression_attribute_values(":token", s(crate::invocation::token()))
            .expression_attribute_values(":open", s(OPEN_INDEX_VALUE))
            .send()
            .await;
        self.conditional("UpdateItem (abandon close)", result).map(|_| ())
    }

    /// Finish a begun closing once its resolution went out: keep the history
    /// and delete the open item. Records, not decisions: failures are logged.
    pub async fn finish_close(&self, closing: &Incident, resolution: &str, now: i64) {
        let subject = &closing.subject;
        let opened = rfc3339(closing.opened_at);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(subject.key()))
            .item("sk", s(keys::closed_incident(&opened, &closing.id)))
            .item("incident_id", s(&closing.id))
            .item("cause", s(closing.cause.as_str()))
            .item("severity", s(closing.severity.as_str()))
            .item("summary", s(&closing.summary))
            .item("source", s(&closing.source))
            .item("opened_at", n(closing.opened_at))
            .item("closed_at", n(now))
            .item("resolution", s(resolution))
            .item("failures", n(closing.failures() as i64))
            .item("events", n(closing.events as i64))
            .item("expires_at", n(now + 90 * DAY));
        if let Some(ev) = &closing.evidence {
            put = put.item("evidence", s(ev));
        }
        if !closing.notes.is_empty() {
            put = put.item("notes", AttributeValue::L(closing.notes.iter().map(s).collect()));
        }
        if let Err(e) = put.send().await {
            tracing::warn!(incident = %closing.id, error = %aws_error("dynamodb", "PutItem (incident history)", &self.table, &e), "incident history not written");
        }
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(subject.key()))
            .key("sk", s(keys::OPEN_INCIDENT))
            .condition_expression("closing_by = :token")
            .expression_attribute_values(":token", s(crate::invocation::token()))
            .send()
            .await;
        // Refused: already deleted (a retry after a lost response) or replaced by a new incident.
        if let Err(e) = self.conditional("DeleteItem (close incident)", delete) {
            // Left marked, the item reads as closed and the next incident replaces it.
            tracing::warn!(incident = %closing.id, error = %e, "closed incident's open item not deleted");
        }
    }

    /// Give escalation `nth` back (its message could not be sent), so that
    /// the next run sends it.
    pub async fn uncount_escalation(&self, incident: &Incident, nth: u32) -> Result<(), AutopilotError> {
        let result = self
            .update_open(&incident.subject)
            .update_expression("SET escalations = :previous")
            .condition_expression("incident_id = :id AND escalations = :nth")
            .expression_attribute_values(":id", s(&incident.id))
            .expression_attribute_values(":nth", n(nth as i64))
            .expression_attribute_values(":previous", n(nth as i64 - 1))
            .send()
            .await;
        self.conditional("UpdateItem (escalation given back)", result).map(|_| ())
    }

    /// Close the open incident `id` without a message (once: the winner gets
    /// it back) and keep it in the history.
    pub async fn close_incident(
        &self,
        subject: &Subject,
        incident_id: &str,
        resolution: &str,
        now: i64,
    ) -> Result<Option<Incident>, AutopilotError> {
        let closing = self.begin_close(subject, incident_id, now).await?;
        if let Some(inc) = &closing {
            self.finish_close(inc, resolution, now).await;
        }
        Ok(closing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_incidents_should_round_trip() {
        let mut item = Item::new();
        item.insert("pk".into(), s(Subject::service("prod", "api").key()));
        item.insert("incident_id".into(), s("inc-1"));
        item.insert("cause".into(), s("out-of-memory"));
        item.insert("severity".into(), s("SEV2"));
        item.insert("alert_by".into(), s("req-1"));
        item.insert("alert_until".into(), n(99));
        item.insert(
            "failed_tasks".into(),
            AttributeValue::Ss(vec!["api:2|10|b".into(), "api:2|9|a".into(), "garbage".into()]),
        );
        let inc = incident_from(&item).unwrap();
        assert_eq!(inc.subject.as_service(), Some(("prod", "api")));
        assert_eq!((inc.cause, inc.severity, inc.failures()), (Cause::OutOfMemory, Severity::Sev2, 2));
        assert_eq!(inc.alert, Alert::Pending { by: "req-1".into(), until: 99 });
        item.insert("alert_at".into(), n(100));
        assert_eq!(incident_from(&item).unwrap().alert, Alert::Delivered { at: 100 });
        item.insert("pk".into(), s(Subject::pipeline("api-prod", "8f1d2c3b").key()));
        assert_eq!(incident_from(&item).unwrap().subject, Subject::pipeline("api-prod", "8f1d2c3b"));
    }
}
