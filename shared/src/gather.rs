//! Gathering: the read-only AWS calls of the runbooks ("describe the service,
//! list stopped tasks, check target health, read the logs"). Independent calls
//! run concurrently; any step may fail without aborting the others, and each
//! failure is named in [`Gathered::errors`].

use aws_sdk_ecs::primitives::{DateTime, DateTimeFormat};
use futures::future::join_all;

use crate::aws::{Clients, sdk_error_message};
use crate::redact::Redactor;
use crate::snapshot::*;
use crate::trigger::{ContainerState, TaskStateChange};

/// What to gather for one service.
#[derive(Debug, Clone, Default)]
pub struct GatherRequest {
    pub cluster: String,
    pub service: String,
    /// The task definition of the failing task, when the event names one.
    pub task_definition: Option<String>,
    /// `(task id, container name)` whose log to read.
    pub failing_task: Option<(String, Option<String>)>,
    /// Everything (evidence) or just the facts severity needs (service and targets).
    pub depth: Depth,
    pub log_lines: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Depth {
    /// Service description and target health: enough to grade severity.
    Facts,
    /// Everything a runbook reads, for diagnosis and evidence.
    #[default]
    Full,
}

/// A step that failed, named by its API call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GatherError {
    pub step: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Gathered {
    pub service: Option<ServiceSnapshot>,
    pub stopped_tasks: Vec<TaskStateChange>,
    pub task_definition: Option<TaskDefinitionSnapshot>,
    pub target_health: Vec<TargetHealthSnapshot>,
    pub logs: Option<LogExcerpt>,
    pub metrics: Vec<MetricSeries>,
    pub errors: Vec<GatherError>,
}

impl Gathered {
    fn fail(&mut self, step: &str, message: impl Into<String>) {
        self.errors.push(GatherError { step: step.into(), message: message.into() });
    }

