//! Application Auto Scaling: the service's scalable target.

use super::{AwsError, Clients, aws_error};

/// The autoscaling maximum of an ECS service; `None` when it has no scalable target.
pub async fn max_capacity(clients: &Clients, cluster: &str, service: &str) -> Result<Option<i32>, AwsError> {
    let resource = format!("service/{cluster}/{service}");
    let resp = clients
        .autoscaling
        .describe_scalable_targets()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .resource_ids(&resource)
        .scalable_dimension(aws_sdk_applicationautoscaling::types::ScalableDimension::EcsServiceDesiredCount)
        .send()
        .await
        .map_err(|e| aws_error("application-autoscaling", "DescribeScalableTargets", &resource, &e))?;
    Ok(resp.scalable_targets().first().map(|t| t.max_capacity()))
}
