//! The weekly capacity review (the runbooks' Friday 14:00 review), as plain
//! data and its renderings. Pure: no AWS, no clock — the scheduled-reports
//! flow reads the facts and hands them in with the window's times.
//!
//! - **Metrics**: [`plan_queries`] turns the services into `GetMetricData`
//!   batches of at most [`MAX_QUERIES_PER_CALL`] queries across services
//!   (percentile queries in batches of their own, so an endpoint that cannot
//!   compute them costs only the p95 figures); [`service_metrics`] reads the
//!   answers back per service, saying what was not returned.
//! - **Capacity**: [`assess`] finds scale-up candidates (hourly average at or
//!   above [`HIGH_UTILISATION`] % for at least [`SUSTAINED_SHARE`] of the
//!   hours with data) and right-size candidates (peak under
//!   [`LOW_UTILISATION`] %), each with a concrete recommendation: a task
//!   count, an autoscaling maximum, or a valid Fargate size ([`FARGATE`]).
//! - **Delivery**: [`delivery`] counts deployments, change failures (a
//!   deployment that failed, or was followed by a rollback or an incident
//!   within the attribution window and before the next deployment), mean
//!   time to recover and lead time from commit to running
//!   ([`LeadTimeSample`], filled where a pipeline linked them).
//! - **Renderings**: [`html`] (self-contained, charts as inline SVG drawn
//!   with `plotters`' SVG backend, no script), the JSON (serde), and
//!   [`summary`] (the SNS message).

use maud::{DOCTYPE, Markup, PreEscaped, html as maud_html};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::redact::Outgoing;
use crate::reports::daily::{IncidentLine, ReportObject};

/// CloudWatch's limit of queries in one `GetMetricData` call.
pub const MAX_QUERIES_PER_CALL: usize = 500;
/// The review's window.
pub const WINDOW_SECONDS: i64 = 7 * 24 * 3600;
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 24 * 3600;
/// Utilisation (%) at or above which an hour counts as high.
pub const HIGH_UTILISATION: f64 = 70.0;
/// Share of the hours with data that must be high for "sustained".
pub const SUSTAINED_SHARE: f64 = 0.25;
/// Peak utilisation (%) under which a resource counts as under-used.
pub const LOW_UTILISATION: f64 = 30.0;
/// Utilisation a recommendation sizes for: the peak lands here.
pub const TARGET_UTILISATION: f64 = 60.0;

// ---------------------------------------------------------------------------
// Fargate sizes

/// A Fargate task size: CPU units (1024 = 1 vCPU) and memory in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FargateSize {
    pub cpu: u32,
    pub memory: u32,
}

/// The valid Fargate CPU / memory combinations (Linux), as the ECS
/// developer guide's task-size table lists them: CPU units, the memory
/// range in MiB, and its step.
pub const FARGATE: &[(u32, u32, u32, u32)] = &[
    // (cpu, min memory, max memory, step); 256 takes 512, 1024 and 2048 only.
    (256, 512, 512, 512),
    (256, 1024, 2048, 1024),
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122880, 8192),
];

/// Every valid Fargate size, smallest CPU first, then memory.
pub fn fargate_sizes() -> Vec<FargateSize> {
    let mut out = Vec::new();
    for &(cpu, lo, hi, step) in FARGATE {
        let mut m = lo;
        while m <= hi {
            out.push(FargateSize { cpu, memory: m });
            m += step;
        }
    }
    out.sort();
    out.dedup();
    out
}

pub fn is_valid_fargate(size: FargateSize) -> bool {
    FARGATE.iter().any(|&(cpu, lo, hi, step)| {
        size.cpu == cpu && size.memory >= lo && size.memory <= hi && (size.memory - lo).is_multiple_of(step)
    })
}

/// Relative hourly price of a size: Fargate bills vCPU-hours and GB-hours
/// (us-east-1 Linux/x86 on-demand: $0.04048 per vCPU-hour, $0.004445 per GB-hour).
pub fn hourly_price(size: FargateSize) -> f64 {
    size.cpu as f64 / 1024.0 * 0.04048 + size.memory as f64 / 1024.0 * 0.004445
}

/// The cheapest valid size with at least `cpu` units and `memory` MiB.
pub fn cheapest_fitting(cpu: f64, memory: f64) -> Option<FargateSize> {
    fargate_sizes()
        .into_iter()
        .filter(|s| s.cpu as f64 >= cpu && s.memory as f64 >= memory)
        .min_by(|a, b| hourly_price(*a).total_cmp(&hourly_price(*b)))
}

/// Task CPU as ECS writes it: `"512"` units, or `"0.5 vCPU"`, `"1 vcpu"`.
pub fn parse_cpu(text: &str) -> Option<u32> {
    let t = text.trim().to_ascii_lowercase();
    if let Some(v) = t.strip_suffix("vcpu") {
        let v: f64 = v.trim().parse().ok()?;
        return (v > 0.0).then(|| (v * 1024.0).round() as u32);
    }
    t.parse().ok().filter(|v| *v > 0)
}

/// Task memory as ECS writes it: `"1024"` MiB, or `"1 GB"`, `"2gb"`.
pub fn parse_memory(text: &str) -> Option<u32> {
    let t = text.trim().to_ascii_lowercase();
    if let Some(v) = t.strip_suffix("gb") {
        let v: f64 = v.trim().parse().ok()?;
        return (v > 0.0).then(|| (v * 1024.0).round() as u32);
    }
    t.strip_suffix("mb").unwrap_or(&t).trim().parse().ok().filter(|v| *v > 0)
}

/// `1 vCPU / 2 GB`, `0.25 vCPU / 0.5 GB`.
pub fn size_label(size: FargateSize) -> String {
    let num = |v: f64| {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    format!("{} vCPU / {} GB", num(size.cpu as f64 / 1024.0), num(size.memory as f64 / 1024.0))
}

// ---------------------------------------------------------------------------
// Metric queries

/// One `MetricStat` query of a `GetMetricData` call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricQuery {
    /// Unique in the call; starts with a lower-case letter (CloudWatch's rule).
    pub id: String,
    pub namespace: String,
    pub metric: String,
    pub dimensions: Vec<(String, String)>,
    pub stat: String,
    pub period: i32,
}

impl MetricQuery {
    /// A percentile statistic (`p95`, `p99.9`, `tm90`, …) rather than
    /// Average/Minimum/Maximum/Sum/SampleCount.
    pub fn is_percentile(&self) -> bool {
        !matches!(self.stat.as_str(), "Average" | "Minimum" | "Maximum" | "Sum" | "SampleCount")
    }
}

/// A target group behind a load balancer, as CloudWatch's ALB dimensions
/// name them (`targetgroup/<name>/<id>`, `app/<name>/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadBalancedTarget {
    pub target_group: String,
    pub load_balancer: Option<String>,
}

impl LoadBalancedTarget {
    /// From the ARNs: the `TargetGroup` dimension is the ARN's resource
    /// part, the `LoadBalancer` dimension the part after `loadbalancer/`.
    pub fn from_arns(target_group_arn: &str, load_balancer_arn: Option<&str>) -> Self {
        let target_group = target_group_arn.rsplit_once(':').map(|(_, r)| r).unwrap_or(target_group_arn).to_string();
        let load_balancer =
            load_balancer_arn.map(|a| a.split_once(":loadbalancer/").map(|(_, r)| r).unwrap_or(a).to_string());
        Self { target_group, load_balancer }
    }
}

/// A service as the metric planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub cluster: String,
    pub service: String,
    pub targets: Vec<LoadBalancedTarget>,
}

/// The series read per service and per target group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Q {
    CpuAvg,
    CpuMax,
    CpuP95,
    MemAvg,
    MemMax,
    MemP95,
    RunningMin,
    Requests(usize),
    LatencyAvg(usize),
    LatencyP95(usize),
}

fn query_id(service: usize, q: Q) -> String {
    match q {
        Q::CpuAvg => format!("s{service}_cpu_avg"),
        Q::CpuMax => format!("s{service}_cpu_max"),
        Q::CpuP95 => format!("s{service}_cpu_p95"),
        Q::MemAvg => format!("s{service}_mem_avg"),
        Q::MemMax => format!("s{service}_mem_max"),
        Q::MemP95 => format!("s{service}_mem_p95"),
        Q::RunningMin => format!("s{service}_running_min"),
        Q::Requests(t) => format!("s{service}_t{t}_requests"),
        Q::LatencyAvg(t) => format!("s{service}_t{t}_latency_avg"),
        Q::LatencyP95(t) => format!("s{service}_t{t}_latency_p95"),
    }
}

fn service_queries(i: usize, s: &ServiceRef, window: i64) -> Vec<MetricQuery> {
    let ecs_dims = vec![("ClusterName".to_string(), s.cluster.clone()), ("ServiceName".to_string(), s.service.clone())];
    let q = |kind: Q, namespace: &str, metric: &str, dims: &[(String, String)], stat: &str, period: i64| MetricQuery {
        id: query_id(i, kind),
        namespace: namespace.into(),
        metric: metric.into(),
        dimensions: dims.to_vec(),
        stat: stat.into(),
        period: period as i32,
    };
    let mut out = vec![
        q(Q::CpuAvg, "AWS/ECS", "CPUUtilization", &ecs_dims, "Average", HOUR),
        q(Q::CpuMax, "AWS/ECS", "CPUUtilization", &ecs_dims, "Maximum", HOUR),
        q(Q::CpuP95, "AWS/ECS", "CPUUtilization", &ecs_dims, "p95", window),
        q(Q::MemAvg, "AWS/ECS", "MemoryUtilization", &ecs_dims, "Average", HOUR),
        q(Q::MemMax, "AWS/ECS", "MemoryUtilization", &ecs_dims, "Maximum", HOUR),
        q(Q::MemP95, "AWS/ECS", "MemoryUtilization", &ecs_dims, "p95", window),
        // Container Insights; without it there are no datapoints (the report says so).
        q(Q::RunningMin, "ECS/ContainerInsights", "RunningTaskCount", &ecs_dims, "Minimum", HOUR),
    ];
    for (t, target) in s.targets.iter().enumerate() {
        let Some(lb) = &target.load_balancer else { continue };
        let dims =
            vec![("TargetGroup".to_string(), target.target_group.clone()), ("LoadBalancer".to_string(), lb.clone())];
        out.push(q(Q::Requests(t), "AWS/ApplicationELB", "RequestCount", &dims, "Sum", HOUR));
        out.push(q(Q::LatencyAvg(t), "AWS/ApplicationELB", "TargetResponseTime", &dims, "Average", DAY));
        out.push(q(Q::LatencyP95(t), "AWS/ApplicationELB", "TargetResponseTime", &dims, "p95", DAY));
    }
    out
}

