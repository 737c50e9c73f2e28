//! The adversity suite's shared pieces: a seeded RNG, counts from the
//! environment, the signals of one service's failure (events retargeted at a
//! seeded service), and the invariants every race and fault episode must
//! keep, checked from what the fault proxy saw published and applied and
//! what the state table holds:
//!
//! - at most one mutating call per decision, never onto the failing revision;
//! - exactly one opening alert per incident;
//! - exactly one resolution per resolved incident, none for an open one;
//! - every executed action announced in the incident's messages;
//! - severity never falls within an incident;
//! - an incident id names one incident (not one resolved and another opened).

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

use crate::fault_proxy::{Mutation, Published};
use crate::seed::SeededService;
use crate::testbed::{TestBed, fixture};

/// SplitMix64: small, seedable, good enough to pick interleavings.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// A count from the environment (`name`), else `default`; `all` (or `max`) is `usize::MAX`.
pub fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name).ok().as_deref().map(str::trim) {
        Some("all" | "max") => usize::MAX,
        Some(v) if !v.is_empty() => {
            v.parse().unwrap_or_else(|_| panic!("{name}={v}: expected a count (a number, or \"all\")"))
        }
        _ => default,
    }
}

/// A number of seconds from the environment, else `default`.
pub fn env_seconds(name: &str, default: f64) -> std::time::Duration {
    let v = std::env::var(name).ok().and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(default);
    std::time::Duration::from_secs_f64(v.max(0.0))
}

/// The variable that pins every suite's seed at once (scripts/test.sh sets it).
pub const SEED_VAR: &str = "AUTOPILOT_SEED";

/// A suite's seed: from `name` (`FAULT_SEED`, `RACE_SEED`), else from
/// [`SEED_VAR`] (CI pins it, so a failure replays), else from the clock.
/// The caller prints it in its output and its failure message.
pub fn env_seed(name: &str) -> u64 {
    seed_from(
        name,
        |k| std::env::var(k).ok(),
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7),
    )
}

/// [`env_seed`] over any lookup: `name`, then [`SEED_VAR`], then `clock`.
/// A value that is not a number is refused (a typo must not fall back to
/// the clock and leave a run that cannot be replayed).
pub fn seed_from(name: &str, lookup: impl Fn(&str) -> Option<String>, clock: impl FnOnce() -> u64) -> u64 {
    for var in [name, SEED_VAR] {
        if let Some(v) = lookup(var).filter(|v| !v.trim().is_empty()) {
            return v.trim().parse().unwrap_or_else(|_| panic!("{var}={v}: expected a seed (an unsigned number)"));
        }
    }
    clock()
}

/// `family:revision` of a task-definition ARN (or the text itself).
pub fn short_td(td: &str) -> String {
    td.rsplit('/').next().unwrap_or(td).to_string()
}

/// One service's failure, as its signals arrive: a seeded service running
/// a good revision, then a fresh, failing one deployed.
pub struct Failure {
    pub svc: SeededService,
    /// The revision that reached steady state before the release.
    pub good: String,
    /// The freshly deployed, failing revision.
    pub bad: String,
    /// The deployment id ECS reports for the service (the failing deployment).
    pub deployment_id: String,
    /// Prefix of every event id of this failure (unique per failure).
    pub tag: String,
}

impl Failure {
    /// Seed `service` in its own cluster and deploy a failing revision.
    pub async fn seed(bed: &TestBed, service: &str) -> Self {
        let svc = SeededService::create_named(bed, &format!("{}-{service}", bed.prefix), service, 2).await;
        let good = svc.task_definition_arn.clone();
        let bad = svc.deploy_new_revision(bed, "v2.4.0-broken").await;
        let deployment_id = svc.primary_deployment_id(bed).await.unwrap_or_else(|| "ecs-svc/0".into());
        Self { tag: service.to_string(), svc, good, bad, deployment_id }
    }

    fn id(&self, what: &str) -> String {
        format!("{}-{what}", self.tag)
    }

    /// SERVICE_DEPLOYMENT_FAILED of the failing deployment.
    pub fn deployment_failed(&self, n: usize) -> Value {
        let mut e = self.svc.retarget(&fixture("ecs/deployment-failed.json"), &self.id(&format!("failed-{n}")), "x");
        e["detail"]["deploymentId"] = Value::from(self.deployment_id.clone());
        e
    }

