//! Elastic Load Balancing: target health of the service's target groups.

use super::{AwsError, Clients, aws_error};
use crate::snapshot::{TargetHealthSnapshot, TargetSnapshot};

pub async fn target_health(clients: &Clients, target_group_arn: &str) -> Result<TargetHealthSnapshot, AwsError> {
    let resp = clients
        .elbv2()
        .describe_target_health()
        .target_group_arn(target_group_arn)
        .send()
        .await
        .map_err(|e| aws_error("elasticloadbalancing", "DescribeTargetHealth", target_group_arn, &e))?;
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

/// A target group and the load balancers that forward to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupLoadBalancers {
    pub target_group_arn: String,
    pub load_balancer_arns: Vec<crate::arn::Arn>,
}

/// The load balancers of many target groups: 20 target groups per
/// `DescribeTargetGroups` call (its answer pages at up to 400, so 20 named
/// ARNs always come back in one page).
pub async fn target_group_load_balancers(
    clients: &Clients,
    target_group_arns: &[String],
) -> Result<Vec<TargetGroupLoadBalancers>, AwsError> {
    let mut out = Vec::new();
    for chunk in target_group_arns.chunks(20) {
        let resp = clients
            .elbv2()
            .describe_target_groups()
            .set_target_group_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| {
                aws_error("elasticloadbalancing", "DescribeTargetGroups", format!("{} target groups", chunk.len()), &e)
            })?;
        out.extend(resp.target_groups().iter().filter_map(|g| {
            Some(TargetGroupLoadBalancers {
                target_group_arn: g.target_group_arn()?.to_string(),
                load_balancer_arns: g.load_balancer_arns().to_vec(),
            })
        }));
    }
    Ok(out)
}
