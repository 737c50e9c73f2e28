//! A loopback fault and recording proxy in front of the local AWS server.
//!
//! Point a function at it (`AWS_ENDPOINT_URL`, see [`FaultProxy::env`]) and
//! every request it makes is recorded with its AWS operation — from
//! `X-Amz-Target` for the JSON protocols (ECS, DynamoDB, Logs), from the
//! `Action=` form field for the query protocols (SNS, CloudWatch, ELBv2),
//! from method and path for S3 — as `service:Operation` (`ecs:UpdateService`,
//! `sns:Publish`, `dynamodb:PutItem`, `s3:PutObject`). Rules answer chosen
//! calls (by operation, optionally the Nth matching call) with throttling,
//! a 5xx, a hang past the client's timeout, or a connection reset, or — for
//! a call the server already applied — hold its answer, answer a 5xx instead
//! or reset the connection (a lost response). An operation the local
//! server lacks is answered by the proxy itself (`ecs:ContinueServiceDeployment`,
//! see [`local_answer`]) and recorded like any other.
//!
//! Plain threads and blocking sockets, like the Runtime API driver: one
//! thread per client connection; every request is forwarded on a fresh
//! upstream connection.
//!
//! ```no_run
//! # use autopilot_tests::fault_proxy::{FaultProxy, Fault, Rule};
//! let proxy = FaultProxy::start();
//! proxy.inject(Rule::new("sns:Publish", Fault::Throttle).nth(1).times(3));
//! // start a function with `proxy.env()`, invoke it, then:
//! let published = proxy.published();
//! let rollbacks = proxy.mutations();
//! ```

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a rule does to a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 with the protocol's throttling error (`ThrottlingException`
    /// for JSON protocols, `Throttling` for query protocols; S3's 503 `SlowDown`).
    Throttle,
    /// This HTTP status (500, 503, …) with the protocol's server error body.
    Status(u16),
    /// Never answer: hold the connection until the client gives up (its
    /// attempt timeout) or [`FaultProxy::release_hangs`]. Nothing is forwarded.
    Hang,
    /// Forward the call (the server applies it), then hold the answer as
    /// [`Fault::Hang`] does: the call took effect, its caller never learns it.
    HangAfterForward,
    /// Read the request, then reset the connection (TCP RST). Nothing is forwarded.
    Reset,
    /// Forward the call (the server applies it), then answer this 5xx
    /// instead of the server's answer: a lost response the caller hears as a
    /// server error.
    StatusAfterForward(u16),
    /// Forward the call (the server applies it), then reset the connection:
    /// a lost response the caller hears as a broken connection.
    ResetAfterForward,
    /// HTTP 403 `AccessDenied`, as IAM refuses a call (an `AssumeRole` the
    /// role's trust policy does not allow). Nothing is forwarded.
    Denied,
}

impl Fault {
    /// The four faults every call gets in turn.
    pub const MATRIX: [Fault; 4] = [Fault::Throttle, Fault::Status(503), Fault::Hang, Fault::Reset];

    pub fn label(self) -> String {
        match self {
            Self::Throttle => "throttle".into(),
            Self::Status(code) => format!("http-{code}"),
            Self::Hang => "hang".into(),
            Self::HangAfterForward => "hang-after-forward".into(),
            Self::Reset => "reset".into(),
            Self::StatusAfterForward(code) => format!("http-{code}-after-forward"),
            Self::ResetAfterForward => "reset-after-forward".into(),
            Self::Denied => "access-denied".into(),
        }
    }

    fn forwards(self) -> bool {
        matches!(self, Self::HangAfterForward | Self::StatusAfterForward(_) | Self::ResetAfterForward)
    }
}

