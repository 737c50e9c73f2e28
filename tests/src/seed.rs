//! Seeding a realistic service on the local server: cluster, task definition
//! (with a secret-named environment variable and awslogs), a load-balanced
//! Fargate service, and log lines of a failing container.

use serde_json::Value;

use crate::testbed::TestBed;

/// The secret value planted in the task definition and the app's log; it must
/// never appear in S3 or SNS.
pub const PLANTED_SECRET: &str = "hunter2-Sup3rSecret!x9";

/// A ledger item to seed (see [`SeededService::seed_ledger`]).
pub struct LedgerSeed<'a> {
    pub at: i64,
    pub action: &'a str,
    pub status: &'a str,
    pub automatic: bool,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub detail: &'a str,
}

pub struct SeededService {
    pub cluster: String,
    pub cluster_arn: String,
    pub service: String,
    pub service_arn: String,
    pub task_definition_arn: String,
    pub log_group: String,
    pub target_group_arn: String,
    /// The id of the deployment the service was created with: the one a
    /// retargeted deployment event names (the local server keeps it PRIMARY
    /// until a new deployment is forced).
    pub deployment_id: String,
}

/// The account the local server runs as (MOTO_ACCOUNT_ID in scripts/moto.sh):
/// the fixtures' and the functions' own.
pub const HOME_ACCOUNT: &str = "111122223333";

/// The deployment id the ECS deployment fixtures name for the deployment under test.
const FIXTURE_DEPLOYMENT_ID: &str = "ecs-svc/4476358862378401234";

/// The VPC, subnets and security group `scripts/seed_network.py` made in
/// the bed's account: the fixtures' own, or a member's (`TEST_MEMBER_NETWORKS`).
fn network(bed: &TestBed) -> (String, Vec<String>, String) {
    let need =
        |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run the tests with scripts/test.sh"));
    if let Some(account) = &bed.account {
        let networks = need("TEST_MEMBER_NETWORKS");
        let found = networks.split(';').find_map(|n| {
            let mut parts = n.split(':');
            (parts.next()? == account).then(|| {
                let vpc = parts.next().unwrap_or_default().to_string();
                let subnets = parts.next().unwrap_or_default().split(',').map(str::to_string).collect();
                (vpc, subnets, parts.next().unwrap_or_default().to_string())
            })
        });
        return found.unwrap_or_else(|| panic!("no network of member {account} in TEST_MEMBER_NETWORKS={networks}"));
    }
    (
        need("TEST_VPC_ID"),
        need("TEST_SUBNET_IDS").split(',').map(str::to_string).collect(),
        need("TEST_SECURITY_GROUP_ID"),
    )
}

