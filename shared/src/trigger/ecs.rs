//! The `detail` of the three ECS event types we act on, as EventBridge delivers
//! them (see "Amazon ECS events" in the ECS developer guide). Only the fields
//! the runbooks read are typed; everything is optional where AWS omits it.

use crate::lenient;
use serde::{Deserialize, Serialize};

/// `detail` of `ECS Task State Change`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStateChange {
    /// Absent in some re-published events: then read from the task ARN
    /// (see [`complete_task`]).
    #[serde(default)]
    pub cluster_arn: String,
    /// Absent in some real events, whose task ARN is only in `resources`
    /// (see [`complete_task`]).
    #[serde(default)]
    pub task_arn: String,
    #[serde(default)]
    pub task_definition_arn: Option<String>,
    /// `service:<name>` for service tasks, `family:<name>` for standalone ones.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub last_status: Option<String>,
    #[serde(default)]
    pub desired_status: Option<String>,
    /// TaskFailedToStart, EssentialContainerExited, UserInitiated,
    /// ServiceSchedulerInitiated, SpotInterruption, TerminationNotice.
    #[serde(default)]
    pub stop_code: Option<String>,
    #[serde(default)]
    pub stopped_reason: Option<String>,
    /// `ecs-svc/<id>` for tasks started by a service deployment.
    #[serde(default)]
    pub started_by: Option<String>,
    #[serde(default)]
    pub launch_type: Option<String>,
    #[serde(default)]
    pub capacity_provider_name: Option<String>,
    #[serde(default)]
    pub availability_zone: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub cpu: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub memory: Option<String>,
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub containers: Vec<ContainerState>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub stopping_at: Option<String>,
    #[serde(default)]
    pub stopped_at: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub version: Option<i64>,
}

/// One container of a task, as the task event reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub name: String,
    #[serde(default)]
    pub container_arn: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub image_digest: Option<String>,
    #[serde(default)]
    pub last_status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl TaskStateChange {
    /// The service name when this task belongs to a service (`group` is
    /// `service:<name>`).
    pub fn service_name(&self) -> Option<&str> {
        self.group.as_deref()?.strip_prefix("service:")
    }

    pub fn is_stopped(&self) -> bool {
        self.last_status.as_deref() == Some("STOPPED")
    }

    /// The task id, the last segment of its ARN.
    pub fn task_id(&self) -> &str {
        last_segment(&self.task_arn)
    }
}

/// `detail` of `ECS Service Action`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAction {
    /// INFO, WARN or ERROR.
    #[serde(default)]
    pub event_type: Option<String>,
    pub event_name: String,
    /// Absent in some re-published events: then read from the service ARN
    /// in `resources` (see [`complete_service_action`]).
    #[serde(default)]
    pub cluster_arn: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub capacity_provider_arns: Vec<String>,
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub target_group_arns: Vec<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub desired_count: Option<i64>,
}

/// `detail` of `ECS Deployment State Change`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStateChange {
    #[serde(default)]
    pub event_type: Option<String>,
    /// SERVICE_DEPLOYMENT_IN_PROGRESS, _COMPLETED or _FAILED.
    pub event_name: String,
    pub deployment_id: String,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl DeploymentStateChange {
    /// ECS's circuit breaker says it is rolling back on its own
    /// ("ECS deployment circuit breaker: rolling back to deploymentId …").
    pub fn is_circuit_breaker_rollback(&self) -> bool {
        self.reason.as_deref().map(|r| r.to_ascii_lowercase().contains("rolling back")).unwrap_or(false)
    }
}

/// `detail` of `ECS Hook State Change` (a deployment lifecycle hook changed
/// status; "Amazon ECS service deployment hook state change events" in the
/// ECS developer guide). `HOOK_AWAITING_ACTION` is a PAUSE hook waiting for
/// ContinueServiceDeployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookStateChange {
    #[serde(default)]
    pub event_type: Option<String>,
    /// HOOK_IN_PROGRESS, HOOK_AWAITING_ACTION, HOOK_SUCCEEDED, HOOK_FAILED, HOOK_TIMED_OUT.
    pub event_name: String,
    pub hook_id: String,
    /// PAUSE or AWS_LAMBDA.
    #[serde(default)]
    pub hook_type: Option<String>,
    /// When ECS takes the hook's timeout action.
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub lifecycle_stage: Option<String>,
    #[serde(default)]
    pub cluster_arn: String,
    #[serde(default)]
    pub service_arn: String,
    #[serde(default)]
    pub service_deployment_arn: String,
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl HookStateChange {
    /// A pause hook waiting for a person (or a tool) to continue or roll back.
    pub fn awaits_action(&self) -> bool {
        self.event_name == "HOOK_AWAITING_ACTION"
    }

    /// The deployment's id, the last segment of its ARN.
    pub fn deployment_id(&self) -> &str {
        last_segment(&self.service_deployment_arn)
    }
}