    /// SERVICE_DEPLOYMENT_COMPLETED (ECS's own rollback finished).
    pub fn deployment_completed(&self, n: usize) -> Value {
        let mut e =
            self.svc.retarget(&fixture("ecs/deployment-completed.json"), &self.id(&format!("completed-{n}")), "x");
        e["detail"]["deploymentId"] = Value::from(self.deployment_id.clone());
        e
    }

    /// SERVICE_STEADY_STATE.
    pub fn steady_state(&self, n: usize) -> Value {
        self.svc.retarget(&fixture("ecs/service-steady-state.json"), &self.id(&format!("steady-{n}")), "x")
    }

    /// Task `n` of the failing revision stopped: its essential container crashed.
    pub fn task_crashed(&self, n: usize) -> Value {
        let task = format!("{:032x}", 0xfa11_0000_u64 + n as u64);
        let mut e =
            self.svc.retarget(&fixture("ecs/task-stopped-app-crash.json"), &self.id(&format!("stop-{n}")), &task);
        e["detail"]["taskDefinitionArn"] = Value::from(self.bad.clone());
        e
    }

    /// The name of this service's designated 5xx-rate alarm.
    pub fn alarm_name(&self) -> String {
        format!("prod-api-5xx-{}", self.tag)
    }

    /// The dimensions of the metric this service's alarm watches.
    pub fn alarm_dimensions(&self) -> Vec<(String, String)> {
        vec![("ClusterName".into(), self.svc.cluster.clone()), ("ServiceName".into(), self.svc.service.clone())]
    }

    /// The designated 5xx-rate alarm of this service (name `prod-api-5xx-<tag>`,
    /// designated by `ALARM_NAME_PREFIX=prod-api-`), entering `state` at
    /// `at_ms` (epoch milliseconds).
    pub fn alarm(&self, state: &str, at_ms: i64) -> Value {
        let mut e = fixture("alarm/eventbridge-metric-math-5xx-rate.json");
        let name = self.alarm_name();
        e["resources"] = json!([format!("arn:aws:cloudwatch:us-east-1:111122223333:alarm:{name}")]);
        e["detail"]["alarmName"] = Value::from(name);
        let previous = if state == "OK" { "ALARM" } else { "OK" };
        e["detail"]["state"]["value"] = Value::from(state);
        let at = chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
        e["detail"]["state"]["timestamp"] = Value::from(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        e["id"] = Value::from(self.id(&format!("alarm-{state}-{at_ms}")));
        e["detail"]["previousState"]["value"] = Value::from(previous);
        for m in e["detail"]["configuration"]["metrics"].as_array_mut().into_iter().flatten() {
            if let Some(dims) = m.pointer_mut("/metricStat/metric/dimensions") {
                *dims = json!({"ClusterName": self.svc.cluster, "ServiceName": self.svc.service});
            }
        }
        e
    }

    /// `event` as if it happened `seconds_ago` (delivered late, out of order).
    pub fn late(&self, mut event: Value, seconds_ago: i64) -> Value {
        let at = chrono::Utc::now() - chrono::Duration::seconds(seconds_ago);
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        event["time"] = Value::from(at.clone());
        for k in ["createdAt", "updatedAt", "stoppedAt"] {
            if event["detail"].get(k).is_some() {
                event["detail"][k] = Value::from(at.clone());
            }
        }
        event
    }

    /// The incidents of this service in the state table.
    pub async fn stored_incidents(&self, bed: &TestBed) -> Vec<StoredIncident> {
        stored_incidents(bed, &self.svc.cluster, &self.svc.service).await
    }
}

/// What a published message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoticeKind {
    Opening,
    Update,
    Resolution,
    Other,
}

/// A published message, read as people read it.
#[derive(Debug, Clone)]
pub struct Notice {
    pub seq: usize,
    pub kind: NoticeKind,
    pub incident: Option<String>,
    /// 1 (SEV1) … 4 (INFO); for a resolution, what the incident was.
    pub severity_rank: Option<u8>,
    pub subject: String,
    pub message: String,
    pub cluster: String,
    pub service: String,
}