/// Which calls a fault applies to.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `service:Operation`, `service:*`, or `*`.
    pub op: String,
    /// The first matching call (1-based) that gets the fault.
    pub nth: u32,
    /// How many consecutive matching calls from `nth` on get it
    /// (`u32::MAX`: all of them).
    pub times: u32,
    pub fault: Fault,
    /// Only calls whose path or body contains this text match (e.g. a
    /// service name, to aim at one service among several).
    pub containing: Option<String>,
    /// Count logical calls, not requests: `nth` is the nth call of the
    /// operation (its SDK retries are the same call, by their
    /// `amz-sdk-invocation-id`), and `times` counts that call's attempts.
    pub per_call: bool,
}

impl Rule {
    /// Every matching call gets `fault`; narrow it with [`Rule::nth`] and [`Rule::times`].
    pub fn new(op: &str, fault: Fault) -> Self {
        Self { op: op.into(), nth: 1, times: u32::MAX, fault, containing: None, per_call: false }
    }
    /// Every attempt of the `nth` logical call of `op` (its SDK retries
    /// included, however other calls of `op` interleave) gets `fault`.
    pub fn call(op: &str, nth: u32, fault: Fault) -> Self {
        Self { per_call: true, ..Self::new(op, fault).nth(nth) }
    }
    pub fn nth(mut self, nth: u32) -> Self {
        self.nth = nth.max(1);
        self
    }
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }
    pub fn containing(mut self, text: &str) -> Self {
        self.containing = Some(text.into());
        self
    }

    fn matches_op(&self, op: &str) -> bool {
        self.op == "*"
            || self.op == op
            || self.op.strip_suffix(":*").is_some_and(|svc| op.split(':').next() == Some(svc))
    }
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Call {
    pub seq: usize,
    /// `service:Operation`.
    pub op: String,
    pub method: String,
    pub path: String,
    /// The request body (S3 object bodies are not kept).
    pub body: Vec<u8>,
    /// The status the client got (`None`: no answer — a hang or a reset).
    pub status: Option<u16>,
    /// The fault a rule injected into this call, if any.
    pub fault: Option<Fault>,
    /// Whether the call reached the server (forwarded and answered).
    pub forwarded: bool,
    pub at: Instant,
    /// The SDK's `amz-sdk-invocation-id`: one per operation, the same on
    /// each of its retries — calls sharing it are one logical call.
    pub invocation: Option<String>,
}

impl Call {
    /// The JSON body of a JSON-protocol call.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A field of a query-protocol (form-encoded) body.
    pub fn form(&self, name: &str) -> Option<String> {
        form_fields(&String::from_utf8_lossy(&self.body)).remove(name)
    }

