//! ECS: the reads of the runbooks (service, stopped tasks, task
//! definitions, revisions, service deployments, services behind a target
//! group) and the only mutations the engine makes (UpdateService,
//! StopServiceDeployment).

use aws_sdk_ecs::primitives::{DateTime, DateTimeFormat};
use aws_sdk_ecs::types::StopServiceDeploymentStopType;

use super::{AwsError, Clients, MutationError, aws_error, mutation_error};
use crate::arn::{Arn, cluster_name};
use crate::snapshot::*;
use crate::trigger::{ContainerState, TaskStateChange};

pub fn timestamp(d: Option<&DateTime>) -> Option<String> {
    d.and_then(|d| d.fmt(DateTimeFormat::DateTime).ok())
}

pub async fn describe_service(clients: &Clients, cluster: &str, service: &str) -> Result<ServiceSnapshot, AwsError> {
    let resp = clients
        .ecs()
        .describe_services()
        .cluster(cluster)
        .services(service)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .map_err(|e| aws_error("ecs", "DescribeServices", format!("{cluster}/{service}"), &e))?;
    let Some(s) = resp.services().first() else {
        let why = resp.failures().first().and_then(|f| f.reason()).unwrap_or("not returned");
        return Err(AwsError::answer("ecs", "DescribeServices", format!("{cluster}/{service}"), why));
    };
    Ok(service_snapshot(cluster, service, s))
}

/// Up to any number of services of one cluster, ten per DescribeServices
/// call (the API's limit); services ECS did not return are left out.
pub async fn describe_services(
    clients: &Clients,
    cluster: &str,
    services: &[String],
) -> Result<Vec<ServiceSnapshot>, AwsError> {
    let mut out = Vec::with_capacity(services.len());
    for chunk in services.chunks(10) {
        let resp = clients
            .ecs()
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .include(aws_sdk_ecs::types::ServiceField::Tags)
            .send()
            .await
            .map_err(|e| aws_error("ecs", "DescribeServices", cluster, &e))?;
        out.extend(resp.services().iter().map(|s| service_snapshot(cluster, s.service_name().unwrap_or_default(), s)));
    }
    Ok(out)
}

fn service_snapshot(cluster: &str, service: &str, s: &aws_sdk_ecs::types::Service) -> ServiceSnapshot {
    ServiceSnapshot {
        cluster: cluster_name(s.cluster_arn().unwrap_or(cluster)).to_string(),
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
        deployment_controller: s.deployment_controller().map(|c| c.r#type().as_str().to_string()),
        deployment_strategy: s.deployment_configuration().and_then(|c| c.strategy()).map(|st| st.as_str().to_string()),
    }
}

/// The service's tasks in `status` (at most 100): ListTasks, then
/// DescribeTasks of what it listed.
async fn service_tasks(
    clients: &Clients,
    cluster: &str,
    service: &str,
    status: aws_sdk_ecs::types::DesiredStatus,
) -> Result<Vec<aws_sdk_ecs::types::Task>, AwsError> {
    let list = clients
        .ecs()
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(status)
        .max_results(100)
        .send()
        .await
        .map_err(|e| aws_error("ecs", "ListTasks", format!("{cluster}/{service}"), &e))?;
    let arns = list.task_arns();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let resp = clients
        .ecs()
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns.iter().take(100).cloned().collect()))
        .send()
        .await
        .map_err(|e| aws_error("ecs", "DescribeTasks", format!("{cluster}/{service}"), &e))?;
    let group = format!("service:{service}");
    // The group check also guards against list filters a server may ignore.
    Ok(resp.tasks.unwrap_or_default().into_iter().filter(|t| t.group() == Some(group.as_str())).collect())
}

/// Recently stopped tasks of the service, newest first (ECS keeps them about an hour).
pub async fn stopped_tasks(clients: &Clients, cluster: &str, service: &str) -> Result<Vec<TaskStateChange>, AwsError> {
    let stopped = service_tasks(clients, cluster, service, aws_sdk_ecs::types::DesiredStatus::Stopped).await?;
    let mut tasks: Vec<TaskStateChange> = stopped.iter().map(task_snapshot).collect();
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
) -> Result<TaskDefinitionSnapshot, AwsError> {
    let resp = clients
        .ecs()
        .describe_task_definition()
        .task_definition(task_definition)
        .send()
        .await
        .map_err(|e| aws_error("ecs", "DescribeTaskDefinition", task_definition, &e))?;
    let td = resp.task_definition().ok_or_else(|| {
        AwsError::answer("ecs", "DescribeTaskDefinition", task_definition, "no task definition returned")
    })?;
    let snapshot = TaskDefinitionSnapshot {
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
    };
    // Every secret value read is redacted from this process's logs, messages and replies.
    crate::telemetry::remember_secrets(snapshot.secret_values());
    Ok(snapshot)
}

