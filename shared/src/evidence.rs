//! Evidence bundles under `incidents/<cluster>/<service>/<incident>/`: the
//! triggering event, the service, task definitions (redacted), stopped tasks,
//! target health, log excerpts, metrics, and `manifest.json` with the
//! SHA-256 of every object. Server-side encryption on every put; never
//! overwritten (`If-None-Match: *`). Building a bundle is pure; storing it
//! is `adapters::s3`.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::redact::Redactor;
use crate::snapshot::Gathered;

/// One object of a bundle, before upload.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceObject {
    pub name: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl EvidenceObject {
    pub fn json(name: &str, value: &Value) -> Self {
        Self {
            name: name.into(),
            content_type: "application/json",
            body: serde_json::to_vec_pretty(value).unwrap_or_default(),
        }
    }

    pub fn sha256(&self) -> String {
        crate::arn::hex(&Sha256::digest(&self.body))
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
    with_manifest(prefix, incident, objects, created_at, to_json(&gathered.errors))
}

/// `objects` and, last, `manifest.json` listing each with its SHA-256.
fn with_manifest(
    prefix: &str,
    incident: &str,
    mut objects: Vec<EvidenceObject>,
    created_at: &str,
    errors: Value,
) -> Vec<EvidenceObject> {
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
            "gather_errors": errors,
        }),
    ));
    objects
}

/// Where a pipeline incident's evidence goes.
pub fn pipeline_prefix(pipeline: &str, incident: &str) -> String {
    format!("incidents/pipelines/{pipeline}/{incident}/")
}

/// A bundle of named JSON documents (a pipeline incident's event, execution,
/// actions, build and log), each redacted, manifest last.
pub fn json_bundle(
    prefix: &str,
    incident: &str,
    documents: Vec<(&str, Value)>,
    unread: &[String],
    redactor: &Redactor,
    created_at: &str,
) -> Vec<EvidenceObject> {
    let objects = documents
        .into_iter()
        .map(|(name, mut v)| {
            redactor.json(&mut v);
            EvidenceObject::json(name, &v)
        })
        .collect();
    let mut errors = to_json(&unread);
    redactor.json(&mut errors);
    with_manifest(prefix, incident, objects, created_at, errors)
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
