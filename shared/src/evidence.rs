//! Evidence bundles under `incidents/<cluster>/<service>/<incident>/`: the
//! triggering event, the service, task definitions (redacted), stopped tasks,
//! target health, log excerpts, metrics — each a JSON document of
//! `bundle.json` — and `manifest.json` with the SHA-256 of the bundle object
//! and of every document in it. Two objects, two puts, where one object per
//! document took nine. Server-side encryption on every put; never
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

/// The object that holds a bundle's documents, and the one that lists them.
pub const BUNDLE: &str = "bundle.json";
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, Serialize)]
struct ManifestEntry {
    key: String,
    sha256: String,
    bytes: usize,
    content_type: &'static str,
}

/// Where a service incident's evidence goes; a member's under its account
/// and region.
pub fn prefix(scope: &crate::fleet::Scope, cluster: &str, service: &str, incident: &str) -> String {
    format!("incidents/{}{cluster}/{service}/{incident}/", scope.evidence_prefix())
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The objects of a bundle (pure): `bundle.json` with every document
/// redacted, then `manifest.json`.
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
    let mut documents =
        vec![("event.json", redacted(trigger_event.clone())), ("diagnosis.json", redacted(diagnosis.clone()))];
    if let Some(s) = &gathered.service {
        documents.push(("service.json", redacted(to_json(s))));
    }
    if let Some(td) = &gathered.task_definition {
        documents.push(("task-definition.json", redacted(to_json(td))));
    }
    documents.push(("stopped-tasks.json", redacted(to_json(&gathered.stopped_tasks))));
    if !gathered.target_health.is_empty() {
        documents.push(("target-health.json", redacted(to_json(&gathered.target_health))));
    }
    if let Some(logs) = &gathered.logs {
        documents.push(("logs.json", redacted(to_json(logs))));
    }
    if !gathered.metrics.is_empty() {
        documents.push(("metrics.json", to_json(&gathered.metrics)));
    }
    if !gathered.errors.is_empty() {
        documents.push(("gather-errors.json", redacted(to_json(&gathered.errors))));
    }
    with_manifest(prefix, incident, documents, created_at, to_json(&gathered.errors))
}

/// `bundle.json` holding `documents` in order — each with its name, its
/// SHA-256 and size as a file of its own (pretty JSON, what
/// `serde_json::to_vec_pretty` of its `content` gives) — and, last,
/// `manifest.json` listing the bundle object with its SHA-256 and each
/// document as `<prefix>bundle.json#<name>` with its own.
fn with_manifest(
    prefix: &str,
    incident: &str,
    documents: Vec<(&str, Value)>,
    created_at: &str,
    errors: Value,
) -> Vec<EvidenceObject> {
    let mut contents = Vec::with_capacity(documents.len());
    let mut parts = Vec::with_capacity(documents.len());
    for (name, content) in documents {
        let body = serde_json::to_vec_pretty(&content).unwrap_or_default();
        let sha256 = crate::arn::hex(&Sha256::digest(&body));
        contents.push(serde_json::json!({
            "name": name, "key": format!("{prefix}{BUNDLE}#{name}"), "sha256": sha256,
            "bytes": body.len(), "content_type": "application/json",
        }));
        parts.push(serde_json::json!({"name": name, "sha256": sha256, "bytes": body.len(), "content": content}));
    }
    let bundle = EvidenceObject::json(
        BUNDLE,
        &serde_json::json!({"incident": incident, "created_at": created_at, "documents": parts}),
    );
    let entry = ManifestEntry {
        key: format!("{prefix}{BUNDLE}"),
        sha256: bundle.sha256(),
        bytes: bundle.body.len(),
        content_type: bundle.content_type,
    };
    let manifest = EvidenceObject::json(
        MANIFEST,
        &serde_json::json!({
            "incident": incident,
            "created_at": created_at,
            "objects": [entry],
            "contents": contents,
            "gather_errors": errors,
        }),
    );
    vec![bundle, manifest]
}

/// The documents of a stored `bundle.json` as `(name, body)`, each body the
/// bytes the manifest's SHA-256 is of (readers, tests).
pub fn bundle_documents(bundle: &[u8]) -> Vec<(String, Vec<u8>)> {
    let Ok(v) = serde_json::from_slice::<Value>(bundle) else { return Vec::new() };
    v["documents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let name = d["name"].as_str()?.to_string();
            Some((name, serde_json::to_vec_pretty(&d["content"]).unwrap_or_default()))
        })
        .collect()
}

/// Where a pipeline incident's evidence goes.
pub fn pipeline_prefix(scope: &crate::fleet::Scope, pipeline: &str, incident: &str) -> String {
    format!("incidents/{}pipelines/{pipeline}/{incident}/", scope.evidence_prefix())
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
    let documents = documents
        .into_iter()
        .map(|(name, mut v)| {
            redactor.json(&mut v);
            (name, v)
        })
        .collect();
    let mut errors = to_json(&unread);
    redactor.json(&mut errors);
    with_manifest(prefix, incident, documents, created_at, errors)
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
    fn manifest_should_list_the_bundle_and_every_document_with_its_hash() {
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
        let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, [BUNDLE, MANIFEST], "two objects, manifest last");
        let m: Value = serde_json::from_slice(&objects[1].body).unwrap();
        assert_eq!(m["objects"][0]["key"], "incidents/prod/api/inc-1/bundle.json");
        assert_eq!(m["objects"][0]["sha256"], objects[0].sha256());
        let documents = bundle_documents(&objects[0].body);
        let listed = m["contents"].as_array().unwrap();
        assert_eq!(listed.len(), documents.len());
        assert_eq!(
            documents.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["event.json", "diagnosis.json", "stopped-tasks.json"]
        );
        for (entry, (name, body)) in listed.iter().zip(&documents) {
            assert_eq!(entry["key"], format!("incidents/prod/api/inc-1/bundle.json#{name}"));
            assert_eq!(entry["sha256"], crate::arn::hex(&Sha256::digest(body)), "{name}");
            assert_eq!(entry["bytes"], body.len());
        }
    }
}