    /// The server applied it (answered 2xx), whether or not the caller heard back.
    pub fn applied(&self) -> bool {
        self.forwarded && self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the path or body mentions `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.path.contains(needle) || self.text().contains(needle)
    }
}

/// An SNS message as the proxy saw it published.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub seq: usize,
    pub subject: String,
    pub message: String,
    /// Message attributes by name (string values).
    pub attributes: BTreeMap<String, String>,
}

impl Published {
    fn from_call(c: &Call) -> Self {
        let fields = form_fields(&c.text());
        let mut attributes = BTreeMap::new();
        for n in 1.. {
            let Some(name) = fields.get(&format!("MessageAttributes.entry.{n}.Name")) else { break };
            let value = fields.get(&format!("MessageAttributes.entry.{n}.Value.StringValue")).cloned();
            attributes.insert(name.clone(), value.unwrap_or_default());
        }
        Self {
            seq: c.seq,
            subject: fields.get("Subject").cloned().unwrap_or_default(),
            // With MessageStructure=json the plain text is the `default` protocol's body.
            message: {
                let raw = fields.get("Message").cloned().unwrap_or_default();
                if fields.get("MessageStructure").map(String::as_str) == Some("json") {
                    serde_json::from_str::<serde_json::Value>(&raw)
                        .ok()
                        .and_then(|v| v.get("default").and_then(|d| d.as_str()).map(str::to_string))
                        .unwrap_or(raw)
                } else {
                    raw
                }
            },
            attributes,
        }
    }
}

/// A mutating ECS call the proxy saw applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub seq: usize,
    /// `ecs:UpdateService`, `ecs:StopServiceDeployment`.
    pub op: String,
    pub cluster: String,
    pub service: String,
    /// UpdateService's `taskDefinition`, `desiredCount`.
    pub task_definition: Option<String>,
    pub desired_count: Option<i64>,
    /// Whether the caller got the answer (false: a held answer).
    pub answered: bool,
}

/// Operations that change a service.
pub const MUTATING_OPS: [&str; 2] = ["ecs:UpdateService", "ecs:StopServiceDeployment"];

struct RuleState {
    rule: Rule,
    /// Matching requests so far.
    seen: u32,
    /// Distinct invocation ids of matching requests, in order (per-call rules).
    calls: Vec<String>,
    /// Attempts of the target call faulted so far (per-call rules).
    faulted: u32,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    /// Index of the first call `calls` still holds (older ones were taken).
    base: usize,
    rules: Vec<RuleState>,
    /// Bumped by `release_hangs`: hangs started before it end.
    release_epoch: u64,
    hanging: usize,
    hangs_started: u64,
    injected: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    changed: Condvar,
    shutdown: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test thread that panicked while holding it leaves data that is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The proxy; stops accepting when dropped.
pub struct FaultProxy {
    addr: std::net::SocketAddr,
    upstream: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// A proxy in front of the local server (`AWS_ENDPOINT_URL`).
    pub fn start() -> Self {
        Self::start_to(&crate::testbed::endpoint())
    }

    /// A proxy in front of `upstream` (`http://host:port`).
    pub fn start_to(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let addr = listener.local_addr().expect("fault proxy address");
        let upstream = upstream.trim_end_matches('/').trim_start_matches("http://").to_string();
        let shared =
            Arc::new(Shared { inner: Mutex::default(), changed: Condvar::new(), shutdown: AtomicBool::new(false) });
        {
            let shared = shared.clone();
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.shutdown.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = shared.clone();
                    let upstream = upstream.clone();
                    std::thread::spawn(move || serve(stream, &upstream, &shared));
                }
            });
        }
        Self { addr, upstream, shared }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The upstream server, `host:port`.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Environment that points a function's SDK at the proxy.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("AWS_ENDPOINT_URL".into(), self.url())]
    }

    /// Add a rule; rules are consulted in order, the first whose window
    /// covers a call injects its fault.
    pub fn inject(&self, rule: Rule) {
        self.shared.lock().rules.push(RuleState { rule, seen: 0, calls: Vec::new(), faulted: 0 });
    }

    /// Remove every rule (hangs in progress stay until released).
    pub fn clear_rules(&self) {
        self.shared.lock().rules.clear();
    }

    /// End every hang in progress: its connection is closed unanswered.
    pub fn release_hangs(&self) {
        let mut inner = self.shared.lock();
        inner.release_epoch += 1;
        drop(inner);
        self.shared.changed.notify_all();
    }

    /// Wait until a hang is in progress (a rule's [`Fault::Hang`] or
    /// [`Fault::HangAfterForward`] holds a call); the held call.
    pub fn wait_hung(&self, timeout: Duration) -> Option<Call> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.shared.lock();
        loop {
            if inner.hanging > 0 {
                return inner
                    .calls
                    .iter()
                    .rev()
                    .find(|c| matches!(c.fault, Some(Fault::Hang | Fault::HangAfterForward)))
                    .cloned();
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            inner = self.shared.changed.wait_timeout(inner, left.min(Duration::from_millis(50))).map(|r| r.0).ok()?;
        }
    }

    /// How many faults the rules injected so far.
    pub fn injected(&self) -> u64 {
        self.shared.lock().injected
    }

    /// How many calls of `op` (not yet taken) a rule injected its fault into:
    /// a test that aims a fault asserts it landed, else it proved nothing.
    pub fn injected_into(&self, op: &str) -> usize {
        self.shared.lock().calls.iter().filter(|c| c.op == op && c.fault.is_some()).count()
    }

    /// Every call recorded (and not yet taken), in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// The calls recorded so far, removed from the log (the next ones keep counting `seq`).
    pub fn take_calls(&self) -> Vec<Call> {
        let mut inner = self.shared.lock();
        let taken = std::mem::take(&mut inner.calls);
        inner.base += taken.len();
        taken
    }

    /// Calls of one operation.
    pub fn calls_of(&self, op: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.op == op).collect()
    }

    /// SNS messages the server accepted, in order.
    pub fn published(&self) -> Vec<Published> {
        published(&self.calls())
    }

    /// Mutating ECS calls the server applied, in order.
    pub fn mutations(&self) -> Vec<Mutation> {
        mutations(&self.calls())
    }

    /// Mutating ECS calls the server applied to one service (`cluster` and
    /// `service` as names or ARNs): what a test that says "one action" counts.
    pub fn mutations_of(&self, cluster: &str, service: &str) -> Vec<Mutation> {
        let last = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
        self.mutations()
            .into_iter()
            .filter(|m| {
                last(&m.service) == last(service) && (m.cluster.is_empty() || last(&m.cluster) == last(cluster))
            })
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        self.release_hangs();
        let _ = TcpStream::connect(self.addr);
    }
}

