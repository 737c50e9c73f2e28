//! Redaction: nothing secret leaves in a message or an evidence object
//! (docs/ARCHITECTURE.md).
//!
//! Three layers, all pure:
//! - [`is_secret_name`] decides whether a *name* (environment variable, JSON
//!   key, `key=value` key) holds a secret;
//! - [`Redactor::text`] replaces credential-shaped strings and known secret
//!   values in free text (log lines, reasons, messages);
//! - [`Redactor::json`] walks a JSON document (task definitions, events) and
//!   redacts values by name, then every other string by `text`.
//!
//! Redaction replaces a value by [`REDACTED`] and keeps what names it (the
//! key, the variable name, the URL's user and host, the PEM header), so the
//! evidence still says *which* secret was there.

use serde_json::Value;
use std::sync::LazyLock;

use regex_lite::{Captures, Regex};

pub const REDACTED: &str = "***REDACTED***";

/// Whether a variable or key name holds a secret. Case-insensitive.
///
/// The name is split into words at `_`, `-`, `.`, `/`, spaces and camelCase
/// humps (`dbPassword` → `db password`, `APIKey` → `api key`). Then:
///
/// 1. **References are not secrets.** If the *last* word says the value
///    names, points to, or describes a secret rather than holding it, the
///    name is not secret: `arn`, `id`/`ids`, `name`, `file`, `path`, `ref`,
///    `parameter`/`param`, `endpoint`, `from` (ECS `valueFrom`), `ttl`,
///    durations (`seconds`, `ms`, `minutes`, …), `timeout`, `expiry`,
///    `length`/`len`, `min`/`max`, `count`, `size`, `limit`, `enabled`,
///    `required`, `type`, `version`, `algorithm`, `rotation`, `region`.
///    So `SECRET_ARN`, `secretArn`, `KMS_KEY_ID`, `AWS_ACCESS_KEY_ID`,
///    `TOKEN_TTL_SECONDS`, `PASSWORD_MIN_LENGTH`, `DB_PASSWORD_FILE`,
///    `credentialsParameter` are not secret. (Their values still go through
///    [`Redactor::text`], so an `AKIA…` key id is masked anyway.)
/// 2. **Secret words.** A word equal to `password`, `passwd`, `pwd`,
///    `passphrase`, `secret(s)`, `token`, `credential(s)`, `creds`,
///    `dsn`, `salt`, `pepper`, `bearer`, `authorization`, `apikey`,
///    `webhook`, `connstr`; or a word *containing* `password`/`passwd`, or
///    *ending* in `secret`, `token`, `apikey`, `dsn` (single-word forms such
///    as `DBPASSWORD`, `CLIENTSECRET`, `GITHUBTOKEN`, `APIKEY`). `pass` counts
///    only next to another word (`DB_PASS`, `SMTP_PASS`; not `PASS` alone,
///    which is a test counter as often as a password). `tokens` (plural) is
///    a count (`max_tokens`, `prompt_tokens`), not a secret.
/// 3. **Qualified keys.** `key` alone is not secret (`CACHE_KEY`, `S3_KEY`,
///    `PUBLIC_KEY`, `PARTITION_KEY`), but `api`, `access`, `secret`,
///    `private`, `session`, `signing`, `encryption`, `master`, `license`,
///    `ssh`, `client`, `app`, `auth`, `hmac`, `jwt`, `webhook`, `admin`,
///    `shared`, `deploy`, `service`, `account`, `subscription`, `storage`,
///    `write` followed by `key` is (and the joined forms `accesskey`,
///    `privatekey`, …).
/// 4. **URLs that carry credentials.** `url`/`uri` after `database`, `db`,
///    `redis`, `mongo(db)`, `postgres(ql)`, `pg`, `mysql`, `amqp`,
///    `rabbitmq`, `broker`, `celery`, `jdbc`, `sqlalchemy`, `webhook`,
///    `slack`, `sentry`, `cache`, `queue`; and `connection string`.
///    `basic auth` too.
///
/// Ordinary names (`PORT`, `LOG_LEVEL`, `REGION`, `AUTHOR`, `TOKENIZER_PATH`,
/// `PASSTHROUGH`) are not secret: matching is by whole words, so `author`
/// is not `auth` and `tokenizer` is not `token`.
pub fn is_secret_name(name: &str) -> bool {
    let words = split_words(name);
    let Some(last) = words.last() else { return false };
    if REFERENCE_SUFFIXES.contains(&last.as_str()) {
        return false;
    }
    // "pass" alone is too common a key ("pass=3 fail=0"); DB_PASS is not.
    words.iter().any(|w| is_secret_word(w) || (w == "pass" && words.len() > 1))
        || words.windows(2).any(|pair| {
            let (a, b) = (pair[0].as_str(), pair[1].as_str());
            (b == "key" || b == "keys") && KEY_QUALIFIERS.contains(&a)
                || (b == "url" || b == "uri" || b == "urls") && URL_QUALIFIERS.contains(&a)
                || (a == "connection" && (b == "string" || b == "str"))
                || (a == "basic" && b == "auth")
                || (a == "cookie" && b == "secret")
        })
}

