//! S3: the evidence store. Server-side encryption on every put; objects are
//! never overwritten (`If-None-Match: *`), so a retry keeps what is there.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use futures::future::join_all;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{AwsError, Clients, aws_error};
use crate::evidence::{Encryption, EvidenceObject, Stored};

/// Upload a bundle. Objects go up concurrently; the manifest goes last so
/// that its presence means the bundle is whole.
pub async fn store(
    clients: &Clients,
    bucket: &str,
    prefix: &str,
    objects: Vec<EvidenceObject>,
    encryption: &Encryption,
) -> Result<Stored, AwsError> {
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
    if let Some(first) = failures.first() {
        let mut e = first.clone();
        if failures.len() > 1 {
            e.message = format!("{} ({} objects not stored)", e.message, failures.len());
        }
        return Err(e);
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
) -> Result<(), AwsError> {
    let (prefix, name) = key.rsplit_once('/').map(|(p, n)| (format!("{p}/"), n)).unwrap_or((String::new(), key));
    let object = EvidenceObject::json(name, value);
    put(clients, bucket, &prefix, object, encryption).await.map(|_| ())
}

/// One text object outside a bundle (the incident report, HTML reports).
pub async fn put_text(
    clients: &Clients,
    bucket: &str,
    key: &str,
    body: String,
    content_type: &'static str,
    encryption: &Encryption,
) -> Result<(), AwsError> {
    let (prefix, name) = key.rsplit_once('/').map(|(p, n)| (format!("{p}/"), n)).unwrap_or((String::new(), key));
    let object = EvidenceObject { name: name.to_string(), content_type, body: body.into_bytes() };
    put(clients, bucket, &prefix, object, encryption).await.map(|_| ())
}

/// `Ok(true)` written, `Ok(false)` already there.
async fn put(
    clients: &Clients,
    bucket: &str,
    prefix: &str,
    object: EvidenceObject,
    encryption: &Encryption,
) -> Result<bool, AwsError> {
    let key = format!("{prefix}{}", object.name);
    let checksum = {
        use base64_sha::encode;
        encode(&Sha256::digest(&object.body))
    };
    let mut req = clients
        .s3()
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
        Err(e) => {
            let e = aws_error("s3", "PutObject", format!("s3://{bucket}/{key}"), &e);
            if e.code_is("PreconditionFailed") { Ok(false) } else { Err(e) }
        }
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

/// A presigned GET URL of `key`, valid for `lifetime` at most (and no longer
/// than the credentials that signed it).
pub async fn presigned_get(
    clients: &Clients,
    bucket: &str,
    key: &str,
    lifetime: std::time::Duration,
) -> Result<String, AwsError> {
    let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(lifetime)
        .map_err(|e| AwsError::answer("s3", "GetObject (presign)", format!("{bucket}/{key}"), e.to_string()))?;
    let req = clients
        .s3()
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(config)
        .await
        .map_err(|e| aws_error("s3", "GetObject (presign)", format!("{bucket}/{key}"), &e))?;
    Ok(req.uri().to_string())
}
