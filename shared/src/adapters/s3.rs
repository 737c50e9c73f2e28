//! S3: the evidence store. Server-side encryption on every put; objects are
//! never overwritten (`If-None-Match: *`), so a retry keeps what is there.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use futures::future::join_all;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{AwsError, Clients, aws_error};
use crate::evidence::{Encryption, EvidenceObject, Stored};
use crate::redact::{LinkLifetime, OwnLink, PresignedLink};

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

/// A presigned GET URL of `key`, valid for `lifetime` at most — and no
/// longer than the credentials that signed it (S3 refuses the URL once they
/// expire): the [`PresignedLink`] says until when, and why.
pub async fn presigned_get(
    clients: &Clients,
    bucket: &str,
    key: &str,
    lifetime: std::time::Duration,
) -> Result<PresignedLink, AwsError> {
    use aws_sdk_s3::config::ProvideCredentials;
    let resource = format!("{bucket}/{key}");
    let credentials = match &clients.credentials() {
        Some(provider) => provider.provide_credentials().await.ok(),
        None => None,
    };
    let now = std::time::SystemTime::now();
    let window = presign_window(
        lifetime,
        now,
        credentials.as_ref().and_then(|c| c.expiry()),
        credentials.as_ref().is_some_and(|c| c.session_token().is_some()),
    );
    let config = aws_sdk_s3::presigning::PresigningConfig::builder()
        .start_time(now)
        .expires_in(window.lifetime)
        .build()
        .map_err(|e| AwsError::answer("s3", "GetObject (presign)", resource.clone(), e.to_string()))?;
    let req = clients
        .s3()
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(config)
        .await
        .map_err(|e| aws_error("s3", "GetObject (presign)", resource, &e))?;
    let signed_at = epoch(now);
    let lifetime_seconds = i64::try_from(window.lifetime.as_secs()).unwrap_or(i64::MAX);
    Ok(PresignedLink {
        link: OwnLink::new(req.uri()),
        signed_at,
        expires_at: signed_at.saturating_add(lifetime_seconds),
        lifetime_seconds,
        basis: window.basis,
    })
}

/// How long a presigned URL can be given, and on what it rests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresignWindow {
    pub lifetime: std::time::Duration,
    pub basis: LinkLifetime,
}

/// The lifetime of a URL presigned `now` for `requested` with credentials
/// that expire at `expiry` (`None`: unknown or long-term) and are
/// `temporary` (a session token: a role's). S3 caps presigned URLs at 7 days
/// and at the signing credentials' expiry; a role session of unknown expiry
/// (Lambda hands its role's credentials over as environment variables,
/// without their expiry) ends within hours, which the link says.
pub fn presign_window(
    requested: std::time::Duration,
    now: std::time::SystemTime,
    expiry: Option<std::time::SystemTime>,
    temporary: bool,
) -> PresignWindow {
    let requested = requested.min(MAX_PRESIGN_LIFETIME).max(std::time::Duration::from_secs(1));
    match expiry.map(|e| e.duration_since(now).unwrap_or_default()) {
        Some(left) if left < requested => PresignWindow {
            lifetime: left.max(std::time::Duration::from_secs(1)),
            basis: LinkLifetime::CutToCredentials,
        },
        Some(_) => PresignWindow { lifetime: requested, basis: LinkLifetime::Full },
        None if temporary => PresignWindow { lifetime: requested, basis: LinkLifetime::UntilSessionEnds },
        None => PresignWindow { lifetime: requested, basis: LinkLifetime::Full },
    }
}

/// S3's limit for a presigned URL (SigV4).
pub const MAX_PRESIGN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

fn epoch(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// The S3 console page of an object (`bucket`, `key`) in `region`: it opens
/// after sign-in, for as long as the object exists, for whoever may read it.
/// China and GovCloud regions have consoles of their own.
pub fn console_link(bucket: &str, key: &str, region: &str) -> OwnLink {
    let host = if region.starts_with("cn-") {
        format!("{region}.console.amazonaws.cn")
    } else if region.starts_with("us-gov-") {
        format!("{region}.console.amazonaws-us-gov.com")
    } else {
        format!("{region}.console.aws.amazon.com")
    };
    OwnLink::new(format!(
        "https://{host}/s3/object/{}?region={}&bucketType=general&prefix={}",
        percent_encode(bucket, false),
        percent_encode(region, false),
        percent_encode(key, true)
    ))
}

/// RFC 3986 percent-encoding of everything but unreserved characters (and
/// `/` when `keep_slash`: the console reads the key's `/` as it is).
fn percent_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod link_tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    const WEEK: Duration = MAX_PRESIGN_LIFETIME;

    #[test]
    fn a_role_session_ending_before_the_week_should_cut_the_link_to_its_end() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let w = presign_window(WEEK, now, Some(now + Duration::from_secs(5 * 3600)), true);
        assert_eq!(w, PresignWindow { lifetime: Duration::from_secs(5 * 3600), basis: LinkLifetime::CutToCredentials });
        let w = presign_window(Duration::from_secs(3600), now, Some(now + Duration::from_secs(5 * 3600)), true);
        assert_eq!(w, PresignWindow { lifetime: Duration::from_secs(3600), basis: LinkLifetime::Full });
        let w = presign_window(WEEK, now, Some(now - Duration::from_secs(10)), true);
        assert_eq!(w.lifetime, Duration::from_secs(1), "expired credentials: a link that says so");
    }

    #[test]
    fn temporary_credentials_of_unknown_expiry_should_say_the_session_bounds_the_link() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(presign_window(WEEK, now, None, true).basis, LinkLifetime::UntilSessionEnds);
        assert_eq!(presign_window(WEEK, now, None, false), PresignWindow { lifetime: WEEK, basis: LinkLifetime::Full });
        assert_eq!(presign_window(WEEK * 2, now, None, false).lifetime, WEEK, "S3's limit");
    }

    #[test]
    fn console_links_should_name_bucket_key_and_region_in_the_partition_console() {
        let l = console_link("ev-bucket", "reports/daily/2026-11-20/report.html", "eu-west-1");
        assert_eq!(
            l.url(),
            "https://eu-west-1.console.aws.amazon.com/s3/object/ev-bucket?region=eu-west-1&bucketType=general&prefix=reports/daily/2026-11-20/report.html"
        );
        assert!(console_link("b", "k", "cn-north-1").url().starts_with("https://cn-north-1.console.amazonaws.cn/"));
        assert!(
            console_link("b", "k", "us-gov-west-1")
                .url()
                .starts_with("https://us-gov-west-1.console.amazonaws-us-gov.com/")
        );
        assert!(console_link("b", "a b&c=d/é", "us-east-1").url().ends_with("&prefix=a%20b%26c%3Dd/%C3%A9"));
    }
}
