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
        .cloudwatch
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
        .cloudwatch
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
            .cloudwatch
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
