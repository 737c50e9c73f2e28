//! S3: the evidence store. Server-side encryption on every put; objects are
//! never overwritten (`If-None-Match: *`), so a retry keeps what is there.
//!
//! Two operations, PutObject and a presigned GetObject, without aws-sdk-s3:
//! each request is signed with the SDK's SigV4 signer (`aws-sigv4`, the
//! S3 rules: single URI encoding, the payload's SHA-256 in
//! `x-amz-content-sha256`) and a put goes through the SDK's orchestrator
//! with the function's HTTP client, retry and timeout configuration and
//! call counter, as every generated client does. aws-sdk-s3 would link
//! crc-fast's tables for every CRC variant (about 600 KB deflated in each
//! binary) for checksums a SHA-256 here already gives.

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_smithy_runtime::client::orchestrator::operation::Operation;
use aws_smithy_runtime::client::retries::classifiers::{HttpStatusCodeClassifier, TransientErrorClassifier};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::ErrorMetadata;
use futures::future::join_all;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

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
    let resource = format!("s3://{bucket}/{key}");
    let config = clients.s3_config();
    let place = Place::of(config, bucket, &key).map_err(|why| AwsError::answer("s3", "PutObject", &resource, why))?;
    let credentials = credentials_of(clients, "PutObject", &resource).await?;
    let mut headers = vec![
        ("content-type", object.content_type.to_string()),
        ("if-none-match", "*".to_string()),
        ("x-amz-checksum-sha256", {
            use base64_sha::encode;
            encode(&Sha256::digest(&object.body))
        }),
    ];
    match &encryption.kms_key_id {
        Some(k) => {
            headers.push(("x-amz-server-side-encryption", "aws:kms".into()));
            headers.push(("x-amz-server-side-encryption-aws-kms-key-id", k.clone()));
        }
        None => headers.push(("x-amz-server-side-encryption", "AES256".into())),
    }
    let request = PutRequest { path: place.path.clone(), headers, body: object.body };
    let operation = Operation::builder()
        .service_name("S3")
        .operation_name("PutObject")
        // The function's one HTTP client; a configuration built elsewhere
        // (a test's) without one gets the same kind.
        .http_client(config.http_client().unwrap_or_else(super::shared_https_client))
        .endpoint_url(&place.endpoint)
        .standard_retry(&config.retry_config().cloned().unwrap_or_else(aws_smithy_types::retry::RetryConfig::standard))
        .timeout_config(
            config.timeout_config().cloned().unwrap_or_else(aws_smithy_types::timeout::TimeoutConfig::disabled),
        )
        .retry_classifier(HttpStatusCodeClassifier::default())
        .retry_classifier(TransientErrorClassifier::<ErrorMetadata>::new())
        .interceptor(SigV4 { credentials, region: place.region.clone() })
        .interceptor(clients.calls.clone())
        .no_auth()
        .serializer(|r: PutRequest| r.into_http())
        .deserializer(put_answer);
    let mut operation = operation;
    if let Some(sleep) = config.sleep_impl() {
        operation = operation.sleep_impl(sleep);
    }
    if let Some(time) = config.time_source() {
        operation = operation.time_source(time);
    }
    match operation.build().invoke(request).await {
        Ok(()) => Ok(true),
        Err(e) => {
            let e = aws_error("s3", "PutObject", resource, &e);
            if e.code_is("PreconditionFailed") { Ok(false) } else { Err(e) }
        }
    }
}

/// The credentials S3 is called with: home's (a member's evidence goes to
/// the central bucket).
async fn credentials_of(clients: &Clients, operation: &'static str, resource: &str) -> Result<Credentials, AwsError> {
    let Some(provider) = clients.credentials() else {
        return Err(AwsError::answer("s3", operation, resource, "no credentials in the SDK configuration"));
    };
    provider.provide_credentials().await.map_err(|e| AwsError::answer("s3", operation, resource, e.to_string()))
}

/// Where an object is, as S3 is addressed: virtual-hosted
/// (`https://<bucket>.s3.<region>.amazonaws.com/<key>`), or path-style on a
/// custom endpoint (`AWS_ENDPOINT_URL`, the local test server), which
/// cannot serve bucket names as hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    endpoint: String,
    /// The URI-encoded path (S3 signs it as sent: no second encoding).
    path: String,
    region: String,
}

impl Place {
    fn of(config: &aws_config::SdkConfig, bucket: &str, key: &str) -> Result<Self, &'static str> {
        let region = config.region().map(|r| r.as_ref().to_string()).ok_or("no region in the SDK configuration")?;
        Ok(Self::at(endpoint_of(config).as_deref(), &region, bucket, key))
    }

    /// (pure)
    fn at(custom_endpoint: Option<&str>, region: &str, bucket: &str, key: &str) -> Self {
        let key = percent_encode(key, true);
        match custom_endpoint {
            Some(e) => Self {
                endpoint: e.trim_end_matches('/').to_string(),
                path: format!("/{}/{key}", percent_encode(bucket, false)),
                region: region.to_string(),
            },
            None => {
                let domain = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
                Self {
                    endpoint: format!("https://{bucket}.s3.{region}.{domain}"),
                    path: format!("/{key}"),
                    region: region.to_string(),
                }
            }
        }
    }

    fn url(&self) -> String {
        format!("{}{}", self.endpoint, self.path)
    }
}

