//! A minimal Lambda Runtime API server, so the tests run the real function
//! binaries exactly as Lambda does: the binary long-polls
//! `GET /2018-06-01/runtime/invocation/next`, and posts `…/response` or
//! `…/error`. Plain threads and blocking sockets: one connection per thread.

use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub enum InvokeResult {
    Response(Value),
    Error { error_type: String, error_message: String },
}

impl InvokeResult {
    pub fn expect_response(self, what: &str) -> Value {
        match self {
            Self::Response(v) => v,
            Self::Error { error_type, error_message } => {
                panic!("{what}: expected a response, got error {error_type}: {error_message}")
            }
        }
    }
    pub fn expect_error(self, what: &str) -> (String, String) {
        match self {
            Self::Error { error_type, error_message } => (error_type, error_message),
            Self::Response(v) => panic!("{what}: expected an error, got {v}"),
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, Vec<u8>)>,
    results: HashMap<String, InvokeResult>,
    first_next: Option<Instant>,
    init_error: Option<String>,
    shutdown: bool,
    /// How long each invocation may run (`Lambda-Runtime-Deadline-Ms`); 300 s unless set.
    deadline: Option<Duration>,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

/// A running function binary and its Runtime API.
pub struct LambdaProcess {
    pub name: String,
    child: Child,
    state: Shared,
    spawned_at: Instant,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    next_id: Mutex<u64>,
    last_request_id: Option<String>,
}

impl LambdaProcess {
    /// Start `binary` with `env` (plus the variables the Lambda runtime sets).
    pub fn start(binary: &std::path::Path, function_name: &str, env: &[(String, String)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind runtime api");
        let addr = listener.local_addr().expect("local addr");
        let state: Shared = Arc::default();
        {
            let state = state.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || serve(stream, state));
                }
            });
        }
        // AUTOPILOT_EXEC_WRAPPER (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`)
        // runs the binary through an emulator: the arm64 artifacts on x86_64.
        let wrapper = std::env::var("AUTOPILOT_EXEC_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut cmd = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/21/[$LATEST]test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function_name}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let spawned_at = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start {}: {e}; build the binaries first (cargo build --workspace --bins)", binary.display())
        });
        let stdout = pump(child.stdout.take());
        let stderr = pump(child.stderr.take());
        Self {
            name: function_name.into(),
            child,
            state,
            spawned_at,
            stdout,
            stderr,
            next_id: Mutex::new(0),
            last_request_id: None,
        }
    }

    /// Time from exec to the first `next` request: the cold start.
    /// Invoke from an async test and return the Outcome JSON (panics on an
    /// error response, naming the function).
    pub fn outcome(&mut self, payload: &Value) -> Value {
        let name = self.name.clone();
        tokio::task::block_in_place(|| self.invoke(payload)).expect_response(&name)
    }

    pub fn wait_ready(&mut self, timeout: Duration) -> Duration {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = self.state.0.lock().unwrap().first_next {
                return t - self.spawned_at;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited before asking for work ({status}); stderr: {:?}", self.name, self.stderr());
            }
            assert!(Instant::now() < deadline, "{} not ready after {timeout:?}", self.name);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Invoke once and wait for the response or error.
    pub fn invoke(&mut self, payload: &Value) -> InvokeResult {
        self.invoke_raw(payload.to_string().into_bytes())
    }

    /// Invoke with any bytes, JSON or not, as a misconfigured caller might.
    pub fn invoke_raw(&mut self, payload: Vec<u8>) -> InvokeResult {
        let id = self.submit_raw(payload);
        let name = self.name.clone();
        self.answer(&id, Duration::from_secs(60)).unwrap_or_else(|| panic!("{name}: no answer to {id} in 60 s"))
    }

    /// Queue an invocation and return its request id without waiting for
    /// the answer ([`LambdaProcess::answer`]).
    pub fn submit(&mut self, payload: &Value) -> String {
        self.submit_raw(payload.to_string().into_bytes())
    }

    /// Invoke as Lambda's retry of an earlier invocation does: same payload,
    /// same request id (asynchronous retries keep it).
    pub fn invoke_as(&mut self, request_id: &str, payload: &Value) -> InvokeResult {
        let name = self.name.clone();
        self.invoke_with_id(payload, request_id, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{name}: no answer to {request_id} in 60 s"))
    }

    /// Queue an invocation with the given request id, as Lambda's
    /// asynchronous retries of one invocation keep its request id.
    pub fn submit_with_id(&mut self, payload: &Value, request_id: &str) -> String {
        self.queue(request_id.to_string(), payload.to_string().into_bytes())
    }

    /// Invoke with the given request id and wait up to `timeout` for the answer.
    pub fn invoke_with_id(&mut self, payload: &Value, request_id: &str, timeout: Duration) -> Option<InvokeResult> {
        let id = self.submit_with_id(payload, request_id);
        self.answer(&id, timeout)
    }

    /// Give every following invocation `deadline` to run (the Runtime API's
    /// `Lambda-Runtime-Deadline-Ms`, from the moment it is handed out), as a
    /// function configured with that timeout gets.
    pub fn set_deadline(&self, deadline: Duration) {
        self.state.0.lock().unwrap().deadline = Some(deadline);
    }

    fn submit_raw(&mut self, payload: Vec<u8>) -> String {
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            format!("req-{}-{}", self.child.id(), *n)
        };
        self.queue(id, payload)
    }

    fn queue(&mut self, id: String, payload: Vec<u8>) -> String {
        self.last_request_id = Some(id.clone());
        let (lock, cvar) = &*self.state;
        lock.lock().unwrap().queue.push_back((id.clone(), payload));
        cvar.notify_all();
        id
    }

    /// The answer to the invocation `id`, if it comes within `timeout`.
    pub fn answer(&mut self, id: &str, timeout: Duration) -> Option<InvokeResult> {
        let (lock, cvar) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut st = lock.lock().unwrap();
        loop {
            if let Some(r) = st.results.remove(id) {
                return Some(r);
            }
            if let Some(e) = &st.init_error {
                panic!("{} reported an init error: {e}", self.name);
            }
            drop(st);
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited during invocation {id} ({status}); stderr: {:?}", self.name, self.stderr());
            }
            if Instant::now() >= deadline {
                return None;
            }
            st = cvar.wait_timeout(lock.lock().unwrap(), Duration::from_millis(50)).unwrap().0;
        }
    }

    /// Kill the process mid-invocation, as Lambda does at a timeout: its
    /// writes so far stay, nothing after them happens.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for the process to exit; its status and stderr.
    pub fn wait_exit(&mut self, timeout: Duration) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                return (status.code(), self.stderr());
            }
            assert!(Instant::now() < deadline, "{} still running after {timeout:?}", self.name);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The request id of the last invocation (`Lambda-Runtime-Aws-Request-Id`).
    pub fn last_request_id(&self) -> Option<String> {
        self.last_request_id.clone()
    }

    /// The log lines (stdout) so far, removed: a long-lived process keeps
    /// only what came after.
    pub fn drain_stdout(&self) -> Vec<String> {
        std::mem::take(&mut *self.stdout.lock().unwrap())
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Peak resident memory so far (VmHWM), in KiB, on Linux.
    /// `/proc/<pid>/status`'s resident set, by kind (anonymous, file, shared), for the bench.
    pub fn rss_parts(&self) -> Option<String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let parts: Vec<String> = status
            .lines()
            .filter(|l| ["VmHWM:", "RssAnon:", "RssFile:", "RssShmem:"].iter().any(|k| l.starts_with(k)))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        Some(parts.join(", "))
    }

    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        self.state.0.lock().unwrap().shutdown = true;
        self.state.1.notify_all();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump<R: Read + Send + 'static>(r: Option<R>) -> Arc<Mutex<Vec<String>>> {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    if let Some(r) = r {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("AUTOPILOT_ECHO_LOGS").is_some() {
                    eprintln!("  | {line}");
                }
                lines.lock().unwrap().push(line);
            }
        });
    }
    lines
}