fn severity_rank(text: &str) -> Option<u8> {
    ["SEV1", "SEV2", "SEV3", "INFO"].iter().position(|s| text.contains(s)).map(|i| i as u8 + 1)
}

impl Notice {
    pub fn from_published(p: &Published) -> Self {
        let first = p.message.lines().next().unwrap_or_default();
        let kind = if first.starts_with("INCIDENT ALERT") {
            NoticeKind::Opening
        } else if first.starts_with("INCIDENT UPDATE") {
            NoticeKind::Update
        } else if first.starts_with("INCIDENT RESOLVED") {
            NoticeKind::Resolution
        } else {
            NoticeKind::Other
        };
        let incident = p
            .message
            .lines()
            .find_map(|l| l.strip_prefix("Incident:"))
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty());
        let severity_rank =
            p.attributes.get("severity").and_then(|s| severity_rank(s)).or_else(|| severity_rank(first));
        Self {
            seq: p.seq,
            kind,
            incident,
            severity_rank,
            subject: p.subject.clone(),
            message: p.message.clone(),
            cluster: p.attributes.get("cluster").cloned().unwrap_or_default(),
            service: p.attributes.get("service").cloned().unwrap_or_default(),
        }
    }

    /// Whether it announces `action` executed onto `target` (a `family:rev`, or any target).
    pub fn announces(&self, action: &str, target: Option<&str>) -> bool {
        self.message.lines().any(|l| {
            l.contains(&format!("{action} executed")) && target.is_none_or(|t| arrow_targets(l).any(|x| x == t))
        })
    }
}

/// What follows each `-> ` of a line, up to a space or punctuation.
fn arrow_targets(line: &str) -> impl Iterator<Item = &str> {
    line.split("-> ").skip(1).map(|rest| rest.split([' ', '(', ')', ';', ',']).next().unwrap_or_default())
}

/// An incident as the state table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIncident {
    pub id: String,
    /// Still open (not closed, not marked closing).
    pub open: bool,
    /// Why it was closed (`resolution` of the history item).
    pub resolution: Option<String>,
}

impl StoredIncident {
    /// Closed because something proved it over (not expired, not undelivered).
    pub fn resolved(&self) -> bool {
        self.resolution.as_deref().is_some_and(|r| !r.contains("expired") && !r.contains("not delivered"))
    }
    /// Closed because its opening alert never went out.
    pub fn undelivered(&self) -> bool {
        self.resolution.as_deref().is_some_and(|r| r.contains("not delivered"))
    }
}

/// The incidents of `cluster/service`, open and closed (the documented layout:
/// `service#<cluster>/<service>`, `incident#open` and `incident#<opened>#<id>`).
pub async fn stored_incidents(bed: &TestBed, cluster: &str, service: &str) -> Vec<StoredIncident> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let resp = bed
            .dynamodb
            .query()
            .table_name(&bed.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :i)")
            .expression_attribute_values(":pk", AttributeValue::S(format!("service#{cluster}/{service}")))
            .expression_attribute_values(":i", AttributeValue::S("incident#".into()))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query incidents");
        items.extend(resp.items.unwrap_or_default());
        start = resp.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    let text =
        |i: &std::collections::HashMap<String, AttributeValue>, k: &str| i.get(k).and_then(|v| v.as_s().ok()).cloned();
    let mut by_id: BTreeMap<String, StoredIncident> = BTreeMap::new();
    for i in &items {
        let Some(id) = text(i, "incident_id") else { continue };
        let sk = text(i, "sk").unwrap_or_default();
        let entry = by_id.entry(id.clone()).or_insert(StoredIncident { id, open: false, resolution: None });
        if sk == "incident#open" {
            // The subject's current record: open, or closed and kept as its tombstone.
            entry.open |= text(i, "state").as_deref() != Some("closed") && !i.contains_key("closing_by");
        } else if let Some(r) = text(i, "resolution") {
            entry.resolution = Some(r);
        }
    }
    by_id.into_values().collect()
}

