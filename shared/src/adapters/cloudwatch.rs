//! CloudWatch: the service's CPU and memory datapoints, and alarm tags.

use aws_sdk_ecs::primitives::DateTimeFormat;

use super::{AwsError, Clients, aws_error};
use crate::snapshot::MetricSeries;

/// CPU and memory utilisation of the service over the last 30 minutes.
pub async fn service_metrics(clients: &Clients, cluster: &str, service: &str) -> Result<Vec<MetricSeries>, AwsError> {
    use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
    let end = std::time::SystemTime::now();
    let start = end - std::time::Duration::from_secs(30 * 60);
    let query = |id: &str, name: &str| {
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace("AWS/ECS")
                            .metric_name(name)
                            .dimensions(Dimension::builder().name("ClusterName").value(cluster).build())
                            .dimensions(Dimension::builder().name("ServiceName").value(service).build())
                            .build(),
                    )
                    .period(60)
                    .stat("Average")
                    .build(),
            )
            .return_data(true)
            .build()
    };
    let resp = clients
        .cloudwatch()
        .get_metric_data()
        .metric_data_queries(query("cpu", "CPUUtilization"))
        .metric_data_queries(query("memory", "MemoryUtilization"))
        .start_time(start.into())
        .end_time(end.into())
        .send()
        .await
        .map_err(|e| aws_error("cloudwatch", "GetMetricData", format!("{cluster}/{service}"), &e))?;
    Ok(resp
        .metric_data_results()
        .iter()
        .map(|r| {
            let mut points: Vec<(String, f64)> = r
                .timestamps()
                .iter()
                .zip(r.values())
                .filter_map(|(t, v)| Some((t.fmt(DateTimeFormat::DateTime).ok()?, *v)))
                .collect();
            points.sort_by(|a, b| a.0.cmp(&b.0));
            MetricSeries {
                metric: if r.id() == Some("cpu") { "CPUUtilization".into() } else { "MemoryUtilization".into() },
                stat: "Average".into(),
                points,
            }
        })
        .collect())
}

/// The tags of an alarm, as `(key, value)`.
pub async fn alarm_tags(clients: &Clients, alarm_arn: &str) -> Result<Vec<(String, String)>, AwsError> {
    let resp = clients
        .cloudwatch()
        .list_tags_for_resource()
        .resource_arn(alarm_arn)
        .send()
        .await
        .map_err(|e| aws_error("cloudwatch", "ListTagsForResource", alarm_arn, &e))?;
    Ok(resp
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect())
}

/// An alarm's current state, as `DescribeAlarms` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmStateNow {
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    /// When it entered that state (epoch seconds), when answered.
    pub since: Option<i64>,
    pub arn: Option<String>,
    /// The dimensions of its metric and of its math's metrics (none for a composite).
    pub dimensions: Vec<(String, String)>,
}

/// The current state of each named alarm (metric and composite), in batches
/// of 100 names (the API's limit). An alarm that no longer exists is absent.
pub async fn alarm_states(clients: &Clients, names: &[String]) -> Result<Vec<AlarmStateNow>, AwsError> {
    let mut out = Vec::new();
    for batch in names.chunks(100) {
        let mut token = None;
        loop {
            let resp = clients
                .cloudwatch()
                .describe_alarms()
                .set_alarm_names(Some(batch.to_vec()))
                .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
                .alarm_types(aws_sdk_cloudwatch::types::AlarmType::CompositeAlarm)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| aws_error("cloudwatch", "DescribeAlarms", batch.join(","), &e))?;
            for a in resp.metric_alarms() {
                let pair = |d: &aws_sdk_cloudwatch::types::Dimension| {
                    (d.name().unwrap_or_default().to_string(), d.value().unwrap_or_default().to_string())
                };
                let mut dimensions: Vec<(String, String)> = a.dimensions().iter().map(pair).collect();
                dimensions.extend(
                    a.metrics()
                        .iter()
                        .filter_map(|q| q.metric_stat().and_then(|m| m.metric()))
                        .flat_map(|m| m.dimensions().iter().map(pair)),
                );
                out.push(AlarmStateNow {
                    name: a.alarm_name().unwrap_or_default().to_string(),
                    state: a.state_value().map(|v| v.as_str().to_string()).unwrap_or_default(),
                    since: a.state_updated_timestamp().map(|t| t.secs()),
                    arn: a.alarm_arn().map(str::to_string),
                    dimensions,
                });
            }
            for a in resp.composite_alarms() {
                out.push(AlarmStateNow {
                    name: a.alarm_name().unwrap_or_default().to_string(),
                    state: a.state_value().map(|v| v.as_str().to_string()).unwrap_or_default(),
                    since: a.state_updated_timestamp().map(|t| t.secs()),
                    arn: a.alarm_arn().map(str::to_string),
                    dimensions: Vec::new(),
                });
            }
            token = resp.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(out)
}

/// An alarm in ALARM state, with the dimensions of its metric (metric
/// alarms; composite alarms have none and map to no service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiringAlarm {
    pub name: String,
    pub dimensions: Vec<(String, String)>,
}

