//! The runbooks' next steps for each cause: what a person does next.

use crate::outcome::Cause;

pub fn next_steps(cause: Cause) -> &'static [&'static str] {
    match cause {
        Cause::ImagePull => &[
            "Check that the image tag exists in the registry (aws ecr describe-images --repository-name <repo> --image-ids imageTag=<tag>).",
            "Check the execution role can pull (ecr:GetAuthorizationToken, ecr:BatchGetImage) and that private subnets have a route to ECR (NAT or VPC endpoints).",
            "Roll back to the last known-good task definition if the tag was never published.",
        ],
        Cause::OutOfMemory => &[
            "Compare memory use with the task and container limits (metrics in the evidence bundle).",
            "Raise the container/task memory in a new task definition revision, or roll back if a release introduced the leak.",
            "Look for a memory leak or unbounded cache in the log excerpt and recent deploys.",
        ],
        Cause::Secrets => &[
            "Check the execution role policy allows secretsmanager:GetSecretValue / ssm:GetParameters (and kms:Decrypt) on the referenced secrets.",
            "Check the secret ARNs in the task definition exist in this region and account.",
            "Check private subnets reach Secrets Manager / SSM (NAT or VPC endpoints).",
        ],
        Cause::Network => &[
            "Check the subnets have free IP addresses and the ENI limit is not reached.",
            "Check the security groups and route tables (NAT, VPC endpoints) of the service's awsvpc configuration.",
            "Retry: provisioning timeouts are often transient; escalate if they persist.",
        ],
        Cause::HealthCheck => &[
            "Check target health reasons (evidence) and the health-check path, port and grace period.",
            "Read the log excerpt for startup errors; compare with the last known-good revision.",
            "If a deploy caused it, roll back; otherwise raise healthCheckGracePeriodSeconds if the app starts slowly.",
        ],
        Cause::EssentialExit => &[
            "Read the log excerpt of the failing container for the crash (stack trace, missing config).",
            "Compare the failing task definition with the last known-good one (image, environment, secrets).",
            "Roll back if the crash started with a deployment.",
        ],
        Cause::Capacity => &[
            "Check Fargate/Fargate Spot capacity in the affected AZs; add subnets in more AZs or a FARGATE fallback capacity provider.",
            "Check service quotas (Fargate vCPU) and placement constraints.",
        ],
        Cause::SpotInterruption => &[
            "Spot capacity was reclaimed; ECS replaces the task. Consider a FARGATE base in the capacity provider strategy for critical services.",
        ],
        Cause::Expected => &["No action: the stop was expected (deployment, scale-in or a person)."],
        Cause::Unknown => &[
            "Read the stopped reason and the service events in the evidence bundle.",
            "Run the runbook function's diagnose action for a fresh look: aws lambda invoke --function-name <stack>-runbook --payload '{\"action\":\"diagnose\",\"cluster\":\"…\",\"service\":\"…\"}' out.json",
        ],
        Cause::HighCpu => {
            &["Check CPU per task and request rate; scale out within bounds or roll back a regressing release."]
        }
        Cause::HighMemory => &["Check memory per task for a leak; scale out or raise memory in a new revision."],
        Cause::UnhealthyTargets => {
            &["Check target health reasons and the failing tasks' logs; roll back if a deploy caused it."]
        }
        Cause::Http5xx => {
            &["Check the application logs for errors and the dependencies they call; roll back a regressing release."]
        }
        Cause::Latency => &["Check downstream dependencies and CPU saturation; scale out if CPU-bound."],
        Cause::TaskCountLow => {
            &["Check why tasks stop (stopped tasks, service events) and whether capacity is available."]
        }
        Cause::OtherAlarm => &["Read the alarm's description and metric; follow its owner's runbook."],
        Cause::PipelineFailed => {
            &["Open the failed action's execution details and build log; fix and retry the stage."]
        }
        Cause::ApprovalWaiting => &["Review the change and approve or reject it in the pipeline console."],
    }
}
