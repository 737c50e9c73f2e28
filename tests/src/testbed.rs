//! The local AWS test bed: per-test resources on the moto server named by
//! `AWS_ENDPOINT_URL` (started by `scripts/test.sh`), created through the
//! real SDK with unique names so tests can run in parallel.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};

pub const REGION: &str = "us-east-1";
/// The SNS topics the fixtures' wrapped events come from (`Sns.TopicArn`).
pub const FIXTURE_SNS_TOPICS: [&str; 2] =
    ["arn:aws:sns:us-east-1:111122223333:autopilot-alarms", "arn:aws:sns:us-east-1:111122223333:ecs-events"];

/// Endpoint of the local server; the tests cannot run without one.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("integration tests need a local AWS endpoint in AWS_ENDPOINT_URL; run them with scripts/test.sh")
    })
}

/// An SDK config with fixed test credentials, pointing at the local server.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

/// A published notification, as an SQS subscriber receives it.
#[derive(Debug, Clone)]
pub struct Notification {
    pub subject: String,
    pub message: String,
    pub attributes: Value,
}

/// Topic + SQS subscriber, evidence bucket and state table of one test.
pub struct TestBed {
    pub prefix: String,
    pub topic_arn: String,
    pub queue_url: String,
    pub bucket: String,
    pub table: String,
    pub config: aws_config::SdkConfig,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// A member account's view of the bed ([`TestBed::member`]): `config`
    /// acts in that account; topic, queue, bucket and table stay central.
    pub account: Option<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestBed {
    /// Make the alarm of `event` (any delivery shape) this test's own: its
    /// name gets this bed's prefix as a suffix (tests share one server), the
    /// alarm exists on the local server in `state`, entered now — the
    /// functions read an alarm's current state before acting on it — and
    /// the event says it entered that state now. Returns the new name.
    pub async fn own_alarm(&self, event: &mut Value, state: &str) -> String {
        fn rename(v: &mut Value, suffix: &str, now: &str, found: &mut Option<String>) {
            match v {
                Value::Object(map) => {
                    for (k, child) in map.iter_mut() {
                        match (k.as_str(), &mut *child) {
                            ("alarmName" | "AlarmName", Value::String(name)) => {
                                if !name.ends_with(suffix) {
                                    name.push_str(suffix);
                                }
                                *found = Some(name.clone());
                            }
                            ("state", Value::Object(st)) if st.contains_key("timestamp") => {
                                st.insert("timestamp".into(), Value::from(now));
                            }
                            ("StateChangeTime", Value::String(t)) => *t = now.to_string(),
                            ("Message", Value::String(text)) => {
                                if let Ok(mut inner) = serde_json::from_str::<Value>(text) {
                                    rename(&mut inner, suffix, now, found);
                                    *text = inner.to_string();
                                }
                            }
                            _ => rename(child, suffix, now, found),
                        }
                    }
                }
                Value::Array(items) => items.iter_mut().for_each(|i| rename(i, suffix, now, found)),
                _ => {}
            }
        }
        /// Every metric dimension the event names (`{"K": "v"}` maps and
        /// `[{"name": "K", "value": "v"}]` lists, SNS messages included).
        fn dimensions(v: &Value, out: &mut Vec<(String, String)>) {
            match v {
                Value::Object(map) => {
                    for (k, child) in map {
                        match (k.as_str(), child) {
                            ("dimensions" | "Dimensions", Value::Object(d)) => {
                                out.extend(d.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))))
                            }
                            ("dimensions" | "Dimensions", Value::Array(items)) => {
                                out.extend(items.iter().filter_map(|i| {
                                    let field =
                                        |a: &str, b: &str| i.get(a).or_else(|| i.get(b)).and_then(Value::as_str);
                                    Some((field("name", "Name")?.to_string(), field("value", "Value")?.to_string()))
                                }))
                            }
                            ("Message", Value::String(text)) => {
                                if let Ok(inner) = serde_json::from_str::<Value>(text) {
                                    dimensions(&inner, out);
                                }
                            }
                            _ => dimensions(child, out),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|i| dimensions(i, out)),
                _ => {}
            }
        }
        /// Alarm ARNs in the event become the real alarm's.
        fn point_at(v: &mut Value, arn: &str) {
            match v {
                Value::String(s) if s.starts_with("arn:aws:cloudwatch:") && s.contains(":alarm:") => {
                    *s = arn.to_string()
                }
                Value::String(text) => {
                    if let Ok(mut inner @ Value::Object(_)) = serde_json::from_str::<Value>(text) {
                        point_at(&mut inner, arn);
                        *text = inner.to_string();
                    }
                }
                Value::Object(map) => map.values_mut().for_each(|c| point_at(c, arn)),
                Value::Array(items) => items.iter_mut().for_each(|i| point_at(i, arn)),
                _ => {}
            }
        }
        let mut name = None;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        rename(event, &format!("-{}", self.prefix), &now, &mut name);
        let name = name.expect("the event names an alarm");
        let mut dims = Vec::new();
        dimensions(event, &mut dims);
        dims.sort();
        dims.dedup();
        let dims: Vec<(&str, &str)> = dims.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let arn = self.set_alarm_on(&name, state, &dims).await;
        point_at(event, &arn);
        name
    }