const REFERENCE_SUFFIXES: &[&str] = &[
    "arn",
    "arns",
    "id",
    "ids",
    "name",
    "names",
    "file",
    "files",
    "path",
    "paths",
    "ref",
    "refs",
    "parameter",
    "param",
    "endpoint",
    "from",
    "ttl",
    "seconds",
    "secs",
    "sec",
    "ms",
    "millis",
    "minutes",
    "mins",
    "hours",
    "days",
    "timeout",
    "expiry",
    "expires",
    "expiration",
    "lifetime",
    "length",
    "len",
    "min",
    "max",
    "count",
    "size",
    "limit",
    "enabled",
    "disabled",
    "required",
    "type",
    "kind",
    "version",
    "algorithm",
    "algo",
    "rotation",
    "region",
    "header",
    "prefix",
];

const SECRET_WORDS: &[&str] = &[
    "password",
    "passwords",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "secrets",
    "token",
    "credential",
    "credentials",
    "creds",
    "dsn",
    "salt",
    "pepper",
    "bearer",
    "authorization",
    "apikey",
    "apikeys",
    "webhook",
    "connstr",
    "connectionstring",
    "accesskey",
    "secretkey",
    "privatekey",
    "sessionkey",
    "signingkey",
    "encryptionkey",
    "masterkey",
];

const KEY_QUALIFIERS: &[&str] = &[
    "api",
    "access",
    "secret",
    "private",
    "session",
    "signing",
    "sign",
    "encryption",
    "encrypt",
    "master",
    "license",
    "licence",
    "ssh",
    "client",
    "app",
    "auth",
    "hmac",
    "jwt",
    "webhook",
    "admin",
    "shared",
    "deploy",
    "service",
    "account",
    "subscription",
    "storage",
    "write",
    "cookie",
    "crypto",
    "cipher",
    "gpg",
    "pgp",
];

const URL_QUALIFIERS: &[&str] = &[
    "database",
    "db",
    "redis",
    "mongo",
    "mongodb",
    "postgres",
    "postgresql",
    "pg",
    "mysql",
    "amqp",
    "rabbitmq",
    "rabbit",
    "broker",
    "celery",
    "jdbc",
    "sqlalchemy",
    "webhook",
    "slack",
    "sentry",
    "cache",
    "queue",
];

fn is_secret_word(w: &str) -> bool {
    SECRET_WORDS.contains(&w)
        || w.contains("password")
        || w.contains("passwd")
        || ["secret", "token", "apikey", "dsn"].iter().any(|end| w.len() > end.len() && w.ends_with(end))
}

/// Lower-case words of a name: separators and camelCase humps split.
fn split_words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        if c.is_uppercase() && !current.is_empty() {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            // dbPassword → db|Password; APIKey → API|Key; but APIKEY stays.
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_is_lower) {
                words.push(std::mem::take(&mut current));
            }
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Collects the literal values of secret-named entries of a JSON document
/// (ECS `environment` entries `{"name": "DB_PASSWORD", "value": "…"}` and
/// secret-named keys with string values), so that a [`Redactor`] built from
/// them also masks those values wherever they reappear — an application
/// logging its own database password, for instance.
pub fn secret_values_in(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_secret_values(v, &mut out);
    out
}

fn collect_secret_values(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(name) = pair_name(map)
                && is_secret_name(name)
            {
                for key in VALUE_KEYS {
                    if let Some(Value::String(s)) = map.get(*key) {
                        out.push(s.clone());
                    }
                }
            }
            for (k, val) in map {
                match val {
                    Value::String(s) if is_secret_name(k) => out.push(s.clone()),
                    _ => collect_secret_values(val, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_secret_values(item, out)),
        _ => {}
    }
}

const NAME_KEYS: &[&str] = &["name", "Name", "key", "Key"];
const VALUE_KEYS: &[&str] = &["value", "Value"];

/// The `name` of a `{"name": …, "value": …}` pair (also `Name`/`Value` and
/// `Key`/`Value`, as in tags and SSM parameters).
fn pair_name(map: &serde_json::Map<String, Value>) -> Option<&str> {
    if !VALUE_KEYS.iter().any(|k| map.contains_key(*k)) {
        return None;
    }
    NAME_KEYS.iter().find_map(|k| map.get(*k)).and_then(Value::as_str)
}

/// Masks secrets in text and JSON. Build it once per invocation with the
/// secret values known for the service (see [`secret_values_in`]).
#[derive(Clone, Default)]
pub struct Redactor {
    /// Trimmed, at least 4 characters, deduplicated, longest first (so a
    /// secret that contains another one is masked whole).
    known_values: Vec<String>,
}

/// Never prints the known values themselves.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("known_values", &self.known_values.len()).finish()
    }
}

