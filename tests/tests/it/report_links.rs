//! Report links that open (issue 20): the daily and weekly summaries carry,
//! per stored object, the S3 console URL (durable: it opens after sign-in
//! for as long as the object is kept) and a presigned URL whose lifetime the
//! message states. The links are taken from the message as the SQS
//! subscriber received it and opened against the local server: the
//! presigned one fetched as it is, the console one read for its bucket and
//! key. Our links are never redacted (the message builder marks them; no
//! URL pattern exempts them), and chat carries only the console links.

use std::io::{Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use autopilot_tests::{SeededService, TestBed};
use serde_json::{Value, json};

/// GET `url` (plain `http://` on loopback, as the local server is): status and body.
fn http_get(url: &str) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("a loopback http URL: {url}"));
    let (host, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(host).expect("connect to the local server");
    write!(stream, "GET {target} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("send request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, response[split + 4..].to_vec())
}

/// The messages published to `topic_arn`, as SNS received them (moto's
/// `/moto-api/data.json`), retried while another test changes the dump.
fn published(topic_arn: &str) -> Vec<String> {
    let endpoint = autopilot_tests::testbed::endpoint();
    for _ in 0..10 {
        let (status, body) = http_get(&format!("{}/moto-api/data.json", endpoint.trim_end_matches('/')));
        if status == 200
            && let Ok(data) = serde_json::from_slice::<Value>(&body)
        {
            let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
            let topic = topics.iter().find(|t| t["arn"] == topic_arn).expect("the test's topic");
            return topic["sent_notifications"]
                .as_array()
                .expect("sent notifications")
                .iter()
                .map(|n| n[1].as_str().expect("message").to_string())
                .collect();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("/moto-api/data.json kept failing");
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())) {
            (b'%', Some(hex)) if u8::from_str_radix(hex, 16).is_ok() => {
                out.push(u8::from_str_radix(hex, 16).unwrap_or_default());
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf-8")
}

/// A query parameter of `url`.
fn param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    url.split_once('?')?.1.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// The URL at the end of the first line of `body` that starts with `start`.
fn link_after<'a>(body: &'a str, start: &str) -> (&'a str, &'a str) {
    let line = body.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no line {start:?}:\n{body}"));
    let at = line.rfind(": http").unwrap_or_else(|| panic!("no URL in {line:?}"));
    (line, &line[at + 2..])
}

async fn object(bed: &TestBed, bucket: &str, key: &str) -> Vec<u8> {
    let out = bed.s3.get_object().bucket(bucket).key(key).send().await.unwrap_or_else(|e| panic!("{key}: {e:?}"));
    out.body.collect().await.expect("read").into_bytes().to_vec()
}

/// Opens both links of `label` in a summary `body`, checks they lead to the
/// stored object under `prefix`, and returns the object.
async fn open_links(bed: &TestBed, body: &str, label: &str, prefix: &str) -> Vec<u8> {
    let file = format!("report.{}", label.to_ascii_lowercase());
    let key = format!("{prefix}{file}");
    let stored = object(bed, &bed.bucket, &key).await;

    // The console link: the region's S3 console page of exactly this object.
    let (_, console) = link_after(body, &format!("- {label} in the S3 console (sign-in needed; opens as long as"));
    let path = console
        .strip_prefix("https://us-east-1.console.aws.amazon.com/s3/object/")
        .unwrap_or_else(|| panic!("the S3 console of us-east-1: {console}"));
    let bucket = path.split('?').next().unwrap_or_default();
    assert_eq!(bucket, bed.bucket, "{console}");
    assert_eq!(param(console, "region"), Some("us-east-1"), "{console}");
    let console_key = percent_decode(param(console, "prefix").unwrap_or_else(|| panic!("a prefix: {console}")));
    assert_eq!(console_key, key, "{console}");
    assert_eq!(object(bed, bucket, &console_key).await, stored, "the console link's object is the report");

    // The presigned link: fetched as it stands in the message, it returns the report.
    let (line, presigned) = link_after(body, &format!("  {label} presigned, "));
    assert!(presigned.contains(&format!("/{}/{key}?", bed.bucket)), "path-style URL of the object: {presigned}");
    let signature = param(presigned, "X-Amz-Signature").unwrap_or_else(|| panic!("signed: {presigned}"));
    assert!(signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()), "unredacted: {presigned}");
    let (status, got) = http_get(presigned);
    assert_eq!(status, 200, "{presigned}: {}", String::from_utf8_lossy(&got));
    assert_eq!(got, stored, "the presigned link returns the stored report");

    // It says how long it opens, and that is what it was signed for.
    assert_eq!(param(presigned, "X-Amz-Expires"), Some("604800"), "{presigned}");
    let until = line.split_once(", until ").and_then(|(_, r)| r.get(..20)).unwrap_or_else(|| panic!("an end: {line}"));
    let until = chrono::DateTime::parse_from_rfc3339(until).unwrap_or_else(|e| panic!("{until}: {e}")).timestamp();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    assert!((until - (now + 7 * 24 * 3600)).abs() < 600, "until {until}, now {now}: {line}");
    assert!(line.contains("opens without sign-in for 7d 0h, until "), "{line}");
    stored
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_summarys_links_taken_from_the_message_open_the_report_on_the_local_server() {
    let bed = TestBed::new("links").await;
    let api = SeededService::create(&bed, "api", 2).await;
    let mut reports = bed.start("scheduled-reports", &[("CLUSTERS", api.cluster.as_str())]);
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let week = chrono::Utc::now().format("%G-W%V").to_string();

    for (job, prefix, heading) in [
        ("daily", format!("reports/daily/{date}/"), "DAILY HEALTH CHECK"),
        ("weekly", format!("reports/weekly/{week}/"), "WEEKLY CAPACITY REVIEW"),
    ] {
        let o = reports.outcome(&json!({ "job": job }));
        assert_eq!(o["evidence"], format!("s3://{}/{prefix}", bed.bucket), "{o}");
        let notes = bed.notifications().await;
        assert_eq!(notes.len(), 1, "one summary");
        let body = &notes[0].message;
        assert!(body.starts_with(heading), "{body}");
        assert!(!body.contains("REDACTED"), "no link we made is redacted:\n{body}");
        assert!(body.contains(&format!("kept in the evidence bucket at s3://{}/{prefix}", bed.bucket)), "{body}");

        let html = open_links(&bed, body, "HTML", &prefix).await;
        assert!(html.starts_with(b"<!DOCTYPE html>"), "{job}: the HTML report");
        let json = open_links(&bed, body, "JSON", &prefix).await;
        let report: Value = serde_json::from_slice(&json).expect("the JSON report");
        assert_eq!(report["services"][0]["service"], "api", "{job}: {report}");

        // Chat: the console links only (they open after sign-in and do not expire).
        let sent = published(&bed.topic_arn);
        let raw = sent.last().expect("published");
        let structure: Value = serde_json::from_str(raw).expect("MessageStructure=json");
        assert_eq!(structure["default"], body.as_str());
        let chat = structure["https"].as_str().expect("the chat body").to_string();
        shared::notify::chat::validate(&serde_json::from_str(&chat).expect("chat JSON"))
            .expect("a valid custom notification");
        for label in ["HTML", "JSON"] {
            let (_, console) = link_after(body, &format!("- {label} in the S3 console"));
            assert!(chat.contains(console), "{job}: chat links {label}'s console page: {chat}");
        }
        assert!(!chat.contains("X-Amz-Signature"), "{job}: no presigned URL in chat: {chat}");
    }
}