    /// `(healthy, total)` over all target groups, when any were read.
    pub fn target_counts(&self) -> Option<(usize, usize)> {
        if self.target_health.is_empty() {
            return None;
        }
        Some(self.target_health.iter().fold((0, 0), |(h, t), g| (h + g.healthy(), t + g.targets.len())))
    }
}

/// Run the gathering for one service.
pub async fn gather(clients: &Clients, req: &GatherRequest) -> Gathered {
    let mut out = Gathered::default();
    let full = req.depth == Depth::Full;

    // Phase 1: independent reads.
    let (service, stopped, task_def, metrics) = tokio::join!(
        describe_service(clients, &req.cluster, &req.service),
        async { if full { Some(stopped_tasks(clients, &req.cluster, &req.service).await) } else { None } },
        async {
            match (&req.task_definition, full) {
                (Some(td), true) => Some(describe_task_definition(clients, td).await),
                _ => None,
            }
        },
        async { if full { Some(service_metrics(clients, &req.cluster, &req.service).await) } else { None } },
    );
    match service {
        Ok(s) => out.service = Some(s),
        Err(e) => out.fail("ecs:DescribeServices", e),
    }
    match stopped {
        Some(Ok(t)) => out.stopped_tasks = t,
        Some(Err(e)) => out.fail("ecs:ListTasks/DescribeTasks", e),
        None => {}
    }
    match task_def {
        Some(Ok(td)) => out.task_definition = Some(td),
        Some(Err(e)) => out.fail("ecs:DescribeTaskDefinition", e),
        None => {}
    }
    match metrics {
        Some(Ok(m)) => out.metrics = m,
        Some(Err(e)) => out.fail("cloudwatch:GetMetricData", e),
        None => {}
    }

    // Phase 2: reads that need phase 1's answers.
    let target_groups = out.service.as_ref().map(|s| s.target_group_arns.clone()).unwrap_or_default();
    let need_task_def = full && out.task_definition.is_none() && req.task_definition.is_none();
    let service_td = out.service.as_ref().and_then(|s| s.task_definition.clone());
    let (health, late_td) = tokio::join!(join_all(target_groups.iter().map(|tg| target_health(clients, tg))), async {
        match (need_task_def, service_td) {
            (true, Some(td)) => Some(describe_task_definition(clients, &td).await),
            _ => None,
        }
    },);
    for (tg, h) in target_groups.iter().zip(health) {
        match h {
            Ok(h) => out.target_health.push(h),
            Err(e) => out.fail("elasticloadbalancing:DescribeTargetHealth", format!("{tg}: {e}")),
        }
    }
    match late_td {
        Some(Ok(td)) => out.task_definition = Some(td),
        Some(Err(e)) => out.fail("ecs:DescribeTaskDefinition", e),
        None => {}
    }

    // Phase 3: the failing container's log, which needs its task definition.
    if full && let Some(td) = &out.task_definition {
        let failing =
            req.failing_task.clone().or_else(|| out.stopped_tasks.first().map(|t| (t.task_id().to_string(), None)));
        if let Some((task_id, container)) = failing {
            let container_def = container
                .as_deref()
                .and_then(|name| td.containers.iter().find(|c| c.name == name))
                .or_else(|| td.containers.iter().find(|c| c.essential != Some(false) && c.log_driver.is_some()))
                .or_else(|| td.containers.first());
            if let Some((group, stream)) = container_def.and_then(|c| c.awslogs_stream(&task_id)) {
                let redactor = Redactor::with_known_secrets(td.secret_values());
                match log_excerpt(clients, &group, &stream, req.log_lines, &redactor).await {
                    Ok(l) => out.logs = Some(l),
                    Err(e) => out.fail("logs:GetLogEvents", format!("{group} {stream}: {e}")),
                }
            }
        }
    }
    out
}

pub fn timestamp(d: Option<&DateTime>) -> Option<String> {
    d.and_then(|d| d.fmt(DateTimeFormat::DateTime).ok())
}

pub async fn describe_service(clients: &Clients, cluster: &str, service: &str) -> Result<ServiceSnapshot, String> {
    let resp = clients
        .ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .map_err(|e| sdk_error_message(&e))?;
    let Some(s) = resp.services().first() else {
        let why = resp.failures().first().and_then(|f| f.reason()).unwrap_or("not returned");
        return Err(format!("service {cluster}/{service}: {why}"));
    };
    Ok(ServiceSnapshot {
        cluster: crate::trigger::ecs::cluster_name(s.cluster_arn().unwrap_or(cluster)).to_string(),
        service: s.service_name().unwrap_or(service).to_string(),
        service_arn: s.service_arn().map(str::to_string),
        status: s.status().map(str::to_string),
        desired: s.desired_count(),
        running: s.running_count(),
        pending: s.pending_count(),
        task_definition: s.task_definition().map(str::to_string),
        launch_type: s.launch_type().map(|l| l.as_str().to_string()),
        deployments: s
            .deployments()
            .iter()
            .map(|d| DeploymentSnapshot {
                id: d.id().unwrap_or_default().to_string(),
                status: d.status().unwrap_or_default().to_string(),
                task_definition: d.task_definition().unwrap_or_default().to_string(),
                desired: d.desired_count(),
                running: d.running_count(),
                pending: d.pending_count(),
                failed_tasks: d.failed_tasks(),
                rollout_state: d.rollout_state().map(|r| r.as_str().to_string()),
                rollout_state_reason: d.rollout_state_reason().map(str::to_string),
                created_at: timestamp(d.created_at()),
                updated_at: timestamp(d.updated_at()),
            })
            .collect(),
        events: s
            .events()
            .iter()
            .take(20)
            .map(|e| ServiceEventSnapshot {
                created_at: timestamp(e.created_at()),
                message: e.message().unwrap_or_default().to_string(),
            })
            .collect(),
        target_group_arns: s
            .load_balancers()
            .iter()
            .filter_map(|lb| lb.target_group_arn().map(str::to_string))
            .collect(),
        circuit_breaker: s
            .deployment_configuration()
            .and_then(|c| c.deployment_circuit_breaker())
            .map(|cb| CircuitBreaker { enable: cb.enable(), rollback: cb.rollback() }),
        tags: s
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
            .collect(),
    })
}

/// Recently stopped tasks of the service, newest first (ECS keeps them about an hour).
pub async fn stopped_tasks(clients: &Clients, cluster: &str, service: &str) -> Result<Vec<TaskStateChange>, String> {
    let list = clients
        .ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
        .max_results(100)
        .send()
        .await
        .map_err(|e| sdk_error_message(&e))?;
    let arns = list.task_arns();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let resp = clients
        .ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns.iter().take(100).cloned().collect()))
        .send()
        .await
        .map_err(|e| sdk_error_message(&e))?;
    let group = format!("service:{service}");
    let mut tasks: Vec<TaskStateChange> = resp
        .tasks()
        .iter()
        // The group check also guards against list filters a server may ignore.
        .filter(|t| t.group() == Some(group.as_str()))
        .map(task_snapshot)
        .collect();
    tasks.sort_by(|a, b| b.stopped_at.cmp(&a.stopped_at));
    tasks.truncate(20);
    Ok(tasks)
}