/// The applied calls among `calls` that `keep`, one per logical call (an
/// SDK retry of a call the server applied but whose answer was lost is the
/// same call, not a second one).
fn applied_once<'a>(calls: &'a [Call], keep: impl Fn(&Call) -> bool + 'a) -> impl Iterator<Item = &'a Call> + 'a {
    let mut seen = std::collections::BTreeSet::new();
    calls
        .iter()
        .filter(move |c| keep(c) && c.applied() && c.invocation.as_ref().is_none_or(|id| seen.insert(id.clone())))
}

/// SNS messages the server accepted among `calls` (one per logical Publish).
pub fn published(calls: &[Call]) -> Vec<Published> {
    applied_once(calls, |c| c.op == "sns:Publish").map(Published::from_call).collect()
}

/// Every SNS message the server accepted among `calls`, an SDK retry's copy
/// included (what subscribers receive).
pub fn published_copies(calls: &[Call]) -> Vec<Published> {
    calls.iter().filter(|c| c.op == "sns:Publish" && c.applied()).map(Published::from_call).collect()
}

/// Mutating ECS calls the server applied among `calls` (one per logical call).
pub fn mutations(calls: &[Call]) -> Vec<Mutation> {
    applied_once(calls, |c| MUTATING_OPS.contains(&c.op.as_str()))
        .map(|c| {
            let body = c.json().unwrap_or(Value::Null);
            let text = |k: &str| body[k].as_str().map(str::to_string);
            Mutation {
                seq: c.seq,
                op: c.op.clone(),
                cluster: text("cluster").unwrap_or_default(),
                service: text("service").or_else(|| text("serviceArn")).unwrap_or_default(),
                task_definition: text("taskDefinition"),
                desired_count: body["desiredCount"].as_i64(),
                answered: c.status.is_some() && c.fault.is_none(),
            }
        })
        .collect()
}