/// ACTIVE revisions of a family, newest first as listed.
pub async fn active_revisions(clients: &Clients, family: &str) -> Result<Vec<RevisionInfo>, AwsError> {
    let mut out = Vec::new();
    let mut token = None;
    for _ in 0..5 {
        let resp = clients
            .ecs()
            .list_task_definitions()
            .family_prefix(family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .sort(aws_sdk_ecs::types::SortOrder::Desc)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| aws_error("ecs", "ListTaskDefinitions", family, &e))?;
        // familyPrefix also matches longer family names: keep the exact family.
        out.extend(
            resp.task_definition_arns()
                .iter()
                .filter(|a| td_family(a) == Some(family))
                .map(|a| RevisionInfo { arn: a.clone(), active: true }),
        );
        token = resp.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// `family` of `arn:…:task-definition/family:rev` or `family:rev`.
fn td_family(arn: &str) -> Option<&str> {
    crate::arn::last_segment(arn).rsplit_once(':').map(|(f, _)| f)
}

/// The service's deployments that are not finished — pending, in
/// progress, stopping or rolling back — as ListServiceDeployments lists
/// them (the ECS deployment controller only; not every endpoint implements it).
pub async fn unfinished_service_deployments(
    clients: &Clients,
    cluster: &str,
    service: &str,
) -> Result<Vec<ServiceDeploymentBrief>, AwsError> {
    use aws_sdk_ecs::types::ServiceDeploymentStatus as S;
    let mut out = Vec::new();
    let mut token = None;
    // A service has a handful of unfinished deployments at most; five pages is plenty.
    for _ in 0..5 {
        let resp = clients
            .ecs()
            .list_service_deployments()
            .cluster(cluster)
            .service(service)
            .set_status(Some(vec![
                S::Pending,
                S::InProgress,
                S::StopRequested,
                S::RollbackRequested,
                S::RollbackInProgress,
            ]))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| aws_error("ecs", "ListServiceDeployments", format!("{cluster}/{service}"), &e))?;
        out.extend(resp.service_deployments().iter().filter_map(|d| {
            Some(ServiceDeploymentBrief {
                arn: d.service_deployment_arn()?.to_string(),
                status: d.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                status_reason: d.status_reason().map(str::to_string),
                target_service_revision_arn: d.target_service_revision_arn().map(str::to_string),
                created_at: timestamp(d.created_at()),
            })
        }));
        token = resp.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Every cluster ARN of the account (paginated).
pub async fn list_clusters(clients: &Clients) -> Result<Vec<Arn>, AwsError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let resp = clients
            .ecs()
            .list_clusters()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| aws_error("ecs", "ListClusters", "account", &e))?;
        out.extend(resp.cluster_arns().iter().cloned());
        token = resp.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Every service ARN of a cluster (paginated).
pub async fn list_services(clients: &Clients, cluster: &str) -> Result<Vec<Arn>, AwsError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let resp = clients
            .ecs()
            .list_services()
            .cluster(cluster)
            .max_results(100)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| aws_error("ecs", "ListServices", cluster, &e))?;
        out.extend(resp.service_arns().iter().cloned());
        token = resp.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// A service and the target groups it registers into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTargets {
    pub service: String,
    pub target_groups: Vec<Arn>,
}

/// The target groups of up to ten services of a cluster.
pub async fn service_target_groups(
    clients: &Clients,
    cluster: &str,
    service_arns: &[String],
) -> Result<Vec<ServiceTargets>, AwsError> {
    let resp = clients
        .ecs()
        .describe_services()
        .cluster(cluster)
        .set_services(Some(service_arns.to_vec()))
        .send()
        .await
        .map_err(|e| aws_error("ecs", "DescribeServices", cluster, &e))?;
    Ok(resp
        .services()
        .iter()
        .filter_map(|s| {
            let service = s.service_name()?.to_string();
            let target_groups =
                s.load_balancers().iter().filter_map(|lb| lb.target_group_arn().map(str::to_string)).collect();
            Some(ServiceTargets { service, target_groups })
        })
        .collect())
}

/// A change the engine makes to a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChange<'a> {
    TaskDefinition(&'a str),
    DesiredCount(i32),
    ForceNewDeployment,
}