/// A hook event with what the decisions need: its service deployment ARN
/// (from the detail, else the envelope's `resources`) and its cluster ARN
/// (from the detail, else the long service ARN). A field that cannot be
/// found is named.
pub fn complete_hook(
    mut d: HookStateChange,
    resources: &[String],
    what: &str,
) -> Result<HookStateChange, TriggerError> {
    if d.hook_id.trim().is_empty() {
        return Err(TriggerError::missing(what, "detail.hookId"));
    }
    if d.service_deployment_arn.trim().is_empty() {
        d.service_deployment_arn =
            resources.iter().find(|r| resource_type(r) == Some("service-deployment")).cloned().ok_or_else(|| {
                TriggerError::missing(what, "detail.serviceDeploymentArn (none in `resources` either)")
            })?;
    }
    if d.service_arn.trim().is_empty() {
        // service-deployment/<cluster>/<service>/<id>: the service is the third segment.
        let resource = d.service_deployment_arn.rsplit_once(':').map(|(_, r)| r).unwrap_or_default();
        let parts: Vec<&str> = resource.split('/').collect();
        match (d.service_deployment_arn.rsplit_once(':'), parts.as_slice()) {
            (Some((head, _)), ["service-deployment", cluster, service, _]) => {
                d.service_arn = format!("{head}:service/{cluster}/{service}");
            }
            _ => return Err(TriggerError::missing(what, "detail.serviceArn")),
        }
    }
    if d.cluster_arn.trim().is_empty() {
        d.cluster_arn = cluster_arn_of(&d.service_arn, "service").ok_or_else(|| {
            TriggerError::missing(
                what,
                "detail.clusterArn (the service ARN is in the short format, without its cluster)",
            )
        })?;
    }
    Ok(d)
}

pub use crate::arn::{cluster_name, last_segment};

use super::TriggerError;

/// A task event as the decisions need it: its task ARN (from `detail.taskArn`,
/// else the task ARN in the envelope's `resources`, where EventBridge always
/// puts it) and its cluster ARN (from `detail.clusterArn`, else the long
/// task ARN `task/<cluster>/<id>`). A field that cannot be found is named.
pub fn complete_task(
    mut d: TaskStateChange,
    resources: &[String],
    what: &str,
) -> Result<TaskStateChange, TriggerError> {
    if d.task_arn.trim().is_empty() {
        d.task_arn = resources
            .iter()
            .find(|r| resource_type(r) == Some("task"))
            .cloned()
            .ok_or_else(|| TriggerError::missing(what, "detail.taskArn (no task ARN in `resources` either)"))?;
    }
    if d.cluster_arn.trim().is_empty() {
        d.cluster_arn = cluster_arn_of(&d.task_arn, "task").ok_or_else(|| {
            TriggerError::missing(what, "detail.clusterArn (the task ARN is in the short format, without its cluster)")
        })?;
    }
    Ok(d)
}

/// A service action with its cluster ARN: `detail.clusterArn`, else the
/// cluster of the long service ARN in `resources`.
pub fn complete_service_action(
    mut d: ServiceAction,
    resources: &[String],
    what: &str,
) -> Result<ServiceAction, TriggerError> {
    if d.cluster_arn.trim().is_empty() {
        d.cluster_arn = resources.iter().find_map(|r| cluster_arn_of(r, "service")).ok_or_else(|| {
            TriggerError::missing(what, "detail.clusterArn (no service ARN naming its cluster in `resources`)")
        })?;
    }
    Ok(d)
}

/// `task` of `arn:aws:ecs:…:task/…`.
fn resource_type(arn: &str) -> Option<&str> {
    let resource = arn.strip_prefix("arn:")?.split(':').nth(4)?;
    resource.split('/').next()
}

/// The cluster ARN of a long-format `<kind>/<cluster>/<name>` ARN.
fn cluster_arn_of(arn: &str, kind: &str) -> Option<String> {
    let (head, resource) = arn.rsplit_once(':').filter(|(h, _)| h.starts_with("arn:"))?;
    let mut parts = resource.split('/');
    if parts.next()? != kind {
        return None;
    }
    match (parts.next(), parts.next()) {
        (Some(cluster), Some(_)) if !cluster.is_empty() => Some(format!("{head}:cluster/{cluster}")),
        _ => None,
    }
}