/// Values shorter than this (after trimming) are not remembered: masking
/// "on" or "123" everywhere would destroy the text and reveal nothing.
const MIN_KNOWN_SECRET_CHARS: usize = 4;

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_known_secrets(values: impl IntoIterator<Item = String>) -> Self {
        let mut known_values: Vec<String> = values
            .into_iter()
            .map(|v| v.trim().to_string())
            .filter(|v| v.chars().count() >= MIN_KNOWN_SECRET_CHARS && v != REDACTED)
            .collect();
        known_values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        known_values.dedup();
        Self { known_values }
    }

    /// Replaces known secret values and credential-shaped strings in `s`.
    ///
    /// Patterns, in order: PEM private key blocks (also ones cut off by a
    /// log excerpt), known values, `Authorization:` headers and `Bearer …`
    /// tokens (with a digit, or 20+ characters), URL userinfo passwords, Slack webhook URLs, JWTs, AWS access
    /// key ids (`AKIA`/`ASIA`/`ABIA`/`ACCA` + 16), GitHub tokens (`ghp_…`,
    /// `github_pat_…`), Stripe secret keys (`sk_live_…`, `rk_live_…`),
    /// `aws_secret_access_key` assignments, a mixed-case 40-character base64
    /// string right after a "secret" word, and `key=value` / `key: value` /
    /// `"key": "value"` pairs whose key is a secret name ([`is_secret_name`];
    /// the key is kept). A `key: value` pair without quotes needs a value
    /// that looks like a credential (a digit or a symbol in it, or 16+
    /// characters), so that prose such as "invalid token: expired" survives.
    /// `Authorization:` without a scheme (`Bearer`, `Basic`, …) is such a
    /// pair too ("Authorization: failed" survives; a raw key does not).
    ///
    /// Left alone: ARNs (also `…:secret:name` ones), 32-hex task ids, UUIDs,
    /// `sha256:` digests, timestamps, ordinary log lines.
    pub fn text(&self, s: &str) -> String {
        if s.is_empty() {
            return String::new();
        }
        let mut out = redact_pem(s);
        for known in &self.known_values {
            if out.contains(known.as_str()) {
                out = out.replace(known.as_str(), REDACTED);
            }
        }
        out = AUTH_HEADER.replace_all(&out, |c: &Captures<'_>| format!("{}{} {REDACTED}", &c[1], &c[2])).into_owned();
        out = BEARER
            .replace_all(&out, |c: &Captures<'_>| {
                // A token has a digit in it or is long; "bearer authentication" is prose.
                let token = c.get(2).map(|m| m.as_str()).unwrap_or_default();
                if token.len() >= 20 || token.bytes().any(|b| b.is_ascii_digit()) {
                    format!("{} {REDACTED}", &c[1])
                } else {
                    c[0].to_string()
                }
            })
            .into_owned();
        out = URL_USERINFO.replace_all(&out, "${1}${2}:***REDACTED***@").into_owned();
        out = SLACK_WEBHOOK.replace_all(&out, "${1}***REDACTED***").into_owned();
        out = JWT.replace_all(&out, REDACTED).into_owned();
        out = AWS_ACCESS_KEY_ID.replace_all(&out, REDACTED).into_owned();
        out = GITHUB_TOKEN.replace_all(&out, REDACTED).into_owned();
        out = STRIPE_KEY.replace_all(&out, REDACTED).into_owned();
        out = SECRET_ACCESS_KEY.replace_all(&out, "${1}***REDACTED***").into_owned();
        out = redact_base64_after_secret_word(&out);
        out = redact_serialized_name_value(&out);
        redact_pairs(&out)
    }

    /// Redacts a JSON document in place: `{"name", "value"}` pairs (also
    /// `Name`/`Value`, `Key`/`Value`) whose name is secret get their value
    /// replaced; any key that is a secret name gets its string or number
    /// value replaced; every other string goes through [`Self::text`].
    /// ECS `secrets` entries (`{"name": "DB_PASSWORD", "valueFrom": "arn:…"}`)
    /// are kept: `valueFrom` names the secret, it is not the secret.
    pub fn json(&self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                let secret_pair = pair_name(map).is_some_and(is_secret_name);
                for (key, val) in map.iter_mut() {
                    let by_pair = secret_pair && VALUE_KEYS.contains(&key.as_str()) && !val.is_null();
                    let by_key = is_secret_name(key) && (val.is_string() || val.is_number());
                    if by_pair || by_key {
                        *val = Value::String(REDACTED.to_string());
                    } else {
                        self.json(val);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.json(item)),
            Value::String(s) => {
                let redacted = self.text(s);
                if redacted != *s {
                    *s = redacted;
                }
            }
            _ => {}
        }
    }
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this file, each compiled by the tests;
    // an invalid one is a programming error, not outside data.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("constant regex")
}

static PEM_BEGIN: LazyLock<Regex> = LazyLock::new(|| re(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"));
static PEM_END: LazyLock<Regex> = LazyLock::new(|| re(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"));
/// The schemes [`AUTH_HEADER`] knows (keep this list and its regex in step).
const AUTH_SCHEMES: &[&str] = &["bearer", "basic", "digest", "token", "negotiate", "ntlm", "aws4-hmac-sha256"];

/// `Authorization: <scheme> <credential…>` to the end of the line or the
/// closing quote. Without a scheme the value is judged by the pair rule.
static AUTH_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)(\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?)(bearer|basic|digest|token|negotiate|ntlm|aws4-hmac-sha256)\s+[^\s"'\\][^"'\r\n\\]*"#,
    )
});
static BEARER: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\b(bearer)\s+([A-Za-z0-9\-._~+/]{8,}=*)"));
static URL_USERINFO: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^:/?#@\s]*):([^@/?#\s]+)@"));
static SLACK_WEBHOOK: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)(https?://hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9_/\-]+"));
static JWT: LazyLock<Regex> = LazyLock::new(|| re(r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"));
static AWS_ACCESS_KEY_ID: LazyLock<Regex> = LazyLock::new(|| re(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"));
static GITHUB_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"));
static STRIPE_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}\b"));
static SECRET_ACCESS_KEY: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)((?:aws_?)?secret_?access_?key["']?\s*[:=]\s*["']?)[^\s"',;]+"#));
/// A "secret" word, then within a few characters a separator and exactly
/// 40 base64 characters: the shape of an AWS secret access key.
static SECRET_WORD_BASE64: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)(secret[A-Za-z_\- ]{0,24}?["']?\s*(?:[:=]|\s)\s*["']?)([A-Za-z0-9/+]{40})"#));
/// A key candidate and an optional separator. Group 2: the bare key;
/// 3: the separator, including the opening quote of a quoted value.
static PAIR: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"((?:\\?["'])?([A-Za-z_][A-Za-z0-9_.\-]*)(?:\\?["'])?)(\s*[:=]\s*\\?["']|\s*=\s*|:[ \t]+)?"#)
});

/// `{"name": "DB_PASSWORD", "value": "` inside text (a serialized ECS
/// environment entry, also JSON-escaped): group 1 the name, 2 the opening
/// quote of the value.
static SERIALIZED_NAME_VALUE: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)\\?"(?:name|key)\\?"\s*:\s*\\?"([^"\\]*)\\?"\s*,\s*\\?"value\\?"\s*:\s*(\\?")"#));

