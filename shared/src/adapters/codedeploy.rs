//! CodeDeploy (reads only): the ECS service behind a CodeDeploy-to-ECS
//! deployment group, for pipeline deploy actions of that provider.

use super::{AwsError, Clients, aws_error};

/// `(cluster, service)` of the deployment group's ECS services.
pub async fn ecs_services(
    clients: &Clients,
    application: &str,
    group: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    let resp = clients
        .codedeploy()
        .get_deployment_group()
        .application_name(application)
        .deployment_group_name(group)
        .send()
        .await
        .map_err(|e| aws_error("codedeploy", "GetDeploymentGroup", format!("{application}/{group}"), &e))?;
    Ok(resp
        .deployment_group_info()
        .map(|g| {
            g.ecs_services()
                .iter()
                .filter_map(|s| {
                    let cluster = crate::arn::cluster_name(s.cluster_name()?).to_string();
                    let service = crate::arn::last_segment(s.service_name()?).to_string();
                    (!cluster.is_empty() && !service.is_empty()).then_some((cluster, service))
                })
                .collect()
        })
        .unwrap_or_default())
}