/// `(cluster, service)` from a service ARN. The long ARN format carries the
/// cluster (`service/<cluster>/<service>`); the legacy one does not, so the
/// caller's `cluster_arn` fills it.
pub fn service_from_arn<'a>(service_arn: &'a str, cluster_arn: &'a str) -> Option<(&'a str, &'a str)> {
    let resource = service_arn.split(':').nth(5)?;
    let mut parts = resource.split('/');
    if parts.next()? != "service" {
        return None;
    }
    match (parts.next(), parts.next()) {
        (Some(cluster), Some(service)) if !service.is_empty() => Some((cluster, service)),
        // The legacy format names no cluster: only usable when the event gives one.
        (Some(service), None) if !service.is_empty() && !cluster_arn.is_empty() => {
            Some((cluster_name(cluster_arn), service))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_read_cluster_and_service_from_both_arn_formats() {
        let cluster = "arn:aws:ecs:us-east-1:111122223333:cluster/prod";
        assert_eq!(
            service_from_arn("arn:aws:ecs:us-east-1:111122223333:service/prod/api", cluster),
            Some(("prod", "api"))
        );
        assert_eq!(service_from_arn("arn:aws:ecs:us-east-1:111122223333:service/api", cluster), Some(("prod", "api")));
        assert_eq!(service_from_arn("arn:aws:ecs:us-east-1:1:task/prod/abc", cluster), None);
        assert_eq!(service_from_arn("not-an-arn", cluster), None);
        assert_eq!(
            service_from_arn("arn:aws:ecs:us-east-1:111122223333:service/api", ""),
            None,
            "legacy ARN, no cluster"
        );
    }

    #[test]
    fn a_task_event_without_task_arn_should_take_it_from_resources() {
        let task = "arn:aws:ecs:us-east-1:111122223333:task/prod/a1b2c3d4e5f60718293a4b5c6d7e8f07";
        let resources = vec!["arn:aws:ecs:us-east-1:111122223333:container-instance/x".to_string(), task.to_string()];
        let d = complete_task(TaskStateChange::default(), &resources, "task").unwrap();
        assert_eq!(d.task_arn, task);
        assert_eq!(d.cluster_arn, "arn:aws:ecs:us-east-1:111122223333:cluster/prod");
        assert_eq!(d.task_id(), "a1b2c3d4e5f60718293a4b5c6d7e8f07");

        let given = TaskStateChange {
            task_arn: "arn:aws:ecs:us-east-1:1:task/other/abc".into(),
            cluster_arn: "arn:aws:ecs:us-east-1:1:cluster/other".into(),
            ..Default::default()
        };
        assert_eq!(complete_task(given.clone(), &resources, "task").unwrap(), given, "the detail wins");
    }

    #[test]
    fn a_task_event_without_any_task_arn_or_cluster_should_name_the_missing_field() {
        let err = complete_task(TaskStateChange::default(), &[], "`ECS Task State Change` detail").unwrap_err();
        assert!(err.to_string().contains("detail.taskArn"), "{err}");
        let short = TaskStateChange { task_arn: "arn:aws:ecs:us-east-1:1:task/abc".into(), ..Default::default() };
        let err = complete_task(short, &[], "task").unwrap_err();
        assert!(err.to_string().contains("detail.clusterArn"), "{err}");
    }

    #[test]
    fn a_service_action_without_cluster_arn_should_take_it_from_its_service_arn() {
        let resources = vec!["arn:aws:ecs:us-east-1:111122223333:service/prod/api".to_string()];
        let d = complete_service_action(ServiceAction::default(), &resources, "action").unwrap();
        assert_eq!(d.cluster_arn, "arn:aws:ecs:us-east-1:111122223333:cluster/prod");
        let legacy = vec!["arn:aws:ecs:us-east-1:111122223333:service/api".to_string()];
        let err = complete_service_action(ServiceAction::default(), &legacy, "action").unwrap_err();
        assert!(err.to_string().contains("detail.clusterArn"), "{err}");
    }

    #[test]
    fn a_hook_event_should_be_completed_from_its_arns_or_name_what_is_missing() {
        let arn = "arn:aws:ecs:us-west-2:123456789012:service-deployment/my-cluster/my-service/0EYSiB0qap8xf0N76FsbE";
        let bare = HookStateChange {
            event_name: "HOOK_AWAITING_ACTION".into(),
            hook_id: "ecs-pause-abc".into(),
            ..Default::default()
        };
        let d = complete_hook(bare.clone(), &[arn.to_string()], "hook").unwrap();
        assert_eq!(d.service_deployment_arn, arn);
        assert_eq!(d.service_arn, "arn:aws:ecs:us-west-2:123456789012:service/my-cluster/my-service");
        assert_eq!(d.cluster_arn, "arn:aws:ecs:us-west-2:123456789012:cluster/my-cluster");
        assert_eq!(d.deployment_id(), "0EYSiB0qap8xf0N76FsbE");
        assert!(d.awaits_action());
        let err = complete_hook(bare, &[], "hook").unwrap_err().to_string();
        assert!(err.contains("detail.serviceDeploymentArn"), "{err}");
        let err = complete_hook(HookStateChange::default(), &[arn.to_string()], "hook").unwrap_err().to_string();
        assert!(err.contains("detail.hookId"), "{err}");
    }

    #[test]
    fn should_tell_service_tasks_from_standalone_tasks() {
        let mut task = TaskStateChange { group: Some("service:api".into()), ..Default::default() };
        assert_eq!(task.service_name(), Some("api"));
        task.group = Some("family:batch".into());
        assert_eq!(task.service_name(), None);
    }
}