/// Every query of the review, in `GetMetricData` batches of at most
/// [`MAX_QUERIES_PER_CALL`]: plain statistics first, then percentiles in
/// batches of their own. A service's queries of one kind stay in one batch.
pub fn plan_queries(services: &[ServiceRef], window_seconds: i64) -> Vec<Vec<MetricQuery>> {
    let mut plain: Vec<Vec<MetricQuery>> = Vec::new();
    let mut percentile: Vec<Vec<MetricQuery>> = Vec::new();
    let add = |batches: &mut Vec<Vec<MetricQuery>>, group: Vec<MetricQuery>| {
        if group.is_empty() {
            return;
        }
        match batches.last_mut() {
            Some(b) if b.len() + group.len() <= MAX_QUERIES_PER_CALL => b.extend(group),
            _ => {
                // A group larger than a call (hundreds of target groups) is split.
                for chunk in group.chunks(MAX_QUERIES_PER_CALL) {
                    batches.push(chunk.to_vec());
                }
            }
        }
    };
    for (i, s) in services.iter().enumerate() {
        let (p, q): (Vec<_>, Vec<_>) =
            service_queries(i, s, window_seconds).into_iter().partition(|q| q.is_percentile());
        add(&mut plain, q);
        add(&mut percentile, p);
    }
    plain.extend(percentile);
    plain
}

/// What `GetMetricData` answered: datapoints per query id (epoch seconds,
/// oldest first), and the queries whose call failed, with why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricAnswers {
    pub values: BTreeMap<String, Vec<(i64, f64)>>,
    pub failed: BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------
// Per-service metrics

/// CPU or memory utilisation over the week.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Utilisation {
    /// Mean of the hourly averages, %.
    pub average: Option<f64>,
    /// The week's p95 as CloudWatch computed it, when it returned one.
    pub p95: Option<f64>,
    /// Highest hourly maximum, %.
    pub maximum: Option<f64>,
    /// What the decisions use: p95, else the maximum (named in `peak_stat`).
    pub peak: Option<f64>,
    pub peak_stat: Option<String>,
    /// Hours whose average was at or above [`HIGH_UTILISATION`].
    pub hours_high: usize,
    pub hours_with_data: usize,
    /// Hourly averages, oldest first (the chart).
    pub hourly_average: Vec<(i64, f64)>,
    pub hourly_maximum: Vec<(i64, f64)>,
    /// Why a figure is missing ("CloudWatch returned no p95 datapoint", …).
    pub notes: Vec<String>,
}

impl Utilisation {
    pub fn sustained_high(&self) -> bool {
        self.hours_with_data > 0 && self.hours_high as f64 >= SUSTAINED_SHARE * self.hours_with_data as f64
    }
}

/// Request volume and latency of one target group.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Traffic {
    pub target_group: String,
    pub load_balancer: Option<String>,
    pub requests_total: Option<f64>,
    pub requests_hourly: Vec<(i64, f64)>,
    /// Requests per day (day start, count), oldest first.
    pub requests_daily: Vec<(i64, f64)>,
    /// Change of the second half of the week against the first, %.
    pub requests_trend_pct: Option<f64>,
    /// Daily p95 of TargetResponseTime, milliseconds.
    pub latency_p95_ms_daily: Vec<(i64, f64)>,
    /// Daily average of TargetResponseTime, milliseconds (shown when p95 is missing).
    pub latency_avg_ms_daily: Vec<(i64, f64)>,
    pub latency_trend_pct: Option<f64>,
    pub notes: Vec<String>,
}

/// Every metric figure of one service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceMetrics {
    pub cpu: Utilisation,
    pub memory: Utilisation,
    /// Hourly minimum of RunningTaskCount (Container Insights), oldest first.
    pub running_hourly_min: Vec<(i64, f64)>,
    pub traffic: Vec<Traffic>,
}

fn answer<'a>(a: &'a MetricAnswers, id: &str) -> Result<&'a [(i64, f64)], &'a str> {
    match a.failed.get(id) {
        Some(e) => Err(e.as_str()),
        None => Ok(a.values.get(id).map(Vec::as_slice).unwrap_or(&[])),
    }
}

fn mean(v: &[(i64, f64)]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().map(|p| p.1).sum::<f64>() / v.len() as f64)
}

fn max_of(v: &[(i64, f64)]) -> Option<f64> {
    v.iter().map(|p| p.1).reduce(f64::max)
}

/// Second half of the window against the first, %; `None` without data in both.
fn trend(v: &[(i64, f64)], start: i64, end: i64, sum: bool) -> Option<f64> {
    let mid = start + (end - start) / 2;
    let (a, b): (Vec<_>, Vec<_>) = v.iter().copied().partition(|p| p.0 < mid);
    let agg =
        |x: &[(i64, f64)]| if sum { (!x.is_empty()).then(|| x.iter().map(|p| p.1).sum::<f64>()) } else { mean(x) };
    let (first, second) = (agg(&a)?, agg(&b)?);
    (first > 0.0).then(|| (second - first) / first * 100.0)
}

/// Sum of hourly points per day from `start`.
fn per_day(v: &[(i64, f64)], start: i64) -> Vec<(i64, f64)> {
    let mut days: BTreeMap<i64, f64> = BTreeMap::new();
    for (t, x) in v {
        let d = start + (t - start).div_euclid(DAY) * DAY;
        *days.entry(d).or_default() += x;
    }
    days.into_iter().collect()
}

fn utilisation(
    a: &MetricAnswers,
    i: usize,
    avg: Q,
    max: Q,
    p95: Q,
    what: &str,
    unread: &mut Vec<String>,
) -> Utilisation {
    let mut u = Utilisation::default();
    match answer(a, &query_id(i, avg)) {
        Ok(points) => {
            u.hourly_average = points.to_vec();
            u.average = mean(points);
            u.hours_with_data = points.len();
            u.hours_high = points.iter().filter(|p| p.1 >= HIGH_UTILISATION).count();
            if points.is_empty() {
                u.notes.push(format!("no {what} datapoints in the window"));
            }
        }
        Err(e) => unread.push(format!("{what} average: {e}")),
    }
    match answer(a, &query_id(i, max)) {
        Ok(points) => {
            u.hourly_maximum = points.to_vec();
            u.maximum = max_of(points);
        }
        Err(e) => unread.push(format!("{what} maximum: {e}")),
    }
    match answer(a, &query_id(i, p95)) {
        // One datapoint over the whole window; several if the window was split.
        Ok(points) => {
            u.p95 = max_of(points);
            if points.is_empty() {
                u.notes.push("CloudWatch returned no p95 datapoint: the peak is the maximum".into());
            }
        }
        Err(e) => u.notes.push(format!("p95 not read ({e}): the peak is the maximum")),
    }
    (u.peak, u.peak_stat) = match (u.p95, u.maximum) {
        (Some(p), _) => (Some(p), Some("p95".into())),
        (None, Some(m)) => (Some(m), Some("Maximum".into())),
        _ => (None, None),
    };
    u
}

/// The metrics of the `i`-th planned service out of the answers; what could
/// not be read goes to `unread`.
pub fn service_metrics(
    i: usize,
    s: &ServiceRef,
    a: &MetricAnswers,
    window: (i64, i64),
    unread: &mut Vec<String>,
) -> ServiceMetrics {
    let (start, end) = window;
    let cpu = utilisation(a, i, Q::CpuAvg, Q::CpuMax, Q::CpuP95, "CPUUtilization", unread);
    let memory = utilisation(a, i, Q::MemAvg, Q::MemMax, Q::MemP95, "MemoryUtilization", unread);
    let running_hourly_min = match answer(a, &query_id(i, Q::RunningMin)) {
        Ok(p) => p.to_vec(),
        Err(e) => {
            unread.push(format!("RunningTaskCount: {e}"));
            Vec::new()
        }
    };
    let mut traffic = Vec::new();
    for (t, target) in s.targets.iter().enumerate() {
        let mut tr = Traffic {
            target_group: target.target_group.clone(),
            load_balancer: target.load_balancer.clone(),
            ..Default::default()
        };
        if target.load_balancer.is_none() {
            tr.notes.push("the target group is attached to no load balancer: no ALB metrics".into());
            traffic.push(tr);
            continue;
        }
        match answer(a, &query_id(i, Q::Requests(t))) {
            Ok(p) => {
                tr.requests_hourly = p.to_vec();
                tr.requests_total = (!p.is_empty()).then(|| p.iter().map(|x| x.1).sum());
                tr.requests_daily = per_day(p, start);
                tr.requests_trend_pct = trend(p, start, end, true);
                if p.is_empty() {
                    tr.notes.push("no RequestCount datapoints in the window".into());
                }
            }
            Err(e) => unread.push(format!("RequestCount {}: {e}", target.target_group)),
        }
        match answer(a, &query_id(i, Q::LatencyAvg(t))) {
            Ok(p) => tr.latency_avg_ms_daily = p.iter().map(|(t, v)| (*t, v * 1000.0)).collect(),
            Err(e) => unread.push(format!("TargetResponseTime {}: {e}", target.target_group)),
        }
        match answer(a, &query_id(i, Q::LatencyP95(t))) {
            Ok(p) => {
                tr.latency_p95_ms_daily = p.iter().map(|(t, v)| (*t, v * 1000.0)).collect();
                if p.is_empty() && !tr.latency_avg_ms_daily.is_empty() {
                    tr.notes.push("CloudWatch returned no p95 latency: the average is shown".into());
                }
            }
            Err(e) => tr.notes.push(format!("p95 latency not read ({e}): the average is shown")),
        }
        let latency =
            if tr.latency_p95_ms_daily.is_empty() { &tr.latency_avg_ms_daily } else { &tr.latency_p95_ms_daily };
        tr.latency_trend_pct = trend(latency, start, end, false);
        traffic.push(tr);
    }
    ServiceMetrics { cpu, memory, running_hourly_min, traffic }
}

// ---------------------------------------------------------------------------
// Capacity

/// The service's Application Auto Scaling target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Autoscaling {
    pub min: i32,
    pub max: i32,
}

/// What the capacity decision needs besides the metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapacityFacts {
    /// The task definition's size, when it names one.
    pub size: Option<FargateSize>,
    pub running: i32,
    pub desired: i32,
    /// `None` when the service has no scalable target (or it was unread).
    pub autoscaling: Option<Autoscaling>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    ScaleUp,
    RightSize,
    Fine,
    /// No utilisation datapoints: nothing to judge.
    NoData,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Self::ScaleUp => "scale up",
            Self::RightSize => "right-size",
            Self::Fine => "fine",
            Self::NoData => "no data",
        }
    }
}

