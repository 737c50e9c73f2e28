//! No secret leaves through any channel: the whole redaction corpus
//! (`tests/fixtures/redaction/corpus.json`, the file the unit tests of
//! `shared/src/redact.rs` read: at least 150 secret shapes, each in the line
//! it would appear in, and at least 60 readable look-alikes) is planted, for
//! two services of one test bed:
//!
//! - **neutral** (`api`): only under names that say nothing of secrets —
//!   every line as `LOG_LINE_<i>`, every secret whose shape names itself as
//!   `APP_MODE_<i>` — so that nothing can be scrubbed because its *name* or
//!   a known *value* gave it away: only the redactor's patterns can catch it;
//! - **named** (`named`): every secret under a secret name, every line as a
//!   value, and every `NAME=value` line as the variable it is (the redactor
//!   also learns these values and scrubs them wherever they appear);
//!
//! and, for both, in the failing container's log (one shape per line, plus a
//! private key split over log events) and in the stop reason; then the
//! incident opens, is updated and resolves, and the runbook diagnoses and
//! plans. No secret may appear in any SNS message (the structure SNS
//! received: plain text and chat), S3 object, runbook reply, log line of the
//! functions, or item of the state table (incidents, their notes and
//! history, the ledger: scanned whole); every readable value must come
//! through unchanged, in the alert and in the evidence.

use autopilot_tests::{PLANTED_SECRET, SeededService, TestBed, fixture};
use serde_json::{Value, json};

struct Corpus {
    /// (shape, text, the secret in it)
    leaks: Vec<(String, String, String)>,
    /// The family of each leak (`corpus.json`'s `family`).
    families: Vec<String>,
    readable: Vec<String>,
}

fn corpus() -> Corpus {
    let v = fixture("redaction/corpus.json");
    let s = |x: &Value| x.as_str().expect("string").to_string();
    Corpus {
        leaks: v["leaks"]
            .as_array()
            .expect("leaks")
            .iter()
            .map(|l| (s(&l["shape"]), s(&l["text"]), s(&l["secret"])))
            .collect(),
        families: v["leaks"].as_array().expect("leaks").iter().map(|l| s(&l["family"])).collect(),
        readable: v["readable"].as_array().expect("readable").iter().map(s).collect(),
    }
}