fn redact_serialized_name_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(c) = SERIALIZED_NAME_VALUE.captures_at(s, pos) {
        let (Some(whole), Some(name), Some(quote)) = (c.get(0), c.get(1), c.get(2)) else { break };
        out.push_str(&s[pos..whole.end()]);
        let rest = &s[whole.end()..];
        let value_len = closing_quote(rest, quote.as_str());
        let value = &rest[..value_len];
        out.push_str(if is_secret_name(name.as_str()) && !value.is_empty() { REDACTED } else { value });
        pos = whole.end() + value_len;
    }
    out.push_str(&s[pos..]);
    out
}

/// PEM private key blocks keep their BEGIN/END lines; a block cut off
/// before its END line is redacted to the end of the text.
fn redact_pem(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(begin) = PEM_BEGIN.find(rest) {
        out.push_str(&rest[..begin.end()]);
        let after = &rest[begin.end()..];
        match PEM_END.find(after) {
            Some(end) => {
                out.push('\n');
                out.push_str(REDACTED);
                out.push('\n');
                out.push_str(end.as_str());
                rest = &after[end.end()..];
            }
            None => {
                out.push('\n');
                out.push_str(REDACTED);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn redact_base64_after_secret_word(s: &str) -> String {
    SECRET_WORD_BASE64
        .replace_all(s, |c: &Captures<'_>| {
            let (start, end) = c.get(0).map(|m| (m.start(), m.end())).unwrap_or_default();
            let keep = c.get(1).map(|m| m.as_str()).unwrap_or_default();
            let value = c.get(2).map(|m| m.as_str()).unwrap_or_default();
            let bytes = s.as_bytes();
            // An ARN's ":secret:" is a resource type, not an assignment.
            let in_arn = start > 0 && bytes.get(start - 1) == Some(&b':');
            // Exactly 40: a longer base64 run is something else.
            let longer = bytes.get(end).is_some_and(|b| b.is_ascii_alphanumeric() || b"/+=".contains(b));
            // Real keys mix upper and lower case; hex digests and words do not.
            let mixed = value.bytes().any(|b| b.is_ascii_uppercase()) && value.bytes().any(|b| b.is_ascii_lowercase());
            if in_arn || longer || !mixed { format!("{keep}{value}") } else { format!("{keep}{REDACTED}") }
        })
        .into_owned()
}

/// `secret_name=value` pairs, walked key by key so that each value is
/// judged by its own key and keys inside values are not read as keys.
fn redact_pairs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(c) = PAIR.captures_at(s, pos) {
        let (Some(whole), Some(key)) = (c.get(0), c.get(2)) else { break };
        let Some(sep) = c.get(3) else {
            out.push_str(&s[pos..whole.end()]);
            pos = whole.end();
            continue;
        };
        out.push_str(&s[pos..sep.end()]);
        pos = sep.end();
        // A key starts a word: "xpassword=" is not "password=".
        let starts_word = s[..whole.start()].chars().next_back().is_none_or(|p| !(p.is_alphanumeric() || p == '_'));
        if !starts_word || !is_secret_name(key.as_str()) {
            continue;
        }
        let rest = &s[pos..];
        let quote = opening_quote(sep.as_str());
        let value_len = match quote {
            Some(q) => closing_quote(rest, q),
            None => rest.find(|ch: char| ch.is_whitespace() || ",;&\"'}])<>\\".contains(ch)).unwrap_or(rest.len()),
        };
        let value = &rest[..value_len];
        let bare_colon = quote.is_none() && sep.as_str().starts_with(':');
        let keep = value.is_empty() || is_redacted_or_scheme(value) || (bare_colon && !looks_like_credential(value));
        out.push_str(if keep { value } else { REDACTED });
        pos += value_len;
    }
    out.push_str(&s[pos..]);
    out
}

/// Already redacted (`***REDACTED***`, `Bearer ***REDACTED***`), or only an
/// authorization scheme whose credential follows (and was redacted before).
fn is_redacted_or_scheme(value: &str) -> bool {
    let (first, rest) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = AUTH_SCHEMES.iter().any(|s| first.eq_ignore_ascii_case(s));
    value == REDACTED || (scheme && (rest.is_empty() || rest == REDACTED))
}

/// The opening quote a separator ends with: `"`, `'`, or an escaped `\"`.
fn opening_quote(sep: &str) -> Option<&str> {
    if sep.ends_with("\\\"") || sep.ends_with("\\'") {
        Some(&sep[sep.len() - 2..])
    } else if sep.ends_with(['"', '\'']) {
        Some(&sep[sep.len() - 1..])
    } else {
        None
    }
}

/// Length of a quoted value up to (not including) its closing quote `q`;
/// the whole rest when unclosed. Backslash escapes are skipped.
fn closing_quote(rest: &str, q: &str) -> usize {
    if q.len() == 2 {
        return rest.find(q).unwrap_or(rest.len());
    }
    let quote = q.as_bytes().first().copied().unwrap_or(b'"');
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i,
            _ => i += 1,
        }
    }
    rest.len()
}