/// A concrete change to make.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Recommendation {
    /// Run this many tasks (desired count, or the autoscaling minimum).
    TaskCount { from: i32, to: i32 },
    /// Raise the autoscaling maximum.
    AutoscalingMax { from: i32, to: i32 },
    /// Raise the autoscaling minimum.
    AutoscalingMin { from: i32, to: i32 },
    /// Change the task size to this valid Fargate combination.
    FargateSize { from: FargateSize, to: FargateSize },
}

impl Recommendation {
    pub fn text(&self) -> String {
        match self {
            Self::TaskCount { from, to } => format!("run {to} tasks (now {from})"),
            Self::AutoscalingMax { from, to } => format!("raise the autoscaling maximum from {from} to {to} tasks"),
            Self::AutoscalingMin { from, to } => format!("raise the autoscaling minimum from {from} to {to} tasks"),
            Self::FargateSize { from, to } => format!(
                "task size {} ({} CPU units / {} MiB), now {} ({} / {})",
                size_label(*to),
                to.cpu,
                to.memory,
                size_label(*from),
                from.cpu,
                from.memory
            ),
        }
    }
}

/// The capacity verdict of one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capacity {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub recommendations: Vec<Recommendation>,
    /// Hours (of the hourly RunningTaskCount minimum) spent at the
    /// autoscaling maximum; `None` without autoscaling or without datapoints.
    pub hours_at_max: Option<usize>,
    pub at_max_note: Option<String>,
}

fn ceil_tasks(tasks: i32, peak: f64) -> i32 {
    ((tasks.max(1) as f64) * peak / TARGET_UTILISATION).ceil() as i32
}

/// Hours at the autoscaling maximum, and a note when it cannot be told.
pub fn time_at_max(running_hourly_min: &[(i64, f64)], facts: &CapacityFacts) -> (Option<usize>, Option<String>) {
    let Some(a) = facts.autoscaling else {
        // The page says "no autoscaling target" already.
        return (None, None);
    };
    if running_hourly_min.is_empty() {
        let now = if facts.running >= a.max { "it is at its maximum now" } else { "it is below its maximum now" };
        return (
            None,
            Some(format!(
                "RunningTaskCount (Container Insights) has no datapoints: time at maximum unknown; {now} ({} running, max {})",
                facts.running, a.max
            )),
        );
    }
    (Some(running_hourly_min.iter().filter(|p| p.1 >= a.max as f64).count()), None)
}

/// Scale-up or right-size, with what to change.
pub fn assess(m: &ServiceMetrics, facts: &CapacityFacts) -> Capacity {
    let (hours_at_max, at_max_note) = time_at_max(&m.running_hourly_min, facts);
    let mut c = Capacity {
        verdict: Verdict::Fine,
        reasons: Vec::new(),
        recommendations: Vec::new(),
        hours_at_max,
        at_max_note,
    };
    let (Some(cpu_peak), Some(mem_peak)) = (m.cpu.peak, m.memory.peak) else {
        c.verdict = Verdict::NoData;
        c.reasons.push("no CPU or memory utilisation datapoints in the window".into());
        return c;
    };
    let tasks = facts.desired.max(facts.running).max(1);
    let cpu_high = m.cpu.sustained_high();
    let mem_high = m.memory.sustained_high();
    if cpu_high || mem_high {
        c.verdict = Verdict::ScaleUp;
        for (name, u) in [("CPU", &m.cpu), ("memory", &m.memory)] {
            if u.sustained_high() {
                c.reasons.push(format!(
                    "{name} at or above {HIGH_UTILISATION:.0} % in {} of {} hours (peak {:.1} % {})",
                    u.hours_high,
                    u.hours_with_data,
                    u.peak.unwrap_or_default(),
                    u.peak_stat.as_deref().unwrap_or("")
                ));
            }
        }
        // Memory-bound without CPU pressure: the cheapest valid size with enough memory and at
        // least the CPU it has (the same CPU where the table allows that much memory).
        if mem_high
            && !cpu_high
            && let Some(size) = facts.size
            && let Some(to) = cheapest_fitting(size.cpu as f64, size.memory as f64 * mem_peak / TARGET_UTILISATION)
            && to != size
        {
            c.recommendations.push(Recommendation::FargateSize { from: size, to });
            return c;
        }
        let peak = [(cpu_high, cpu_peak), (mem_high, mem_peak)].iter().filter(|p| p.0).map(|p| p.1).fold(0.0, f64::max);
        let to = ceil_tasks(tasks, peak).max(tasks + 1);
        match facts.autoscaling {
            Some(a) if to > a.max || c.hours_at_max.is_some_and(|h| h > 0) => {
                if let Some(h) = c.hours_at_max.filter(|h| *h > 0) {
                    c.reasons.push(format!("sat at its autoscaling maximum ({}) for {h} h", a.max));
                }
                c.recommendations.push(Recommendation::AutoscalingMax { from: a.max, to: to.max(a.max + 1) });
            }
            // Autoscaling stays below its maximum while the tasks run hot: a higher floor.
            Some(a) => c.recommendations.push(Recommendation::AutoscalingMin { from: a.min, to: to.max(a.min + 1) }),
            None => c.recommendations.push(Recommendation::TaskCount { from: tasks, to }),
        }
        return c;
    }
    if cpu_peak < LOW_UTILISATION || mem_peak < LOW_UTILISATION {
        if let Some(size) = facts.size {
            let need_cpu = size.cpu as f64 * cpu_peak / TARGET_UTILISATION;
            let need_mem = size.memory as f64 * mem_peak / TARGET_UTILISATION;
            if let Some(to) = cheapest_fitting(need_cpu, need_mem)
                && hourly_price(to) < hourly_price(size)
            {
                c.recommendations.push(Recommendation::FargateSize { from: size, to });
            }
        }
        if c.recommendations.is_empty() {
            // Keep two tasks for availability when there are two or more now.
            let floor = facts.autoscaling.map(|a| a.min).unwrap_or(if tasks >= 2 { 2 } else { 1 }).max(1);
            let to = ceil_tasks(tasks, cpu_peak.max(mem_peak)).max(floor);
            if to < tasks {
                c.recommendations.push(Recommendation::TaskCount { from: tasks, to });
            }
        }
        if !c.recommendations.is_empty() {
            c.verdict = Verdict::RightSize;
            c.reasons.push(format!(
                "peak CPU {cpu_peak:.1} % ({}), peak memory {mem_peak:.1} % ({}): under {LOW_UTILISATION:.0} %",
                m.cpu.peak_stat.as_deref().unwrap_or(""),
                m.memory.peak_stat.as_deref().unwrap_or("")
            ));
        }
    }
    c
}

// ---------------------------------------------------------------------------
// Delivery

/// One deployment of the service in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentRecord {
    pub id: String,
    pub started_at: i64,
    /// The last state seen (`SERVICE_DEPLOYMENT_COMPLETED`, `FAILED`, …).
    pub state: String,
    pub failed: bool,
}

/// A commit and when the deployment carrying it ran, as a pipeline linked them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeadTimeSample {
    pub cluster: String,
    pub service: String,
    pub commit: Option<String>,
    pub deployment_id: Option<String>,
    pub commit_at: i64,
    pub running_at: i64,
}

/// What delivery metrics are computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryFacts {
    pub deployments: Vec<DeploymentRecord>,
    /// When executed rollbacks happened (the ledger).
    pub rollbacks: Vec<i64>,
    pub incidents: Vec<IncidentLine>,
    pub lead_times: Vec<LeadTimeSample>,
}

/// A deployment counted as a change failure, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeFailure {
    pub deployment: String,
    pub why: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LeadTime {
    pub samples: usize,
    pub median_seconds: Option<i64>,
    pub mean_seconds: Option<i64>,
    pub note: Option<String>,
}

/// Delivery metrics of one service (or of all).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Delivery {
    pub deployments: usize,
    pub deployments_per_week: f64,
    pub change_failures: Vec<ChangeFailure>,
    /// Failures / deployments; `None` without deployments.
    pub change_failure_rate: Option<f64>,
    pub incidents: usize,
    pub resolved: usize,
    /// Mean time to recover over the resolved incidents, seconds.
    pub mttr_seconds: Option<i64>,
    pub lead_time: LeadTime,
}

pub const NO_LEAD_TIMES: &str = "no pipeline-linked deployments recorded";

fn lead_time(samples: &[LeadTimeSample]) -> LeadTime {
    let mut v: Vec<i64> = samples.iter().map(|s| s.running_at - s.commit_at).filter(|d| *d >= 0).collect();
    if v.is_empty() {
        return LeadTime { samples: 0, median_seconds: None, mean_seconds: None, note: Some(NO_LEAD_TIMES.into()) };
    }
    v.sort_unstable();
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2 };
    LeadTime {
        samples: n,
        median_seconds: Some(median),
        mean_seconds: Some(v.iter().sum::<i64>() / n as i64),
        note: (n < samples.len())
            .then(|| format!("{} sample(s) with running before commit ignored", samples.len() - n)),
    }
}

/// Delivery metrics over `[start, end)`. A deployment is a change failure
/// when it failed, or when a rollback or an incident followed it within
/// `attribution_seconds` and before the next deployment started.
pub fn delivery(f: &DeliveryFacts, start: i64, end: i64, attribution_seconds: i64) -> Delivery {
    let mut deps: Vec<&DeploymentRecord> =
        f.deployments.iter().filter(|d| d.started_at >= start && d.started_at < end).collect();
    deps.sort_by_key(|d| (d.started_at, d.id.clone()));
    let mut failures = Vec::new();
    for (k, d) in deps.iter().enumerate() {
        let until = deps.get(k + 1).map(|n| n.started_at).unwrap_or(i64::MAX).min(d.started_at + attribution_seconds);
        let within = |t: i64| t >= d.started_at && t < until;
        let why = if d.failed {
            Some(format!("the deployment failed ({})", d.state))
        } else if let Some(r) = f.rollbacks.iter().find(|t| within(**t)) {
            Some(format!("rolled back {} after it started", crate::notify::render::human_duration(r - d.started_at)))
        } else {
            f.incidents.iter().find(|i| within(i.opened_at)).map(|i| {
                format!(
                    "incident {} opened {} after it started",
                    i.id,
                    crate::notify::render::human_duration(i.opened_at - d.started_at)
                )
            })
        };
        if let Some(why) = why {
            failures.push(ChangeFailure { deployment: d.id.clone(), why });
        }
    }
    let incidents: Vec<&IncidentLine> =
        f.incidents.iter().filter(|i| i.opened_at >= start && i.opened_at < end).collect();
    let ttrs: Vec<i64> = incidents.iter().filter_map(|i| i.ttr_seconds).collect();
    let weeks = (end - start) as f64 / WINDOW_SECONDS as f64;
    Delivery {
        deployments: deps.len(),
        deployments_per_week: if weeks > 0.0 { deps.len() as f64 / weeks } else { 0.0 },
        change_failure_rate: (!deps.is_empty()).then(|| failures.len() as f64 / deps.len() as f64),
        change_failures: failures,
        incidents: incidents.len(),
        resolved: ttrs.len(),
        mttr_seconds: (!ttrs.is_empty()).then(|| ttrs.iter().sum::<i64>() / ttrs.len() as i64),
        lead_time: lead_time(&f.lead_times),
    }
}