fn task_snapshot(t: &aws_sdk_ecs::types::Task) -> TaskStateChange {
    TaskStateChange {
        cluster_arn: t.cluster_arn().unwrap_or_default().to_string(),
        task_arn: t.task_arn().unwrap_or_default().to_string(),
        task_definition_arn: t.task_definition_arn().map(str::to_string),
        group: t.group().map(str::to_string),
        last_status: t.last_status().map(str::to_string),
        desired_status: t.desired_status().map(str::to_string),
        stop_code: t.stop_code().map(|c| c.as_str().to_string()),
        stopped_reason: t.stopped_reason().map(str::to_string),
        started_by: t.started_by().map(str::to_string),
        launch_type: t.launch_type().map(|l| l.as_str().to_string()),
        capacity_provider_name: t.capacity_provider_name().map(str::to_string),
        availability_zone: t.availability_zone().map(str::to_string),
        cpu: t.cpu().map(str::to_string),
        memory: t.memory().map(str::to_string),
        containers: t
            .containers()
            .iter()
            .map(|c| ContainerState {
                name: c.name().unwrap_or_default().to_string(),
                container_arn: c.container_arn().map(str::to_string),
                image: c.image().map(str::to_string),
                image_digest: c.image_digest().map(str::to_string),
                last_status: c.last_status().map(str::to_string),
                exit_code: c.exit_code().map(i64::from),
                reason: c.reason().map(str::to_string),
            })
            .collect(),
        created_at: timestamp(t.created_at()),
        started_at: timestamp(t.started_at()),
        stopping_at: timestamp(t.stopping_at()),
        stopped_at: timestamp(t.stopped_at()),
        version: Some(t.version()),
    }
}

pub async fn describe_task_definition(
    clients: &Clients,
    task_definition: &str,
) -> Result<TaskDefinitionSnapshot, String> {
    let resp = clients
        .ecs
        .describe_task_definition()
        .task_definition(task_definition)
        .send()
        .await
        .map_err(|e| format!("{task_definition}: {}", sdk_error_message(&e)))?;
    let td = resp.task_definition().ok_or_else(|| format!("{task_definition}: no task definition returned"))?;
    Ok(TaskDefinitionSnapshot {
        arn: td.task_definition_arn().unwrap_or(task_definition).to_string(),
        family: td.family().unwrap_or_default().to_string(),
        revision: td.revision(),
        status: td.status().map(|s| s.as_str().to_string()),
        cpu: td.cpu().map(str::to_string),
        memory: td.memory().map(str::to_string),
        execution_role_arn: td.execution_role_arn().map(str::to_string),
        task_role_arn: td.task_role_arn().map(str::to_string),
        containers: td
            .container_definitions()
            .iter()
            .map(|c| ContainerDefinitionSnapshot {
                name: c.name().unwrap_or_default().to_string(),
                image: c.image().map(str::to_string),
                essential: c.essential(),
                cpu: c.cpu(),
                memory: c.memory(),
                memory_reservation: c.memory_reservation(),
                environment: c
                    .environment()
                    .iter()
                    .map(|kv| NameValue {
                        name: kv.name().unwrap_or_default().to_string(),
                        value: kv.value().unwrap_or_default().to_string(),
                    })
                    .collect(),
                secrets: c
                    .secrets()
                    .iter()
                    .map(|s| SecretRef { name: s.name().to_string(), value_from: s.value_from().to_string() })
                    .collect(),
                log_driver: c.log_configuration().map(|l| l.log_driver().as_str().to_string()),
                log_options: c
                    .log_configuration()
                    .and_then(|l| l.options())
                    .map(|o| {
                        let mut v: Vec<(String, String)> = o.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                        v.sort();
                        v
                    })
                    .unwrap_or_default(),
                health_check: c.health_check().map(|h| h.command().to_vec()),
            })
            .collect(),
    })
}