/// The messages published to `topic_arn` as SNS received them (the raw
/// `Message` parameter: the `MessageStructure=json` structure with the plain
/// text and the chat notification), from the local server's
/// `/moto-api/data.json`, retried while other tests change the dump.
fn published(topic_arn: &str) -> Vec<String> {
    use std::io::{Read, Write};
    let endpoint = autopilot_tests::testbed::endpoint();
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
    for _ in 0..10 {
        let mut stream = std::net::TcpStream::connect(&host).expect("connect to the local server");
        write!(stream, "GET /moto-api/data.json HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        if let Some((head, body)) = response.split_once("\r\n\r\n")
            && head.contains(" 200 ")
            && let Ok(data) = serde_json::from_str::<Value>(body)
        {
            let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
            let topic = topics.iter().find(|t| t["arn"] == topic_arn).expect("the test's topic");
            return topic["sent_notifications"]
                .as_array()
                .expect("sent notifications")
                .iter()
                .filter_map(|n| n[1].as_str().map(str::to_string))
                .collect();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("/moto-api/data.json kept failing");
}

const PEM_BODY: [&str; 3] = [
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu",
    "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ",
];

/// Families whose bare secret says nothing of what it is without the line
/// around it (a password, a header or cookie value, a signature, the path
/// of a webhook, a key body without its armour, a value known only by its
/// name): planted under a neutral name in their line only, where their
/// context is.
const CONTEXT_ONLY_FAMILIES: [&str; 12] = [
    "named by a secret word",
    "named by a hint and shaped like a key",
    "known values of the task definition",
    "URLs with credentials",
    "private keys",
    "authorization",
    "signed URLs",
    "webhook URLs",
    "sessions",
    "CLI and config formats",
    "observability",
    "incident tooling",
];

/// Shapes of other families whose bare secret is a UUID, a hex or base64
/// string or a password with no vendor marker: by its shape alone it cannot
/// be told from an id or a digest, so it too is planted in its line only.
const CONTEXT_ONLY_SHAPES: [&str; 13] = [
    "Heroku API key",
    // A legacy Vault token (`s.` and 22 characters): `s.` is too common a start to tell by shape.
    "X-Vault-Token header",
    "Azure storage connection string",
    "Azure Service Bus key",
    "Okta SSWS authorization header",
    "Docker config auth value",
    "npmrc _auth",
    "npmrc _authToken",
    "Vault unseal key",
    "Azure Functions key in a URL",
    "Azure DevOps PAT under a PAT name",
    "Elastic ApiKey authorization",
    "Splunk HEC authorization",
];

/// The value is a secret only because a secret name of the task definition
/// holds it: in the neutral service nothing names it, so it is not planted there.
const KNOWN_VALUES: &str = "known values of the task definition";

/// Where the corpus went for one service, and what came out.
struct Run {
    svc: SeededService,
    outcomes: Vec<Value>,
    /// (channel, text) of the functions' log lines.
    logs: Vec<(String, String)>,
}

/// Plant `env` and the corpus' log lines for service `name`, then open,
/// update and resolve its incident and ask the runbook.
async fn plant_and_run(bed: &TestBed, c: &Corpus, name: &str, env: &[(String, String)], n: u64, neutral: bool) -> Run {
    let svc = SeededService::create(bed, name, 2).await;
    let revision = svc.register_with_environment(bed, env).await;

    // The failing container's log: every shape on its own error line, the
    // readable corpus, and a private key whose BEGIN line is one event and
    // body another.
    let task = format!("{:032x}", 0xfeed_u64 + n);
    let mut lines: Vec<String> = (c.leaks.iter().zip(&c.families))
        .filter(|(_, family)| !(neutral && family.as_str() == KNOWN_VALUES))
        .map(|((_, text, _), _)| format!("ERROR {text}"))
        .collect();
    lines.extend(c.readable.iter().map(|r| format!("ERROR {r}")));
    lines.push("ERROR loading key -----BEGIN RSA PRIVATE KEY-----".into());
    lines.push(PEM_BODY.join("\n"));
    lines.push("-----END RSA PRIVATE KEY-----".into());
    lines.push("ERROR fatal: giving up".into());
    svc.write_log(bed, &task, &lines).await;

    let mut events = bed.start("ecs-events", &[("LOG_LINES", "500"), ("UPDATE_INTERVAL_MINUTES", "0")]);
    let reason = format!(
        "Essential container in task exited: {} {}",
        c.leaks[0].1,
        c.leaks.iter().find(|(s, _, _)| s.contains("URL")).map(|l| l.1.as_str()).unwrap_or("")
    );
    let mut stop = svc.retarget(&fixture("ecs/task-stopped-app-crash.json"), &format!("{name}-redact-1"), &task);
    stop["detail"]["taskDefinitionArn"] = Value::from(revision.clone());
    stop["detail"]["stoppedReason"] = Value::from(reason.clone());
    stop["detail"]["containers"][0]["reason"] = Value::from(reason);
    let mut outcomes = vec![events.outcome(&stop)];
    let mut again = svc.retarget(
        &fixture("ecs/task-stopped-app-crash.json"),
        &format!("{name}-redact-2"),
        &format!("{:032x}", 0xbeef_u64 + n),
    );
    again["detail"]["taskDefinitionArn"] = Value::from(revision.clone());
    outcomes.push(events.outcome(&again));
    let mut runbook = bed.start("runbook", &[("LOG_LINES", "500")]);
    outcomes.push(runbook.outcome(&json!({"action": "diagnose", "cluster": svc.cluster, "service": name})));
    outcomes.push(
        runbook.outcome(&json!({"action": "rollback", "cluster": svc.cluster, "service": name, "dry_run": true})),
    );
    outcomes.push(events.outcome(&svc.retarget(
        &fixture("ecs/service-steady-state.json"),
        &format!("{name}-redact-3"),
        "x",
    )));
    assert!(outcomes[0]["incident"].is_string(), "{}", outcomes[0]);
    let mut logs = Vec::new();
    for p in [&events, &runbook] {
        for line in p.stdout().into_iter().chain(p.stderr()) {
            logs.push((format!("log line of {} ({name})", p.name), line));
        }
    }
    Run { svc, outcomes, logs }
}

/// Every item of the state table, one text each (its attributes as JSON-ish
/// text): incidents, their notes and history, claims, the ledger.
async fn state_table(bed: &TestBed) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let resp = bed
            .dynamodb
            .scan()
            .table_name(&bed.table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan the state table");
        for item in resp.items() {
            let key = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            out.push((format!("state table item {} / {}", key("pk"), key("sk")), format!("{item:?}")));
        }
        start = resp.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_planted_in_every_input_never_leave_through_any_channel() {
    let c = corpus();
    assert!(c.leaks.len() >= 150 && c.readable.len() >= 60, "{} leaks, {} readable", c.leaks.len(), c.readable.len());
    let bed = TestBed::new("redact").await;

    // Neutral names only: what is caught here is caught by its shape.
    let mut neutral: Vec<(String, String)> = Vec::new();
    for (i, (shape, text, secret)) in c.leaks.iter().enumerate() {
        let family = c.families[i].as_str();
        if family == KNOWN_VALUES {
            continue;
        }
        neutral.push((format!("LOG_LINE_{i}"), text.clone()));
        if !CONTEXT_ONLY_FAMILIES.contains(&family) && !CONTEXT_ONLY_SHAPES.contains(&shape.as_str()) {
            neutral.push((format!("APP_MODE_{i}"), secret.clone()));
        }
    }
    for (i, r) in c.readable.iter().enumerate() {
        neutral.push((format!("READABLE_{i}"), r.clone()));
    }
    assert!(
        neutral.iter().all(|(n, _)| !shared::redact::is_secret_name(n) && !shared::redact::hints_secret(n)),
        "the neutral names must say nothing of secrets"
    );
    let planted_bare = neutral.iter().filter(|(n, _)| n.starts_with("APP_MODE_")).count();
    assert!(planted_bare >= 100, "the self-describing shapes planted bare under a neutral name: {planted_bare}");

    // Secret names: every secret under a secret name, every line under an
    // ordinary name, every `NAME=value` line as its own variable.
    let mut named: Vec<(String, String)> = Vec::new();
    for (i, (_, text, secret)) in c.leaks.iter().enumerate() {
        named.push((format!("SERVICE_{i}_SECRET"), secret.clone()));
        named.push((format!("NOTE_{i}"), text.clone()));
        if let Some((name, value)) = text.split_once('=')
            && !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            named.push((name.to_string(), value.to_string()));
        }
    }
    for (i, r) in c.readable.iter().enumerate() {
        named.push((format!("READABLE_{i}"), r.clone()));
    }

    let runs = [
        plant_and_run(&bed, &c, "api", &neutral, 0, true).await,
        plant_and_run(&bed, &c, "named", &named, 1, false).await,
    ];

    // Every channel.
    let notes = bed.notifications().await;
    assert!(notes.len() >= 4, "alert and resolution of each service at least: {}", notes.len());
    let mut channels: Vec<(String, String)> = Vec::new();
    for n in &notes {
        channels.push((format!("SNS {}", n.subject), format!("{}\n{}", n.subject, n.message)));
    }
    // What SNS itself received: the plain text and the chat notification.
    for (i, raw) in published(&bed.topic_arn).into_iter().enumerate() {
        channels.push((format!("SNS message {i} as published (text and chat)"), raw));
    }
    for (key, body) in bed.evidence_objects("").await {
        channels.push((format!("S3 {key}"), String::from_utf8_lossy(&body).into_owned()));
    }
    for r in &runs {
        for o in &r.outcomes {
            channels.push((format!("reply ({})", r.svc.service), o.to_string()));
        }
        channels.extend(r.logs.iter().cloned());
    }
    // The state table: incidents (their notes, history, findings), claims, the ledger.
    let table = state_table(&bed).await;
    assert!(
        table.iter().any(|(name, _)| name.contains("incident#")),
        "the incidents are in the scan: {:?}",
        table.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    channels.extend(table);

    let mut secrets: Vec<(String, String)> =
        c.leaks.iter().map(|(shape, _, secret)| (shape.clone(), secret.clone())).collect();
    secrets.push(("planted env value".into(), PLANTED_SECRET.into()));
    secrets.extend(PEM_BODY.iter().map(|l| ("PEM body line".to_string(), l.to_string())));
    let mut leaks = Vec::new();
    for (channel, text) in &channels {
        for (shape, secret) in &secrets {
            // (The state table's text is Debug output: a `\n` in a secret is escaped there.)
            if text.contains(secret.as_str()) || text.contains(&secret.replace('\n', "\\n")) {
                leaks.push(format!("{shape} ({secret:?}) in {channel}"));
            }
        }
    }
    assert!(leaks.is_empty(), "{} leak(s):\n{}", leaks.len(), leaks.join("\n"));

    for r in &runs {
        // Readable things stay readable: every one reaches the alert's log excerpt.
        let tag = format!("/{}", r.svc.service);
        let alert = &notes
            .iter()
            .find(|n| n.message.starts_with("INCIDENT ALERT") && n.subject.contains(&tag))
            .unwrap_or_else(|| panic!("the alert of {}", r.svc.service))
            .message;
        // (An excerpt line shows a multi-line event on one line: control characters become spaces.)
        let shown = |r: &str| r.chars().map(|c| if c.is_control() && c != '\t' { ' ' } else { c }).collect::<String>();
        let mangled: Vec<&String> = c.readable.iter().filter(|r| !alert.contains(shown(r).as_str())).collect();
        assert!(mangled.is_empty(), "readable text changed or missing in the alert of {tag}: {mangled:#?}");
        assert!(alert.contains("ERROR fatal: giving up"), "the excerpt goes on after the key");
        // And in the evidence: the task definition keeps every readable value as it was.
        let prefix = format!("S3 incidents/{}/{}/", r.svc.cluster, r.svc.service);
        let task_definitions: Vec<&(String, String)> = channels
            .iter()
            .filter(|(name, _)| name.starts_with(&prefix) && name.ends_with("task-definition.json"))
            .collect();
        assert!(!task_definitions.is_empty(), "the task definition of {tag} is in the evidence");
        for (name, body) in task_definitions {
            let td: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{name}: {e}"));
            let kept: std::collections::BTreeMap<String, String> = td
                .pointer("/containers/0/environment")
                .and_then(Value::as_array)
                .unwrap_or_else(|| panic!("{name}: no environment: {td}"))
                .iter()
                .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
                .collect();
            let changed: Vec<String> = c
                .readable
                .iter()
                .enumerate()
                .filter(|(i, r)| kept.get(&format!("READABLE_{i}")) != Some(*r))
                .map(|(i, r)| format!("READABLE_{i} {r:?} -> {:?}", kept.get(&format!("READABLE_{i}"))))
                .collect();
            assert!(changed.is_empty(), "{name}: readable values changed:\n{}", changed.join("\n"));
        }
    }
    eprintln!(
        "redaction corpus: {} secret shapes ({planted_bare} also bare under neutral names) over {} channel texts \
         (state table included), 0 leaks; {} readable texts intact",
        secrets.len(),
        channels.len(),
        c.readable.len()
    );
}