/// Target group names are account-wide and at most 32 characters.
fn unique_target_group_name() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!("tg-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

impl SeededService {
    pub async fn create(bed: &TestBed, service: &str, desired: i32) -> Self {
        Self::create_named(bed, &format!("{}-cl", bed.prefix), service, desired).await
    }

    /// Like [`SeededService::create`], in the cluster `cluster` (created if
    /// new): many services of one test bed, each in a cluster of its own.
    pub async fn create_named(bed: &TestBed, cluster: &str, service: &str, desired: i32) -> Self {
        Self::create_with_controller(bed, cluster, service, desired, None).await
    }

    /// Like [`SeededService::create`], deployed by `controller` (`CODE_DEPLOY`,
    /// `EXTERNAL`; the local server keeps it and DescribeServices returns it).
    pub async fn create_deployed_by(bed: &TestBed, service: &str, desired: i32, controller: &str) -> Self {
        Self::create_with_controller(bed, &format!("{}-cl", bed.prefix), service, desired, Some(controller)).await
    }

    async fn create_with_controller(
        bed: &TestBed,
        cluster: &str,
        service: &str,
        desired: i32,
        controller: Option<&str>,
    ) -> Self {
        use aws_sdk_ecs::types::*;
        let ecs = aws_sdk_ecs::Client::new(&bed.config);
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&bed.config);
        let logs = aws_sdk_cloudwatchlogs::Client::new(&bed.config);
        let (vpc, subnets, sg) = network(bed);
        let cluster = cluster.to_string();
        let cluster_arn = ecs
            .create_cluster()
            .cluster_name(&cluster)
            .send()
            .await
            .expect("cluster")
            .cluster
            .and_then(|c| c.cluster_arn)
            .expect("arn");
        let log_group = format!("/ecs/{}/{service}", bed.prefix);
        logs.create_log_group().log_group_name(&log_group).send().await.expect("log group");
        let container = ContainerDefinition::builder()
            .name(service)
            .image(format!("111122223333.dkr.ecr.us-east-1.amazonaws.com/{service}:v2.3.1"))
            .essential(true)
            .memory(1024)
            .port_mappings(PortMapping::builder().container_port(8080).build())
            .environment(KeyValuePair::builder().name("DB_PASSWORD").value(PLANTED_SECRET).build())
            .environment(KeyValuePair::builder().name("LOG_LEVEL").value("info").build())
            .secrets(
                Secret::builder()
                    .name("API_TOKEN")
                    .value_from("arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api/token-AbCdEf")
                    .build()
                    .expect("secret"),
            )
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", &log_group)
                    .options("awslogs-stream-prefix", service)
                    .options("awslogs-region", "us-east-1")
                    .build()
                    .expect("log configuration"),
            )
            .build();
        let task_definition_arn = ecs
            .register_task_definition()
            .family(format!("{}-{service}", bed.prefix))
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("512")
            .memory("1024")
            .container_definitions(container)
            .send()
            .await
            .expect("task definition")
            .task_definition
            .and_then(|t| t.task_definition_arn)
            .expect("task definition arn");
        let target_group_arn = elb
            .create_target_group()
            .name(unique_target_group_name())
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(8080)
            .vpc_id(&vpc)
            .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip)
            .send()
            .await
            .expect("target group")
            .target_groups
            .and_then(|t| t.into_iter().next())
            .and_then(|t| t.target_group_arn)
            .expect("target group arn");
        let created = ecs
            .create_service()
            .cluster(&cluster)
            .service_name(service)
            .task_definition(&task_definition_arn)
            .desired_count(desired)
            .launch_type(LaunchType::Fargate)
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(
                        AwsVpcConfiguration::builder()
                            .set_subnets(Some(subnets))
                            .security_groups(sg)
                            .build()
                            .expect("awsvpc"),
                    )
                    .build(),
            )
            .load_balancers(
                LoadBalancer::builder()
                    .target_group_arn(&target_group_arn)
                    .container_name(service)
                    .container_port(8080)
                    .build(),
            )
            .set_deployment_controller(controller.map(|c| {
                DeploymentController::builder()
                    .r#type(DeploymentControllerType::from(c))
                    .build()
                    .expect("deployment controller")
            }))
            .send()
            .await
            .expect("service")
            .service
            .expect("service");
        let service_arn = created.service_arn.clone().expect("service arn");
        // The local server lists no deployment for a service another controller deploys.
        let deployment_id = primary_deployment(&created)
            .or_else(|| controller.map(|c| format!("ecs-svc/{}", c.to_ascii_lowercase())))
            .expect("the new service's deployment");
        Self {
            cluster,
            cluster_arn,
            service: service.into(),
            service_arn,
            task_definition_arn,
            log_group,
            target_group_arn,
            deployment_id,
        }
    }

    /// Register the next revision of the task definition (a new image tag)
    /// and deploy it with UpdateService, as a release would. Returns its ARN.
    pub async fn deploy_new_revision(&self, bed: &TestBed, tag: &str) -> String {
        let image = format!("111122223333.dkr.ecr.us-east-1.amazonaws.com/{}:{tag}", self.service);
        let arn = self.register_revision(bed, |c| c.image = Some(image)).await;
        let ecs = aws_sdk_ecs::Client::new(&bed.config);
        ecs.update_service()
            .cluster(&self.cluster)
            .service(&self.service)
            .task_definition(&arn)
            .send()
            .await
            .expect("deploy");
        arn
    }

    /// Register a revision of the task definition with extra environment
    /// variables (not deployed). Returns its ARN.
    pub async fn register_with_environment(&self, bed: &TestBed, vars: &[(String, String)]) -> String {
        use aws_sdk_ecs::types::KeyValuePair;
        self.register_revision(bed, |c| {
            let env = c.environment.get_or_insert_with(Vec::new);
            env.extend(vars.iter().map(|(k, v)| KeyValuePair::builder().name(k).value(v).build()));
        })
        .await
    }

    /// The next revision of the first task definition, its container changed by `change`.
    async fn register_revision(
        &self,
        bed: &TestBed,
        change: impl FnOnce(&mut aws_sdk_ecs::types::ContainerDefinition),
    ) -> String {
        use aws_sdk_ecs::types::*;
        let ecs = aws_sdk_ecs::Client::new(&bed.config);
        let current = ecs
            .describe_task_definition()
            .task_definition(&self.task_definition_arn)
            .send()
            .await
            .expect("describe task definition")
            .task_definition
            .expect("task definition");
        let mut container = current.container_definitions()[0].clone();
        change(&mut container);
        ecs.register_task_definition()
            .family(current.family().unwrap_or_default())
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("512")
            .memory("1024")
            .container_definitions(container)
            .send()
            .await
            .expect("register revision")
            .task_definition
            .and_then(|t| t.task_definition_arn)
            .expect("revision arn")
    }

    /// Write `lines` as the log of the failing container of `task_id`, one
    /// log event each (a multi-line string stays one event).
    pub async fn write_log(&self, bed: &TestBed, task_id: &str, lines: &[String]) {
        let logs = aws_sdk_cloudwatchlogs::Client::new(&bed.config);
        let stream = format!("{}/{}/{task_id}", self.service, self.service);
        logs.create_log_stream().log_group_name(&self.log_group).log_stream_name(&stream).send().await.ok();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        for (chunk_no, chunk) in lines.chunks(100).enumerate() {
            let mut req = logs.put_log_events().log_group_name(&self.log_group).log_stream_name(&stream);
            for (i, l) in chunk.iter().enumerate() {
                let at = now - 60_000 + ((chunk_no * 100 + i) as i64) * 10;
                req = req.log_events(
                    aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                        .timestamp(at)
                        .message(l)
                        .build()
                        .expect("log event"),
                );
            }
            req.send().await.expect("put log events");
        }
    }

    /// The id of the service's PRIMARY deployment, as ECS reports it.
    pub async fn primary_deployment_id(&self, bed: &TestBed) -> Option<String> {
        let ecs = aws_sdk_ecs::Client::new(&bed.config);
        let s = ecs
            .describe_services()
            .cluster(&self.cluster)
            .services(&self.service)
            .send()
            .await
            .expect("describe service")
            .services
            .and_then(|s| s.into_iter().next())?;
        s.deployments().iter().find(|d| d.status() == Some("PRIMARY")).and_then(|d| d.id().map(str::to_string))
    }

    /// What the service runs now, and its desired count.
    pub async fn current(&self, bed: &TestBed) -> (String, i32) {
        let ecs = aws_sdk_ecs::Client::new(&bed.config);
        let s = ecs
            .describe_services()
            .cluster(&self.cluster)
            .services(&self.service)
            .send()
            .await
            .expect("describe service")
            .services
            .and_then(|s| s.into_iter().next())
            .expect("service");
        (s.task_definition.unwrap_or_default(), s.desired_count)
    }

    pub async fn tag(&self, bed: &TestBed, key: &str, value: &str) {
        let ecs = aws_sdk_ecs::Client::new(&bed.config);
        ecs.tag_resource()
            .resource_arn(&self.service_arn)
            .tags(aws_sdk_ecs::types::Tag::builder().key(key).value(value).build())
            .send()
            .await
            .expect("tag service");
    }

    /// Point the service at `task_definition` with UpdateService, as a
    /// person (or an invocation that died before recording it) would.
    pub async fn roll_to(&self, bed: &TestBed, task_definition: &str) {
        let ecs = aws_sdk_ecs::Client::new(&bed.config);
        ecs.update_service()
            .cluster(&self.cluster)
            .service(&self.service)
            .task_definition(task_definition)
            .send()
            .await
            .expect("update service");
    }

    /// Write one ledger item of this service, as the engine does; returns its sort key.
    pub async fn seed_ledger(&self, bed: &TestBed, entry: &LedgerSeed<'_>) -> String {
        use aws_sdk_dynamodb::types::AttributeValue;
        let when = chrono::DateTime::from_timestamp(entry.at, 0).expect("time").to_rfc3339();
        let sk = format!("ledger#{when}#{}#seed0001", entry.action);
        let mut req = bed
            .dynamodb
            .put_item()
            .table_name(&bed.table)
            .item("pk", AttributeValue::S(self.state_key()))
            .item("sk", AttributeValue::S(sk.clone()))
            .item("at", AttributeValue::N(entry.at.to_string()))
            .item("action", AttributeValue::S(entry.action.into()))
            .item("status", AttributeValue::S(entry.status.into()))
            .item("automatic", AttributeValue::Bool(entry.automatic))
            .item("detail", AttributeValue::S(entry.detail.into()))
            .item("origin", AttributeValue::S("automatic (seeded)".into()))
            .item("expires_at", AttributeValue::N((entry.at + 90 * 86_400).to_string()));
        if let Some(f) = entry.from {
            req = req.item("from", AttributeValue::S(f.into()));
        }
        if let Some(t) = entry.to {
            req = req.item("to", AttributeValue::S(t.into()));
        }
        req.send().await.expect("seed ledger");
        sk
    }

    /// The hold item of this service (automatic actions stopped after a failed action), if any.
    pub async fn hold(
        &self,
        bed: &TestBed,
    ) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        bed.state_item(&self.state_key(), "hold").await
    }

    /// Every ledger item of this service, as stored.
    pub async fn ledger_items(
        &self,
        bed: &TestBed,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        use aws_sdk_dynamodb::types::AttributeValue;
        bed.dynamodb
            .query()
            .table_name(&bed.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :l)")
            .expression_attribute_values(":pk", AttributeValue::S(self.state_key()))
            .expression_attribute_values(":l", AttributeValue::S("ledger#".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("query ledger")
            .items
            .unwrap_or_default()
    }

    /// Ledger entries of this service: `(action, status, detail)`.
    pub async fn ledger(&self, bed: &TestBed) -> Vec<(String, String, String)> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let resp = bed
            .dynamodb
            .query()
            .table_name(&bed.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :l)")
            .expression_attribute_values(":pk", AttributeValue::S(self.state_key()))
            .expression_attribute_values(":l", AttributeValue::S("ledger#".into()))
            .send()
            .await
            .expect("query ledger");
        let get = |i: &std::collections::HashMap<String, AttributeValue>, k: &str| {
            i.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
        };
        resp.items().iter().map(|i| (get(i, "action"), get(i, "status"), get(i, "detail"))).collect()
    }

    /// Log lines of a failing container: startup, an error that leaks the
    /// planted secret, and the crash.
    pub async fn write_crash_log(&self, bed: &TestBed, task_id: &str) {
        let logs = aws_sdk_cloudwatchlogs::Client::new(&bed.config);
        let stream = format!("{}/{}/{task_id}", self.service, self.service);
        logs.create_log_group().log_group_name(&self.log_group).send().await.ok();
        logs.create_log_stream()
            .log_group_name(&self.log_group)
            .log_stream_name(&stream)
            .send()
            .await
            .expect("log stream");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let lines = [
            "INFO starting api v2.3.1 on :8080".to_string(),
            format!("DEBUG connecting to postgres://app:{PLANTED_SECRET}@db.internal:5432/app"),
            "INFO loading product catalogue into memory".to_string(),
            format!("ERROR pool exhausted; retrying with password={PLANTED_SECRET}"),
            "ERROR java.lang.OutOfMemoryError: Java heap space".to_string(),
            "FATAL shutting down after unrecoverable error".to_string(),
        ];
        let mut req = logs.put_log_events().log_group_name(&self.log_group).log_stream_name(&stream);
        for (i, l) in lines.iter().enumerate() {
            req = req.log_events(
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(now - 10_000 + i as i64 * 100)
                    .message(l)
                    .build()
                    .expect("log event"),
            );
        }
        req.send().await.expect("put log events");
    }

    /// A fixture event retargeted at this service: cluster, service, task
    /// definition, and a fresh event id and task id.
    /// The state table's partition key of this service: a member account's
    /// starts with its account and region (`shared::fleet::Scope`).
    pub fn state_key(&self) -> String {
        let mut parts = self.service_arn.split(':');
        let region = parts.nth(3).unwrap_or(crate::testbed::REGION);
        let account = parts.next().unwrap_or_default();
        let scope = if account == HOME_ACCOUNT || account.is_empty() {
            shared::fleet::Scope::Home
        } else {
            shared::fleet::Scope::member(account, region)
        };
        shared::incident::Subject::service(self.cluster.as_str(), self.service.as_str()).at(&scope).key()
    }

    pub fn retarget(&self, event: &Value, event_id: &str, task_id: &str) -> Value {
        let text = event
            .to_string()
            .replace("arn:aws:ecs:us-east-1:111122223333:cluster/prod", &self.cluster_arn)
            .replace("arn:aws:ecs:us-east-1:111122223333:service/prod/api", &self.service_arn)
            .replace("arn:aws:ecs:us-east-1:111122223333:service/api", &self.service_arn)
            .replace("arn:aws:ecs:us-east-1:111122223333:task-definition/api:42", &self.task_definition_arn)
            .replace("\"service:api\"", &format!("\"service:{}\"", self.service))
            .replace("task/prod/", &format!("task/{}/", self.cluster))
            .replace("container/prod/", &format!("container/{}/", self.cluster))
            // A deployment event names a deployment the service has, as ECS's do.
            .replace(FIXTURE_DEPLOYMENT_ID, &self.deployment_id);
        let mut v: Value = serde_json::from_str(&text).expect("retargeted json");
        v["id"] = Value::from(event_id);
        // EventBridge names the account the event comes from: a member's service's.
        if v.get("account").is_some()
            && let Some(account) = self.service_arn.split(':').nth(4).filter(|a| a.len() == 12)
        {
            v["account"] = Value::from(account);
        }
        if let Some(detail) = v.get_mut("detail")
            && let Some(arn) = detail.get("taskArn").and_then(Value::as_str).map(str::to_string)
        {
            let new_arn = format!("{}/{task_id}", arn.rsplit_once('/').map(|(a, _)| a).unwrap_or(&arn));
            detail["taskArn"] = Value::from(new_arn.clone());
            if let Some(containers) = detail.get_mut("containers").and_then(Value::as_array_mut) {
                for c in containers {
                    c["taskArn"] = Value::from(new_arn.clone());
                }
            }
            v["resources"] = Value::from(vec![new_arn]);
        }
        v
    }
}