/// Everything one episode left behind, for the invariants.
#[derive(Debug, Clone, Default)]
pub struct Episode {
    pub cluster: String,
    pub service: String,
    /// The failing revision (a rollback must never go there).
    pub bad: String,
    pub notices: Vec<Notice>,
    pub mutations: Vec<Mutation>,
    pub incidents: Vec<StoredIncident>,
    /// Incident ids the invocations answered with.
    pub outcome_incidents: BTreeSet<String>,
    /// Mutating calls one decision may make (1: one failure, one rollback at most).
    pub max_mutations: usize,
    /// One opening alert sent twice that no implementation can avoid (a
    /// process killed after SNS accepted the alert and before it could
    /// record that; the two cells are named in
    /// `fault_bench::double_opening_unavoidable`): allowed once per incident,
    /// counted apart; a third alert is a violation all the same.
    pub tolerate_double_opening: bool,
    /// Every incident must be resolved by the end (a final resolving signal was sent).
    pub expect_all_resolved: bool,
    /// At least one incident must have been announced (a failure signal was handled).
    pub expect_alert: bool,
}

/// The invariants' counts over one or many episodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub episodes: usize,
    pub double_actions: usize,
    pub wrong_target_actions: usize,
    pub double_alerts: usize,
    pub missing_alerts: usize,
    pub double_resolutions: usize,
    pub missing_resolutions: usize,
    pub unannounced_actions: usize,
    pub severity_falls: usize,
    /// Incident ids naming two incidents (one resolved, another opened with its id).
    pub reused_incident_ids: usize,
    /// Tolerated double opening alerts (see [`Episode::tolerate_double_opening`]).
    pub inherent_double_alerts: usize,
    /// What broke, one line each.
    pub broken: Vec<String>,
}

impl Findings {
    pub fn violations(&self) -> usize {
        self.double_actions
            + self.wrong_target_actions
            + self.double_alerts
            + self.missing_alerts
            + self.double_resolutions
            + self.missing_resolutions
            + self.unannounced_actions
            + self.severity_falls
            + self.reused_incident_ids
    }

    pub fn merge(&mut self, other: Findings) {
        self.episodes += other.episodes;
        self.double_actions += other.double_actions;
        self.wrong_target_actions += other.wrong_target_actions;
        self.double_alerts += other.double_alerts;
        self.missing_alerts += other.missing_alerts;
        self.double_resolutions += other.double_resolutions;
        self.missing_resolutions += other.missing_resolutions;
        self.unannounced_actions += other.unannounced_actions;
        self.severity_falls += other.severity_falls;
        self.reused_incident_ids += other.reused_incident_ids;
        self.inherent_double_alerts += other.inherent_double_alerts;
        self.broken.extend(other.broken);
    }

    /// `key=value` pairs of the counts, for the suite's ADVERSITY line.
    pub fn counts(&self) -> String {
        format!(
            "double_actions={} wrong_target_actions={} double_alerts={} missing_alerts={} double_resolutions={} \
             missing_resolutions={} unannounced_actions={} severity_falls={} reused_incident_ids={} \
             inherent_double_alerts={}",
            self.double_actions,
            self.wrong_target_actions,
            self.double_alerts,
            self.missing_alerts,
            self.double_resolutions,
            self.missing_resolutions,
            self.unannounced_actions,
            self.severity_falls,
            self.reused_incident_ids,
            self.inherent_double_alerts
        )
    }
}

fn same_service(m: &Mutation, cluster: &str, service: &str) -> bool {
    let last = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    last(&m.service) == service && (m.cluster.is_empty() || last(&m.cluster) == cluster)
}