/// A custom S3 endpoint, as aws-sdk-s3 finds one: `AWS_ENDPOINT_URL_S3`
/// (or the profile's `s3` `endpoint_url`), else `AWS_ENDPOINT_URL`.
fn endpoint_of(config: &aws_config::SdkConfig) -> Option<String> {
    let service_specific = config.service_config().and_then(|c| {
        let key = aws_types::service_config::ServiceConfigKey::builder()
            .service_id("S3")
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .ok()?;
        c.load_config(key)
    });
    service_specific.or_else(|| config.endpoint_url().map(str::to_string))
}

/// A PutObject as the orchestrator serializes it.
#[derive(Debug)]
struct PutRequest {
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl PutRequest {
    fn into_http(self) -> Result<HttpRequest, aws_smithy_runtime_api::box_error::BoxError> {
        let mut builder = http::Request::builder().method("PUT").uri(self.path);
        for (name, value) in &self.headers {
            builder = builder.header(*name, value);
        }
        let request = builder.body(SdkBody::from(self.body))?;
        Ok(HttpRequest::try_from(request)?)
    }
}

/// 2xx: stored. Otherwise S3's error document (`<Error><Code>…`), or the
/// status alone when there is none.
fn put_answer(response: &HttpResponse) -> Result<(), OrchestratorError<ErrorMetadata>> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let body = response.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
    Err(OrchestratorError::operation(error_of(status, &body)))
}

/// The `Code` and `Message` of an S3 error document (pure).
fn error_of(status: u16, body: &str) -> ErrorMetadata {
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&format!("</{name}>"))? + start;
        Some(body[start..end].trim().to_string())
    };
    let code = element("Code").unwrap_or_else(|| match status {
        412 => "PreconditionFailed".into(),
        403 => "AccessDenied".into(),
        404 => "NoSuchBucket".into(),
        503 => "SlowDown".into(),
        _ => format!("HTTP{status}"),
    });
    ErrorMetadata::builder()
        .code(code)
        .message(element("Message").unwrap_or_else(|| format!("HTTP status {status}")))
        .build()
}

/// Signs each attempt as it leaves (the signature carries the time).
#[derive(Debug)]
struct SigV4 {
    credentials: Credentials,
    region: String,
}

impl Intercept for SigV4 {
    fn name(&self) -> &'static str {
        "S3SigV4"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        sign_headers(context.request_mut(), &self.credentials, &self.region, SystemTime::now())
    }
}

/// The S3 flavour of SigV4 (single URI encoding, no path normalisation).
fn s3_settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings
}

/// SigV4 for S3 in `region` at `at`, with `settings`: what to add to the request.
fn sign_s3(
    signable: SignableRequest<'_>,
    credentials: &Credentials,
    region: &str,
    at: SystemTime,
    settings: SigningSettings,
) -> Result<aws_sigv4::http_request::SigningInstructions, aws_smithy_runtime_api::box_error::BoxError> {
    let identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(at)
        .settings(settings)
        .build()?
        .into();
    Ok(sign(signable, &params)?.into_parts().0)
}

/// Sign `request` in its headers (`Authorization`, `x-amz-date`,
/// `x-amz-content-sha256`, the session token).
fn sign_headers(
    request: &mut HttpRequest,
    credentials: &Credentials,
    region: &str,
    at: SystemTime,
) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
    let body = request.body().bytes().ok_or("an S3 request body must be in memory to be signed")?.to_vec();
    let headers: Vec<(String, String)> =
        request.headers().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut settings = s3_settings();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let signable = SignableRequest::new(
        request.method(),
        request.uri().to_string(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&body),
    )?;
    let (signed, _) = sign_s3(signable, credentials, region, at, settings)?.into_parts();
    for h in signed {
        request.headers_mut().insert(h.name(), h.value().to_string());
    }
    Ok(())
}