/// The id of a service's PRIMARY deployment, as ECS (or the local server) returns it.
fn primary_deployment(service: &aws_sdk_ecs::types::Service) -> Option<String> {
    service.deployments().iter().find(|d| d.status() == Some("PRIMARY")).and_then(|d| d.id().map(str::to_string))
}

/// Deployments as ECS runs them: each release, and each rollback ECS's
/// circuit breaker makes, is a new deployment with its own id.
impl SeededService {
    /// Start a new deployment of `task_definition`, as ECS does for a release
    /// or a circuit-breaker rollback. Returns the new deployment's id.
    pub async fn start_deployment(&self, bed: &TestBed, task_definition: &str) -> String {
        let ecs = aws_sdk_ecs::Client::new(&bed.config);
        // The local server only sets the revision on UpdateService; a forced
        // deployment afterwards is a deployment of that revision (both in one
        // call would create it with the old revision).
        self.roll_to(bed, task_definition).await;
        let updated = ecs
            .update_service()
            .cluster(&self.cluster)
            .service(&self.service)
            .force_new_deployment(true)
            .send()
            .await
            .expect("start deployment")
            .service
            .expect("service");
        primary_deployment(&updated).expect("the new deployment")
    }

    /// Register the next revision (a new image tag) and release it as a new
    /// deployment. Returns its ARN and the deployment's id.
    pub async fn release(&self, bed: &TestBed, tag: &str) -> (String, String) {
        let image = format!("111122223333.dkr.ecr.us-east-1.amazonaws.com/{}:{tag}", self.service);
        let arn = self.register_revision(bed, |c| c.image = Some(image)).await;
        let deployment = self.start_deployment(bed, &arn).await;
        (arn, deployment)
    }