/// Check one episode's invariants.
pub fn check(e: &Episode) -> Findings {
    let mut f = Findings { episodes: 1, ..Default::default() };
    let mine: Vec<&Notice> = e.notices.iter().filter(|n| n.cluster == e.cluster && n.service == e.service).collect();
    let mutations: Vec<&Mutation> = e.mutations.iter().filter(|m| same_service(m, &e.cluster, &e.service)).collect();

    // At most one mutating call per decision, never onto the failing revision.
    if mutations.len() > e.max_mutations {
        f.double_actions += mutations.len() - e.max_mutations;
        f.broken.push(format!(
            "{} mutating calls where one decision allows {}: {:?}",
            mutations.len(),
            e.max_mutations,
            mutations.iter().map(|m| (m.op.as_str(), m.task_definition.as_deref().map(short_td))).collect::<Vec<_>>()
        ));
    }
    for m in &mutations {
        if m.task_definition.as_deref().is_some_and(|td| short_td(td) == short_td(&e.bad)) {
            f.wrong_target_actions += 1;
            f.broken.push(format!("{} onto the failing revision {}", m.op, short_td(&e.bad)));
        }
    }

    // Every executed action announced in the service's messages.
    for m in &mutations {
        let (action, target) = match &m.task_definition {
            Some(td) => ("rollback", Some(short_td(td))),
            None if m.op.ends_with("StopServiceDeployment") => ("rollback", None),
            None => ("scale", None),
        };
        if !mine.iter().any(|n| n.announces(action, target.as_deref())) {
            f.unannounced_actions += 1;
            f.broken.push(format!(
                "{action} {} executed ({}) and announced in no message; subjects: {:?}",
                target.as_deref().unwrap_or(""),
                m.op,
                mine.iter().map(|n| n.subject.as_str()).collect::<Vec<_>>()
            ));
        }
    }

    // Incidents: from the table, the messages and the outcomes.
    let mut ids: BTreeSet<String> = e.incidents.iter().map(|i| i.id.clone()).collect();
    ids.extend(mine.iter().filter_map(|n| n.incident.clone()));
    ids.extend(e.outcome_incidents.iter().cloned());
    let stored = |id: &str| e.incidents.iter().find(|i| i.id == id);
    let openings_total = mine.iter().filter(|n| n.kind == NoticeKind::Opening).count();
    for id in &ids {
        let s = stored(id);
        let undelivered = s.is_some_and(StoredIncident::undelivered);
        // The incident's messages in publish order; an opening alert after a
        // resolution is another incident that got the same id.
        let mut segments: Vec<Vec<&Notice>> = vec![Vec::new()];
        let mut of_id: Vec<&Notice> = mine.iter().copied().filter(|n| n.incident.as_deref() == Some(id)).collect();
        of_id.sort_by_key(|n| n.seq);
        for n in of_id {
            let current = segments.last_mut().expect("one segment at least");
            if n.kind == NoticeKind::Opening && current.iter().any(|m| m.kind == NoticeKind::Resolution) {
                segments.push(vec![n]);
            } else {
                current.push(n);
            }
        }
        if segments.len() > 1 {
            f.reused_incident_ids += segments.len() - 1;
            f.broken.push(format!(
                "incident id {id} names {} incidents (opened, resolved, opened again): their evidence and history share one key",
                segments.len()
            ));
        }
        let last = segments.len() - 1;
        for (i, seg) in segments.iter().enumerate() {
            let count = |k: NoticeKind| seg.iter().filter(|n| n.kind == k).count();
            let (openings, resolutions) = (count(NoticeKind::Opening), count(NoticeKind::Resolution));
            match openings {
                0 if !undelivered => {
                    f.missing_alerts += 1;
                    f.broken.push(format!("incident {id} ({s:?}) has no opening alert"));
                }
                // At most one extra alert, and only where it is unavoidable.
                2 if e.tolerate_double_opening => f.inherent_double_alerts += 1,
                n if n > 1 => {
                    f.double_alerts += n - 1;
                    f.broken.push(format!("incident {id} has {n} opening alerts"));
                }
                _ => {}
            }
            // Only the last of a reused id is the one the table describes.
            let resolved = i < last || s.is_some_and(StoredIncident::resolved);
            let open = i == last && s.is_none_or(|s| s.open);
            if resolutions > 1 {
                f.double_resolutions += resolutions - 1;
                f.broken.push(format!("incident {id} has {resolutions} resolutions"));
            } else if resolutions == 0 && (resolved || (e.expect_all_resolved && !undelivered && openings > 0)) {
                f.missing_resolutions += 1;
                f.broken.push(format!(
                    "incident {id} ({s:?}) {} and has no resolution message",
                    if open { "is still open" } else { "was resolved" }
                ));
            }
            // Severity never falls: alerts and updates, in publish order.
            let mut most = u8::MAX;
            for n in seg.iter().filter(|n| matches!(n.kind, NoticeKind::Opening | NoticeKind::Update)) {
                let Some(rank) = n.severity_rank else { continue };
                if rank > most {
                    f.severity_falls += 1;
                    f.broken.push(format!("incident {id}: severity fell to SEV{rank} after SEV{most}: {}", n.subject));
                }
                most = most.min(rank);
            }
        }
    }
    // A handled failure is announced, whatever became of its incidents.
    if e.expect_alert && openings_total == 0 && f.missing_alerts == 0 {
        f.missing_alerts += 1;
        f.broken.push("no opening alert at all for a handled failure".into());
    }
    f
}

