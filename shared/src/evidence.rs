//! Evidence bundles under `incidents/<cluster>/<service>/<incident>/`: the
//! triggering event, the service, task definitions (redacted), stopped tasks,
//! target health, log excerpts, metrics, and `manifest.json` with the
//! SHA-256 of every object. Server-side encryption on every put; never
//! overwritten (`If-None-Match: *`).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use futures::future::join_all;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::aws::{Clients, sdk_error_code, sdk_error_message};
use crate::gather::Gathered;
use crate::redact::Redactor;

/// One object of a bundle, before upload.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceObject {
    pub name: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl EvidenceObject {
    fn json(name: &str, value: &Value) -> Self {
        Self {
            name: name.into(),
            content_type: "application/json",
            body: serde_json::to_vec_pretty(value).unwrap_or_default(),
        }
    }

    pub fn sha256(&self) -> String {
        crate::trigger::hex(&Sha256::digest(&self.body))
    }
}

#[derive(Debug, Clone, Serialize)]
struct ManifestEntry {
    key: String,
    sha256: String,
    bytes: usize,
    content_type: &'static str,
}

pub fn prefix(cluster: &str, service: &str, incident: &str) -> String {
    format!("incidents/{cluster}/{service}/{incident}/")
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The objects of a bundle (pure): everything redacted, manifest last.
pub fn build_bundle(
    prefix: &str,
    incident: &str,
    trigger_event: &Value,
    gathered: &Gathered,
    diagnosis: &Value,
    redactor: &Redactor,
    created_at: &str,
) -> Vec<EvidenceObject> {
    let redacted = |mut v: Value| {
        redactor.json(&mut v);
        v
    };
    let mut objects = vec![
        EvidenceObject::json("event.json", &redacted(trigger_event.clone())),
        EvidenceObject::json("diagnosis.json", &redacted(diagnosis.clone())),
    ];
    if let Some(s) = &gathered.service {
        objects.push(EvidenceObject::json("service.json", &redacted(to_json(s))));
    }
    if let Some(td) = &gathered.task_definition {
        objects.push(EvidenceObject::json("task-definition.json", &redacted(to_json(td))));
    }
    objects.push(EvidenceObject::json("stopped-tasks.json", &redacted(to_json(&gathered.stopped_tasks))));
    if !gathered.target_health.is_empty() {
        objects.push(EvidenceObject::json("target-health.json", &redacted(to_json(&gathered.target_health))));
    }
    if let Some(logs) = &gathered.logs {
        objects.push(EvidenceObject::json("logs.json", &redacted(to_json(logs))));
    }
    if !gathered.metrics.is_empty() {
        objects.push(EvidenceObject::json("metrics.json", &to_json(&gathered.metrics)));
    }
    if !gathered.errors.is_empty() {
        objects.push(EvidenceObject::json("gather-errors.json", &redacted(to_json(&gathered.errors))));
    }
    let entries: Vec<ManifestEntry> = objects
        .iter()
        .map(|o| ManifestEntry {
            key: format!("{prefix}{}", o.name),
            sha256: o.sha256(),
            bytes: o.body.len(),
            content_type: o.content_type,
        })
        .collect();
    objects.push(EvidenceObject::json(
        "manifest.json",
        &serde_json::json!({
            "incident": incident,
            "created_at": created_at,
            "objects": entries,
            "gather_errors": to_json(&gathered.errors),
        }),
    ));
    objects
}

/// Server-side encryption of every put: SSE-KMS with the given key, else SSE-S3.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encryption {
    pub kms_key_id: Option<String>,
}

/// Where a bundle went.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub uri: String,
    pub written: usize,
    /// Objects that already existed (a retry of the same incident): kept, not overwritten.
    pub existing: usize,
}

/// Upload a bundle. Objects go up concurrently; the manifest goes last so
/// that its presence means the bundle is whole.
pub async fn store(
    clients: &Clients,
    bucket: &str,
    prefix: &str,
    objects: Vec<EvidenceObject>,
    encryption: &Encryption,
) -> Result<Stored, String> {
    let (manifest, rest): (Vec<_>, Vec<_>) = objects.into_iter().partition(|o| o.name == "manifest.json");
    let results = join_all(rest.into_iter().map(|o| put(clients, bucket, prefix, o, encryption))).await;
    let mut stored = Stored { uri: format!("s3://{bucket}/{prefix}"), written: 0, existing: 0 };
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(true) => stored.written += 1,
            Ok(false) => stored.existing += 1,
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        return Err(format!("{} object(s) not stored: {}", failures.len(), failures.join("; ")));
    }
    for m in manifest {
        match put(clients, bucket, prefix, m, encryption).await? {
            true => stored.written += 1,
            false => stored.existing += 1,
        }
    }
    Ok(stored)
}

/// One JSON object outside a bundle (pre-action state, reports).
pub async fn put_json(
    clients: &Clients,
    bucket: &str,
    key: &str,
    value: &Value,
    encryption: &Encryption,
) -> Result<(), String> {
    let (prefix, name) = key.rsplit_once('/').map(|(p, n)| (format!("{p}/"), n)).unwrap_or((String::new(), key));
    let object = EvidenceObject::json(name, value);
    put(clients, bucket, &prefix, object, encryption).await.map(|_| ())
}

/// `Ok(true)` written, `Ok(false)` already there.
async fn put(
    clients: &Clients,
    bucket: &str,
    prefix: &str,
    object: EvidenceObject,
    encryption: &Encryption,
) -> Result<bool, String> {
    let key = format!("{prefix}{}", object.name);
    let checksum = {
        use base64_sha::encode;
        encode(&Sha256::digest(&object.body))
    };
    let mut req = clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .content_type(object.content_type)
        .checksum_sha256(checksum)
        .if_none_match("*")
        .body(ByteStream::from(object.body));
    req = match &encryption.kms_key_id {
        Some(k) => req.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(k),
        None => req.server_side_encryption(ServerSideEncryption::Aes256),
    };
    match req.send().await {
        Ok(_) => Ok(true),
        Err(e) if matches!(sdk_error_code(&e), Some("PreconditionFailed")) => Ok(false),
        Err(e) => Err(format!("{key}: {}", sdk_error_message(&e))),
    }
}

/// Minimal standard base64 for the checksum header (no extra dependency).
mod base64_sha {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[cfg(test)]
    #[test]
    fn should_match_rfc4648_vectors() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_should_list_every_object_with_its_hash() {
        let gathered = Gathered::default();
        let objects = build_bundle(
            "incidents/prod/api/inc-1/",
            "inc-1",
            &serde_json::json!({"id": "e"}),
            &gathered,
            &serde_json::json!({"cause": "unknown"}),
            &Redactor::new(),
            "2026-11-20T14:00:00Z",
        );
        let manifest = objects.last().unwrap();
        assert_eq!(manifest.name, "manifest.json");
        let m: Value = serde_json::from_slice(&manifest.body).unwrap();
        let listed = m["objects"].as_array().unwrap();
        assert_eq!(listed.len(), objects.len() - 1);
        for (entry, object) in listed.iter().zip(&objects) {
            assert_eq!(entry["key"], format!("incidents/prod/api/inc-1/{}", object.name));
            assert_eq!(entry["sha256"], object.sha256());
        }
    }
}