/// `a=b&c=d` (URL-encoded) as a map.
pub fn form_fields(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP/1.1 request as read from a client.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The signing service from `Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request`.
    fn signing_service(&self) -> Option<String> {
        let auth = self.header("authorization")?;
        let cred = auth.split("Credential=").nth(1)?;
        let scope: Vec<&str> = cred.split([',', ' ']).next()?.split('/').collect();
        scope.get(3).map(|s| s.to_string())
    }

    fn protocol(&self, service: &str) -> Protocol {
        if self.header("x-amz-target").is_some() {
            Protocol::Json
        } else if service == "s3" {
            Protocol::RestXml
        } else {
            Protocol::Query
        }
    }

    /// `service:Operation`.
    fn operation(&self) -> String {
        let target = self.header("x-amz-target");
        let service = self.signing_service().unwrap_or_else(|| match target {
            Some(t) if t.starts_with("DynamoDB") => "dynamodb".into(),
            Some(t) if t.starts_with("AmazonEC2ContainerService") => "ecs".into(),
            Some(t) if t.starts_with("Logs") => "logs".into(),
            _ => "unknown".into(),
        });
        let service = match service.as_str() {
            "elasticloadbalancing" => "elbv2".to_string(),
            "monitoring" => "cloudwatch".to_string(),
            _ => service,
        };
        let op = match (target, service.as_str()) {
            (Some(t), _) => t.rsplit('.').next().unwrap_or(t).to_string(),
            (None, "s3") => s3_operation(&self.method, &self.target, self),
            (None, _) => form_fields(&String::from_utf8_lossy(&self.body))
                .remove("Action")
                .unwrap_or_else(|| format!("{}{}", self.method, self.target.split('?').next().unwrap_or(""))),
        };
        format!("{service}:{op}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Json,
    Query,
    RestXml,
}

fn s3_operation(method: &str, target: &str, req: &Request) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let has_key = path.trim_start_matches('/').split_once('/').is_some_and(|(_, k)| !k.is_empty());
    let q = |name: &str| query.split('&').any(|kv| kv.split('=').next() == Some(name));
    match (method, has_key) {
        ("PUT", true) if req.header("x-amz-copy-source").is_some() => "CopyObject".into(),
        ("PUT", true) => "PutObject".into(),
        ("GET", true) => "GetObject".into(),
        ("HEAD", true) => "HeadObject".into(),
        ("DELETE", true) => "DeleteObject".into(),
        ("POST", _) if q("delete") => "DeleteObjects".into(),
        ("GET", false) if q("list-type") => "ListObjectsV2".into(),
        ("GET", false) => "ListObjects".into(),
        ("PUT", false) => "CreateBucket".into(),
        ("HEAD", false) => "HeadBucket".into(),
        (m, _) => format!("{m}{path}"),
    }
}

/// Read one request; `None` when the client closed the connection.
fn read_request(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let headers = read_headers(reader)?;
    let find = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    if find("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    let chunked = find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let length: usize = find("content-length").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        body
    };
    Some(Request { method, target, headers, body })
}

fn read_headers(reader: &mut impl BufRead) -> Option<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Some(headers);
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

fn read_chunked(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let n = usize::from_str_radix(size.trim().split(';').next()?.trim(), 16).ok()?;
        if n == 0 {
            // Trailers, then the blank line.
            read_headers(reader)?;
            return Some(body);
        }
        let mut chunk = vec![0; n + 2];
        reader.read_exact(&mut chunk).ok()?;
        body.extend_from_slice(&chunk[..n]);
    }
}

/// Headers a hop rewrites (the proxy frames every message itself).
const HOP_HEADERS: [&str; 6] =
    ["connection", "keep-alive", "transfer-encoding", "content-length", "expect", "proxy-connection"];

/// An upstream answer.
struct Response {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn forward(upstream: &str, req: &Request) -> std::io::Result<Response> {
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        if !HOP_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", req.body.len()));
    up.write_all(head.as_bytes())?;
    up.write_all(&req.body)?;
    let mut reader = BufReader::new(up);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed upstream response");
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let mut parts = status_line.trim_end().splitn(3, ' ');
    let _version = parts.next().ok_or_else(bad)?;
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let reason = parts.next().unwrap_or("").to_string();
    let headers = read_headers(&mut reader).ok_or_else(bad)?;
    let find = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let no_body = req.method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    let body = if no_body {
        Vec::new()
    } else if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        read_chunked(&mut reader).ok_or_else(bad)?
    } else if let Some(len) = find("content-length").and_then(|v| v.trim().parse::<usize>().ok()) {
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        body
    } else {
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        body
    };
    Ok(Response { status, reason, headers, body })
}