#[cfg(test)]
mod tests {
    //! Every invariant can fail: a synthetic episode that breaks each one is caught.
    use super::*;

    const TD: &str = "arn:aws:ecs:us-east-1:111122223333:task-definition/fam";

    fn note(seq: usize, first: &str, incident: &str, severity: &str, action: Option<&str>) -> Notice {
        let mut message = format!("{first}\n\nService:   prod/api\nIncident:  {incident}\n");
        if let Some(a) = action {
            message.push_str(&format!("Actions taken\n- {a}\n"));
        }
        let attributes = [("cluster", "prod"), ("service", "api"), ("severity", severity)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Notice::from_published(&Published { seq, subject: format!("[{severity}] prod/api"), message, attributes })
    }

    fn rollback(seq: usize, to: &str) -> Mutation {
        Mutation {
            seq,
            op: "ecs:UpdateService".into(),
            cluster: "prod".into(),
            service: "api".into(),
            task_definition: Some(format!("{TD}:{to}")),
            desired_count: None,
            answered: true,
        }
    }

    fn resolved(id: &str) -> StoredIncident {
        StoredIncident { id: id.into(), open: false, resolution: Some("SERVICE_STEADY_STATE at 14:05".into()) }
    }

    /// One incident, alerted with its rollback announced, then resolved: clean.
    fn clean() -> Episode {
        Episode {
            cluster: "prod".into(),
            service: "api".into(),
            bad: format!("{TD}:2"),
            notices: vec![
                note(
                    1,
                    "INCIDENT ALERT - SEV2",
                    "inc-1",
                    "SEV2",
                    Some("rollback executed: roll back fam:2 -> fam:1 (KnownGood) via UpdateService"),
                ),
                note(2, "INCIDENT UPDATE - SEV1", "inc-1", "SEV1", None),
                note(3, "INCIDENT RESOLVED - was SEV1", "inc-1", "SEV1", None),
            ],
            mutations: vec![rollback(0, "1")],
            incidents: vec![resolved("inc-1")],
            outcome_incidents: ["inc-1".to_string()].into(),
            max_mutations: 1,
            tolerate_double_opening: false,
            expect_all_resolved: true,
            expect_alert: true,
        }
    }

    #[test]
    fn a_clean_episode_keeps_every_invariant() {
        let f = check(&clean());
        assert_eq!(f.violations(), 0, "{:?}", f.broken);
    }

    #[test]
    fn each_broken_invariant_is_counted() {
        let mut e = clean();
        e.mutations.push(rollback(5, "2"));
        let f = check(&e);
        assert_eq!((f.double_actions, f.wrong_target_actions), (1, 1), "{:?}", f.broken);
        assert_eq!(f.unannounced_actions, 1, "the rollback onto :2 was never announced: {:?}", f.broken);

        let mut e = clean();
        e.notices[0] =
            note(1, "INCIDENT ALERT - SEV2", "inc-1", "SEV2", Some("rollback skipped: another action holds the lock"));
        assert_eq!(check(&e).unannounced_actions, 1);

        let mut e = clean();
        e.notices.push(note(2, "INCIDENT ALERT - SEV2", "inc-1", "SEV2", None));
        assert_eq!(check(&e).double_alerts, 1);
        e.tolerate_double_opening = true;
        let f = check(&e);
        assert_eq!((f.double_alerts, f.inherent_double_alerts), (0, 1));

        let mut e = clean();
        e.notices.remove(0);
        e.notices[0] = note(
            2,
            "INCIDENT UPDATE - SEV1",
            "inc-1",
            "SEV1",
            Some("rollback executed: roll back fam:2 -> fam:1 via UpdateService"),
        );
        assert_eq!(check(&e).missing_alerts, 1, "the incident's opening alert");

        let mut e = clean();
        e.incidents.push(StoredIncident { id: "inc-2".into(), open: true, resolution: None });
        assert_eq!(check(&e).missing_alerts, 1, "an incident only the table knows");

        let mut e = clean();
        e.notices.push(note(4, "INCIDENT RESOLVED - was SEV1", "inc-1", "SEV1", None));
        assert_eq!(check(&e).double_resolutions, 1);

        let mut e = clean();
        e.notices.pop();
        assert_eq!(check(&e).missing_resolutions, 1, "resolved in the table, never announced");
        e.incidents[0] = StoredIncident { id: "inc-1".into(), open: true, resolution: None };
        assert_eq!(check(&e).missing_resolutions, 1, "still open after the final resolving signal");
        e.expect_all_resolved = false;
        assert_eq!(check(&e).missing_resolutions, 0, "open, and nothing said it should be resolved");

        let mut e = clean();
        e.notices[1] = note(2, "INCIDENT UPDATE - SEV3", "inc-1", "SEV3", None);
        assert_eq!(check(&e).severity_falls, 1);

        // Resolved, then opened again under the same id: two incidents, one id.
        let mut e = clean();
        e.notices.push(note(4, "INCIDENT ALERT - SEV1", "inc-1", "SEV1", None));
        e.notices.push(note(5, "INCIDENT RESOLVED - was SEV1", "inc-1", "SEV1", None));
        let f = check(&e);
        assert_eq!((f.reused_incident_ids, f.double_alerts, f.double_resolutions), (1, 0, 0), "{:?}", f.broken);
        e.notices.pop();
        assert_eq!(check(&e).missing_resolutions, 1, "the second incident of the id was never resolved");

        let mut e = clean();
        e.incidents[0].resolution = Some("alert not delivered".into());
        e.notices.clear();
        e.mutations.clear();
        let f = check(&e);
        assert_eq!(f.missing_alerts, 1, "an undelivered incident is excused, the episode is not: {:?}", f.broken);
    }

    #[test]
    fn another_services_messages_and_calls_do_not_count() {
        let mut e = clean();
        let mut other = rollback(9, "2");
        other.service = "web".into();
        e.mutations.push(other);
        let mut alert = note(9, "INCIDENT ALERT - SEV2", "inc-9", "SEV2", None);
        alert.service = "web".into();
        e.notices.push(alert);
        assert_eq!(check(&e).violations(), 0);
    }

    #[test]
    fn a_second_opening_alert_is_tolerated_once_and_only_where_allowed() {
        let mut e = clean();
        e.notices.insert(1, note(2, "INCIDENT ALERT - SEV2", "inc-1", "SEV2", None));
        e.tolerate_double_opening = true;
        let f = check(&e);
        assert_eq!((f.double_alerts, f.inherent_double_alerts), (0, 1), "{:?}", f.broken);
        // Planted: a third opening alert in a tolerated cell. The cap catches it.
        e.notices.insert(2, note(3, "INCIDENT ALERT - SEV2", "inc-1", "SEV2", None));
        let f = check(&e);
        assert_eq!(f.double_alerts, 2, "no allowance beyond one extra alert: {:?}", f.broken);
        assert_eq!(f.inherent_double_alerts, 0);
    }

    #[test]
    fn seeds_come_from_the_suite_then_the_pinned_variable_then_the_clock() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(seed_from("FAULT_SEED", env(&[("AUTOPILOT_SEED", "42")]), || 7), 42, "CI pins every suite");
        assert_eq!(seed_from("FAULT_SEED", env(&[("AUTOPILOT_SEED", "42"), ("FAULT_SEED", "9")]), || 7), 9);
        assert_eq!(seed_from("FAULT_SEED", env(&[("AUTOPILOT_SEED", " ")]), || 7), 7, "unpinned: the clock");
        let typo = std::panic::catch_unwind(|| seed_from("RACE_SEED", env(&[("RACE_SEED", "12x")]), || 7));
        assert!(typo.is_err(), "a malformed seed is refused, not replaced by the clock");
    }

    #[test]
    fn the_rng_is_deterministic_per_seed_and_shuffles_everything() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        assert_eq!((0..8).map(|_| a.next_u64()).collect::<Vec<_>>(), (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
        let mut v: Vec<u32> = (0..50).collect();
        Rng::new(7).shuffle(&mut v);
        assert_ne!(v, (0..50).collect::<Vec<_>>());
        v.sort();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
        assert!((0..1000).all(|_| a.below(3) < 3));
    }
}