/// The delivery metrics of all services together (rates over the sums,
/// MTTR over every resolved incident, lead time over every sample).
pub fn overall(per_service: &[(&Delivery, &DeliveryFacts)], start: i64, end: i64) -> Delivery {
    let deployments: usize = per_service.iter().map(|(d, _)| d.deployments).sum();
    let failures: Vec<ChangeFailure> = per_service.iter().flat_map(|(d, _)| d.change_failures.clone()).collect();
    let ttrs: Vec<i64> = per_service
        .iter()
        .flat_map(|(_, f)| {
            f.incidents.iter().filter(|i| i.opened_at >= start && i.opened_at < end).filter_map(|i| i.ttr_seconds)
        })
        .collect();
    let samples: Vec<LeadTimeSample> = per_service.iter().flat_map(|(_, f)| f.lead_times.clone()).collect();
    let weeks = (end - start) as f64 / WINDOW_SECONDS as f64;
    Delivery {
        deployments,
        deployments_per_week: if weeks > 0.0 { deployments as f64 / weeks } else { 0.0 },
        change_failure_rate: (deployments > 0).then(|| failures.len() as f64 / deployments as f64),
        change_failures: failures,
        incidents: per_service.iter().map(|(d, _)| d.incidents).sum(),
        resolved: ttrs.len(),
        mttr_seconds: (!ttrs.is_empty()).then(|| ttrs.iter().sum::<i64>() / ttrs.len() as i64),
        lead_time: lead_time(&samples),
    }
}

// ---------------------------------------------------------------------------
// The report

/// One service's week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceWeek {
    /// The account and region it runs in (the function's own at home).
    pub account: Option<String>,
    pub region: String,
    /// `444455556666 us-east-1 ` for a member in a fleet report, empty at home.
    #[serde(skip)]
    pub label_prefix: String,
    pub cluster: String,
    pub service: String,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub recommendations: Vec<Recommendation>,
    pub recommendation_text: Vec<String>,
    pub task_size: Option<FargateSize>,
    pub running: i32,
    pub desired: i32,
    pub autoscaling: Option<Autoscaling>,
    pub hours_at_max: Option<usize>,
    pub at_max_note: Option<String>,
    pub cpu: Utilisation,
    pub memory: Utilisation,
    pub traffic: Vec<Traffic>,
    pub delivery: Delivery,
    pub deployments: Vec<DeploymentRecord>,
    /// What could not be read.
    pub unread: Vec<String>,
}

/// Everything read about one service, before it is judged.
#[derive(Debug, Clone, Default)]
pub struct WeekFacts {
    pub account: Option<String>,
    pub region: String,
    /// How the service's name is prefixed in a fleet report (`Scope::label_prefix`).
    pub label_prefix: String,
    pub cluster: String,
    pub service: String,
    pub capacity: CapacityFacts,
    pub metrics: ServiceMetrics,
    pub delivery: DeliveryFacts,
    pub unread: Vec<String>,
}

/// Judge one service's week.
pub fn judge(f: WeekFacts, start: i64, end: i64, attribution_seconds: i64) -> (ServiceWeek, DeliveryFacts) {
    let capacity = assess(&f.metrics, &f.capacity);
    let d = delivery(&f.delivery, start, end, attribution_seconds);
    let mut deployments: Vec<DeploymentRecord> =
        f.delivery.deployments.iter().filter(|d| d.started_at >= start && d.started_at < end).cloned().collect();
    deployments.sort_by_key(|d| d.started_at);
    let week = ServiceWeek {
        account: f.account,
        region: f.region,
        label_prefix: f.label_prefix,
        cluster: f.cluster,
        service: f.service,
        verdict: capacity.verdict,
        reasons: capacity.reasons,
        recommendation_text: capacity.recommendations.iter().map(Recommendation::text).collect(),
        recommendations: capacity.recommendations,
        task_size: f.capacity.size,
        running: f.capacity.running,
        desired: f.capacity.desired,
        autoscaling: f.capacity.autoscaling,
        hours_at_max: capacity.hours_at_max,
        at_max_note: capacity.at_max_note,
        cpu: f.metrics.cpu,
        memory: f.metrics.memory,
        traffic: f.metrics.traffic,
        delivery: d,
        deployments,
        unread: f.unread,
    };
    (week, f.delivery)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeeklyReport {
    /// ISO week, `2026-W49`.
    pub week: String,
    pub window_start: String,
    pub window_end: String,
    pub generated_at: String,
    pub services: Vec<ServiceWeek>,
    pub scale_up: Vec<String>,
    pub right_size: Vec<String>,
    pub delivery: Delivery,
    /// `GetMetricData` calls the review made, and queries in them.
    pub metric_calls: usize,
    pub metric_queries: usize,
    /// Reads that failed for the whole report (not one service).
    pub unread: Vec<String>,
    #[serde(skip)]
    pub window: (i64, i64),
    /// One section per account and region of the run, home first.
    pub accounts: Vec<AccountWeek>,
    /// The accounts and regions this run was restricted to, when it was.
    pub shard: Option<crate::trigger::Shard>,
}

/// One account and region's part of the weekly review.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AccountWeek {
    #[serde(flatten)]
    pub scope: crate::reports::fleet::AccountScope,
    pub services: usize,
    pub scale_up: usize,
    pub right_size: usize,
    pub deployments: usize,
    pub incidents: usize,
}

impl WeeklyReport {
    /// Whether the review speaks of accounts (see `DailyReport::is_fleet`).
    pub fn is_fleet(&self) -> bool {
        self.accounts.len() > 1 || self.accounts.iter().any(|a| !a.scope.home || a.scope.failure.is_some())
    }

    /// Add one section per account and region of the run (`runs`, home
    /// first), each with its own figures and failure.
    pub fn with_accounts(
        mut self,
        runs: Vec<crate::reports::fleet::ScopeRun>,
        shard: Option<crate::trigger::Shard>,
    ) -> Self {
        self.accounts = runs
            .into_iter()
            .map(|run| {
                let mut a = AccountWeek { scope: run.section(), ..Default::default() };
                for s in self.services.iter().filter(|s| run.holds(s.account.as_deref(), &s.region)) {
                    a.services += 1;
                    a.scale_up += usize::from(s.verdict == Verdict::ScaleUp);
                    a.right_size += usize::from(s.verdict == Verdict::RightSize);
                    a.deployments += s.delivery.deployments;
                    a.incidents += s.delivery.incidents;
                }
                a
            })
            .collect();
        if self.is_fleet() {
            // Candidates named with their account and region.
            let names = |v: Verdict| -> Vec<String> {
                self.services
                    .iter()
                    .filter(|s| s.verdict == v)
                    .map(|s| format!("{}{}/{}", s.label_prefix, s.cluster, s.service))
                    .collect()
            };
            self.scale_up = names(Verdict::ScaleUp);
            self.right_size = names(Verdict::RightSize);
        }
        self.shard = shard;
        self
    }
}

fn account_week_line(a: &AccountWeek) -> String {
    match &a.scope.failure {
        Some(why) if a.services == 0 => format!("{}: NOT REPORTED - {why}", a.scope.label),
        failure => {
            let mut line = format!(
                "{}: {} services - {} scale-up, {} right-size, {} deployments, {} incidents",
                a.scope.label, a.services, a.scale_up, a.right_size, a.deployments, a.incidents
            );
            if let Some(why) = failure {
                line.push_str(&format!("; PARTLY READ - {why}"));
            }
            if !a.scope.clusters_absent.is_empty() {
                line.push_str(&format!("; no cluster {} there", a.scope.clusters_absent.join(", ")));
            }
            line
        }
    }
}

/// The header of a report: its week and window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportWindow {
    pub week: String,
    pub start: i64,
    pub end: i64,
    pub generated_at: String,
}

fn iso(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default()
}

/// The report over all services: scale-up candidates first, then
/// right-size candidates, then the rest, by name.
pub fn build(
    w: &ReportWindow,
    judged: Vec<(ServiceWeek, DeliveryFacts)>,
    metric_calls: usize,
    metric_queries: usize,
    unread: Vec<String>,
) -> WeeklyReport {
    let overall_delivery = {
        let pairs: Vec<(&Delivery, &DeliveryFacts)> = judged.iter().map(|(s, f)| (&s.delivery, f)).collect();
        overall(&pairs, w.start, w.end)
    };
    let mut services: Vec<ServiceWeek> = judged.into_iter().map(|(s, _)| s).collect();
    services.sort_by(|a, b| {
        a.verdict.cmp(&b.verdict).then_with(|| {
            (&a.cluster, &a.service, &a.account, &a.region).cmp(&(&b.cluster, &b.service, &b.account, &b.region))
        })
    });
    let names = |v: Verdict| -> Vec<String> {
        services.iter().filter(|s| s.verdict == v).map(|s| format!("{}/{}", s.cluster, s.service)).collect()
    };
    WeeklyReport {
        week: w.week.clone(),
        window_start: iso(w.start),
        window_end: iso(w.end),
        generated_at: w.generated_at.clone(),
        scale_up: names(Verdict::ScaleUp),
        right_size: names(Verdict::RightSize),
        services,
        delivery: overall_delivery,
        metric_calls,
        metric_queries,
        unread,
        window: (w.start, w.end),
        accounts: Vec::new(),
        shard: None,
    }
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1} %")).unwrap_or_else(|| "-".into())
}

fn rate(v: Option<f64>) -> String {
    v.map(|x| format!("{:.0} %", x * 100.0)).unwrap_or_else(|| "-".into())
}

fn dur(v: Option<i64>) -> String {
    v.map(crate::notify::render::human_duration).unwrap_or_else(|| "-".into())
}

fn signed(v: Option<f64>) -> String {
    v.map(|x| format!("{x:+.0} %")).unwrap_or_else(|| "-".into())
}