    /// An ECS Deployment State Change fixture retargeted at this service,
    /// naming `deployment_id`, its state changed at `updated_at` (epoch seconds).
    pub fn deployment_event(&self, file: &str, event_id: &str, deployment_id: &str, updated_at: i64) -> Value {
        let mut v = self.retarget(&crate::fixture(file), event_id, "-");
        let when = chrono::DateTime::from_timestamp(updated_at, 0).expect("time");
        v["detail"]["deploymentId"] = Value::from(deployment_id);
        v["detail"]["updatedAt"] = Value::from(when.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        v["time"] = Value::from(when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        v
    }

    /// Every known-good history item of this service, as stored.
    pub async fn known_good_items(
        &self,
        bed: &TestBed,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        use aws_sdk_dynamodb::types::AttributeValue;
        bed.dynamodb
            .query()
            .table_name(&bed.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :kg)")
            .expression_attribute_values(":pk", AttributeValue::S(self.state_key()))
            .expression_attribute_values(":kg", AttributeValue::S("known-good#".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("query known-good")
            .items
            .unwrap_or_default()
    }
}

/// What the weekly capacity review reads, seeded: datapoints, a load
/// balancer in front of the target group, an autoscaling target, and the
/// deployment and incident records ecs-events writes.
impl SeededService {
    /// Put `points` (epoch seconds, value) of one metric with `dimensions`,
    /// as the service (or Container Insights, or the ALB) would publish them.
    /// CloudWatch accepts datapoints up to two weeks old, 1000 per call.
    pub async fn put_metric(
        &self,
        bed: &TestBed,
        namespace: &str,
        metric: &str,
        dimensions: &[(&str, &str)],
        points: &[(i64, f64)],
    ) {
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
        let cw = aws_sdk_cloudwatch::Client::new(&bed.config);
        for chunk in points.chunks(1000) {
            let data: Vec<MetricDatum> = chunk
                .iter()
                .map(|(t, v)| {
                    let mut d = MetricDatum::builder()
                        .metric_name(metric)
                        .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(*t))
                        .value(*v);
                    for (name, value) in dimensions {
                        d = d.dimensions(Dimension::builder().name(*name).value(*value).build());
                    }
                    d.build()
                })
                .collect();
            cw.put_metric_data()
                .namespace(namespace)
                .set_metric_data(Some(data))
                .send()
                .await
                .expect("put metric data");
        }
    }

    /// `ClusterName` / `ServiceName`, the dimensions of the service's ECS metrics.
    pub fn ecs_dimensions(&self) -> [(&str, &str); 2] {
        [("ClusterName", self.cluster.as_str()), ("ServiceName", self.service.as_str())]
    }

    /// An application load balancer with a listener forwarding to the
    /// service's target group; returns its ARN.
    pub async fn attach_load_balancer(&self, bed: &TestBed) -> String {
        use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, ProtocolEnum};
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&bed.config);
        let (_, subnets, sg) = network(bed);
        let lb = elb
            .create_load_balancer()
            .name(format!("lb{}", unique_target_group_name()))
            .set_subnets(Some(subnets))
            .security_groups(sg)
            .send()
            .await
            .expect("load balancer")
            .load_balancers
            .and_then(|l| l.into_iter().next())
            .and_then(|l| l.load_balancer_arn)
            .expect("load balancer arn");
        elb.create_listener()
            .load_balancer_arn(&lb)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .default_actions(
                Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(&self.target_group_arn).build(),
            )
            .send()
            .await
            .expect("listener");
        lb
    }

    /// An Application Auto Scaling target for the service's desired count.
    pub async fn register_scalable_target(&self, bed: &TestBed, min: i32, max: i32) {
        use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
        let aas = aws_sdk_applicationautoscaling::Client::new(&bed.config);
        aas.register_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(format!("service/{}/{}", self.cluster, self.service))
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .min_capacity(min)
            .max_capacity(max)
            .send()
            .await
            .expect("register scalable target");
    }

    /// A deployment record as ecs-events writes it (`deployment#<id>`):
    /// its last state (event name) and when it was first seen.
    pub async fn seed_deployment_record(&self, bed: &TestBed, id: &str, state: &str, first_seen_at: i64) {
        use aws_sdk_dynamodb::types::AttributeValue;
        bed.dynamodb
            .put_item()
            .table_name(&bed.table)
            .item("pk", AttributeValue::S(self.state_key()))
            .item("sk", AttributeValue::S(format!("deployment#{id}")))
            .item("state", AttributeValue::S(state.into()))
            .item("first_seen_at", AttributeValue::N(first_seen_at.to_string()))
            .item("updated_at", AttributeValue::N((first_seen_at + 300).to_string()))
            .item("expires_at", AttributeValue::N((first_seen_at + 30 * 86_400).to_string()))
            .send()
            .await
            .expect("seed deployment record");
    }

    /// A resolved incident in the history, as closing one writes it
    /// (`incident#<opened rfc3339>#<id>`).
    pub async fn seed_closed_incident(&self, bed: &TestBed, id: &str, opened_at: i64, closed_at: i64) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let opened = chrono::DateTime::from_timestamp(opened_at, 0).expect("time").to_rfc3339();
        bed.dynamodb
            .put_item()
            .table_name(&bed.table)
            .item("pk", AttributeValue::S(self.state_key()))
            .item("sk", AttributeValue::S(format!("incident#{opened}#{id}")))
            .item("incident_id", AttributeValue::S(id.into()))
            .item("cause", AttributeValue::S("essential-exit".into()))
            .item("severity", AttributeValue::S("SEV2".into()))
            .item("summary", AttributeValue::S("crash loop - app crashed (seeded)".into()))
            .item("source", AttributeValue::S("seeded".into()))
            .item("opened_at", AttributeValue::N(opened_at.to_string()))
            .item("closed_at", AttributeValue::N(closed_at.to_string()))
            .item("resolution", AttributeValue::S("SERVICE_STEADY_STATE".into()))
            .item("expires_at", AttributeValue::N((closed_at + 90 * 86_400).to_string()))
            .send()
            .await
            .expect("seed closed incident");
    }
}