/// UpdateService with one change. A failure says whether ECS may have
/// applied it anyway (its answer lost), for the engine to read back.
pub async fn update_service(
    clients: &Clients,
    cluster: &str,
    service: &str,
    change: ServiceChange<'_>,
) -> Result<(), MutationError> {
    let req = clients.ecs().update_service().cluster(cluster).service(service);
    let req = match change {
        ServiceChange::TaskDefinition(td) => req.task_definition(td),
        ServiceChange::DesiredCount(n) => req.desired_count(n),
        ServiceChange::ForceNewDeployment => req.force_new_deployment(true),
    };
    req.send().await.map(|_| ()).map_err(|e| mutation_error("ecs", "UpdateService", format!("{cluster}/{service}"), &e))
}

/// StopServiceDeployment with stop type ROLLBACK: ECS rolls back to the
/// deployment's source revision itself.
pub async fn rollback_service_deployment(clients: &Clients, service_deployment_arn: &str) -> Result<(), MutationError> {
    clients
        .ecs()
        .stop_service_deployment()
        .service_deployment_arn(service_deployment_arn)
        .stop_type(StopServiceDeploymentStopType::Rollback)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| mutation_error("ecs", "StopServiceDeployment", service_deployment_arn, &e))
}

/// ContinueServiceDeployment: answer a paused deployment's PAUSE hook
/// (`CONTINUE` to the next lifecycle stage, `ROLLBACK` to the previous
/// service revision). The local test bed's server lacks this operation: the
/// tests' fault proxy answers it and records each call.
pub async fn continue_service_deployment(
    clients: &Clients,
    service_deployment_arn: &str,
    hook_id: &str,
    action: HookAction,
) -> Result<(), MutationError> {
    let sdk_action = match action {
        HookAction::Continue => aws_sdk_ecs::types::DeploymentLifecycleHookAction::Continue,
        HookAction::Rollback => aws_sdk_ecs::types::DeploymentLifecycleHookAction::Rollback,
    };
    clients
        .ecs()
        .continue_service_deployment()
        .service_deployment_arn(service_deployment_arn)
        .hook_id(hook_id)
        .action(sdk_action)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            mutation_error("ecs", "ContinueServiceDeployment", format!("{service_deployment_arn} hook {hook_id}"), &e)
        })
}

/// One service deployment as DescribeServiceDeployments describes it: its
/// status is `ROLLBACK_REQUESTED` and the like once a StopServiceDeployment
/// took effect. `None` when ECS does not know it.
pub async fn describe_service_deployment(
    clients: &Clients,
    service_deployment_arn: &str,
) -> Result<Option<ServiceDeploymentBrief>, AwsError> {
    let resp = clients
        .ecs()
        .describe_service_deployments()
        .service_deployment_arns(service_deployment_arn)
        .send()
        .await
        .map_err(|e| aws_error("ecs", "DescribeServiceDeployments", service_deployment_arn, &e))?;
    Ok(resp.service_deployments().first().map(|d| ServiceDeploymentBrief {
        arn: d.service_deployment_arn().unwrap_or(service_deployment_arn).to_string(),
        status: d.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        status_reason: d.status_reason().map(str::to_string),
        target_service_revision_arn: d.target_service_revision().and_then(|r| r.arn()).map(str::to_string),
        created_at: timestamp(d.created_at()),
    }))
}

/// The task definition of a service revision (DescribeServiceRevisions):
/// the target revision a deployment hook judges. `None` when ECS does not know it.
pub async fn service_revision_task_definition(
    clients: &Clients,
    service_revision_arn: &str,
) -> Result<Option<Arn>, AwsError> {
    let resp = clients
        .ecs()
        .describe_service_revisions()
        .service_revision_arns(service_revision_arn)
        .send()
        .await
        .map_err(|e| aws_error("ecs", "DescribeServiceRevisions", service_revision_arn, &e))?;
    Ok(resp.service_revisions().first().and_then(|r| r.task_definition()).map(str::to_string))
}

/// A running task of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningTask {
    pub id: String,
    pub task_definition: Option<Arn>,
}

/// The service's running tasks, at most 100 (the deployment hook compares
/// the revisions' error lines).
pub async fn running_tasks(clients: &Clients, cluster: &str, service: &str) -> Result<Vec<RunningTask>, AwsError> {
    let running = service_tasks(clients, cluster, service, aws_sdk_ecs::types::DesiredStatus::Running).await?;
    Ok(running
        .iter()
        .map(|t| RunningTask {
            id: t.task_arn().map(crate::arn::last_segment).unwrap_or_default().to_string(),
            task_definition: t.task_definition_arn().map(str::to_string),
        })
        .collect())
}
