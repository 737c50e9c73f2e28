//! Faults the local server cannot produce (throttling, 5xx, unreachable
//! endpoints), injected through the SDK's own test support: gathering
//! degrades step by step and names what failed; retries recover.

use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::types::{LoadBalancer, Service};
use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthError;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use shared::adapters::Clients;
use shared::adapters::gather::{Depth, GatherRequest, gather};

/// Clients whose unmocked services point at a closed port (no retries), so
/// any call to them fails fast like an unreachable endpoint.
async fn clients(ecs: aws_sdk_ecs::Client, elbv2: aws_sdk_elasticloadbalancingv2::Client) -> Clients {
    let dead = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new("k", "s", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let mut c = Clients::new(&dead);
    c.set_ecs(ecs);
    c.set_elbv2(elbv2);
    c
}

fn service() -> DescribeServicesOutput {
    DescribeServicesOutput::builder()
        .services(
            Service::builder()
                .service_name("api")
                .cluster_arn("arn:aws:ecs:us-east-1:111122223333:cluster/prod")
                .status("ACTIVE")
                .desired_count(3)
                .running_count(1)
                .task_definition("arn:aws:ecs:us-east-1:111122223333:task-definition/api:42")
                .load_balancers(
                    LoadBalancer::builder()
                        .target_group_arn(
                            "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/api-tg/73e2d6bc24d8a067",
                        )
                        .build(),
                )
                .build(),
        )
        .build()
}

#[tokio::test]
async fn when_describe_services_returns_503_twice_the_sdk_retry_recovers() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .http_status(503, None)
        .times(2)
        .output(service)
        .build();
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&describe], |b| b
        .retry_config(RetryConfig::standard().with_max_attempts(3)));
    let health = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health).then_output(|| {
        aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput::builder().build()
    });
    let elbv2 = mock_client!(aws_sdk_elasticloadbalancingv2, [&health]);
    let c = clients(ecs, elbv2).await;
    let g = gather(
        &c,
        &GatherRequest { cluster: "prod".into(), service: "api".into(), depth: Depth::Facts, ..Default::default() },
    )
    .await;
    assert_eq!(describe.num_calls(), 3, "two 503s, then the answer");
    let s = g.service.expect("service read after retries");
    assert_eq!((s.running, s.desired), (1, 3));
    assert!(g.errors.is_empty(), "{:?}", g.errors);
}

#[tokio::test]
async fn when_one_step_is_throttled_the_others_still_report_and_the_failure_is_named() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(service);
    let denied = mock!(aws_sdk_ecs::Client::list_tasks).then_error(|| {
        aws_sdk_ecs::operation::list_tasks::ListTasksError::generic(
            aws_sdk_ecs::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized")
                .build(),
        )
    });
    let task_def = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(|| {
        aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput::builder()
            .task_definition(
                aws_sdk_ecs::types::TaskDefinition::builder()
                    .family("api")
                    .revision(42)
                    .task_definition_arn("arn:aws:ecs:us-east-1:111122223333:task-definition/api:42")
                    .build(),
            )
            .build()
    });
    let ecs = mock_client!(aws_sdk_ecs, [&describe, &denied, &task_def]);
    let throttled = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health).then_error(|| {
        DescribeTargetHealthError::generic(
            aws_sdk_elasticloadbalancingv2::error::ErrorMetadata::builder()
                .code("Throttling")
                .message("Rate exceeded")
                .build(),
        )
    });
    let elbv2 = mock_client!(aws_sdk_elasticloadbalancingv2, [&throttled]);
    let c = clients(ecs, elbv2).await;
    let g = gather(
        &c,
        &GatherRequest {
            cluster: "prod".into(),
            service: "api".into(),
            depth: Depth::Full,
            log_lines: 5,
            ..Default::default()
        },
    )
    .await;
    assert!(g.service.is_some(), "the service was read");
    let steps: Vec<&str> = g.errors.iter().map(|e| e.step.as_str()).collect();
    assert!(steps.contains(&"elasticloadbalancing:DescribeTargetHealth"), "{steps:?}");
    let throttle = g.errors.iter().find(|e| e.step.starts_with("elasticloadbalancing")).unwrap();
    assert!(throttle.message.contains("Throttling") && throttle.message.contains("api-tg"), "{}", throttle.message);
    // Unreachable CloudWatch and an unmocked stopped-task list fail on their own, named.
    assert!(steps.contains(&"cloudwatch:GetMetricData"), "{steps:?}");
    assert!(steps.contains(&"ecs:ListTasks/DescribeTasks"), "{steps:?}");
    assert!(g.task_definition.is_some(), "the task definition was still read");
    assert!(g.target_counts().is_none(), "no target facts invented");
}