    /// Like [`TestBed::set_alarm`], for an alarm on a metric with
    /// `dimensions` (created, or re-created when its dimensions differ), as
    /// the functions will read it before acting. Its ARN.
    pub async fn set_alarm_on(&self, name: &str, state: &str, dimensions: &[(&str, &str)]) -> String {
        let cw = aws_sdk_cloudwatch::Client::new(&self.config);
        let existing = cw.describe_alarms().alarm_names(name).send().await.ok().and_then(|r| {
            r.metric_alarms().first().map(|a| {
                let mut d: Vec<(String, String)> = a
                    .dimensions()
                    .iter()
                    .map(|d| (d.name().unwrap_or_default().to_string(), d.value().unwrap_or_default().to_string()))
                    .collect();
                d.sort();
                d
            })
        });
        let mut wanted: Vec<(String, String)> =
            dimensions.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        wanted.sort();
        if existing.as_ref() != Some(&wanted) {
            let mut put = cw
                .put_metric_alarm()
                .alarm_name(name)
                .namespace("AWS/ECS")
                .metric_name("CPUUtilization")
                .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
                .period(60)
                .evaluation_periods(1)
                .threshold(85.0)
                .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold);
            for (k, v) in &wanted {
                put = put.dimensions(aws_sdk_cloudwatch::types::Dimension::builder().name(k).value(v).build());
            }
            put.send().await.expect("put alarm");
        }
        set_alarm_state(&self.config, name, state).await;
        cw.describe_alarms()
            .alarm_names(name)
            .send()
            .await
            .expect("describe alarm")
            .metric_alarms()
            .first()
            .and_then(|a| a.alarm_arn())
            .expect("the alarm has an ARN")
            .to_string()
    }

    /// Edit the stored incident record of the subject `pk` (`service#c/s`,
    /// `pipeline#p/x`) in place, as time or another writer would have left
    /// it; the record's JSON is handed to `edit`. Returns the record after.
    pub async fn edit_incident(&self, pk: &str, edit: impl FnOnce(&mut Value)) -> Value {
        use aws_sdk_dynamodb::types::AttributeValue;
        let item = self.incident_item(pk).await.unwrap_or_else(|| panic!("no incident record under {pk}"));
        let text = item.get("record").and_then(|v| v.as_s().ok()).expect("a record").clone();
        let mut record: Value = serde_json::from_str(&text).expect("record json");
        edit(&mut record);
        let mut item = item;
        item.insert("record".into(), AttributeValue::S(record.to_string()));
        if let Some(opened) = record["opened_at"].as_i64() {
            item.insert("opened_at".into(), AttributeValue::N(opened.to_string()));
        }
        // A test that bumps the record's version writes as another writer would.
        if let Some(version) = record["version"].as_u64() {
            item.insert("version".into(), AttributeValue::N(version.to_string()));
        }
        self.dynamodb.put_item().table_name(&self.table).set_item(Some(item)).send().await.expect("put incident");
        record
    }

    /// The stored incident record of the subject `pk`, if any.
    pub async fn incident_record(&self, pk: &str) -> Option<Value> {
        let item = self.incident_item(pk).await?;
        item.get("record").and_then(|v| v.as_s().ok()).and_then(|t| serde_json::from_str(t).ok())
    }

    /// The stored incident item of the subject `pk` (a consistent read).
    async fn incident_item(
        &self,
        pk: &str,
    ) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        self.state_item(pk, "incident#open").await
    }

    /// Create the alarm `name` on the local server if needed and set its state.
    pub async fn set_alarm(&self, name: &str, state: &str) {
        let cw = aws_sdk_cloudwatch::Client::new(&self.config);
        let exists =
            cw.describe_alarms().alarm_names(name).send().await.map(|r| !r.metric_alarms().is_empty()).unwrap_or(false);
        if exists {
            set_alarm_state(&self.config, name, state).await;
        } else {
            self.set_alarm_on(name, state, &[]).await;
        }
    }

    pub async fn new(name: &str) -> Self {
        let config = sdk_config().await;
        // The open index as infra/template.yaml declares it; the benchmark can
        // ask for the one of a build from before the incident machine
        // (`AUTOPILOT_TESTBED_OPEN_INDEX=open-incidents:ALL`) to measure it alike.
        let open_index =
            match std::env::var("AUTOPILOT_TESTBED_OPEN_INDEX").ok().as_deref().and_then(|v| v.split_once(':')) {
                Some((name, "ALL")) => (name.to_string(), aws_sdk_dynamodb::types::ProjectionType::All),
                Some((name, _)) => (name.to_string(), aws_sdk_dynamodb::types::ProjectionType::KeysOnly),
                None => {
                    (shared::adapters::state::OPEN_INDEX.to_string(), aws_sdk_dynamodb::types::ProjectionType::KeysOnly)
                }
            };
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{}-{}-{n}", name.replace('_', "-"), std::process::id());
        let sns = aws_sdk_sns::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let s3 =
            aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);

        let topic_arn = sns
            .create_topic()
            .name(format!("{prefix}-notify"))
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .expect("topic arn");
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{prefix}-inbox"))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let queue_arn = queue_arn(&sqs, &queue_url).await;
        sns.subscribe().topic_arn(&topic_arn).protocol("sqs").endpoint(queue_arn).send().await.expect("subscribe");

        let bucket = format!("{prefix}-evidence").to_ascii_lowercase();
        s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");

        let table = format!("{prefix}-state");
        dynamodb
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("sk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
            .key_schema(KeySchemaElement::builder().attribute_name("sk").key_type(KeyType::Range).build().unwrap())
            // The sparse index of open incidents, as infra/template.yaml declares it.
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("open_index")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("open_since")
                    .attribute_type(ScalarAttributeType::N)
                    .build()
                    .unwrap(),
            )
            .global_secondary_indexes(
                aws_sdk_dynamodb::types::GlobalSecondaryIndex::builder()
                    .index_name(open_index.0.as_str())
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name("open_index")
                            .key_type(KeyType::Hash)
                            .build()
                            .unwrap(),
                    )
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name("open_since")
                            .key_type(KeyType::Range)
                            .build()
                            .unwrap(),
                    )
                    .projection(
                        aws_sdk_dynamodb::types::Projection::builder().projection_type(open_index.1.clone()).build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create table");
        dynamodb
            .update_time_to_live()
            .table_name(&table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().attribute_name("expires_at").enabled(true).build().unwrap(),
            )
            .send()
            .await
            .expect("ttl");
        Self { prefix, topic_arn, queue_url, bucket, table, config, sqs, s3, dynamodb, account: None }
    }

    /// The same bed seen from member account `account` of the fleet: its
    /// `config` carries credentials of the member role assumed through STS
    /// (the local server then acts in that account), so what is seeded with
    /// it lives there; the central topic, bucket and table are the bed's.
    pub async fn member(&self, account: &str) -> TestBed {
        use aws_sdk_s3::config::ProvideCredentials;
        let role = format!("arn:aws:iam::{account}:role/ecs-autopilot-member");
        let provider = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name("test-bed")
            .configure(&self.config)
            .build()
            .await;
        let credentials = provider.provide_credentials().await.expect("assume the member role");
        let config = self
            .config
            .to_builder()
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(credentials))
            .build();
        TestBed {
            prefix: self.prefix.clone(),
            topic_arn: self.topic_arn.clone(),
            queue_url: self.queue_url.clone(),
            bucket: self.bucket.clone(),
            table: self.table.clone(),
            config,
            sqs: self.sqs.clone(),
            s3: self.s3.clone(),
            dynamodb: self.dynamodb.clone(),
            account: Some(account.to_string()),
        }
    }

    /// The environment contract for a function under test.
    /// A function binary under the Runtime API with this bed's environment
    /// plus `extra`, started and ready for its first event.
    pub fn start(&self, function: &str, extra: &[(&str, &str)]) -> crate::LambdaProcess {
        let mut env = self.function_env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.start_with_env(function, env)
    }

    /// Like [`TestBed::start`], with the whole environment given.
    pub fn start_with_env(&self, function: &str, env: Vec<(String, String)>) -> crate::LambdaProcess {
        let mut p = crate::LambdaProcess::start(&binary(function), &format!("{}-{function}", self.prefix), &env);
        p.wait_ready(std::time::Duration::from_secs(20));
        p
    }

    pub fn function_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), endpoint()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("NOTIFY_TOPIC_ARN".into(), self.topic_arn.clone()),
            ("EVIDENCE_BUCKET".into(), self.bucket.clone()),
            ("STATE_TABLE".into(), self.table.clone()),
            // The topics the fixtures' SNS-wrapped events come from: the
            // deployment's subscribed alarm topics (any other is refused).
            ("ALARM_TOPIC_ARNS".into(), FIXTURE_SNS_TOPICS.join(",")),
        ]
    }

    /// One item of the state table (`pk`, `sk`), read consistently.
    pub async fn state_item(
        &self,
        pk: &str,
        sk: &str,
    ) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        use aws_sdk_dynamodb::types::AttributeValue;
        self.dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
    }

    /// Every notification delivered so far (drains the queue).
    pub async fn notifications(&self) -> Vec<Notification> {
        self.notifications_in(&self.queue_url).await
    }

    /// A second subscriber of the topic, an SQS queue named `name` whose
    /// subscription has `filter_policy` (on message attributes): the local
    /// server's own filter-policy matching decides what it receives. Its URL.
    pub async fn subscribe_filtered(&self, name: &str, filter_policy: &str) -> String {
        let url = self
            .sqs
            .create_queue()
            .queue_name(format!("{}-{name}", self.prefix))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let arn = queue_arn(&self.sqs, &url).await;
        let sns = aws_sdk_sns::Client::new(&self.config);
        sns.subscribe()
            .topic_arn(&self.topic_arn)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("FilterPolicy", filter_policy)
            .attributes("FilterPolicyScope", "MessageAttributes")
            .send()
            .await
            .expect("subscribe with a filter policy");
        url
    }

    /// Every notification waiting in the queue at `queue_url`, consumed.
    pub async fn notifications_in(&self, queue_url: &str) -> Vec<Notification> {
        let mut out = Vec::new();
        loop {
            let resp = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let msgs = resp.messages.unwrap_or_default();
            if msgs.is_empty() {
                return out;
            }
            for m in msgs {
                let body: Value = serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or(Value::Null);
                out.push(Notification {
                    subject: body["Subject"].as_str().unwrap_or_default().into(),
                    message: body["Message"].as_str().unwrap_or_default().into(),
                    attributes: body["MessageAttributes"].clone(),
                });
                if let Some(h) = m.receipt_handle() {
                    let _ = self.sqs.delete_message().queue_url(queue_url).receipt_handle(h).send().await;
                }
            }
        }
    }

    /// Keys of every object in the evidence bucket, and of each document
    /// of a `bundle.json` as `<key>#<name>` (how the manifest names them).
    pub async fn evidence_keys(&self) -> Vec<String> {
        self.evidence_objects("").await.into_iter().map(|(k, _)| k).collect()
    }

    /// Every object under `prefix` in the evidence bucket, downloaded, each
    /// `bundle.json` followed by its documents as `<key>#<name>` (their
    /// bodies the bytes the manifest's SHA-256 is of).
    pub async fn evidence_objects(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let resp = self.s3.list_objects_v2().bucket(&self.bucket).send().await.expect("list objects");
        let mut out = Vec::new();
        for key in resp.contents.unwrap_or_default().into_iter().filter_map(|o| o.key).filter(|k| k.starts_with(prefix))
        {
            let obj = self.s3.get_object().bucket(&self.bucket).key(&key).send().await.expect("get object");
            let body = obj.body.collect().await.expect("body").into_bytes().to_vec();
            let documents = if key.ends_with(&format!("/{}", shared::evidence::BUNDLE)) {
                shared::evidence::bundle_documents(&body)
            } else {
                Vec::new()
            };
            out.push((key.clone(), body));
            out.extend(documents.into_iter().map(|(name, body)| (format!("{key}#{name}"), body)));
        }
        out
    }
}