/// A GET of `url` signed in its query string for `lifetime` (pure but for the signature).
fn presign_url(
    url: &str,
    credentials: &Credentials,
    region: &str,
    at: SystemTime,
    lifetime: Duration,
) -> Result<String, aws_smithy_runtime_api::box_error::BoxError> {
    let mut settings = s3_settings();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(lifetime);
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    let signable = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::UnsignedPayload)?;
    let instructions = sign_s3(signable, credentials, region, at, settings)?;
    let mut request = http::Request::builder().method("GET").uri(url).body(())?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(request.uri().to_string())
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
    const OP: &str = "GetObject (presign)";
    let resource = format!("{bucket}/{key}");
    let place =
        Place::of(clients.s3_config(), bucket, key).map_err(|why| AwsError::answer("s3", OP, &resource, why))?;
    let credentials = credentials_of(clients, OP, &resource).await?;
    let now = SystemTime::now();
    let window = presign_window(lifetime, now, credentials.expiry(), credentials.session_token().is_some());
    let url =
        presign_url(&format!("{}?x-id=GetObject", place.url()), &credentials, &place.region, now, window.lifetime)
            .map_err(|e| AwsError::answer("s3", OP, &resource, e.to_string()))?;
    let signed_at = epoch(now);
    let lifetime_seconds = i64::try_from(window.lifetime.as_secs()).unwrap_or(i64::MAX);
    Ok(PresignedLink {
        link: OwnLink::new(url),
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

#[cfg(test)]
mod signing_tests {
    use super::*;

    fn example_credentials(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            token.map(str::to_string),
            None,
            "test",
        )
    }

    fn at(rfc3339: &str) -> SystemTime {
        chrono::DateTime::parse_from_rfc3339(rfc3339).map(SystemTime::from).expect("time")
    }

    #[test]
    fn objects_are_addressed_virtual_hosted_and_path_style_on_a_custom_endpoint() {
        let p =
            Place::at(None, "eu-west-1", "evidence-bucket", "incidents/a b/2026-12-06T17:58:30+00:00-rollback/x.json");
        assert_eq!(p.endpoint, "https://evidence-bucket.s3.eu-west-1.amazonaws.com");
        assert_eq!(p.path, "/incidents/a%20b/2026-12-06T17%3A58%3A30%2B00%3A00-rollback/x.json");
        let p = Place::at(None, "cn-north-1", "b", "k");
        assert_eq!(p.endpoint, "https://b.s3.cn-north-1.amazonaws.com.cn");
        let p = Place::at(Some("http://127.0.0.1:5000/"), "us-east-1", "b", "dir/k.json");
        assert_eq!(p.url(), "http://127.0.0.1:5000/b/dir/k.json");
    }

    #[test]
    fn errors_are_read_from_s3s_error_document_or_the_status() {
        let e = error_of(
            403,
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        );
        assert_eq!((e.code(), e.message()), (Some("AccessDenied"), Some("Access Denied")));
        assert_eq!(error_of(412, "").code(), Some("PreconditionFailed"), "If-None-Match refused: already there");
        assert_eq!(error_of(503, "").code(), Some("SlowDown"));
        assert_eq!(error_of(500, "").code(), Some("HTTP500"));
    }

    /// AWS's worked example of header signing for S3 ("Example: GET
    /// Object", the S3 API reference on SigV4 with a single-chunk payload).
    #[test]
    fn header_signing_gives_the_signature_of_awss_documented_example() {
        let mut request = HttpRequest::try_from(
            http::Request::builder()
                .method("GET")
                .uri("https://examplebucket.s3.amazonaws.com/test.txt")
                .header("range", "bytes=0-9")
                .body(SdkBody::empty())
                .expect("request"),
        )
        .expect("request");
        sign_headers(&mut request, &example_credentials(None), "us-east-1", at("2013-05-24T00:00:00Z"))
            .expect("signed");
        let authorization = request.headers().get("authorization").expect("authorization");
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(
            request.headers().get("x-amz-content-sha256"),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }

    /// The presigned GET is the URL aws-sdk-s3 presigns for the same
    /// object, time, lifetime and credentials, virtual-hosted and path-style.
    #[tokio::test]
    async fn a_presigned_get_is_the_url_the_sdk_presigns() {
        use aws_sdk_s3::config::{BehaviorVersion, Region};
        let when = at("2026-12-06T12:00:00Z");
        let lifetime = Duration::from_secs(3600);
        for (endpoint, token) in [(None, None), (Some("http://127.0.0.1:5000"), Some("session-token/+="))] {
            let credentials = example_credentials(token);
            let mut conf = aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("eu-west-1"))
                .credentials_provider(credentials.clone());
            if let Some(e) = endpoint {
                conf = conf.endpoint_url(e).force_path_style(true);
            }
            let sdk = aws_sdk_s3::Client::from_conf(conf.build());
            let key = "incidents/prod/api/inc-1/2026-12-06T12:00:00+00:00 report.md";
            let theirs = sdk
                .get_object()
                .bucket("evidence-bucket")
                .key(key)
                .presigned(
                    aws_sdk_s3::presigning::PresigningConfig::builder()
                        .start_time(when)
                        .expires_in(lifetime)
                        .build()
                        .expect("config"),
                )
                .await
                .expect("sdk presign");
            let place = Place::at(endpoint, "eu-west-1", "evidence-bucket", key);
            let ours =
                presign_url(&format!("{}?x-id=GetObject", place.url()), &credentials, "eu-west-1", when, lifetime)
                    .expect("ours");
            let sorted = |url: &str| {
                let (base, query) = url.split_once('?').unwrap_or((url, ""));
                let mut q: Vec<&str> = query.split('&').collect();
                q.sort_unstable();
                (base.to_string(), q.join("&"))
            };
            assert_eq!(sorted(&ours), sorted(theirs.uri()), "endpoint {endpoint:?}");
        }
    }
}