pub async fn target_health(clients: &Clients, target_group_arn: &str) -> Result<TargetHealthSnapshot, String> {
    let resp = clients
        .elbv2
        .describe_target_health()
        .target_group_arn(target_group_arn)
        .send()
        .await
        .map_err(|e| sdk_error_message(&e))?;
    Ok(TargetHealthSnapshot {
        target_group_arn: target_group_arn.to_string(),
        targets: resp
            .target_health_descriptions()
            .iter()
            .map(|d| TargetSnapshot {
                id: d.target().and_then(|t| t.id()).unwrap_or_default().to_string(),
                port: d.target().and_then(|t| t.port()),
                state: d.target_health().and_then(|h| h.state()).map(|s| s.as_str().to_string()).unwrap_or_default(),
                reason: d.target_health().and_then(|h| h.reason()).map(|r| r.as_str().to_string()),
                description: d.target_health().and_then(|h| h.description()).map(str::to_string),
            })
            .collect(),
    })
}

/// Words that mark a log line as an error worth showing a person.
const ERROR_WORDS: &[&str] = &[
    "error",
    "exception",
    "fatal",
    "panic",
    "traceback",
    "killed",
    "out of memory",
    "oom",
    "refused",
    "timed out",
    "segfault",
];

pub fn is_error_line(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    ERROR_WORDS.iter().any(|w| lower.contains(w))
}

/// The last `max_lines` error lines of a stream (or its last lines when none
/// look like errors), redacted.
pub async fn log_excerpt(
    clients: &Clients,
    group: &str,
    stream: &str,
    max_lines: usize,
    redactor: &Redactor,
) -> Result<LogExcerpt, String> {
    let resp = clients
        .logs
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(false)
        .limit(500)
        .send()
        .await
        .map_err(|e| sdk_error_message(&e))?;
    let messages: Vec<&str> = resp.events().iter().filter_map(|e| e.message()).collect();
    Ok(excerpt_of(group, stream, &messages, max_lines, redactor))
}

/// Pure part of [`log_excerpt`].
pub fn excerpt_of(group: &str, stream: &str, messages: &[&str], max_lines: usize, redactor: &Redactor) -> LogExcerpt {
    let errors: Vec<&str> = messages.iter().copied().filter(|m| is_error_line(m)).collect();
    let only_errors = !errors.is_empty();
    let chosen = if only_errors { errors } else { messages.to_vec() };
    let start = chosen.len().saturating_sub(max_lines);
    LogExcerpt {
        log_group: group.to_string(),
        log_stream: stream.to_string(),
        lines: chosen[start..].iter().map(|l| redactor.text(l.trim_end())).collect(),
        only_errors,
    }
}

/// CPU and memory utilisation of the service over the last 30 minutes.
pub async fn service_metrics(clients: &Clients, cluster: &str, service: &str) -> Result<Vec<MetricSeries>, String> {
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
        .map_err(|e| sdk_error_message(&e))?;
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