/// The ARN of the queue at `url` (what an SNS subscription names).
async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
        .expect("queue arn")
}

/// Where the built function binaries are.
pub fn binary(name: &str) -> std::path::PathBuf {
    if let Ok(dir) = std::env::var("AUTOPILOT_BIN_DIR") {
        return std::path::Path::new(&dir).join(name);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug").join(name)
}

/// A fixture under tests/fixtures.
pub fn fixture(rel: &str) -> Value {
    let mut v = fixture_as_written(rel);
    freshen(&mut v);
    v
}

/// A fixture exactly as the file holds it (its recorded times).
pub fn fixture_as_written(rel: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Set the state of an existing alarm on the local server.
pub async fn set_alarm_state(config: &aws_config::SdkConfig, name: &str, state: &str) {
    aws_sdk_cloudwatch::Client::new(config)
        .set_alarm_state()
        .alarm_name(name)
        .state_value(aws_sdk_cloudwatch::types::StateValue::from(state))
        .state_reason("set by the test")
        .send()
        .await
        .expect("set alarm state");
}

/// Move every timestamp of an event by one offset so that its newest is
/// now: a recorded event replayed in a test happens now, as it would in
/// production, with its times in the same order and distance. (The
/// functions judge signals at their event time; a test that wants a late
/// event sets its times after this.) JSON held in a string (an SNS
/// `Message`) is moved too.
pub fn freshen(v: &mut Value) {
    fn times(v: &Value, out: &mut Vec<i64>) {
        match v {
            Value::String(s) => {
                if let Some(t) = shared::lenient::parse_time(s) {
                    out.push(t.timestamp_millis());
                } else if s.trim_start().starts_with('{')
                    && let Ok(inner) = serde_json::from_str::<Value>(s)
                {
                    times(&inner, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| times(x, out)),
            Value::Object(o) => o.values().for_each(|x| times(x, out)),
            _ => {}
        }
    }
    fn shift(v: &mut Value, by_ms: i64) {
        match v {
            Value::String(s) => {
                if let Some(t) = shared::lenient::parse_time(s) {
                    let moved = t + chrono::Duration::milliseconds(by_ms);
                    *s = moved.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                } else if s.trim_start().starts_with('{')
                    && let Ok(mut inner) = serde_json::from_str::<Value>(s)
                {
                    shift(&mut inner, by_ms);
                    *s = inner.to_string();
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| shift(x, by_ms)),
            Value::Object(o) => o.values_mut().for_each(|x| shift(x, by_ms)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    times(v, &mut found);
    if let Some(newest) = found.into_iter().max() {
        let now = chrono::Utc::now().timestamp_millis();
        // A second's margin: "now" at the handler is never before the event.
        shift(v, now - 1000 - newest);
    }
}

/// All fixture files of one folder, sorted.
pub fn fixtures_in(dir: &str) -> Vec<String> {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(dir);
    let mut out: Vec<String> = std::fs::read_dir(&base)
        .unwrap_or_else(|e| panic!("{}: {e}", base.display()))
        .filter_map(|e| e.ok())
        .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
        .filter(|f| f.ends_with(".json"))
        .collect();
    out.sort();
    out
}
