//! Gathering: the read-only AWS calls of the runbooks ("describe the service,
//! list stopped tasks, check target health, read the logs"). Independent calls
//! run concurrently; any step may fail without aborting the others, and each
//! failure is named in [`Gathered::errors`].

use futures::future::join_all;

use super::{AwsError, Clients, cloudwatch, ecs, elb, logs};
pub use crate::snapshot::{GatherError, Gathered};

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
    /// Log-group name prefixes that may be read (`LOG_GROUP_PREFIXES`); a
    /// task definition pointing elsewhere is refused, not read.
    pub log_group_prefixes: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Depth {
    /// Service description and target health: enough to grade severity.
    Facts,
    /// Everything a runbook reads, for diagnosis and evidence.
    #[default]
    Full,
}

/// Run the gathering for one service.
pub async fn gather(clients: &Clients, req: &GatherRequest) -> Gathered {
    let mut out = Gathered::default();
    let full = req.depth == Depth::Full;

    // Phase 1: independent reads.
    let (service, stopped, task_def, metrics) = tokio::join!(
        ecs::describe_service(clients, &req.cluster, &req.service),
        async { if full { Some(ecs::stopped_tasks(clients, &req.cluster, &req.service).await) } else { None } },
        async {
            match (&req.task_definition, full) {
                (Some(td), true) => Some(ecs::describe_task_definition(clients, td).await),
                _ => None,
            }
        },
        async {
            if full { Some(cloudwatch::service_metrics(clients, &req.cluster, &req.service).await) } else { None }
        },
    );
    match service {
        Ok(s) => out.service = Some(s),
        Err(e) => out.fail_aws("ecs:DescribeServices", &e),
    }
    match stopped {
        Some(Ok(t)) => out.stopped_tasks = t,
        Some(Err(e)) => out.fail_aws("ecs:ListTasks/DescribeTasks", &e),
        None => {}
    }
    match task_def {
        Some(Ok(td)) => out.task_definition = Some(td),
        Some(Err(e)) => out.fail_aws("ecs:DescribeTaskDefinition", &e),
        None => {}
    }
    match metrics {
        Some(Ok(m)) => out.metrics = m,
        Some(Err(e)) => out.fail_aws("cloudwatch:GetMetricData", &e),
        None => {}
    }

    // Phase 2: reads that need phase 1's answers.
    let target_groups = out.service.as_ref().map(|s| s.target_group_arns.clone()).unwrap_or_default();
    let need_task_def = full && out.task_definition.is_none() && req.task_definition.is_none();
    let service_td = out.service.as_ref().and_then(|s| s.task_definition.clone());
    let (health, late_td) =
        tokio::join!(join_all(target_groups.iter().map(|tg| elb::target_health(clients, tg))), async {
            match (need_task_def, service_td) {
                (true, Some(td)) => Some(ecs::describe_task_definition(clients, &td).await),
                _ => None,
            }
        },);
    for h in health {
        match h {
            Ok(h) => out.target_health.push(h),
            Err(e) => out.fail_aws("elasticloadbalancing:DescribeTargetHealth", &e),
        }
    }
    match late_td {
        Some(Ok(td)) => out.task_definition = Some(td),
        Some(Err(e)) => out.fail_aws("ecs:DescribeTaskDefinition", &e),
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
            if let Some((group, _)) = container_def.and_then(|c| c.awslogs_stream(&task_id))
                && !req.log_group_prefixes.iter().any(|p| group.starts_with(p.as_str()))
            {
                out.errors.push(GatherError {
                    step: "logs:GetLogEvents".into(),
                    message: format!(
                        "{group}: not read: the log group is outside LOG_GROUP_PREFIXES ({})",
                        req.log_group_prefixes.join(", ")
                    ),
                });
            } else if let Some((group, stream)) = container_def.and_then(|c| c.awslogs_stream(&task_id)) {
                let redactor = crate::telemetry::redactor();
                match logs::log_excerpt(clients, &group, &stream, req.log_lines, &redactor).await {
                    Ok(l) => out.logs = Some(l),
                    Err(e) => out.fail_aws("logs:GetLogEvents", &e),
                }
            }
        }
    }
    out
}

/// One step's failure, as a gathering error: the resource and what AWS said.
impl Gathered {
    fn fail_aws(&mut self, step: &str, e: &AwsError) {
        self.errors.push(GatherError { step: step.into(), message: format!("{}: {}", e.resource, e.message) });
    }
}