fn lead_text(l: &LeadTime) -> String {
    match (l.median_seconds, &l.note) {
        (Some(m), _) => format!("median {} over {} deployment(s)", crate::notify::render::human_duration(m), l.samples),
        (None, Some(n)) => n.clone(),
        (None, None) => "-".into(),
    }
}

/// The SNS summary: candidates with their recommendations, delivery
/// metrics, and where the full report is, each link with how long it opens
/// ([`crate::reports::daily::links_section`]; our links leave unredacted).
pub fn summary(r: &WeeklyReport, objects: &[ReportObject], kept_at: &str) -> (String, Outgoing) {
    let d = &r.delivery;
    let fleet = r.is_fleet();
    let failed = r.accounts.iter().filter(|a| a.scope.failure.is_some()).count();
    let subject = if fleet {
        format!(
            "[WEEKLY] {}: {} services, {} accounts - {} scale-up, {} right-size{}",
            r.week,
            r.services.len(),
            r.accounts.len(),
            r.scale_up.len(),
            r.right_size.len(),
            if failed > 0 { format!(", {failed} failed") } else { String::new() }
        )
    } else {
        format!(
            "[WEEKLY] {}: {} services - {} scale-up, {} right-size, change failure rate {}",
            r.week,
            r.services.len(),
            r.scale_up.len(),
            r.right_size.len(),
            rate(d.change_failure_rate)
        )
    };
    let mut b = String::new();
    b.push_str(&format!("WEEKLY CAPACITY REVIEW - {} ({} to {})\n\n", r.week, r.window_start, r.window_end));
    b.push_str(&format!(
        "{} services: {} scale-up candidate(s), {} right-size candidate(s)\n",
        r.services.len(),
        r.scale_up.len(),
        r.right_size.len()
    ));
    b.push_str(&format!(
        "Delivery: {} deployments, change failure rate {}, {} incidents, mean time to recover {}, lead time {}\n\n",
        d.deployments,
        rate(d.change_failure_rate),
        d.incidents,
        dur(d.mttr_seconds),
        lead_text(&d.lead_time)
    ));
    if fleet {
        b.push_str(&format!("Per account ({} account/region(s), {failed} failed):\n", r.accounts.len()));
        for a in &r.accounts {
            b.push_str(&format!("- {}\n", account_week_line(a)));
        }
        b.push('\n');
    }
    let mut omitted = 0;
    for s in &r.services {
        let recs = if s.recommendation_text.is_empty() {
            String::new()
        } else {
            format!(" -> {}", s.recommendation_text.join("; "))
        };
        let mut line = format!(
            "{:10} {}{}/{}: CPU avg {} peak {}, memory avg {} peak {}, {} deployments{recs}\n",
            s.verdict.label().to_ascii_uppercase(),
            if fleet { s.label_prefix.as_str() } else { "" },
            s.cluster,
            s.service,
            pct(s.cpu.average),
            pct(s.cpu.peak),
            pct(s.memory.average),
            pct(s.memory.peak),
            s.delivery.deployments
        );
        if !s.unread.is_empty() {
            line.push_str(&format!("           not read: {}\n", s.unread.join("; ")));
        }
        crate::reports::daily::push_within(&mut b, &line, &mut omitted);
    }
    crate::reports::daily::omitted_note(&mut b, omitted);
    if !r.unread.is_empty() {
        b.push_str(&format!("\nNot read: {}\n", r.unread.join("; ")));
    }
    b.push('\n');
    let mut body = Outgoing::new();
    body.text(b);
    crate::reports::daily::links_section(&mut body, objects, kept_at);
    (subject, body)
}

// ---------------------------------------------------------------------------
// Charts (inline SVG)

/// One line of a chart.
pub struct Line<'a> {
    pub label: &'a str,
    pub color: (u8, u8, u8),
    pub points: &'a [(i64, f64)],
    pub dashed: bool,
}

