//! The incident store: one item per subject (`<subject key>` /
//! `incident#open`) holding its current incident — open, or closed and kept
//! as the subject's tombstone — as one versioned record, plus the history of
//! closed incidents (`incident#<opened>#<id>`, 90 days).
//!
//! The record and every rule about it are in [`crate::incident::machine`];
//! this store only reads it and writes it whole, conditional on the version
//! it read (`version = :v`). No business rule lives in a condition
//! expression. Each write also carries a writer id unique to the attempt: a
//! refusal by an item with the next version and our writer id is our own
//! write, retried by the SDK after its response was lost.
//!
//! Only open incidents carry `open_index`/`open_since`, so the sparse index
//! [`OPEN_INDEX`] lists exactly them. It projects the keys only: listing is
//! followed by a consistent read of each record. An open record has no TTL;
//! a closed one (the tombstone) expires after [`TOMBSTONE_DAYS`].

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};

use super::claims::{ClaimInHand, Hand};
use super::{Claim, Conditional, DAY, Item, StateStore, get_n, get_s, keys, n, rfc3339, s};
use crate::adapters::aws_error;
use crate::error::{AutopilotError, AwsError};
use crate::incident::machine::{MessageKind, Problem, ProblemKey, Record, State};
use crate::incident::subject::Subject;
use crate::outcome::{Cause, Kind, Severity};

/// The sparse global secondary index of open incidents: hash `open_index`
/// (always [`OPEN_INDEX_VALUE`]), range `open_since` (the opening time),
/// keys only.
pub const OPEN_INDEX: &str = "open-incident-keys";
pub const OPEN_INDEX_VALUE: &str = "open";
/// How long a closed incident's record stays as the subject's tombstone.
pub const TOMBSTONE_DAYS: i64 = 7;

/// What a conditional write of a record came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Written,
    /// Another writer changed the record since it was read: read it again and re-step.
    Conflict,
    /// The event's claim, to be taken with the write, is another
    /// invocation's or done: nothing was written, and nothing is to be.
    NotClaimed,
}

/// What a record's write carries besides the record.
enum Second<'s> {
    /// The event's claim, taken.
    Take,
    /// The event's claim, completed with this summary.
    Complete(&'s str),
}

/// The typed store of incident records.
#[derive(Clone, Copy)]
pub struct IncidentStore<'a> {
    state: &'a StateStore,
}

impl StateStore {
    pub fn incidents(&self) -> IncidentStore<'_> {
        IncidentStore { state: self }
    }
}

/// The condition a record's write carries: the version read (none: the
/// record must not exist).
fn version_condition(
    read: Option<&Record>,
) -> (&'static str, Option<std::collections::HashMap<String, AttributeValue>>) {
    match read {
        None => ("attribute_not_exists(pk)", None),
        // Version 0 may be an item from before versioning (no attribute).
        Some(r) if r.version == 0 => (
            "(attribute_not_exists(version) AND incident_id = :id) OR version = :v",
            Some([(":id".to_string(), s(&r.id)), (":v".to_string(), n(0))].into()),
        ),
        Some(r) => ("version = :v", Some([(":v".to_string(), n(r.version as i64))].into())),
    }
}

/// What a refused write of `next` by `writer` means: our own write, applied
/// and its response lost (the SDK's retry meets it), or another writer's
/// record (when DynamoDB returned it).
fn refused_write(old: Option<&Item>, next: &Record, writer: &str) -> (Write, Option<Record>) {
    match old {
        Some(old)
            if get_s(old, "writer").as_deref() == Some(writer)
                && get_n(old, "version") == Some(next.version as i64) =>
        {
            (Write::Written, None)
        }
        old => (Write::Conflict, old.and_then(|i| decode(i).ok().flatten())),
    }
}

