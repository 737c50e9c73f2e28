//! Application Auto Scaling: the service's scalable target.

use super::{AwsError, Clients, aws_error};

/// The autoscaling maximum of an ECS service; `None` when it has no scalable target.
pub async fn max_capacity(clients: &Clients, cluster: &str, service: &str) -> Result<Option<i32>, AwsError> {
    let resource = format!("service/{cluster}/{service}");
    let resp = clients
        .autoscaling()
        .describe_scalable_targets()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .resource_ids(&resource)
        .scalable_dimension(aws_sdk_applicationautoscaling::types::ScalableDimension::EcsServiceDesiredCount)
        .send()
        .await
        .map_err(|e| aws_error("application-autoscaling", "DescribeScalableTargets", &resource, &e))?;
    Ok(resp.scalable_targets().first().map(|t| t.max_capacity()))
}

/// The ECS scalable targets of many services, `(resource id, min, max)`,
/// resource ids `service/<cluster>/<service>`: 50 per call (the API answers
/// at most 50 targets per page), `NextToken` followed. Services without a
/// target are absent.
pub async fn scalable_targets(clients: &Clients, resource_ids: &[String]) -> Result<Vec<(String, i32, i32)>, AwsError> {
    let mut out = Vec::new();
    for chunk in resource_ids.chunks(50) {
        let mut token = None;
        loop {
            let resp = clients
                .autoscaling()
                .describe_scalable_targets()
                .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
                .set_resource_ids(Some(chunk.to_vec()))
                .scalable_dimension(aws_sdk_applicationautoscaling::types::ScalableDimension::EcsServiceDesiredCount)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    aws_error(
                        "application-autoscaling",
                        "DescribeScalableTargets",
                        format!("{} services", chunk.len()),
                        &e,
                    )
                })?;
            out.extend(
                resp.scalable_targets()
                    .iter()
                    .map(|t| (t.resource_id().to_string(), t.min_capacity(), t.max_capacity())),
            );
            token = resp.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(out)
}