fn serve(stream: TcpStream, state: Shared) {
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let Some((method, path, body)) = read_request(&mut reader) else { return };
        let (lock, cvar) = &*state;
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let mut st = lock.lock().unwrap();
            st.first_next.get_or_insert_with(Instant::now);
            let (id, payload) = loop {
                if st.shutdown {
                    return;
                }
                if let Some(item) = st.queue.pop_front() {
                    break item;
                }
                st = cvar.wait_timeout(st, Duration::from_millis(100)).unwrap().0;
            };
            let allowed = st.deadline.unwrap_or(Duration::from_secs(300)).as_millis();
            drop(st);
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() + allowed)
                .unwrap_or(0);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
Lambda-Runtime-Aws-Request-Id: {id}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\n\
Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:111122223333:function:test\r\n\
Lambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1\r\n\r\n",
                payload.len()
            );
            if writer.write_all(head.as_bytes()).and_then(|_| writer.write_all(&payload)).is_err() {
                return;
            }
        } else if method == "POST" && path.contains("/runtime/invocation/") {
            let id = path.split('/').rev().nth(1).unwrap_or_default().to_string();
            let result = if path.ends_with("/response") {
                InvokeResult::Response(serde_json::from_slice(&body).unwrap_or(Value::Null))
            } else {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                InvokeResult::Error {
                    error_type: v["errorType"].as_str().unwrap_or_default().into(),
                    error_message: v["errorMessage"].as_str().unwrap_or_default().into(),
                }
            };
            lock.lock().unwrap().results.insert(id, result);
            cvar.notify_all();
            if writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n").is_err() {
                return;
            }
        } else if method == "POST" && path.ends_with("/runtime/init/error") {
            lock.lock().unwrap().init_error = Some(String::from_utf8_lossy(&body).into_owned());
            cvar.notify_all();
            let _ = writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        } else {
            let _ = writer.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
    }
}

/// One HTTP/1.1 request: method, path, body (Content-Length or chunked).
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some((method, path, body))
}