/// A bare value after `key: ` that is plausibly a credential rather than a
/// word of prose or a count: 16+ characters, or 6+ with a digit or a symbol
/// in it that are not all digits ("hunter2" yes; "expired", "123" no).
fn looks_like_credential(value: &str) -> bool {
    let n = value.chars().count();
    let marked = value.chars().any(|c| c.is_ascii_digit() || (c.is_ascii_punctuation() && c != '.'));
    n >= 16 || (n >= 6 && marked && !value.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r() -> Redactor {
        Redactor::new()
    }

    // ---- is_secret_name

    #[test]
    fn secret_names_should_be_recognised_in_every_spelling() {
        for name in [
            "DB_PASSWORD",
            "PASSWORD",
            "PASSWD",
            "DB_PASS",
            "SMTP_PASS",
            "MYSQL_PWD",
            "SECRET",
            "SECRET_KEY",
            "SECRET_KEY_BASE",
            "API_KEY",
            "APIKEY",
            "ACCESS_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "PRIVATE_KEY",
            "TOKEN",
            "AUTH_TOKEN",
            "GITHUB_TOKEN",
            "CREDENTIALS",
            "CLIENT_SECRET",
            "DSN",
            "SENTRY_DSN",
            "DATABASE_URL",
            "REDIS_URL",
            "MONGODB_URI",
            "CONNECTION_STRING",
            "SESSION_KEY",
            "COOKIE_SECRET",
            "SIGNING_KEY",
            "ENCRYPTION_KEY",
            "SALT",
            "WEBHOOK_URL",
            "SLACK_WEBHOOK_URL",
            "dbPassword",
            "apiKey",
            "clientSecret",
            "APIKey",
            "accessToken",
            "X-Api-Key",
            "spring.datasource.password",
            "db-password",
            "DBPASSWORD",
            "GITHUBTOKEN",
            "splunk-token",
            "Authorization",
            "password",
            "Password",
        ] {
            assert!(is_secret_name(name), "{name} should be secret");
        }
    }

    #[test]
    fn references_and_ordinary_names_should_not_be_secret() {
        for name in [
            "SECRET_ARN",
            "secretArn",
            "DB_PASSWORD_SECRET_ARN",
            "valueFrom",
            "TOKEN_TTL_SECONDS",
            "KMS_KEY_ID",
            "AWS_ACCESS_KEY_ID",
            "accessKeyId",
            "PASSWORD_MIN_LENGTH",
            "SECRET_NAME",
            "DB_PASSWORD_FILE",
            "credentialsParameter",
            "TOKEN_ENDPOINT",
            "PORT",
            "LOG_LEVEL",
            "REGION",
            "AUTHOR",
            "TOKENIZER_PATH",
            "PASSTHROUGH",
            "PASS",
            "MAX_TOKENS",
            "CACHE_KEY",
            "PUBLIC_KEY",
            "KEY",
            "name",
            "value",
            "",
            "___",
            "🙂",
        ] {
            assert!(!is_secret_name(name), "{name} should not be secret");
        }
    }

    // ---- text: every pattern

    #[test]
    fn known_secret_values_should_be_replaced_anywhere() {
        let red = Redactor::with_known_secrets(["  s3cr3t-db-pw ".to_string(), "abc".to_string()]);
        assert_eq!(
            red.text("connecting as app with s3cr3t-db-pw failed; abc is fine"),
            "connecting as app with ***REDACTED*** failed; abc is fine"
        );
    }

    #[test]
    fn known_secrets_shorter_than_four_characters_should_be_ignored() {
        let red = Redactor::with_known_secrets(["on".to_string(), " 12 ".to_string(), String::new()]);
        assert_eq!(red.text("feature on, retries 12"), "feature on, retries 12");
        assert!(format!("{red:?}").contains('0'), "Debug shows only a count");
    }

    #[test]
    fn redactor_debug_should_not_print_known_values() {
        let red = Redactor::with_known_secrets(["hunter2-very-secret".to_string()]);
        let shown = format!("{red:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn longer_known_secrets_should_win_over_their_substrings() {
        let red = Redactor::with_known_secrets(["pass".to_string(), "password123".to_string()]);
        assert_eq!(red.text("x password123 y"), "x ***REDACTED*** y");
    }

    #[test]
    fn aws_access_key_ids_should_be_redacted() {
        assert_eq!(r().text("using key AKIAIOSFODNN7EXAMPLE now"), "using key ***REDACTED*** now");
        assert_eq!(r().text("ASIAY34FZKBOKMUTVV7A"), REDACTED);
        assert_eq!(r().text("AKIAIOSFODNN7EXAMPLEXX"), "AKIAIOSFODNN7EXAMPLEXX", "not 16 characters after the prefix");
    }

    #[test]
    fn aws_secret_access_key_assignments_should_be_redacted() {
        assert_eq!(
            r().text("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            "aws_secret_access_key = ***REDACTED***"
        );
        assert_eq!(r().text(r#"{"SecretAccessKey": "abc/def+ghi"}"#), r#"{"SecretAccessKey": "***REDACTED***"}"#);
        assert_eq!(r().text("export AWS_SECRET_ACCESS_KEY=xyz123"), "export AWS_SECRET_ACCESS_KEY=***REDACTED***");
    }

    #[test]
    fn forty_character_base64_after_secret_words_should_be_redacted() {
        assert_eq!(
            r().text("the secret key is wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY."),
            "the secret key is ***REDACTED***."
        );
        // a hex digest after "secret" is not a key
        let sha = "secret rotated in commit 3f786850e387550fdab836ed7e6dc881de23001b";
        assert_eq!(r().text(sha), sha);
    }

    #[test]
    fn authorization_headers_should_keep_the_scheme_and_lose_the_credential() {
        assert_eq!(r().text("Authorization: Bearer eyJhbGciOi.abc.def123"), "Authorization: Bearer ***REDACTED***");
        assert_eq!(r().text("authorization: Basic dXNlcjpwYXNz"), "authorization: Basic ***REDACTED***");
        assert_eq!(
            r().text(r#"{"headers": {"Authorization": "Bearer abcdef0123456789"}}"#),
            r#"{"headers": {"Authorization": "Bearer ***REDACTED***"}}"#
        );
        assert_eq!(r().text("sent bearer abcdefgh12345678 upstream"), "sent bearer ***REDACTED*** upstream");
    }

    #[test]
    fn password_pairs_should_keep_the_key_and_lose_the_value() {
        assert_eq!(r().text("login user=bob password=hunter2 ok"), "login user=bob password=***REDACTED*** ok");
        assert_eq!(r().text("pwd=abc;host=db"), "pwd=***REDACTED***;host=db");
        assert_eq!(
            r().text(r#"{"password": "hunter 2", "user": "bob"}"#),
            r#"{"password": "***REDACTED***", "user": "bob"}"#
        );
        assert_eq!(r().text(r#"{"password":"x\"y","n":1}"#), r#"{"password":"***REDACTED***","n":1}"#);
        assert_eq!(r().text("db_password: s3cr3t!"), "db_password: ***REDACTED***");
    }

    #[test]
    fn token_and_api_key_pairs_should_be_redacted() {
        assert_eq!(r().text("GET /cb?token=abc123&page=2"), "GET /cb?token=***REDACTED***&page=2");
        assert_eq!(r().text("api_key=XYZ-123 region=us-east-1"), "api_key=***REDACTED*** region=us-east-1");
        assert_eq!(r().text("client_secret = 'q1w2e3'"), "client_secret = '***REDACTED***'");
        assert_eq!(r().text(r#"payload={\"apiKey\":\"k-123\"}"#), r#"payload={\"apiKey\":\"***REDACTED***\"}"#);
    }

    #[test]
    fn counts_and_prose_that_merely_resemble_secrets_should_survive() {
        for line in [
            "llm call max_tokens=100 prompt_tokens: 123 total_tokens=456",
            "suite done: pass=3 fail=0 skip=1",
            "Authorization: failed for user bob",
            "the API uses bearer authentication",
            "token: 12345",
        ] {
            assert_eq!(r().text(line), line);
        }
        assert_eq!(r().text("SMTP_PASS=abc"), "SMTP_PASS=***REDACTED***");
        assert_eq!(r().text("Authorization: sk-raw-1234567"), "Authorization: ***REDACTED***");
        assert_eq!(r().text("Authorization: token ghx1234"), "Authorization: token ***REDACTED***");
        assert_eq!(
            r().text("Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/s3/aws4_request, Signature=abc"),
            "Authorization: AWS4-HMAC-SHA256 ***REDACTED***"
        );
    }

    #[test]
    fn every_authorization_scheme_should_be_kept_with_its_credential_redacted() {
        for scheme in AUTH_SCHEMES {
            let line = format!("Authorization: {scheme} cred-0123456789");
            assert_eq!(r().text(&line), format!("Authorization: {scheme} {REDACTED}"), "{scheme}");
        }
    }

    #[test]
    fn serialized_environment_entries_in_text_should_be_redacted_by_name() {
        assert_eq!(
            r().text(r#"env=[{"name":"DB_PASSWORD","value":"hun\"ter2"},{"name":"PORT","value":"8080"}]"#),
            r#"env=[{"name":"DB_PASSWORD","value":"***REDACTED***"},{"name":"PORT","value":"8080"}]"#
        );
        assert_eq!(
            r().text(r#"{\"name\": \"API_TOKEN\", \"value\": \"t-1\"}"#),
            r#"{\"name\": \"API_TOKEN\", \"value\": \"***REDACTED***\"}"#
        );
    }

    #[test]
    fn prose_after_a_secret_word_and_colon_should_survive() {
        let line = "2024-05-01T10:00:00Z ERROR invalid token: expired, refreshing";
        assert_eq!(r().text(line), line);
        let line =
            "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed";
        assert_eq!(r().text(line), line);
    }

    #[test]
    fn non_secret_pairs_next_to_secret_ones_should_stay() {
        assert_eq!(
            r().text("TOKEN_TTL_SECONDS=3600 KMS_KEY_ID=1234abcd-12ab-34cd-56ef-1234567890ab SECRET=x1"),
            "TOKEN_TTL_SECONDS=3600 KMS_KEY_ID=1234abcd-12ab-34cd-56ef-1234567890ab SECRET=***REDACTED***"
        );
    }

    #[test]
    fn url_userinfo_passwords_should_be_redacted_keeping_user_and_host() {
        assert_eq!(r().text("postgres://user:pw@host:5432/db"), "postgres://user:***REDACTED***@host:5432/db");
        assert_eq!(r().text("redis://:s3cret@cache:6379/0"), "redis://:***REDACTED***@cache:6379/0");
        assert_eq!(
            r().text("connect mongodb+srv://app:p%40ss@cluster0.example.net/?retryWrites=true"),
            "connect mongodb+srv://app:***REDACTED***@cluster0.example.net/?retryWrites=true"
        );
        assert_eq!(r().text("https://example.com:8443/path@v1"), "https://example.com:8443/path@v1");
    }

    #[test]
    fn jwts_should_be_redacted() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.\
                   SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        assert_eq!(r().text(&format!("session {jwt} accepted")), "session ***REDACTED*** accepted");
    }

    #[test]
    fn pem_private_key_blocks_should_be_redacted_keeping_their_frame() {
        let pem = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc+/=\n-----END RSA PRIVATE KEY-----\nnext line";
        assert_eq!(
            r().text(pem),
            "key:\n-----BEGIN RSA PRIVATE KEY-----\n***REDACTED***\n-----END RSA PRIVATE KEY-----\nnext line"
        );
        let cut = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAAS";
        assert_eq!(r().text(cut), "-----BEGIN PRIVATE KEY-----\n***REDACTED***");
        let public = "-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----";
        assert_eq!(r().text(public), public);
    }

    #[test]
    fn slack_webhook_urls_should_be_redacted() {
        assert_eq!(
            r().text("posting to https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX failed"),
            "posting to https://hooks.slack.com/services/***REDACTED*** failed"
        );
    }

    #[test]
    fn github_and_stripe_tokens_should_be_redacted() {
        assert_eq!(r().text("ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"), REDACTED);
        assert_eq!(r().text("pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"), "pat ***REDACTED***");
        assert_eq!(r().text("charge with sk_live_4eC39HqLyjWDarjtT1zdp7dc"), "charge with ***REDACTED***");
        assert_eq!(
            r().text("publishable pk_live_4eC39HqLyjWDarjtT1zdp7dc"),
            "publishable pk_live_4eC39HqLyjWDarjtT1zdp7dc"
        );
    }

    #[test]
    fn ordinary_lines_arns_ids_digests_and_timestamps_should_be_left_alone() {
        for line in [
            "2024-05-01T10:00:00.123Z INFO GET /health 200 3ms",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api/db-AbCdEf",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:AbCdEfGhIjKlMnOpQrStUvWxYz0123456789ABCD-xyz",
            "arn:aws:ssm:us-east-1:111122223333:parameter/prod/api/DB_PASSWORD",
            "arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef0123456789abcdef",
            "arn:aws:iam::111122223333:role/ecsTaskExecutionRole",
            "request 3fa85f64-5717-4562-b3fc-2c963f66afa6 done",
            "image 111122223333.dkr.ecr.us-east-1.amazonaws.com/api@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/api-tg/73e2d6bc24d8a067)",
            "user=bob host=db.internal port=5432",
            "the basic configuration loaded; bearer of bad news",
            "Exception in thread \"main\" java.lang.IllegalStateException: token bucket empty",
            "",
            "é ✓ 任务",
        ] {
            assert_eq!(r().text(line), line);
        }
    }

    #[test]
    fn text_should_be_idempotent() {
        let line = "password=hunter2 Authorization: Bearer abcdefghijk postgres://u:p@h AKIAIOSFODNN7EXAMPLE";
        let once = r().text(line);
        assert_eq!(r().text(&once), once);
        assert!(!once.contains("hunter2") && !once.contains("abcdefghijk") && !once.contains(":p@"), "{once}");
    }

    #[test]
    fn odd_and_huge_texts_should_not_panic() {
        let huge = "password=x é ✓ \\\"token\\\":\\\" ".repeat(5_000);
        let out = r().text(&huge);
        assert!(!out.contains("password=x"));
        for s in [
            "\"",
            "'",
            "\\",
            "password=",
            "password:\"",
            "token: ",
            "=",
            ":",
            "-----BEGIN PRIVATE KEY-----",
            "é=é",
            "a\\\"b",
        ] {
            let _ = r().text(s);
        }
    }

    // ---- json

    #[test]
    fn json_should_redact_secret_named_environment_values_only() {
        let mut v = json!({"environment": [
            {"name": "DB_PASSWORD", "value": "hunter2"},
            {"name": "LOG_LEVEL", "value": "info"},
            {"Name": "API_KEY", "Value": 12345},
            {"Key": "auth_token", "Value": "t0k"},
            {"name": "TOKEN_TTL_SECONDS", "value": "3600"}
        ]});
        r().json(&mut v);
        assert_eq!(v["environment"][0]["value"], REDACTED);
        assert_eq!(v["environment"][1]["value"], "info");
        assert_eq!(v["environment"][2]["Value"], REDACTED);
        assert_eq!(v["environment"][3]["Value"], REDACTED);
        assert_eq!(v["environment"][4]["value"], "3600");
    }

    #[test]
    fn json_should_redact_secret_keys_and_scan_every_other_string() {
        let mut v = json!({
            "password": "x", "nested": {"clientSecret": 42, "note": "dsn postgres://a:b@c/d"},
            "secretArn": "arn:aws:secretsmanager:us-east-1:1:secret:x", "secrets": [{"name": "A_TOKEN", "valueFrom": "arn:x"}],
            "count": 3, "flag": true, "nothing": null
        });
        r().json(&mut v);
        assert_eq!(v["password"], REDACTED);
        assert_eq!(v["nested"]["clientSecret"], REDACTED);
        assert_eq!(v["nested"]["note"], "dsn postgres://a:***REDACTED***@c/d");
        assert_eq!(v["secretArn"], "arn:aws:secretsmanager:us-east-1:1:secret:x");
        assert_eq!(v["secrets"][0]["valueFrom"], "arn:x");
        assert_eq!(v["count"], 3);
        assert_eq!(v["flag"], true);
    }

    #[test]
    fn json_should_redact_known_values_inside_any_string() {
        let red = Redactor::with_known_secrets(["correct-horse-battery".to_string()]);
        let mut v = json!({"logs": ["connecting with correct-horse-battery"]});
        red.json(&mut v);
        assert_eq!(v["logs"][0], "connecting with ***REDACTED***");
    }

    const TASK_DEFINITION: &str = r#"{
      "taskDefinition": {
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/api:42",
        "family": "api", "revision": 42,
        "taskRoleArn": "arn:aws:iam::111122223333:role/api-task",
        "executionRoleArn": "arn:aws:iam::111122223333:role/api-execution",
        "networkMode": "awsvpc", "cpu": "512", "memory": "1024",
        "requiresCompatibilities": ["FARGATE"],
        "containerDefinitions": [{
          "name": "api",
          "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/api@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
          "essential": true,
          "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
          "environment": [
            {"name": "PORT", "value": "8080"},
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "DB_HOST", "value": "db.internal"},
            {"name": "DB_PASSWORD", "value": "Zq8!vR2#pL"},
            {"name": "DATABASE_URL", "value": "postgres://api:Zq8!vR2#pL@db.internal:5432/api"},
            {"name": "SENTRY_DSN", "value": "https://abc123@o1.ingest.sentry.io/42"},
            {"name": "STRIPE_KEY", "value": "sk_live_4eC39HqLyjWDarjtT1zdp7dc"},
            {"name": "KMS_KEY_ID", "value": "1234abcd-12ab-34cd-56ef-1234567890ab"},
            {"name": "TOKEN_TTL_SECONDS", "value": "3600"}
          ],
          "secrets": [
            {"name": "JWT_SECRET", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api/jwt-AbCdEf"},
            {"name": "API_TOKEN", "valueFrom": "arn:aws:ssm:us-east-1:111122223333:parameter/prod/api/token"}
          ],
          "repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:us-east-1:111122223333:secret:dockerhub-XyZ"},
          "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": "/ecs/api", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "api"},
            "secretOptions": [{"name": "splunk-token", "valueFrom": "arn:aws:ssm:us-east-1:111122223333:parameter/splunk"}]
          },
          "healthCheck": {"command": ["CMD-SHELL", "curl -f http://localhost:8080/health || exit 1"], "interval": 30}
        }],
        "registeredBy": "arn:aws:sts::111122223333:assumed-role/deployer/ci",
        "registeredAt": "2024-05-01T10:00:00.000Z"
      }
    }"#;

    #[test]
    fn task_definition_should_change_only_in_its_secret_values() {
        let original: Value = serde_json::from_str(TASK_DEFINITION).unwrap();
        let mut redacted = original.clone();
        r().json(&mut redacted);

        let mut changed = Vec::new();
        diff("", &original, &redacted, &mut changed);
        changed.sort();
        let env = "/taskDefinition/containerDefinitions/0/environment";
        assert_eq!(
            changed,
            vec![
                format!("{env}/3/value"),
                format!("{env}/4/value"),
                format!("{env}/5/value"),
                format!("{env}/6/value"),
            ],
            "only DB_PASSWORD, DATABASE_URL, SENTRY_DSN and STRIPE_KEY may change"
        );
        assert_eq!(redacted.pointer(&format!("{env}/3/value")).unwrap(), REDACTED);
        let text = redacted.to_string();
        assert!(!text.contains("Zq8!vR2#pL") && !text.contains("sk_live_") && !text.contains("abc123@"), "{text}");
        assert!(text.contains("arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api/jwt-AbCdEf"));
    }

    #[test]
    fn secret_values_should_be_collected_for_a_known_secrets_redactor() {
        let td: Value = serde_json::from_str(TASK_DEFINITION).unwrap();
        let values = secret_values_in(&td);
        assert!(values.contains(&"Zq8!vR2#pL".to_string()), "{values:?}");
        assert!(!values.iter().any(|v| v.starts_with("arn:")), "{values:?}");
        let red = Redactor::with_known_secrets(values);
        assert_eq!(red.text("FATAL: password Zq8!vR2#pL rejected"), "FATAL: password ***REDACTED*** rejected");
    }

    fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for (k, va) in x {
                    diff(&format!("{path}/{k}"), va, &y[k], out);
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                    diff(&format!("{path}/{i}"), va, vb, out);
                }
            }
            _ if a != b => out.push(path.to_string()),
            _ => {}
        }
    }
}