/// A line chart over the window as an SVG element (no script, no external
/// reference); x is time (day ticks), y starts at 0. A chart that cannot be
/// drawn becomes a sentence saying so.
pub fn line_chart(title: &str, y_label: &str, window: (i64, i64), y_max: Option<f64>, lines: &[Line<'_>]) -> String {
    let top = y_max.unwrap_or_else(|| {
        let m = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(0.0, f64::max);
        if m <= 0.0 { 1.0 } else { m * 1.15 }
    });
    let mut svg = String::new();
    let drawn = draw_lines(&mut svg, title, y_label, window, top, lines);
    match drawn {
        Ok(()) => svg,
        Err(e) => format!("<p class=\"unread\">chart not drawn: {}</p>", maud::html! { (e.to_string()) }.into_string()),
    }
}

fn draw_lines(
    svg: &mut String,
    title: &str,
    y_label: &str,
    window: (i64, i64),
    top: f64,
    lines: &[Line<'_>],
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let (start, end) = window;
    {
        let root = SVGBackend::with_string(svg, (760, 260)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..((end - start) as f64 / HOUR as f64), 0f64..top)?;
        let day_label = |x: &f64| {
            chrono::DateTime::from_timestamp(start + (*x * HOUR as f64) as i64, 0)
                .map(|d| d.format("%a %d").to_string())
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .x_labels(8)
            .x_label_formatter(&day_label)
            .y_desc(y_label)
            .y_label_formatter(&|v: &f64| format!("{v:.0}"))
            .max_light_lines(0)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()?;
        for l in lines {
            let color = RGBColor(l.color.0, l.color.1, l.color.2);
            let pts: Vec<(f64, f64)> =
                l.points.iter().map(|(t, v)| ((t - start) as f64 / HOUR as f64, *v)).filter(|p| p.0 >= 0.0).collect();
            let style =
                ShapeStyle { color: color.to_rgba(), filled: false, stroke_width: if l.dashed { 1 } else { 2 } };
            if l.dashed {
                // A dashed horizontal rule (thresholds): short segments.
                let y = pts.first().map(|p| p.1).unwrap_or_default();
                let len = (end - start) as f64 / HOUR as f64;
                let segments: Vec<PathElement<(f64, f64)>> = (0..((len / 4.0) as usize))
                    .step_by(2)
                    .map(|k| PathElement::new(vec![(k as f64 * 4.0, y), ((k as f64 * 4.0 + 4.0).min(len), y)], style))
                    .collect();
                chart.draw_series(segments)?;
            } else {
                chart.draw_series(LineSeries::new(pts, style))?;
            }
        }
        // The legend is HTML under the chart (`legend`): drawn inside the
        // plot it covered the lines it names.
        root.present()?;
        Ok(())
    }
}

/// Apply `scrub` (the redactor) to the human-readable text of a page:
/// everything outside inline `<svg>` charts, and inside them the `<text>`
/// contents (titles, labels). The charts' geometry — most of a large page —
/// is numbers drawn from numbers and is passed over, which keeps redacting
/// a week of 1,000 services to seconds.
pub fn scrub_page(page: &str, scrub: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(page.len());
    let mut rest = page;
    while let Some(open) = rest.find("<svg") {
        out.push_str(&scrub(&rest[..open]));
        let Some(close) = rest[open..].find("</svg>").map(|c| open + c + "</svg>".len()) else {
            // An unclosed chart: scrub all of it.
            out.push_str(&scrub(&rest[open..]));
            return out;
        };
        let mut svg = &rest[open..close];
        while let Some(t) = svg.find("<text") {
            let Some(start) = svg[t..].find('>').map(|g| t + g + 1) else { break };
            let Some(end) = svg[start..].find("</text>").map(|e| start + e) else { break };
            out.push_str(&svg[..start]);
            out.push_str(&scrub(&svg[start..end]));
            svg = &svg[end..];
        }
        out.push_str(svg);
        rest = &rest[close..];
    }
    out.push_str(&scrub(rest));
    out
}

/// The chart's legend, as HTML under it: a coloured rule and the label per line.
fn legend(lines: &[Line<'_>]) -> Markup {
    maud_html! {
        p.legend {
            @for l in lines {
                span.key {
                    span.swatch style=(format!("border-top:{}px {} #{:02x}{:02x}{:02x}", if l.dashed { 2 } else { 3 }, if l.dashed { "dashed" } else { "solid" }, l.color.0, l.color.1, l.color.2)) {}
                    (l.label)
                }
            }
        }
    }
}

/// A chart with its legend.
fn chart_with_legend(title: &str, y_label: &str, window: (i64, i64), y_max: Option<f64>, lines: &[Line<'_>]) -> String {
    format!("{}{}", line_chart(title, y_label, window, y_max, lines), legend(lines).into_string())
}

fn utilisation_chart(s: &ServiceWeek, window: (i64, i64)) -> String {
    let threshold = [(window.0, HIGH_UTILISATION), (window.1, HIGH_UTILISATION)];
    chart_with_legend(
        &format!("{}/{}: CPU and memory, hourly average", s.cluster, s.service),
        "%",
        window,
        Some(100.0),
        &[
            Line { label: "CPU average", color: (31, 119, 180), points: &s.cpu.hourly_average, dashed: false },
            Line { label: "memory average", color: (214, 39, 40), points: &s.memory.hourly_average, dashed: false },
            Line { label: "70 % (scale-up threshold)", color: (120, 120, 120), points: &threshold, dashed: true },
        ],
    )
}

fn traffic_charts(t: &Traffic, window: (i64, i64)) -> (String, String) {
    let requests = chart_with_legend(
        &format!("{}: requests per hour", t.target_group),
        "requests",
        window,
        None,
        &[Line { label: "RequestCount (Sum)", color: (44, 160, 44), points: &t.requests_hourly, dashed: false }],
    );
    let (label, daily) = if t.latency_p95_ms_daily.is_empty() {
        ("TargetResponseTime average per day (p95 not returned)", &t.latency_avg_ms_daily)
    } else {
        ("TargetResponseTime p95 per day", &t.latency_p95_ms_daily)
    };
    // A day's figure is drawn at its middle.
    let points: Vec<(i64, f64)> = daily.iter().map(|(d, v)| (d + DAY / 2, *v)).collect();
    let latency = chart_with_legend(
        &format!("{}: latency by day", t.target_group),
        "ms",
        window,
        None,
        &[Line { label, color: (148, 103, 189), points: &points, dashed: false }],
    );
    (requests, latency)
}

fn when(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

fn class_of(v: Verdict) -> &'static str {
    match v {
        Verdict::ScaleUp => "scale-up",
        Verdict::RightSize => "right-size",
        Verdict::Fine => "fine",
        Verdict::NoData => "no-data",
    }
}

fn util_row(name: &str, u: &Utilisation) -> Markup {
    maud_html! {
        tr {
            th { (name) }
            td.num { (pct(u.average)) }
            td.num { @if u.p95.is_some() { (pct(u.p95)) } @else { span.unread { "not returned" } } }
            td.num { (pct(u.maximum)) }
            td.num { (u.hours_high) " / " (u.hours_with_data) }
        }
    }
}

/// The self-contained HTML page (maud escapes every value; the charts are
/// inline SVG from plotters, which escapes its text).
pub fn html(r: &WeeklyReport) -> String {
    let d = &r.delivery;
    let page: Markup = maud_html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Weekly capacity review " (r.week) }
                style { (STYLE) }
            }
            body {
                h1 { "Weekly capacity review — " (r.week) }
                p.meta { (r.window_start) " to " (r.window_end) ", generated " (r.generated_at) ". "
                    (r.metric_queries) " metric queries in " (r.metric_calls) " GetMetricData call(s)." }
                h2 { "Summary" }
                table.totals {
                    tr { th { "services" } th { "scale-up candidates" } th { "right-size candidates" } th { "deployments" } th { "per week" } th { "change failure rate" } th { "incidents" } th { "mean time to recover" } th { "lead time (commit to running)" } }
                    tr {
                        td.num { (r.services.len()) } td.num.hot { (r.scale_up.len()) } td.num.cool { (r.right_size.len()) }
                        td.num { (d.deployments) } td.num { (format!("{:.1}", d.deployments_per_week)) }
                        td.num { (rate(d.change_failure_rate)) } td.num { (d.incidents) }
                        td.num { (dur(d.mttr_seconds)) } td { (lead_text(&d.lead_time)) }
                    }
                }
                @if !r.unread.is_empty() { p.unread { "Not read: " (r.unread.join("; ")) } }
                @if r.is_fleet() {
                    h2 { "Accounts" }
                    table.accounts {
                        tr { th { "account" } th { "region" } th { "services" } th { "scale-up" } th { "right-size" } th { "deployments" } th { "incidents" } th { "not reported" } }
                        @for a in &r.accounts {
                            tr {
                                td { (a.scope.account.as_deref().unwrap_or("-")) @if a.scope.home { " (home)" } } td { (a.scope.region) }
                                td.num { (a.services) } td.num.hot { (a.scale_up) } td.num.cool { (a.right_size) }
                                td.num { (a.deployments) } td.num { (a.incidents) }
                                td.failure { (a.scope.failure.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                    ul { @for a in &r.accounts { li { (account_week_line(a)) } } }
                }
                h2 { "Recommendations" }
                @if r.services.iter().all(|s| s.recommendations.is_empty()) {
                    p { "No service needs a change." }
                } @else {
                    table {
                        tr { th { "service" } th { "verdict" } th { "why" } th { "recommendation" } }
                        @for s in r.services.iter().filter(|s| !s.recommendations.is_empty()) {
                            tr class=(class_of(s.verdict)) {
                                td { code { (s.label_prefix) (s.cluster) "/" (s.service) } }
                                td { span.badge { (s.verdict.label()) } }
                                td { (s.reasons.join("; ")) }
                                td { strong { (s.recommendation_text.join("; ")) } }
                            }
                        }
                    }
                }
                @for s in &r.services {
                    section class=(class_of(s.verdict)) {
                        h2 { span.badge { (s.verdict.label()) } " " (s.label_prefix) (s.cluster) "/" (s.service) }
                        @if !s.reasons.is_empty() { ul.reasons { @for why in &s.reasons { li { (why) } } } }
                        @if !s.recommendation_text.is_empty() { p.rec { "Recommendation: " strong { (s.recommendation_text.join("; ")) } } }
                        p {
                            (s.running) " running / " (s.desired) " desired"
                            @if let Some(size) = s.task_size { " — task size " (size_label(size)) " (" (size.cpu) " CPU units / " (size.memory) " MiB)" }
                            @if let Some(a) = s.autoscaling { " — autoscaling " (a.min) " to " (a.max) " tasks" } @else { " — no autoscaling target" }
                            @if let Some(h) = s.hours_at_max { " — " (h) " h at the maximum" }
                        }
                        @if let Some(n) = &s.at_max_note { p.note { (n) } }
                        h3 { "Utilisation (7 days)" }
                        table.util {
                            tr { th { "" } th { "average" } th { "p95" } th { "maximum" } th { "hours ≥ 70 %" } }
                            (util_row("CPU", &s.cpu))
                            (util_row("memory", &s.memory))
                        }
                        @for n in s.cpu.notes.iter().map(|n| format!("CPU: {n}")).chain(s.memory.notes.iter().map(|n| format!("memory: {n}"))) { p.note { (n) } }
                        @if !s.cpu.hourly_average.is_empty() || !s.memory.hourly_average.is_empty() {
                            div.chart { (PreEscaped(utilisation_chart(s, r.window))) }
                        }
                        @for t in &s.traffic {
                            h3 { "Target group " code { (t.target_group) } @if let Some(lb) = &t.load_balancer { " behind " code { (lb) } } }
                            @if t.load_balancer.is_some() {
                                table {
                                    tr { th { "requests (7 days)" } th { "trend (2nd half vs 1st)" } th { "latency p95, last day" } th { "latency average, last day" } th { "latency trend" } }
                                    tr {
                                        td.num { (t.requests_total.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into())) }
                                        td.num { (signed(t.requests_trend_pct)) }
                                        td.num { (t.latency_p95_ms_daily.last().map(|v| format!("{:.0} ms", v.1)).unwrap_or_else(|| "not returned".into())) }
                                        td.num { (t.latency_avg_ms_daily.last().map(|v| format!("{:.0} ms", v.1)).unwrap_or_else(|| "-".into())) }
                                        td.num { (signed(t.latency_trend_pct)) }
                                    }
                                }
                                @if !t.requests_daily.is_empty() {
                                    table.days {
                                        tr { th { "day" } @for (day, _) in &t.requests_daily { th { (chrono::DateTime::from_timestamp(*day, 0).map(|x| x.format("%a %d").to_string()).unwrap_or_default()) } } }
                                        tr { th { "requests" } @for (_, n) in &t.requests_daily { td.num { (format!("{n:.0}")) } } }
                                    }
                                }
                                @if !t.requests_hourly.is_empty() || !t.latency_avg_ms_daily.is_empty() || !t.latency_p95_ms_daily.is_empty() {
                                    @let (req, lat) = traffic_charts(t, r.window);
                                    div.chart { (PreEscaped(req)) }
                                    div.chart { (PreEscaped(lat)) }
                                }
                            }
                            @for n in &t.notes { p.note { (n) } }
                        }
                        h3 { "Delivery" }
                        table {
                            tr { th { "deployments" } th { "change failure rate" } th { "incidents (resolved)" } th { "mean time to recover" } th { "lead time" } }
                            tr {
                                td.num { (s.delivery.deployments) }
                                td.num { (rate(s.delivery.change_failure_rate)) @if s.delivery.deployments > 0 { " (" (s.delivery.change_failures.len()) ")" } }
                                td.num { (s.delivery.incidents) " (" (s.delivery.resolved) ")" }
                                td.num { (dur(s.delivery.mttr_seconds)) }
                                td { (lead_text(&s.delivery.lead_time)) }
                            }
                        }
                        @if !s.deployments.is_empty() {
                            table {
                                tr { th { "deployment" } th { "started" } th { "last state" } th { "change failure" } }
                                @for dep in &s.deployments {
                                    tr {
                                        td { code { (dep.id) } } td { (when(dep.started_at)) } td { (dep.state) }
                                        td { (s.delivery.change_failures.iter().find(|f| f.deployment == dep.id).map(|f| f.why.clone()).unwrap_or_else(|| "-".into())) }
                                    }
                                }
                            }
                        }
                        @if !s.unread.is_empty() { p.unread { "Not read: " (s.unread.join("; ")) } }
                    }
                }
            }
        }
    };
    page.into_string()
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}h1{font-size:1.5em}\
h2{font-size:1.2em;margin-top:1.2em}h3{font-size:1em;margin:.8em 0 .3em}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f5f5f5}\
section{border-left:6px solid #9c9;padding:.25em 1em;margin:1.2em 0}section.scale-up{border-color:#d62728}\
section.right-size{border-color:#1f77b4}section.no-data{border-color:#999}\
tr.scale-up td:first-child{border-left:4px solid #d62728}tr.right-size td:first-child{border-left:4px solid #1f77b4}\
.badge{font-size:.8em;padding:.1em .4em;background:#eee;text-transform:uppercase;white-space:nowrap}\
.legend{margin:.1em 0 .8em;font-size:.9em;color:#333}.key{margin-right:1.5em;white-space:nowrap}\
.swatch{display:inline-block;width:2em;margin-right:.4em;vertical-align:middle}\
.hot{color:#d62728}.cool{color:#1f77b4}.unread{color:#777}.note{color:#555;font-size:.9em;margin:.2em 0}.meta{color:#555}\
.chart svg{max-width:100%;height:auto}.rec{background:#fff8e1;padding:.3em .5em}.failure{color:#d62728}";

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_000_000 - 1_795_000_000 % HOUR;
    const T1: i64 = T0 + WINDOW_SECONDS;

    fn hourly(f: impl Fn(usize) -> f64) -> Vec<(i64, f64)> {
        (0..168).map(|h| (T0 + h as i64 * HOUR, f(h))).collect()
    }

    fn util(avg: Vec<(i64, f64)>, p95: Option<f64>) -> Utilisation {
        let mut a = MetricAnswers::default();
        a.values.insert(query_id(0, Q::CpuAvg), avg.clone());
        a.values.insert(query_id(0, Q::CpuMax), avg.iter().map(|(t, v)| (*t, v + 5.0)).collect());
        if let Some(p) = p95 {
            a.values.insert(query_id(0, Q::CpuP95), vec![(T0, p)]);
        }
        utilisation(&a, 0, Q::CpuAvg, Q::CpuMax, Q::CpuP95, "CPUUtilization", &mut Vec::new())
    }

    fn metrics(cpu: Utilisation, memory: Utilisation) -> ServiceMetrics {
        ServiceMetrics { cpu, memory, ..Default::default() }
    }

    fn size(cpu: u32, memory: u32) -> FargateSize {
        FargateSize { cpu, memory }
    }

    #[test]
    fn the_fargate_table_holds_exactly_the_documented_combinations() {
        let all = fargate_sizes();
        let of = |cpu| all.iter().filter(|s| s.cpu == cpu).map(|s| s.memory).collect::<Vec<_>>();
        assert_eq!(of(256), vec![512, 1024, 2048]);
        assert_eq!(of(512), vec![1024, 2048, 3072, 4096]);
        assert_eq!(of(1024), (2..=8).map(|g| g * 1024).collect::<Vec<_>>());
        assert_eq!(of(2048), (4..=16).map(|g| g * 1024).collect::<Vec<_>>());
        assert_eq!(of(4096), (8..=30).map(|g| g * 1024).collect::<Vec<_>>());
        assert_eq!(of(8192), (16..=60).step_by(4).map(|g| g * 1024).collect::<Vec<_>>());
        assert_eq!(of(16384), (32..=120).step_by(8).map(|g| g * 1024).collect::<Vec<_>>());
        for bad in [
            size(256, 3072),
            size(512, 512),
            size(1024, 9216),
            size(4096, 31744),
            size(8192, 18432),
            size(16384, 36864),
            size(768, 2048),
        ] {
            assert!(!is_valid_fargate(bad), "{bad:?}");
        }
        assert!(all.iter().all(|s| is_valid_fargate(*s)));
    }

    #[test]
    fn the_cheapest_fitting_size_is_valid_and_covers_the_need() {
        assert_eq!(cheapest_fitting(100.0, 300.0), Some(size(256, 512)));
        assert_eq!(cheapest_fitting(300.0, 600.0), Some(size(512, 1024)));
        // Memory-heavy: 256 CPU cannot take 3 GB, so 512 / 3 GB.
        assert_eq!(cheapest_fitting(200.0, 2500.0), Some(size(512, 3072)));
        // Between the 4096 and 8192 steps: 8192 / 32 GB (4 GB steps).
        assert_eq!(cheapest_fitting(5000.0, 30000.0), Some(size(8192, 32768)));
        assert_eq!(cheapest_fitting(20000.0, 1000.0), None);
        for (c, m) in [(10.0, 10.0), (1500.0, 1000.0), (3000.0, 20000.0), (9000.0, 70000.0)] {
            let s = cheapest_fitting(c, m).expect("fits");
            assert!(is_valid_fargate(s) && s.cpu as f64 >= c && s.memory as f64 >= m, "{s:?}");
        }
    }

    #[test]
    fn task_sizes_parse_in_both_of_ecs_notations() {
        assert_eq!(parse_cpu("512"), Some(512));
        assert_eq!(parse_cpu("0.5 vCPU"), Some(512));
        assert_eq!(parse_cpu("2 vcpu"), Some(2048));
        assert_eq!(parse_memory("1024"), Some(1024));
        assert_eq!(parse_memory("2 GB"), Some(2048));
        assert_eq!(parse_memory("0.5GB"), Some(512));
        assert_eq!(parse_cpu("lots"), None);
        assert_eq!(parse_memory("0"), None);
    }

    #[test]
    fn when_cpu_is_high_most_hours_the_service_is_a_scale_up_candidate_with_a_task_count() {
        let cpu = util(hourly(|h| if h % 2 == 0 { 80.0 } else { 60.0 }), Some(85.0));
        let mem = util(hourly(|_| 40.0), Some(45.0));
        let c = assess(
            &metrics(cpu, mem),
            &CapacityFacts { size: Some(size(512, 1024)), running: 4, desired: 4, autoscaling: None },
        );
        assert_eq!(c.verdict, Verdict::ScaleUp);
        // ceil(4 × 85 / 60) = 6
        assert_eq!(c.recommendations, vec![Recommendation::TaskCount { from: 4, to: 6 }]);
        assert!(c.reasons[0].contains("84 of 168 hours"), "{:?}", c.reasons);
    }

    #[test]
    fn a_service_that_sat_at_its_autoscaling_maximum_gets_a_higher_maximum() {
        let cpu = util(hourly(|_| 75.0), Some(90.0));
        let mem = util(hourly(|_| 20.0), Some(25.0));
        let mut m = metrics(cpu, mem);
        m.running_hourly_min = hourly(|h| if h >= 100 { 5.0 } else { 3.0 });
        let facts = CapacityFacts {
            size: Some(size(1024, 2048)),
            running: 5,
            desired: 5,
            autoscaling: Some(Autoscaling { min: 2, max: 5 }),
        };
        let c = assess(&m, &facts);
        assert_eq!(c.hours_at_max, Some(68));
        assert_eq!(c.recommendations, vec![Recommendation::AutoscalingMax { from: 5, to: 8 }]);
        assert!(c.reasons.iter().any(|r| r.contains("for 68 h")), "{:?}", c.reasons);
    }

    #[test]
    fn memory_pressure_alone_asks_for_a_valid_size_with_more_memory() {
        let cpu = util(hourly(|_| 20.0), Some(30.0));
        let mem = util(hourly(|_| 85.0), Some(90.0));
        let c = assess(
            &metrics(cpu, mem),
            &CapacityFacts { size: Some(size(512, 1024)), running: 2, desired: 2, autoscaling: None },
        );
        assert_eq!(c.verdict, Verdict::ScaleUp);
        // 1024 × 90 / 60 = 1536 MiB → 512 / 2 GB.
        assert_eq!(c.recommendations, vec![Recommendation::FargateSize { from: size(512, 1024), to: size(512, 2048) }]);
    }

    #[test]
    fn memory_pressure_beyond_what_the_cpu_size_allows_moves_to_the_next_valid_cpu() {
        let cpu = util(hourly(|_| 20.0), Some(30.0));
        let mem = util(hourly(|_| 85.0), Some(90.0));
        let facts = CapacityFacts { size: Some(size(256, 2048)), running: 2, desired: 2, autoscaling: None };
        let c = assess(&metrics(cpu, mem), &facts);
        // 2048 × 90 / 60 = 3072 MiB: 256 CPU units take at most 2 GB, so 512 / 3 GB.
        assert_eq!(c.recommendations, vec![Recommendation::FargateSize { from: size(256, 2048), to: size(512, 3072) }]);
    }

    #[test]
    fn an_idle_service_is_right_sized_to_a_smaller_valid_fargate_size() {
        let cpu = util(hourly(|_| 5.0), Some(10.0));
        let mem = util(hourly(|_| 15.0), Some(20.0));
        let c = assess(
            &metrics(cpu, mem),
            &CapacityFacts { size: Some(size(2048, 8192)), running: 3, desired: 3, autoscaling: None },
        );
        assert_eq!(c.verdict, Verdict::RightSize);
        // need 2048 × 10/60 = 341 units, 8192 × 20/60 = 2731 MiB → 512 / 3 GB.
        let Recommendation::FargateSize { to, .. } = c.recommendations[0] else { panic!("{:?}", c.recommendations) };
        assert_eq!(to, size(512, 3072));
        assert!(is_valid_fargate(to));
    }

    #[test]
    fn a_smallest_size_service_that_is_idle_is_right_sized_by_task_count_keeping_two() {
        let cpu = util(hourly(|_| 3.0), Some(6.0));
        let mem = util(hourly(|_| 10.0), Some(12.0));
        let c = assess(
            &metrics(cpu, mem),
            &CapacityFacts { size: Some(size(256, 512)), running: 6, desired: 6, autoscaling: None },
        );
        assert_eq!(c.verdict, Verdict::RightSize);
        assert_eq!(c.recommendations, vec![Recommendation::TaskCount { from: 6, to: 2 }]);
    }

    #[test]
    fn when_cloudwatch_returns_no_p95_the_maximum_is_the_peak_and_the_report_says_so() {
        let u = util(hourly(|h| h as f64 / 4.0), None);
        assert_eq!(u.p95, None);
        assert_eq!(u.peak_stat.as_deref(), Some("Maximum"));
        assert_eq!(u.peak, Some(167.0 / 4.0 + 5.0));
        assert!(u.notes.iter().any(|n| n.contains("no p95")), "{:?}", u.notes);
        let with = util(hourly(|_| 10.0), Some(12.5));
        assert_eq!((with.peak, with.peak_stat.as_deref()), (Some(12.5), Some("p95")));
        // A failed percentile call degrades to the maximum as well.
        let mut a = MetricAnswers::default();
        a.values.insert(query_id(0, Q::CpuAvg), hourly(|_| 10.0));
        a.values.insert(query_id(0, Q::CpuMax), hourly(|_| 20.0));
        a.failed.insert(query_id(0, Q::CpuP95), "cloudwatch GetMetricData: 500".into());
        let mut unread = Vec::new();
        let u = utilisation(&a, 0, Q::CpuAvg, Q::CpuMax, Q::CpuP95, "CPUUtilization", &mut unread);
        assert_eq!((u.peak, unread.len()), (Some(20.0), 0));
        assert!(u.notes[0].contains("p95 not read"), "{:?}", u.notes);
    }

    #[test]
    fn without_datapoints_nothing_is_judged_and_a_failed_read_is_named() {
        let mut unread = Vec::new();
        let mut a = MetricAnswers::default();
        a.failed.insert(query_id(0, Q::CpuAvg), "throttled".into());
        let s = ServiceRef { cluster: "c".into(), service: "s".into(), targets: vec![] };
        let m = service_metrics(0, &s, &a, (T0, T1), &mut unread);
        assert!(unread.iter().any(|u| u.contains("CPUUtilization average: throttled")), "{unread:?}");
        assert_eq!(assess(&m, &CapacityFacts::default()).verdict, Verdict::NoData);
    }

    #[test]
    fn queries_are_batched_across_services_up_to_five_hundred_with_percentiles_apart() {
        let services: Vec<ServiceRef> = (0..100)
            .map(|i| ServiceRef {
                cluster: "prod".into(),
                service: format!("svc{i}"),
                targets: vec![LoadBalancedTarget {
                    target_group: format!("targetgroup/t{i}/1"),
                    load_balancer: Some("app/lb/2".into()),
                }],
            })
            .collect();
        let batches = plan_queries(&services, WINDOW_SECONDS);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        // 7 plain queries per service (5 ECS + 2 ALB) and 3 percentile ones.
        assert_eq!(sizes, vec![497, 203, 300]);
        assert!(batches.iter().all(|b| b.iter().all(|q| q.is_percentile()) || b.iter().all(|q| !q.is_percentile())));
        let mut ids: Vec<&str> = batches.iter().flatten().map(|q| q.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 1000, "ids are unique");
        assert!(ids.iter().all(|i| i.starts_with(|c: char| c.is_ascii_lowercase())));
        assert_eq!(plan_queries(&services[..1], WINDOW_SECONDS).len(), 2, "one service: one call of each kind");
        let alb = batches[0].iter().find(|q| q.metric == "RequestCount").expect("ALB query");
        assert_eq!(
            alb.dimensions,
            vec![("TargetGroup".into(), "targetgroup/t0/1".into()), ("LoadBalancer".into(), "app/lb/2".into())]
        );
    }

    #[test]
    fn alb_dimensions_come_from_the_arns() {
        let t = LoadBalancedTarget::from_arns(
            "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/api/73e2d6bc24d8a067",
            Some("arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/prod-alb/50dc6c495c0c9188"),
        );
        assert_eq!(t.target_group, "targetgroup/api/73e2d6bc24d8a067");
        assert_eq!(t.load_balancer.as_deref(), Some("app/prod-alb/50dc6c495c0c9188"));
    }

    fn dep(id: &str, at: i64, failed: bool) -> DeploymentRecord {
        DeploymentRecord {
            id: id.into(),
            started_at: at,
            state: if failed { "SERVICE_DEPLOYMENT_FAILED" } else { "SERVICE_DEPLOYMENT_COMPLETED" }.into(),
            failed,
        }
    }

    fn incident(id: &str, opened: i64, ttr: Option<i64>) -> IncidentLine {
        IncidentLine {
            id: id.into(),
            severity: "SEV2".into(),
            cause: "essential-exit".into(),
            summary: "crash".into(),
            opened_at: opened,
            closed_at: ttr.map(|t| opened + t),
            ttr_seconds: ttr,
            resolution: None,
        }
    }

    #[test]
    fn change_failures_are_failed_deployments_or_ones_followed_by_a_rollback_or_an_incident_in_the_window() {
        let f = DeliveryFacts {
            deployments: vec![
                dep("d1", T0 + 1000, false),         // incident 10 min later: failure
                dep("d2", T0 + DAY, true),           // failed itself
                dep("d3", T0 + 2 * DAY, false),      // rollback 5 min later: failure
                dep("d4", T0 + 3 * DAY, false),      // incident 2 h later: outside the 1 h window
                dep("d5", T0 + 4 * DAY, false),      // next deployment before the incident
                dep("d6", T0 + 4 * DAY + 60, false), // the incident 120 s after d5 belongs to d6
                dep("old", T0 - DAY, true),          // before the window: not counted
            ],
            rollbacks: vec![T0 + 2 * DAY + 300],
            incidents: vec![
                incident("i1", T0 + 1600, Some(1200)),
                incident("i4", T0 + 3 * DAY + 7200, Some(600)),
                incident("i5", T0 + 4 * DAY + 120, None),
            ],
            lead_times: vec![],
        };
        let d = delivery(&f, T0, T1, 3600);
        assert_eq!(d.deployments, 6);
        let failed: Vec<&str> = d.change_failures.iter().map(|c| c.deployment.as_str()).collect();
        assert_eq!(failed, vec!["d1", "d2", "d3", "d6"]);
        assert_eq!(d.change_failure_rate, Some(4.0 / 6.0));
        assert!(d.change_failures[0].why.contains("incident i1"), "{:?}", d.change_failures);
        assert!(d.change_failures[2].why.contains("rolled back"), "{:?}", d.change_failures);
        assert_eq!((d.incidents, d.resolved), (3, 2));
        assert_eq!(d.mttr_seconds, Some(900), "mean of 1200 s and 600 s");
        assert_eq!(d.lead_time.note.as_deref(), Some(NO_LEAD_TIMES));
        assert!((d.deployments_per_week - 6.0).abs() < 1e-9);
    }

    #[test]
    fn no_deployments_means_no_rate_rather_than_zero() {
        let d = delivery(&DeliveryFacts::default(), T0, T1, 3600);
        assert_eq!((d.deployments, d.change_failure_rate, d.mttr_seconds), (0, None, None));
    }

    #[test]
    fn lead_time_is_the_median_from_commit_to_running_of_linked_deployments() {
        let s = |c: i64, r: i64| LeadTimeSample {
            cluster: "prod".into(),
            service: "api".into(),
            commit: Some("abc123".into()),
            deployment_id: None,
            commit_at: c,
            running_at: r,
        };
        let l = lead_time(&[s(0, 600), s(0, 1800), s(100, 3700), s(500, 100)]);
        assert_eq!((l.samples, l.median_seconds, l.mean_seconds), (3, Some(1800), Some(2000)));
        assert!(l.note.unwrap().contains("1 sample"));
        let even = lead_time(&[s(0, 600), s(0, 1000)]);
        assert_eq!(even.median_seconds, Some(800));
    }

    #[test]
    fn overall_delivery_sums_services_and_averages_every_recovery() {
        let a = DeliveryFacts {
            deployments: vec![dep("a1", T0 + 10, true), dep("a2", T0 + DAY, false)],
            incidents: vec![incident("x", T0 + 20, Some(100))],
            ..Default::default()
        };
        let b = DeliveryFacts {
            deployments: vec![dep("b1", T0 + 10, false)],
            incidents: vec![incident("y", T0 + 5 * DAY, Some(300))],
            ..Default::default()
        };
        let (da, db) = (delivery(&a, T0, T1, 3600), delivery(&b, T0, T1, 3600));
        let o = overall(&[(&da, &a), (&db, &b)], T0, T1);
        assert_eq!(o.deployments, 3);
        assert_eq!(o.change_failure_rate, Some(1.0 / 3.0));
        assert_eq!(o.mttr_seconds, Some(200));
    }

    #[test]
    fn traffic_trends_compare_the_two_halves_of_the_week() {
        let s = ServiceRef {
            cluster: "c".into(),
            service: "s".into(),
            targets: vec![LoadBalancedTarget {
                target_group: "targetgroup/t/1".into(),
                load_balancer: Some("app/lb/1".into()),
            }],
        };
        let mut a = MetricAnswers::default();
        a.values.insert(query_id(0, Q::Requests(0)), hourly(|h| if h < 84 { 100.0 } else { 150.0 }));
        a.values.insert(query_id(0, Q::LatencyAvg(0)), (0..7).map(|d| (T0 + d * DAY, 0.2)).collect());
        let mut unread = Vec::new();
        let m = service_metrics(0, &s, &a, (T0, T1), &mut unread);
        let t = &m.traffic[0];
        assert_eq!(t.requests_total, Some(84.0 * 100.0 + 84.0 * 150.0));
        assert_eq!(t.requests_daily.len(), 7);
        assert_eq!(t.requests_daily[0], (T0, 2400.0));
        assert!((t.requests_trend_pct.unwrap() - 50.0).abs() < 1e-9);
        assert!((t.latency_avg_ms_daily[0].1 - 200.0).abs() < 1e-9);
        assert!(t.notes.iter().any(|n| n.contains("no p95 latency")), "{:?}", t.notes);
        assert!(unread.is_empty(), "{unread:?}");
    }

    fn report() -> WeeklyReport {
        let cpu = util(hourly(|h| 50.0 + (h % 24) as f64), None);
        let mem = util(hourly(|_| 30.0), None);
        let f = WeekFacts {
            cluster: "prod".into(),
            service: "<b>api</b>".into(),
            capacity: CapacityFacts {
                size: Some(size(512, 1024)),
                running: 2,
                desired: 2,
                autoscaling: Some(Autoscaling { min: 2, max: 4 }),
            },
            metrics: metrics(cpu, mem),
            ..Default::default()
        };
        let w = ReportWindow { week: "2026-W49".into(), start: T0, end: T1, generated_at: "now".into() };
        build(&w, vec![judge(f, T0, T1, 3600)], 2, 14, vec![])
    }

    #[test]
    fn the_svg_chart_is_well_formed_and_has_no_script() {
        let points = hourly(|h| h as f64 % 50.0);
        let svg = line_chart(
            "a <chart> & more",
            "%",
            (T0, T1),
            Some(100.0),
            &[Line { label: "x", color: (1, 2, 3), points: &points, dashed: false }],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", &svg[..80.min(svg.len())]);
        assert!(!svg.to_ascii_lowercase().contains("<script") && !svg.contains("href"), "no script, no link");
        assert!(svg.contains("a &lt;chart&gt; &amp; more"), "text escaped");
        // Every element opened is closed (a light well-formedness check: tags balance).
        let opens = svg.matches('<').count();
        let self_closed = svg.matches("/>").count();
        let closes = svg.matches("</").count();
        assert_eq!(opens - closes, closes + self_closed, "balanced tags");
        assert!(svg.contains("<polyline") || svg.contains("<path"), "a line is drawn");
    }

    #[test]
    fn scrubbing_a_page_reaches_its_text_and_chart_labels_but_not_chart_geometry() {
        let page = "<p>key AKIA1</p><svg w=\"1\"><text x=\"1\">svc AKIA2</text><polyline points=\"1,2 AKIA3\"/></svg><p>AKIA4</p>";
        let out = scrub_page(page, |t| t.replace("AKIA", "***"));
        assert_eq!(
            out,
            "<p>key ***1</p><svg w=\"1\"><text x=\"1\">svc ***2</text><polyline points=\"1,2 AKIA3\"/></svg><p>***4</p>"
        );
        assert_eq!(scrub_page("<svg><text>AKIA", |t| t.replace("AKIA", "*")), "<svg><text>*");
    }

    #[test]
    fn the_html_is_self_contained_escaped_and_shows_the_numbers() {
        let r = report();
        let page = html(&r);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(!page.to_ascii_lowercase().contains("<script"), "no JavaScript");
        assert!(page.contains("&lt;b&gt;api&lt;/b&gt;"), "escaped");
        for external in ["<link", "src=", "href=", "@import", "url("] {
            assert!(!page.contains(external), "no external asset ({external})");
        }
        // The only URL is the SVG namespace.
        assert_eq!(page.matches("http").count(), page.matches("http://www.w3.org/2000/svg").count());
        assert!(page.contains("<svg"), "a chart");
        assert!(page.contains(&pct(r.services[0].cpu.average)));
        assert!(page.contains(NO_LEAD_TIMES));
        let objects = [crate::reports::daily::ReportObject {
            label: "HTML".into(),
            key: "reports/weekly/2026-W49/report.html".into(),
            links: Err(crate::error::AwsError::answer("s3", "PutObject", "report.html", "AccessDenied")),
        }];
        let (subject, body) = summary(&r, &objects, "s3://ev/reports/weekly/2026-W49/");
        let body = body.render(&crate::redact::Redactor::new());
        assert!(
            subject.starts_with("[WEEKLY] 2026-W49: 1 services") && subject.len() < 100 && subject.is_ascii(),
            "{subject}"
        );
        assert!(body.contains("kept in the evidence bucket at s3://ev/reports/weekly/2026-W49/"), "{body}");
        assert!(body.contains("- HTML: not stored: s3:PutObject on report.html: AccessDenied"), "{body}");
        assert!(body.contains(NO_LEAD_TIMES));
    }
}