fn write_response(client: &mut TcpStream, r: &Response, head_request: bool) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", r.status, r.reason);
    for (k, v) in &r.headers {
        let lower = k.to_ascii_lowercase();
        // A HEAD answer's Content-Length is the object's, and stays.
        let keep = !HOP_HEADERS.contains(&lower.as_str()) || (lower == "content-length" && head_request);
        if keep {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if !head_request {
        head.push_str(&format!("Content-Length: {}\r\n", r.body.len()));
    }
    head.push_str("Connection: keep-alive\r\n\r\n");
    client.write_all(head.as_bytes())?;
    client.write_all(&r.body)?;
    client.flush()
}

/// The error answer a real service gives for `fault` over `protocol`.
fn canned(fault: Fault, protocol: Protocol, req: &Request) -> Response {
    let (status, code, message) = match (fault, protocol) {
        (Fault::Throttle, Protocol::RestXml) => (503, "SlowDown", "Please reduce your request rate."),
        (Fault::Throttle, Protocol::Json) => (400, "ThrottlingException", "Rate exceeded"),
        (Fault::Throttle, Protocol::Query) => (400, "Throttling", "Rate exceeded"),
        (Fault::Status(503), Protocol::RestXml) => (503, "ServiceUnavailable", "injected by the fault proxy"),
        (Fault::Status(503), _) => (503, "ServiceUnavailable", "injected by the fault proxy"),
        (Fault::Status(code), Protocol::RestXml) => (code, "InternalError", "injected by the fault proxy"),
        (Fault::Status(code), _) => (code, "InternalFailure", "injected by the fault proxy"),
        (Fault::Denied, _) => {
            (403, "AccessDenied", "not authorized to perform sts:AssumeRole (injected by the fault proxy)")
        }
        _ => (500, "InternalFailure", "injected by the fault proxy"),
    };
    let request_id = "fault-proxy-0000-0000-0000-000000000000";
    let (content_type, body) = match protocol {
        Protocol::Json => (
            req.header("content-type").unwrap_or("application/x-amz-json-1.1").to_string(),
            format!("{{\"__type\":\"{code}\",\"message\":\"{message}\"}}"),
        ),
        Protocol::Query => (
            "text/xml".to_string(),
            format!(
                "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>{request_id}</RequestId></ErrorResponse>",
                if status < 500 { "Sender" } else { "Receiver" }
            ),
        ),
        Protocol::RestXml => (
            "application/xml".to_string(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
                 <RequestId>{request_id}</RequestId></Error>"
            ),
        ),
    };
    let mut headers =
        vec![("Content-Type".to_string(), content_type), ("x-amzn-RequestId".to_string(), request_id.to_string())];
    if protocol == Protocol::Json {
        headers.push(("x-amzn-ErrorType".to_string(), code.to_string()));
    }
    let reason = if status == 400 {
        "Bad Request"
    } else if status == 503 {
        "Service Unavailable"
    } else {
        "Error"
    };
    Response { status, reason: reason.into(), headers, body: body.into_bytes() }
}

/// The answer of an operation moto (5.2.5) does not implement, given by
/// the proxy itself: `ecs:ContinueServiceDeployment` (answering a paused
/// deployment's hook) answers as ECS documents it, `{"serviceDeploymentArn":
/// …}`, without effect. Every such call is recorded ([`FaultProxy::calls_of`]),
/// so a test asserts how often it was called and with which `hookId` and
/// `action`. Faults still apply to it first.
fn local_answer(op: &str, req: &Request) -> Option<Response> {
    if op != "ecs:ContinueServiceDeployment" {
        return None;
    }
    let input: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let arn = input.get("serviceDeploymentArn").cloned().unwrap_or(Value::Null);
    let body = serde_json::json!({ "serviceDeploymentArn": arn }).to_string();
    Some(Response {
        status: 200,
        reason: "OK".into(),
        headers: vec![
            ("Content-Type".into(), "application/x-amz-json-1.1".into()),
            ("x-amzn-RequestId".into(), "fault-proxy-local-answer".into()),
        ],
        body: body.into_bytes(),
    })
}

/// Record the call and decide its fault.
fn admit(shared: &Shared, req: &Request, op: &str) -> (usize, Option<Fault>) {
    let mut inner = shared.lock();
    let text = String::from_utf8_lossy(&req.body);
    let mut fault = None;
    for r in inner.rules.iter_mut() {
        let hit = r.rule.matches_op(op)
            && r.rule.containing.as_deref().is_none_or(|n| req.target.contains(n) || text.contains(n));
        if !hit {
            continue;
        }
        r.seen += 1;
        let hit = match (r.rule.per_call, req.header("amz-sdk-invocation-id")) {
            (true, Some(id)) => {
                if !r.calls.iter().any(|c| c == id) {
                    r.calls.push(id.to_string());
                }
                let target = r.calls.get(r.rule.nth as usize - 1).is_some_and(|t| t == id);
                target && r.faulted < r.rule.times
            }
            // Without an invocation id every request is a call of its own.
            _ => r.seen >= r.rule.nth && u64::from(r.seen - r.rule.nth) < u64::from(r.rule.times),
        };
        if hit && fault.is_none() {
            r.faulted += 1;
            fault = Some(r.rule.fault);
        }
    }
    if fault.is_some() {
        inner.injected += 1;
    }
    let seq = inner.base + inner.calls.len();
    let keep_body = !op.starts_with("s3:");
    inner.calls.push(Call {
        seq,
        op: op.to_string(),
        method: req.method.clone(),
        path: req.target.clone(),
        body: if keep_body { req.body.clone() } else { Vec::new() },
        status: None,
        fault,
        forwarded: false,
        at: Instant::now(),
        invocation: req.header("amz-sdk-invocation-id").map(str::to_string),
    });
    drop(inner);
    shared.changed.notify_all();
    (seq, fault)
}

fn settle(shared: &Shared, seq: usize, status: Option<u16>, forwarded: bool) {
    let mut inner = shared.lock();
    if let Some(i) = seq.checked_sub(inner.base)
        && let Some(c) = inner.calls.get_mut(i)
    {
        c.status = status;
        c.forwarded = forwarded;
    }
    drop(inner);
    shared.changed.notify_all();
}

/// Hold `client` unanswered until released or closed by the client.
fn hang(shared: &Shared, client: &TcpStream) {
    let started = Instant::now();
    let epoch = {
        let mut inner = shared.lock();
        inner.hanging += 1;
        inner.hangs_started += 1;
        inner.release_epoch
    };
    shared.changed.notify_all();
    let _ = client.set_nonblocking(true);
    let mut probe = [0u8; 1];
    loop {
        {
            let inner = shared.lock();
            if inner.release_epoch != epoch || shared.shutdown.load(Ordering::Relaxed) {
                break;
            }
            let _ = shared.changed.wait_timeout(inner, Duration::from_millis(50));
        }
        match client.peek(&mut probe) {
            Ok(0) => break, // the client gave up
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => break,
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    shared.lock().hanging -= 1;
    shared.changed.notify_all();
}

fn reset(client: &TcpStream) {
    let _ = socket2::SockRef::from(client).set_linger(Some(Duration::ZERO));
}

fn serve(stream: TcpStream, upstream: &str, shared: &Shared) {
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let Some(req) = read_request(&mut reader, &mut writer) else { return };
        let op = req.operation();
        let (seq, fault) = admit(shared, &req, &op);
        let service = op.split(':').next().unwrap_or_default().to_string();
        match fault {
            Some(Fault::Reset) => {
                reset(&writer);
                let _ = writer.shutdown(Shutdown::Read);
                return;
            }
            Some(Fault::Hang) => {
                hang(shared, &writer);
                reset(&writer);
                return;
            }
            Some(f) if !f.forwards() => {
                let r = canned(f, req.protocol(&service), &req);
                settle(shared, seq, Some(r.status), false);
                if write_response(&mut writer, &r, req.method == "HEAD").is_err() {
                    return;
                }
            }
            None if local_answer(&op, &req).is_some() => {
                // An operation the local server lacks, answered here (recorded like any call).
                let Some(r) = local_answer(&op, &req) else { return };
                settle(shared, seq, Some(r.status), false);
                if write_response(&mut writer, &r, false).is_err() {
                    return;
                }
            }
            _ => {
                let answer = forward(upstream, &req);
                let response = match answer {
                    Ok(r) => r,
                    Err(_) => {
                        // The server dropped it: tell the client as a broken connection would.
                        settle(shared, seq, None, false);
                        reset(&writer);
                        return;
                    }
                };
                settle(shared, seq, Some(response.status), true);
                match fault {
                    Some(Fault::HangAfterForward) => {
                        hang(shared, &writer);
                        reset(&writer);
                        return;
                    }
                    Some(Fault::ResetAfterForward) => {
                        reset(&writer);
                        let _ = writer.shutdown(Shutdown::Read);
                        return;
                    }
                    Some(Fault::StatusAfterForward(code)) => {
                        // The server applied it; the caller hears a server error.
                        let r = canned(Fault::Status(code), req.protocol(&service), &req);
                        if write_response(&mut writer, &r, req.method == "HEAD").is_err() {
                            return;
                        }
                        continue;
                    }
                    _ => {}
                }
                if write_response(&mut writer, &response, req.method == "HEAD").is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_should_decode_plus_and_percent() {
        let f = form_fields("Action=Publish&Subject=%5BSEV2%5D+prod%2Fapi&Message=a%0Ab&Bad=%zz");
        assert_eq!(f["Action"], "Publish");
        assert_eq!(f["Subject"], "[SEV2] prod/api");
        assert_eq!(f["Message"], "a\nb");
        assert_eq!(f["Bad"], "%zz");
    }

    #[test]
    fn rules_should_match_operations_exactly_by_service_or_all() {
        let r = Rule::new("ecs:*", Fault::Throttle);
        assert!(r.matches_op("ecs:UpdateService") && !r.matches_op("sns:Publish"));
        assert!(Rule::new("*", Fault::Reset).matches_op("s3:PutObject"));
        assert!(!Rule::new("ecs:UpdateService", Fault::Reset).matches_op("ecs:UpdateServicePrimaryTaskSet"));
    }

    fn request(op: &str, invocation: &str) -> Request {
        Request {
            method: "POST".into(),
            target: "/".into(),
            headers: vec![
                ("X-Amz-Target".into(), format!("DynamoDB_20120810.{op}")),
                ("amz-sdk-invocation-id".into(), invocation.into()),
            ],
            body: Vec::new(),
        }
    }

    #[test]
    fn a_per_call_rule_should_fault_every_attempt_of_its_call_however_calls_interleave() {
        let shared = Shared { inner: Mutex::default(), changed: Condvar::new(), shutdown: AtomicBool::new(false) };
        let mut rule = Rule::call("dynamodb:GetItem", 2, Fault::Throttle);
        rule.times = 3;
        shared.lock().rules.push(RuleState { rule, seen: 0, calls: Vec::new(), faulted: 0 });
        // Two concurrent calls a and b, each retried: only b's attempts are faulted.
        let order = ["a", "b", "a", "b", "b", "b"];
        let faults: Vec<bool> = order
            .iter()
            .map(|id| {
                let r = request("GetItem", id);
                admit(&shared, &r, &r.operation()).1.is_some()
            })
            .collect();
        assert_eq!(faults, [false, true, false, true, true, false]);
        let calls = shared.lock().calls.clone();
        assert_eq!(calls[0].op, "dynamodb:GetItem");
        assert_eq!(calls.iter().filter(|c| c.fault.is_some()).count(), 3);
    }
}