/// A transaction's idempotency token from the writer id (at most 36 characters).
fn request_token(writer: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(writer.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn decode(item: &Item) -> Result<Option<Record>, serde_json::Error> {
    if let Some(json) = get_s(item, "record") {
        let mut record: Record = serde_json::from_str(&json)?;
        // The attribute is the truth for the condition.
        record.version = get_n(item, "version").map_or(record.version, |v| v.max(0) as u64);
        return Ok(Some(record));
    }
    Ok(legacy(item))
}

/// An item written before records were versioned: read as well as it can be,
/// so that an incident open across an upgrade is resolved, not lost.
fn legacy(item: &Item) -> Option<Record> {
    let subject = Subject::parse(&get_s(item, "pk")?)?;
    let opened_at = get_n(item, "opened_at").unwrap_or_default();
    let last = get_n(item, "last_event_at").unwrap_or(opened_at);
    let source = get_s(item, "source").unwrap_or_else(|| "ecs".into());
    let key = match source.strip_prefix("alarm:") {
        Some(name) => ProblemKey::Alarm(name.into()),
        None if subject.as_pipeline().is_some() => ProblemKey::Pipeline,
        None => ProblemKey::Tasks,
    };
    let summary = get_s(item, "summary").unwrap_or_default();
    let label = summary.split(" - ").next().unwrap_or("incident").to_string();
    let state = match get_n(item, "closing_at") {
        Some(at) if item.contains_key("closing_by") => {
            State::Closed { at, resolution: "closed before the upgrade".into(), recovered_at: None }
        }
        _ => State::Open,
    };
    let alert_at = get_n(item, "alert_at").or_else(|| (!item.contains_key("alert_by")).then_some(opened_at));
    Some(Record {
        id: get_s(item, "incident_id")?,
        subject,
        version: 0,
        state,
        kind: Kind::EcsTaskStopped,
        headline: label.clone(),
        opened_at,
        last_signal_at: last,
        severity: Severity::parse(&get_s(item, "severity").unwrap_or_default()).unwrap_or(Severity::Sev3),
        cause: Cause::parse(&get_s(item, "cause").unwrap_or_default()).unwrap_or(Cause::Unknown),
        problems: vec![Problem {
            key,
            label,
            first_at: opened_at,
            last_at: last,
            cleared_at: None,
            cleared_by: None,
            revision: None,
        }],
        failures: Default::default(),
        alert_at,
        message_id: get_s(item, "message_id"),
        sending: None,
        announced_severity: alert_at.and(Severity::parse(&get_s(item, "severity").unwrap_or_default())),
        last_message_at: get_n(item, "last_notified_at"),
        announced: item.get("announced").and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default(),
        escalations: get_n(item, "escalations").unwrap_or_default().max(0) as u32,
        notes: Vec::new(),
        evidence: get_s(item, "evidence"),
        impact: Vec::new(),
        team: get_s(item, "team"),
        events: get_n(item, "events").unwrap_or_default().max(0) as u32,
        acknowledged: None,
    })
}

/// The item of `record`, written by `writer`.
fn encode(record: &Record, writer: &str) -> Result<Item, serde_json::Error> {
    let json = serde_json::to_string(record)?;
    let mut item = Item::new();
    item.insert("pk".into(), s(record.subject.key()));
    item.insert("sk".into(), s(keys::OPEN_INCIDENT));
    item.insert("record".into(), s(json));
    item.insert("version".into(), n(record.version as i64));
    item.insert("writer".into(), s(writer));
    item.insert("incident_id".into(), s(&record.id));
    // Plain attributes for people reading the table; the record is the truth.
    item.insert("severity".into(), s(record.severity.as_str()));
    item.insert("cause".into(), s(record.cause.as_str()));
    item.insert("summary".into(), s(record.summary()));
    item.insert("opened_at".into(), n(record.opened_at));
    match &record.state {
        State::Open => {
            item.insert("state".into(), s("open"));
            item.insert("open_index".into(), s(OPEN_INDEX_VALUE));
            item.insert("open_since".into(), n(record.opened_at));
        }
        State::Closed { at, .. } => {
            item.insert("state".into(), s("closed"));
            item.insert("expires_at".into(), n(at + TOMBSTONE_DAYS * DAY));
        }
    }
    Ok(item)
}

impl<'a> IncidentStore<'a> {
    fn table(self) -> &'a str {
        &self.state.table
    }

    fn unreadable(self, subject: &Subject, why: String) -> AutopilotError {
        AutopilotError::State(AwsError::answer(
            "dynamodb",
            "GetItem (incident)",
            format!("{}/{}", self.table(), subject.key()),
            why,
        ))
    }

    /// The subject's current incident (open or its closed tombstone), read consistently.
    pub async fn get(self, subject: &Subject) -> Result<Option<Record>, AutopilotError> {
        let resp = self
            .state
            .client
            .get_item()
            .table_name(self.table())
            .key("pk", s(subject.key()))
            .key("sk", s(keys::OPEN_INCIDENT))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.state.err("GetItem (incident)", e))?;
        match resp.item() {
            None => Ok(None),
            // A record we cannot read is not "no incident": fail, so that nothing opens over it.
            Some(item) => decode(item).map_err(|e| self.unreadable(subject, format!("record unreadable: {e}"))),
        }
    }

    /// The subject's open incident, if any.
    pub async fn open(self, subject: &Subject) -> Result<Option<Record>, AutopilotError> {
        Ok(self.get(subject).await?.filter(Record::is_open))
    }

    /// Write `next` over `read` (the record as read, `None` when there was
    /// none): only if nobody wrote since. `writer` is unique to this attempt.
    pub async fn write(self, read: Option<&Record>, next: &Record, writer: &str) -> Result<Write, AutopilotError> {
        Ok(self.write_seen(read, next, writer).await?.0)
    }

    /// [`Self::write`], and on a conflict the record the store held instead
    /// (DynamoDB returns the item that failed the condition, read
    /// consistently): `None` when it returned none or it does not decode —
    /// then read it again.
    pub async fn write_seen(
        self,
        read: Option<&Record>,
        next: &Record,
        writer: &str,
    ) -> Result<(Write, Option<Record>), AutopilotError> {
        let item = encode(next, writer)
            .map_err(|e| self.unreadable(&next.subject, format!("record not serialisable: {e}")))?;
        let (condition, values) = version_condition(read);
        let result = self
            .state
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match self.state.conditional("PutItem (incident)", result)? {
            Conditional::Written(_) => Ok((Write::Written, None)),
            Conditional::Refused(old) => Ok(refused_write(old.as_ref(), next, writer)),
        }
    }

    /// [`IncidentStore::write_seen`] holding the event's claim `hand`: the
    /// write takes the claim in the same transaction while it is not
    /// taken yet, and completes it with `last` (a summary) when this is the
    /// input's last write; otherwise it is the record's write alone.
    ///
    /// A claim refused (another invocation's, or done before) makes the
    /// write [`Write::NotClaimed`], nothing written. A record refused is a
    /// conflict as ever; a claim that was to be taken then is taken by a
    /// write of its own, since the transaction wrote neither. A completion
    /// refused alone (the claim taken over after our lease ended) leaves the
    /// record to be written by itself.
    pub async fn write_seen_holding(
        self,
        read: Option<&Record>,
        next: &Record,
        writer: &str,
        hand: &ClaimInHand,
        last: Option<&str>,
    ) -> Result<(Write, Option<Record>), AutopilotError> {
        let second = match (hand.hand(), last) {
            (Hand::Unclaimed, _) => Second::Take,
            (Hand::Claimed, Some(summary)) => Second::Complete(summary),
            _ => return self.write_seen(read, next, writer).await,
        };
        let item = encode(next, writer)
            .map_err(|e| self.unreadable(&next.subject, format!("record not serialisable: {e}")))?;
        let (condition, values) = version_condition(read);
        let built = |e: aws_sdk_dynamodb::error::BuildError| {
            self.unreadable(&next.subject, format!("transaction not buildable: {e}"))
        };
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(built)?;
        let claim_item = match second {
            Second::Take => TransactWriteItem::builder().put(hand.claiming(self.table()).map_err(built)?).build(),
            Second::Complete(summary) => {
                TransactWriteItem::builder().update(hand.completion(self.table(), summary).map_err(built)?).build()
            }
        };
        let result = self
            .state
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(claim_item)
            // The SDK's retry of a transaction that was applied, its
            // response lost, succeeds again instead of being refused.
            .client_request_token(request_token(writer))
            .send()
            .await;
        let after = match second {
            Second::Take => Hand::Claimed,
            Second::Complete(_) => Hand::Done,
        };
        let reasons = match result {
            Ok(_) => {
                hand.set(after);
                return Ok((Write::Written, None));
            }
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => c.cancellation_reasons().to_vec(),
                _ => {
                    let op = "TransactWriteItems (incident and claim)";
                    return Err(AutopilotError::State(aws_error("dynamodb", op, self.table(), &e)));
                }
            },
        };
        let refused = |i: usize| reasons.get(i).filter(|r| r.code() == Some("ConditionalCheckFailed"));
        if let (Second::Take, Some(r)) = (&second, refused(1)) {
            match hand.refused_by(r.item()) {
                // Our own claim: the transaction was applied, its response lost.
                Claim::New => hand.set(Hand::Claimed),
                other => {
                    hand.set(Hand::Refused(other));
                    return Ok((Write::NotClaimed, None));
                }
            }
        }
        if let Some(r) = refused(0) {
            let outcome = refused_write(r.item(), next, writer);
            match (outcome.0, &second) {
                // Our transaction, applied: its claim half was applied with it.
                (Write::Written, _) => hand.set(after),
                (_, Second::Take) if hand.hand() == Hand::Unclaimed => {
                    if let Hand::Refused(_) = self.state.claims().take(hand).await? {
                        return Ok((Write::NotClaimed, None));
                    }
                }
                _ => {}
            }
            return Ok(outcome);
        }
        tracing::info!(
            incident = %next.id,
            record = reasons.first().and_then(|r| r.code()).unwrap_or("None"),
            claim = reasons.get(1).and_then(|r| r.code()).unwrap_or("None"),
            "incident write and claim refused together; each by itself"
        );
        if hand.hand() == Hand::Unclaimed
            && let Hand::Refused(_) = self.state.claims().take(hand).await?
        {
            return Ok((Write::NotClaimed, None));
        }
        self.write_seen(read, next, writer).await
    }

    /// The subjects with an open incident, oldest first (the open index;
    /// eventually consistent: read each record before deciding on it).
    pub async fn open_subjects(self) -> Result<Vec<Subject>, AutopilotError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .state
                .client
                .query()
                .table_name(self.table())
                .index_name(OPEN_INDEX)
                .key_condition_expression("open_index = :open")
                .expression_attribute_values(":open", s(OPEN_INDEX_VALUE))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.state.err("Query (open incidents)", e))?;
            out.extend(resp.items().iter().filter_map(|i| Subject::parse(&get_s(i, "pk")?)));
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Every open incident, read consistently, oldest first.
    pub async fn open_all(self) -> Result<Vec<Record>, AutopilotError> {
        let mut out = Vec::new();
        for subject in self.open_subjects().await? {
            if let Some(r) = self.open(&subject).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Keep a closed incident in the history (idempotent: the same key each time).
    pub async fn archive(self, record: &Record) -> Result<(), AutopilotError> {
        let State::Closed { at, resolution, .. } = &record.state else { return Ok(()) };
        let mut put = self
            .state
            .client
            .put_item()
            .table_name(self.table())
            .item("pk", s(record.subject.key()))
            .item("sk", s(keys::closed_incident(&rfc3339(record.opened_at), &record.id)))
            .item("incident_id", s(&record.id))
            .item("cause", s(record.cause.as_str()))
            .item("severity", s(record.severity.as_str()))
            .item("summary", s(record.summary()))
            .item("opened_at", n(record.opened_at))
            .item("closed_at", n(*at))
            .item("resolution", s(resolution))
            .item("failures", n(record.failures.total as i64))
            .item("events", n(record.events as i64))
            .item("expires_at", n(at + 90 * DAY));
        if let Some(ev) = &record.evidence {
            put = put.item("evidence", s(ev));
        }
        if !record.notes.is_empty() {
            put = put.item("notes", AttributeValue::L(record.notes.iter().map(s).collect()));
        }
        put.send().await.map_err(|e| {
            AutopilotError::State(aws_error("dynamodb", "PutItem (incident history)", self.table(), &e))
        })?;
        Ok(())
    }

    /// The subject's incidents opened since `since` (closed ones from the
    /// history, and the current one), oldest first, for the reports.
    pub async fn since(
        self,
        subject: &Subject,
        since: i64,
    ) -> Result<Vec<crate::reports::daily::IncidentLine>, AutopilotError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .state
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(subject.key()))
                .expression_attribute_values(":from", s(format!("incident#{}", rfc3339(since))))
                .expression_attribute_values(":to", s("incident#~"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.state.err("Query (incidents)", e))?;
            for item in resp.items() {
                let line = if get_s(item, "sk").as_deref() == Some(keys::OPEN_INCIDENT) {
                    decode(item).ok().flatten().map(|r| line_of_record(&r))
                } else {
                    line_of_history(item)
                };
                if let Some(line) = line.filter(|l| l.opened_at >= since) {
                    out.push(line);
                }
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        // A closed tombstone and its history entry are one incident.
        out.sort_by_key(|i| (i.opened_at, i.closed_at.is_none()));
        out.dedup_by(|a, b| a.id == b.id);
        Ok(out)
    }
}

fn line_of_history(item: &Item) -> Option<crate::reports::daily::IncidentLine> {
    let opened_at = get_n(item, "opened_at").unwrap_or_default();
    let closed_at = get_n(item, "closed_at");
    Some(crate::reports::daily::IncidentLine {
        id: get_s(item, "incident_id")?,
        severity: get_s(item, "severity").unwrap_or_default(),
        cause: get_s(item, "cause").unwrap_or_default(),
        summary: get_s(item, "summary").unwrap_or_default(),
        opened_at,
        closed_at,
        ttr_seconds: closed_at.map(|c| c - opened_at),
        resolution: get_s(item, "resolution"),
    })
}

fn line_of_record(r: &Record) -> crate::reports::daily::IncidentLine {
    let (closed_at, resolution) = match &r.state {
        State::Open => (None, None),
        State::Closed { at, resolution, .. } => (Some(*at), Some(resolution.clone())),
    };
    crate::reports::daily::IncidentLine {
        id: r.id.clone(),
        severity: r.severity.as_str().into(),
        cause: r.cause.as_str().into(),
        summary: r.summary(),
        opened_at: r.opened_at,
        closed_at,
        ttr_seconds: closed_at.map(|c| c - r.opened_at),
        resolution,
    }
}

/// A message kind's word in logs and `notified` reasons.
pub fn message_word(m: &MessageKind) -> &'static str {
    match m {
        MessageKind::Opening => "opening",
        MessageKind::Update => "update",
        MessageKind::Escalation { .. } => "escalation",
        MessageKind::Resolution { .. } => "resolution",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::machine::{Failures, Sending};

    fn record() -> Record {
        Record {
            id: "inc-1".into(),
            subject: Subject::service("prod", "api"),
            version: 7,
            state: State::Open,
            kind: Kind::EcsTaskStopped,
            headline: "task failed".into(),
            opened_at: 100,
            last_signal_at: 120,
            severity: Severity::Sev2,
            cause: Cause::OutOfMemory,
            problems: vec![Problem {
                key: ProblemKey::Tasks,
                label: "crash loop".into(),
                first_at: 100,
                last_at: 120,
                cleared_at: None,
                cleared_by: None,
                revision: Some("api:7".into()),
            }],
            failures: Failures::default(),
            alert_at: None,
            message_id: None,
            sending: Some(Sending { message: MessageKind::Opening, by: "req-1".into(), until: 400 }),
            announced_severity: None,
            last_message_at: None,
            announced: vec![],
            escalations: 0,
            notes: vec![],
            evidence: None,
            impact: vec![],
            team: None,
            events: 2,
            acknowledged: None,
        }
    }

    #[test]
    fn records_round_trip_and_only_open_ones_are_indexed_or_kept_forever() {
        let open = record();
        let item = encode(&open, "req-1#1").unwrap();
        assert_eq!(decode(&item).unwrap(), Some(open.clone()));
        assert!(item.contains_key("open_index") && !item.contains_key("expires_at"), "never deleted by TTL while open");
        let mut closed = open;
        closed.state = State::Closed { at: 500, resolution: "steady".into(), recovered_at: Some(490) };
        let item = encode(&closed, "req-2#1").unwrap();
        assert!(!item.contains_key("open_index"));
        assert_eq!(get_n(&item, "expires_at"), Some(500 + TOMBSTONE_DAYS * DAY));
    }

    #[test]
    fn a_damaged_record_is_an_error_not_an_absent_incident() {
        let mut item = encode(&record(), "w").unwrap();
        item.insert("record".into(), s("{not json"));
        assert!(decode(&item).is_err());
    }

    #[test]
    fn items_from_before_versioning_are_read() {
        let mut item = Item::new();
        item.insert("pk".into(), s("service#prod/api"));
        item.insert("incident_id".into(), s("inc-old"));
        item.insert("severity".into(), s("SEV2"));
        item.insert("summary".into(), s("crash loop - out of memory"));
        item.insert("source".into(), s("alarm:api-5xx"));
        item.insert("opened_at".into(), n(100));
        item.insert("alert_at".into(), n(101));
        let r = decode(&item).unwrap().unwrap();
        assert_eq!((r.id.as_str(), r.version, r.severity), ("inc-old", 0, Severity::Sev2));
        assert_eq!(r.problems[0].key, ProblemKey::Alarm("api-5xx".into()));
        assert!(r.alert_delivered() && r.is_open());
        item.insert("closing_by".into(), s("x"));
        item.insert("closing_at".into(), n(200));
        assert!(!decode(&item).unwrap().unwrap().is_open());
    }
}
