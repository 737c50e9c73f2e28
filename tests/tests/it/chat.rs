//! Chat (Amazon Q Developer custom notifications) through a real binary:
//! ecs-events publishes with `MessageStructure=json`; the SQS subscriber
//! still receives the plain text (the `default` body), and the `https` body
//! — what the chat integration's HTTPS subscription gets — is a custom
//! notification that passes the schema check, threaded on the incident.
//! What SNS got is read from the local server's `/moto-api/data.json`
//! (`sent_notifications` of the topic: the message as published).

use std::io::{Read, Write};

use autopilot_tests::{SeededService, TestBed, fixture};
use serde_json::Value;

/// GET a path of the local server (plain HTTP/1.0, the body after the headers).
/// Retried: moto serialises every backend for `data.json` while other tests'
/// requests change them, and answers 500 when one changed mid-dump.
fn get(path: &str) -> String {
    let endpoint = autopilot_tests::testbed::endpoint();
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
    let mut last = String::new();
    for _ in 0..10 {
        let mut stream = std::net::TcpStream::connect(&host).expect("connect to the local server");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("send request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read response");
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        if head.starts_with("HTTP/1.") && head.contains(" 200 ") {
            return body.to_string();
        }
        last = format!("{head}\n{}", body.chars().take(500).collect::<String>());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("GET {path} kept failing: {last}");
}

/// The messages published to `topic_arn`, as SNS received them (the raw
/// `Message` parameter), in order.
pub(crate) fn published(topic_arn: &str) -> Vec<String> {
    let data: Value = serde_json::from_str(&get("/moto-api/data.json")).expect("data.json is JSON");
    let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
    let topic = topics.iter().find(|t| t["arn"] == topic_arn).expect("the test's topic is listed");
    topic["sent_notifications"]
        .as_array()
        .expect("sent notifications")
        .iter()
        .map(|n| n[1].as_str().expect("message text").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incident_reaches_sqs_as_plain_text_and_chat_as_threaded_custom_notifications() {
    let bed = TestBed::new("chat").await;
    let svc = SeededService::create(&bed, "api", 3).await;
    let task = format!("{:032x}", 0xc4a7_0001_u64);
    svc.write_crash_log(&bed, &task).await;
    let mut p = bed.start("ecs-events", &[]);
    let opened = p.outcome(&svc.retarget(&fixture("ecs/task-stopped-oom-on-container.json"), "chat-1", &task));
    let incident = opened["incident"].as_str().expect("an incident opened").to_string();
    let resolved = p.outcome(&svc.retarget(&fixture("ecs/service-steady-state.json"), "chat-steady", "x"));
    assert_eq!(resolved["incident"], incident.as_str(), "{resolved}");

    // SQS: the plain text, subject and filter attributes, as before.
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 2, "{:?}", notes.iter().map(|n| &n.subject).collect::<Vec<_>>());
    assert!(notes[0].message.starts_with("INCIDENT ALERT"), "{}", notes[0].message);
    assert!(notes[1].message.starts_with("INCIDENT RESOLVED"), "{}", notes[1].message);
    assert!(serde_json::from_str::<Value>(&notes[0].message).is_err(), "SQS does not get the JSON structure");
    assert_eq!(notes[0].attributes["cause"]["Value"], "out-of-memory", "{}", notes[0].attributes);

    // What SNS got: one structure per message, `default` = what SQS received.
    let sent = published(&bed.topic_arn);
    assert_eq!(sent.len(), 2);
    let mut threads = Vec::new();
    for (raw, note) in sent.iter().zip(&notes) {
        let structure: Value = serde_json::from_str(raw).expect("MessageStructure=json: the message is JSON");
        assert_eq!(structure["default"], note.message.as_str(), "the plain text is the default body");
        let chat: Value =
            serde_json::from_str(structure["https"].as_str().expect("an https body")).expect("https body is JSON");
        shared::notify::chat::validate(&chat).unwrap_or_else(|e| panic!("{e}\n{chat:#}"));
        assert_eq!(chat["source"], "custom");
        assert_eq!(chat["metadata"]["additionalContext"]["incident"], incident.as_str());
        assert_eq!(chat["metadata"]["additionalContext"]["service"], "api");
        threads.push(chat["metadata"]["threadId"].clone());
        let keywords = chat["content"]["keywords"].as_array().expect("keywords");
        assert!(keywords.contains(&Value::from("out-of-memory")), "{chat:#}");
    }
    assert_eq!(threads, [Value::from(incident.as_str()), Value::from(incident.as_str())], "one thread");
    let event_types: Vec<Value> = sent
        .iter()
        .filter_map(|raw| serde_json::from_str::<Value>(raw).ok())
        .filter_map(|s| s["https"].as_str().and_then(|c| serde_json::from_str::<Value>(c).ok()))
        .map(|c| c["metadata"]["eventType"].clone())
        .collect();
    assert_eq!(event_types, [Value::from("incident-opened"), Value::from("incident-resolved")]);
}