/// Every alarm currently in ALARM (paginated).
pub async fn alarms_in_alarm(clients: &Clients) -> Result<Vec<FiringAlarm>, AwsError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let resp = clients
            .cloudwatch()
            .describe_alarms()
            .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
            .max_records(100)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| aws_error("cloudwatch", "DescribeAlarms", "state ALARM", &e))?;
        for a in resp.metric_alarms() {
            let mut dimensions: Vec<(String, String)> =
                a.dimensions().iter().filter_map(|d| Some((d.name()?.to_string(), d.value()?.to_string()))).collect();
            // Metric-math alarms carry their dimensions in the queries.
            for q in a.metrics() {
                if let Some(m) = q.metric_stat().and_then(|s| s.metric()) {
                    dimensions.extend(
                        m.dimensions().iter().filter_map(|d| Some((d.name()?.to_string(), d.value()?.to_string()))),
                    );
                }
            }
            out.push(FiringAlarm { name: a.alarm_name().unwrap_or_default().to_string(), dimensions });
        }
        token = resp.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// One `GetMetricData` call over `queries` (at most 500, CloudWatch's
/// limit; the planner in [`crate::reports::weekly::plan_queries`] keeps to
/// it) from `start` to `end` (epoch seconds), following `NextToken` until
/// every datapoint is read. Datapoints per query id, oldest first.
pub async fn metric_data(
    clients: &Clients,
    queries: &[crate::reports::weekly::MetricQuery],
    start: i64,
    end: i64,
) -> Result<std::collections::BTreeMap<String, Vec<(i64, f64)>>, AwsError> {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
    let resource = format!("{} queries", queries.len());
    if queries.len() > crate::reports::weekly::MAX_QUERIES_PER_CALL {
        return Err(AwsError::answer(
            "cloudwatch",
            "GetMetricData",
            resource,
            format!("{} queries; one call takes at most 500", queries.len()),
        ));
    }
    let built: Vec<MetricDataQuery> = queries
        .iter()
        .map(|q| {
            let mut metric = Metric::builder().namespace(&q.namespace).metric_name(&q.metric);
            for (name, value) in &q.dimensions {
                metric = metric.dimensions(Dimension::builder().name(name).value(value).build());
            }
            MetricDataQuery::builder()
                .id(&q.id)
                .metric_stat(MetricStat::builder().metric(metric.build()).period(q.period).stat(&q.stat).build())
                .return_data(true)
                .build()
        })
        .collect();
    let mut out: std::collections::BTreeMap<String, Vec<(i64, f64)>> =
        queries.iter().map(|q| (q.id.clone(), Vec::new())).collect();
    let mut token = None;
    loop {
        let resp = clients
            .cloudwatch()
            .get_metric_data()
            .set_metric_data_queries(Some(built.clone()))
            .start_time(DateTime::from_secs(start))
            .end_time(DateTime::from_secs(end))
            .scan_by(ScanBy::TimestampAscending)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| aws_error("cloudwatch", "GetMetricData", &resource, &e))?;
        for r in resp.metric_data_results() {
            let Some(id) = r.id() else { continue };
            let points = out.entry(id.to_string()).or_default();
            points.extend(r.timestamps().iter().map(|t| t.secs()).zip(r.values().iter().copied()));
        }
        token = resp.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    for points in out.values_mut() {
        points.sort_by_key(|p| p.0);
        points.dedup_by_key(|p| p.0);
    }
    Ok(out)
}
