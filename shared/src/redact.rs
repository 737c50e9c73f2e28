//! Redaction: nothing secret leaves in a message or an evidence object
//! (docs/ARCHITECTURE.md).
//!
//! Three layers, all pure:
//! - [`is_secret_name`] decides whether a *name* (environment variable, JSON
//!   key, `key=value` key) holds a secret;
//! - [`Redactor::text`] replaces credential-shaped strings and known secret
//!   values in free text (log lines, reasons, messages);
//! - [`Redactor::json`] walks a JSON document (task definitions, events) and
//!   redacts values by name, then every other string by `text`;
//! - [`Redactor::lines`] redacts a sequence of log lines as a whole, so that
//!   a private key split over many log events is masked line by line.
//!
//! Redaction replaces a value by [`REDACTED`] and keeps what names it (the
//! key, the variable name, the URL's user and host, the PEM header), so the
//! evidence still says *which* secret was there.
//!
//! Links we made ourselves (presigned report URLs, console URLs) never go
//! through it: [`own`] keeps them apart by their type, not by a pattern.

pub mod own;
mod vendor;

pub use own::{LinkLifetime, Outgoing, OwnLink, PresignedLink};

use serde_json::Value;
use std::ops::Range;
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
    if is_session_cookie_name(name) {
        return true;
    }
    let words = split_words(name);
    let Some(last) = words.last() else { return false };
    if REFERENCE_SUFFIXES.contains(&last.as_str()) {
        return false;
    }
    // "pass" alone is too common a key ("pass=3 fail=0"); DB_PASS is not.
    let named = words.iter().any(|w| is_secret_word(w) || (w == "pass" && words.len() > 1))
        || words.windows(2).any(|pair| {
            let (a, b) = (pair[0].as_str(), pair[1].as_str());
            (b == "key" || b == "keys") && KEY_QUALIFIERS.contains(&a)
                || (b == "url" || b == "uri" || b == "urls") && URL_QUALIFIERS.contains(&a)
                || (a == "connection" && (b == "string" || b == "str"))
                || (a == "basic" && b == "auth")
                || (a == "cookie" && b == "secret")
        });
    // A rate limiter's token bucket holds counts, not tokens.
    named && !words.windows(2).any(|pair| pair[0] == "token" && pair[1] == "bucket")
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
    // A mechanism or an audience is named, not held.
    "provider",
    "mode",
    "policy",
    "audience",
    "issuer",
    "realm",
    "scope",
    "scopes",
    "strategy",
    "method",
    "format",
    "host",
    "hostname",
    "port",
    "user",
    "username",
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
    // a personal access token (AZURE_DEVOPS_EXT_PAT, GITLAB_PAT)
    "pat",
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

/// Session cookie names whose value is the session: `JSESSIONID` (also
/// `;jsessionid=` in a URL), `PHPSESSID`, `ASPSESSIONID…`, `ASP.NET_SessionId`,
/// `.ASPXAUTH`, `connect.sid`, `sessionid` (Django), `<app>_session` (Rails,
/// Laravel, GitLab).
fn is_session_cookie_name(name: &str) -> bool {
    let n = name.trim_start_matches(['.', '_']).to_ascii_lowercase();
    matches!(n.as_str(), "jsessionid" | "phpsessid" | "sessionid" | "asp.net_sessionid" | "aspxauth" | "connect.sid")
        || n.starts_with("aspsessionid")
        || (n.len() > "_session".len() && n.ends_with("_session"))
}

/// The words that hint at a secret anywhere in a name (`PAGERDUTY_ROUTING_KEY`,
/// `X-Client-Auth`, `sessionSigning`, `MONGO_PRIVATE_MATERIAL`): the value
/// is a secret when it is shaped like one ([`looks_random`]). Names whose last
/// word marks a reference (`…_KEY_ID`, `…_TOKEN_TTL`) or that name a public
/// part (`PUBLIC_KEY`) are not.
const HINTS: &[&str] = &["key", "token", "auth", "credential", "dsn", "pass", "private", "signing", "secret", "sig"];

/// Whether a name hints at a secret (see `HINTS`). Case-insensitive; the
/// hint may be anywhere in the name.
pub fn hints_secret(name: &str) -> bool {
    if name.len() > 200 {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    if !HINTS.iter().any(|h| lower.contains(h)) {
        return false;
    }
    let words = split_words(name);
    let last = words.last().map(String::as_str).unwrap_or_default();
    !REFERENCE_SUFFIXES.contains(&last) && !words.iter().any(|w| w == "public" || w == "pub")
}

/// A value shaped like a key rather than a word, a name or an identifier
/// people read: 16 to 4,096 token characters, at least two of upper case,
/// lower case and digits, a Shannon entropy of 3 bits per character or
/// more, and not an ARN, a URL, a path, an AWS resource id
/// (`subnet-0a1b2c3d…`) or words joined by separators (`payments-prod`,
/// `api.example.com`, `CorrectHorseBattery`).
pub fn looks_random(v: &str) -> bool {
    let b = v.as_bytes();
    if !(16..=4096).contains(&b.len()) || !b.iter().all(|c| c.is_ascii_alphanumeric() || b"+/=_-.~:%".contains(c)) {
        return false;
    }
    if v.starts_with("arn:") || v.contains("://") || v.starts_with(['/', '.', '~']) || is_resource_id(v) {
        return false;
    }
    let classes = [u8::is_ascii_uppercase, u8::is_ascii_lowercase, u8::is_ascii_digit]
        .iter()
        .filter(|class| b.iter().any(class))
        .count();
    classes >= 2 && !is_readable_compound(v) && entropy(b) >= 3.0
}

/// `subnet-0a1b2c3d4e5f60718`, `sg-…`, `vpc-…`, `i-…`: a type word, a dash,
/// 8 to 17 hex digits.
fn is_resource_id(v: &str) -> bool {
    v.split_once('-').is_some_and(|(kind, id)| {
        (1..=8).contains(&kind.len())
            && kind.bytes().all(|c| c.is_ascii_lowercase())
            && (8..=17).contains(&id.len())
            && id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

/// Mostly words (all lower case, all upper case, or Capitalised humps) and
/// numbers joined by separators: at least half of the characters are in
/// such parts (`payments-prod`, `api.example.com`, `CorrectHorseBattery`,
/// `incidents/prod/api/inc-20261206-0626-115e76/report.md`). A key's
/// base64 or hex has hardly any.
fn is_readable_compound(v: &str) -> bool {
    let readable: usize = v
        .split(|c: char| "+/=_-.~:%".contains(c))
        .filter(|part| {
            let b = part.as_bytes();
            if b.is_empty() {
                return false;
            }
            if b.iter().all(u8::is_ascii_digit) {
                return true;
            }
            if !b.iter().all(u8::is_ascii_alphabetic) {
                return false;
            }
            // Each capital starts a hump of at least two small letters (or is part of an acronym).
            b.iter().all(u8::is_ascii_uppercase) && b.len() <= 12
                || b.iter().enumerate().all(|(i, c)| {
                    !c.is_ascii_uppercase() || b.get(i + 1..i + 3).is_some_and(|n| n.iter().all(u8::is_ascii_lowercase))
                })
        })
        .map(str::len)
        .sum();
    readable * 2 >= v.len()
}

/// Shannon entropy in bits per byte.
fn entropy(b: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &c in b {
        counts[usize::from(c)] += 1;
    }
    let n = b.len() as f64;
    counts.iter().filter(|&&k| k > 0).map(|&k| f64::from(k) / n).map(|p| -p * p.log2()).sum()
}

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
    // An explicit stack: a document nested thousands deep must not overflow ours.
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(name) = pair_name(map) {
                    for key in VALUE_KEYS {
                        if let Some(Value::String(s)) = map.get(*key)
                            && is_secret_entry(name, s)
                        {
                            out.push(s.clone());
                        }
                    }
                }
                for (k, val) in map {
                    match val {
                        Value::String(s) if is_secret_json_key(k) || hints_secret(k) && looks_random(s) => {
                            out.push(s.clone())
                        }
                        _ => stack.push(val),
                    }
                }
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
}

/// An entry (environment variable, tag, parameter) holding a secret: by its
/// name, or by a name hinting at one and a value shaped like one.
fn is_secret_entry(name: &str, value: &str) -> bool {
    is_secret_name(name) || hints_secret(name) && looks_random(value)
}

/// A JSON object key that holds a secret: a secret name, or `pass` / `pw`
/// alone. Those are too common as bare variables and counters (`PASS=3`) for
/// [`is_secret_name`], but a JSON key `"pass"` with a string is a password.
fn is_secret_json_key(key: &str) -> bool {
    is_secret_name(key) || matches!(split_words(key).as_slice(), [w] if w == "pass" || w == "pw")
}

/// `cookie`, `set-cookie` and `cookies` (API Gateway v2) header names: their
/// values are redacted pair by pair, keeping cookie names. `Some(true)` for
/// `Set-Cookie`, whose attributes (`Path`, `Expires`, …) are kept too.
fn cookie_header(name: &str) -> Option<bool> {
    if name.eq_ignore_ascii_case("set-cookie") {
        Some(true)
    } else if name.eq_ignore_ascii_case("cookie") || name.eq_ignore_ascii_case("cookies") {
        Some(false)
    } else {
        None
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
    /// log excerpt: the body ends at the first run that is not base64 body,
    /// see [`Self::lines`]), known values, `Authorization:` headers (every
    /// scheme of `AUTH_SCHEMES`; after a scheme that is also a word, a word
    /// of prose is no credential) and `Bearer …` tokens (with a digit, or 20+
    /// characters), URL userinfo passwords (also holding `/`, `@` or `#`: the
    /// host follows the last `@` before the path) and keys standing alone in
    /// a URL's user part (a Sentry DSN), Slack, Discord and Teams webhook
    /// URLs, signature and credential query parameters of presigned URLs
    /// (`X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`,
    /// `X-Goog-Signature`, `Signature`, `sig`), the vendor tokens of
    /// `redact/vendor.rs` (AWS key ids and session tokens, JWTs, GitHub, GitLab,
    /// Slack, Discord, Telegram, Stripe, Google, Azure AD, age, Cloudflare,
    /// base64 of a PEM private key, … — a hundred-odd rules), `aws_secret_access_key`
    /// assignments, a mixed-case 40-character base64 string right after a
    /// "secret" word, a hex or UUID key right after an "api key" / "token" /
    /// "secret" word (Datadog, Heroku), a bare AWS secret access key (40
    /// base64 characters mixing cases and digits, not a path, digest or
    /// identifier), `Cookie:` / `Set-Cookie:` values (cookie names kept),
    /// serialized `{"name": …, "value": …}` entries and XML `key="…"
    /// value="…"` attributes and `<password>…</password>` elements by name,
    /// secrets on command lines and in config lines (`COMMAND_SECRETS`),
    /// and `key=value` / `key: value` / `"key": "value"` pairs whose key is a
    /// secret name ([`is_secret_name`]; `"pass"` and `"pw"` as quoted JSON
    /// keys too; the key is kept) or hints at one ([`hints_secret`]) with a
    /// value shaped like a key ([`looks_random`]). A `key: value` pair without
    /// quotes needs a value that looks like a credential (a digit or a symbol
    /// in it, or 16+ characters), so that prose such as "invalid token:
    /// expired" survives. `Authorization:` without a scheme (`Bearer`,
    /// `Basic`, …) is such a pair too ("Authorization: failed" survives; a raw
    /// key does not).
    ///
    /// A pass runs only when the text holds its literal (looked for once,
    /// case-insensitively), so an ordinary log line costs a few scans.
    ///
    /// Left alone: ARNs (also `…:secret:name` ones), 32-hex task ids, UUIDs,
    /// `sha256:` digests, git SHAs, timestamps, ordinary log lines.
    ///
    /// Any input is fine (control characters, U+FFFD, megabytes): every
    /// pattern is a linear-time `regex_lite` pass or a single forward scan.
    pub fn text(&self, s: &str) -> String {
        if s.is_empty() {
            return String::new();
        }
        // Every pass but the last two needs a literal in the text: look for
        // them once, case-insensitively, and skip the passes that cannot
        // match (most log lines hold none of them). A pass's replacements
        // never create another pass's literal (`***REDACTED***` holds none).
        let lower = s.to_ascii_lowercase();
        let has = |needle: &str| lower.contains(needle);
        let mut out = if has("-----begin") { redact_pem(s) } else { s.to_string() };
        for known in &self.known_values {
            if out.contains(known.as_str()) {
                out = out.replace(known.as_str(), REDACTED);
            }
        }
        if has("authorization") {
            out = AUTH_HEADER
                .replace_all(&out, |c: &Captures<'_>| {
                    // After a scheme that is also a word ("Authorization: bot detection
                    // enabled", "token expired") a credential is not a word of prose.
                    let credential = c[0][c[1].len() + c[2].len()..].trim_start();
                    let first = credential.split_whitespace().next().unwrap_or_default();
                    let wordy_scheme = !STRICT_SCHEMES.iter().any(|s| c[2].eq_ignore_ascii_case(s));
                    if !wordy_scheme || !is_prose_word(first.trim_end_matches([',', '.', ';', ':', '!', '?', ')'])) {
                        format!("{}{} {REDACTED}", &c[1], &c[2])
                    } else {
                        c[0].to_string()
                    }
                })
                .into_owned();
        }
        if has("bearer") {
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
        }
        if has("://") {
            out = redact_url_userinfo(&out);
            out = redact_url_token_user(&out);
        }
        if has("hooks.slack.com") {
            out = SLACK_WEBHOOK.replace_all(&out, "${1}***REDACTED***").into_owned();
        }
        if has("webhook") {
            out = CHAT_WEBHOOK.replace_all(&out, "${1}***REDACTED***").into_owned();
        }
        if has("sig") || has("credential") || has("security-token") {
            out = URL_SIGNATURE.replace_all(&out, "${1}***REDACTED***").into_owned();
        }
        out = replace_ranges(&out, &vendor::ranges(&out));
        if has("secret") {
            out = SECRET_ACCESS_KEY.replace_all(&out, "${1}***REDACTED***").into_owned();
            out = redact_base64_after_secret_word(&out);
        }
        if has("key") || has("token") || has("secret") || has("passw") {
            out = redact_hex_after_secret_word(&out);
        }
        if has_base64_run(&out, 40) {
            out = redact_bare_aws_secret_keys(&out);
        }
        if has("cookie") {
            out = redact_cookie_headers(&out);
        }
        if has("value") {
            out = redact_serialized_name_value(&out);
            out = redact_xml_name_value(&out);
        }
        if has("</") {
            out = redact_xml_elements(&out);
        }
        if COMMAND_WORDS.iter().any(|w| has(w)) || lower.starts_with('-') {
            out = redact_commands(&out);
        }
        if PAIR_WORDS.iter().any(|w| has(w)) {
            out = redact_pairs(&out);
        }
        out
    }

    /// Redacts a sequence of log lines as a whole, one output line per input
    /// line. A private key logged over many lines (one log event each) has its
    /// BEGIN line in an earlier line than its body: the key is found across
    /// the lines, each of its body lines becomes [`REDACTED`], and the lines
    /// after its body are kept. After a BEGIN line without its END, a line
    /// standing alone that looks like PEM body (40+ base64 characters, mixed)
    /// is redacted too, so lines of another writer interleaved with the key
    /// do not let its remaining lines through. Every line then goes through
    /// [`Self::text`]. Redact the whole sequence before excerpting from it.
    pub fn lines<S: AsRef<str>>(&self, lines: &[S]) -> Vec<String> {
        let mut joined = String::new();
        let mut starts = Vec::with_capacity(lines.len());
        for line in lines {
            starts.push(joined.len());
            joined.push_str(line.as_ref());
            joined.push('\n');
        }
        let bodies = pem_bodies(&joined);
        let mut next_body = 0;
        let mut in_key = false;
        let mut out = Vec::with_capacity(lines.len());
        for (line, start) in lines.iter().zip(starts) {
            let line = line.as_ref();
            let end = start + line.len();
            let mut masked = String::with_capacity(line.len());
            let mut pos = start;
            while let Some(body) = bodies.get(next_body)
                && body.start < end
            {
                let (from, to) = (body.start.max(pos), body.end.min(end));
                if from < to {
                    masked.push_str(&joined[pos..from]);
                    masked.push_str(REDACTED);
                    pos = to;
                }
                if body.end > end {
                    break;
                }
                next_body += 1;
            }
            masked.push_str(&joined[pos..end]);
            if in_key && is_lone_pem_body_line(masked.trim()) {
                masked = REDACTED.to_string();
            }
            let last_begin = PEM_BEGIN.find_iter(line).last().map(|m| m.start());
            let last_end = PEM_END.find_iter(line).last().map(|m| m.start());
            match (last_begin, last_end) {
                (Some(b), Some(e)) => in_key = b > e,
                (Some(_), None) => in_key = true,
                (None, Some(_)) => in_key = false,
                (None, None) => {}
            }
            out.push(self.text(&masked));
        }
        out
    }

    /// Redacts a JSON document in place: `{"name", "value"}` pairs (also
    /// `Name`/`Value`, `Key`/`Value`) whose name is secret get their value
    /// replaced; any key that is a secret name gets its string or number
    /// value replaced; every other string goes through [`Self::text`].
    /// ECS `secrets` entries (`{"name": "DB_PASSWORD", "valueFrom": "arn:…"}`)
    /// are kept: `valueFrom` names the secret, it is not the secret.
    ///
    /// JSON keys `pass` and `pw` holding a string are secret too, and the
    /// values of `Cookie` / `Set-Cookie` / `cookies` headers (a string, a
    /// list of strings, or a `{"name": "Cookie", "value": …}` pair) lose their
    /// cookie values but keep the cookie names. Any depth is fine: the walk
    /// keeps its own stack.
    pub fn json(&self, v: &mut Value) {
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(map) => {
                    let name = pair_name(map);
                    let secret_pair = name.is_some_and(is_secret_name);
                    let hinted_pair = !secret_pair && name.is_some_and(hints_secret);
                    let cookie_pair = name.and_then(cookie_header);
                    for (key, val) in map.iter_mut() {
                        let value_key = VALUE_KEYS.contains(&key.as_str());
                        let by_pair = value_key
                            && !val.is_null()
                            && (secret_pair || hinted_pair && val.as_str().is_some_and(looks_random));
                        let by_key = is_secret_name(key) && (val.is_string() || val.is_number())
                            || is_secret_json_key(key) && val.is_string()
                            || val.as_str().is_some_and(|v| hints_secret(key) && looks_random(v));
                        let cookies = cookie_header(key).or(cookie_pair.filter(|_| value_key));
                        if by_pair || by_key {
                            *val = Value::String(REDACTED.to_string());
                        } else if let Some(set_cookie) = cookies {
                            self.json_cookies(val, set_cookie, &mut stack);
                        } else {
                            stack.push(val);
                        }
                    }
                }
                Value::Array(items) => stack.extend(items),
                Value::String(s) => self.json_string(s, None),
                _ => {}
            }
        }
    }

    /// A cookie header's value in JSON: a string or a list of strings;
    /// anything else is walked as usual.
    fn json_cookies<'a>(&self, val: &'a mut Value, set_cookie: bool, stack: &mut Vec<&'a mut Value>) {
        match val {
            Value::String(s) => self.json_string(s, Some(set_cookie)),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::String(s) => self.json_string(s, Some(set_cookie)),
                        other => stack.push(other),
                    }
                }
            }
            other => stack.push(other),
        }
    }

    fn json_string(&self, s: &mut String, cookie: Option<bool>) {
        let redacted = match cookie {
            Some(set_cookie) => self.text(&redact_cookie_value(s, set_cookie)),
            None => self.text(s),
        };
        if redacted != *s {
            *s = redacted;
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
/// Schemes that never start prose: whatever follows them is a credential.
const STRICT_SCHEMES: &[&str] = &["bearer", "basic", "digest", "negotiate", "ntlm", "aws4-hmac-sha256"];

/// The schemes [`AUTH_HEADER`] knows (keep this list and its regex in step).
const AUTH_SCHEMES: &[&str] = &[
    "bearer",
    "basic",
    "digest",
    "token",
    "negotiate",
    "ntlm",
    "aws4-hmac-sha256",
    "bot",
    "ssws",
    "splunk",
    "apikey",
    "geniekey",
    "sharedkey",
    "oauth",
    "hawk",
];

/// `Authorization: <scheme> <credential…>` to the end of the line or the
/// closing quote. Without a scheme the value is judged by the pair rule.
static AUTH_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)(\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?)(bearer|basic|digest|token|negotiate|ntlm|aws4-hmac-sha256|bot|ssws|splunk|apikey|geniekey|sharedkey|oauth|hawk)\s+[^\s"'\\][^"'\r\n\\]*"#,
    )
});
static BEARER: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\b(bearer)\s+([A-Za-z0-9\-._~+/]{8,}=*)"));
/// `scheme://user:` — where a URL password may start; [`redact_url_userinfo`]
/// finds where it ends.
static URL_USERINFO: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\b[a-z][a-z0-9+.\-]*://[^:/?#@\s]*:"));
static SLACK_WEBHOOK: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)(https?://hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9_/\-]+"));
/// Discord and Microsoft Teams incoming webhooks: the id and token are the secret.
static CHAT_WEBHOOK: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(https?://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/(?:v[0-9]+/)?webhooks/|https://[a-z0-9.\-]+\.webhook\.office\.com/webhookb2/)[A-Za-z0-9_/@\-]+",
    )
});
/// Query parameters that sign or authorize a presigned URL (S3, CloudFront,
/// GCS, Azure SAS), also the `, Signature=` of a SigV4 header written out.
static URL_SIGNATURE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)((?:[?&;]|&amp;|,\s*)(?:x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential|signature|sig)=)[^&#\s"'<>\\]+"#,
    )
});
static SECRET_ACCESS_KEY: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)((?:aws_?)?secret_?access_?key["']?\s*[:=]\s*["']?)[^\s"',;]+"#));
/// A "secret" word, then within a few characters a separator and exactly
/// 40 base64 characters: the shape of an AWS secret access key.
static SECRET_WORD_BASE64: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)(secret[A-Za-z_\- ]{0,24}?["']?\s*(?:[:=]|\s)\s*["']?)([A-Za-z0-9/+]{40})"#));
/// A "secret" word right before a 32/40/64-hex key or a UUID: Datadog API
/// and application keys, Heroku API keys. Adjacent only, so "secret rotated
/// in commit <sha>" stays.
static SECRET_WORD_HEX: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)(\b(?:(?:api|app|application|access|auth|client|private|secret|dd|datadog|heroku)[_\-. ]?key|token|secret|password|passwd)["']?\s*(?:[:=]|\bis\b)?\s*["']?)([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64})\b"#,
    )
});
/// Runs of 40 or more base64 characters: candidates for a bare AWS secret
/// access key (exactly 40; see [`is_bare_aws_secret_key`]).
static BASE64_RUN: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Za-z0-9/+]{40,}"));
/// `Cookie:` / `Set-Cookie:` (also `"Cookie": "` in serialized JSON, and
/// `cookie=`). Group 1: the name; 2: the opening quote of the value.
static COOKIE_HEADER: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)\b((?:set-)?cookies?)\\?["']?\s*[:=]\s*(\\?["'])?"#));
/// `name=value` in a cookie header value.
static COOKIE_PAIR: LazyLock<Regex> = LazyLock::new(|| re(r#"([^\s=;,"'\[\]{}\\]+)=([^;,\s"'\\\]}]*)"#));
/// `Set-Cookie` attributes: not secret, kept with their values.
const COOKIE_ATTRIBUTES: &[&str] =
    &["path", "domain", "expires", "max-age", "samesite", "secure", "httponly", "partitioned", "priority", "version"];
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
        out.push_str(if is_secret_entry(name.as_str(), value) && !value.is_empty() { REDACTED } else { value });
        pos = whole.end() + value_len;
    }
    out.push_str(&s[pos..]);
    out
}

/// `<add key="ClearTextPassword" value="…" />` (NuGet, .NET appSettings) and
/// `name="…" value="…"` attributes in XML: the value goes when the name is
/// secret (also escaped, as in a JSON string).
static XML_NAME_VALUE: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)\b(?:key|name)\s*=\s*\\?"([^"\\]*)\\?"\s+value\s*=\s*(\\?")"#));

fn redact_xml_name_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(c) = XML_NAME_VALUE.captures_at(s, pos) {
        let (Some(whole), Some(name), Some(quote)) = (c.get(0), c.get(1), c.get(2)) else { break };
        out.push_str(&s[pos..whole.end()]);
        let rest = &s[whole.end()..];
        let value_len = closing_quote(rest, quote.as_str());
        let value = &rest[..value_len];
        out.push_str(if is_secret_entry(name.as_str(), value) && !value.is_empty() { REDACTED } else { value });
        pos = whole.end() + value_len;
    }
    out.push_str(&s[pos..]);
    out
}

/// `<password>…</password>` (Maven `settings.xml`, Spring XML, SOAP): an
/// element named secret loses its text. (regex-lite has no back-references:
/// the closing tag is compared by hand.) Names up to 64 characters and texts
/// up to [`XML_TEXT_MAX`] are read; the bounds are checked by hand too: a
/// counted repetition compiles to one NFA state per count, and
/// `[^<]{1,4096}` cost each function 1.6 MB of heap (the NFA and the
/// PikeVM's per-state capture slots) on its first redaction.
static XML_ELEMENT: LazyLock<Regex> =
    LazyLock::new(|| re(r"<([A-Za-z_][A-Za-z0-9_.:\-]*)>([^<]+)</([A-Za-z_][A-Za-z0-9_.:\-]*)>"));
const XML_NAME_MAX: usize = 65;
const XML_TEXT_MAX: usize = 4096;

fn redact_xml_elements(s: &str) -> String {
    XML_ELEMENT
        .replace_all(s, |c: &Captures<'_>| {
            let (open, text, close) = (&c[1], &c[2], &c[3]);
            let name = open.rsplit(':').next().unwrap_or(open);
            // Outside the bounds nothing else can match there either (the
            // text holds no `<`): the element stays as it is.
            let bounded = |x: &str, max: usize| x.chars().count() <= max;
            if open == close
                && bounded(open, XML_NAME_MAX)
                && bounded(text, XML_TEXT_MAX)
                && text.trim() != REDACTED
                && is_secret_entry(name, text.trim())
            {
                format!("<{open}>{REDACTED}</{close}>")
            } else {
                c[0].to_string()
            }
        })
        .into_owned()
}

/// Words of the command lines and config lines [`redact_commands`] reads.
const COMMAND_WORDS: &[&str] =
    &["password", "passwd", "requirepass", "masterauth", "mysql", "curl", "login", "unseal", " -", "\t-", "--"];

/// Secrets on command lines and in config lines without `=` or `:`:
/// `.netrc` (`login bot password s3cr3t`), Redis (`requirepass s3cr3t`),
/// `mysql -ps3cr3t`, `curl -u user:s3cr3t`, `docker login -p s3cr3t`,
/// `--password s3cr3t` (and `--secret`, `--api-key`, `--access-token`, …),
/// Vault's `Unseal Key 1: …`. A value that is a file or a variable (`/path`,
/// `@file`, `$VAR`) is a reference and stays. `--token` alone is not among
/// the flags: the pipeline approval notice shows `put-approval-result
/// --token …` on purpose (the approver needs it, and IAM guards it); vendor
/// tokens after it are still caught by their shape.
static COMMAND_SECRETS: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r#"(?i)(\blogin\s+\S+\s+password\s+|\b(?:requirepass|masterauth)\s+|\bunseal key(?: [0-9]+)?:\s*"#,
        r#"|\bmysql(?:dump|admin|import)?\b[^\r\n]*?\s-p|\bcurl\b[^\r\n]*?\s(?:-u|--user)[=\s]+[^\s:"']+:"#,
        r#"|\bdocker\s+login\b[^\r\n]*?\s-p\s+"#,
        r#"|(?:^|\s)--?(?:password|passwd|pass|secret|api-key|apikey|access-token|auth-token|client-secret|registration-token|private-key|secret-key)[=\s]+)"#,
        r#"(["']?)([^\s"'$@/~\\][^\s"'\\]*)"#
    ))
});

fn redact_commands(s: &str) -> String {
    COMMAND_SECRETS
        .replace_all(s, |c: &Captures<'_>| {
            let value = c.get(3).map_or("", |m| m.as_str());
            if value == REDACTED || value.starts_with("***") || value.starts_with('-') {
                c[0].to_string()
            } else {
                format!("{}{}{REDACTED}", &c[1], &c[2])
            }
        })
        .into_owned()
}

/// A URL whose user part alone is a key (`https://<32 hex>@o1.ingest.sentry.io/…`,
/// a Sentry DSN in prose; `https://<token>@github.com/…`): the user goes,
/// the host stays. A user that reads like a name (`git@`, `deploy@`) stays.
static URL_TOKEN_USER: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b([a-z][a-z0-9+.\-]*://)([A-Za-z0-9_\-]{16,256})@"));

fn redact_url_token_user(s: &str) -> String {
    URL_TOKEN_USER
        .replace_all(
            s,
            |c: &Captures<'_>| {
                if looks_random(&c[2]) { format!("{}{REDACTED}@", &c[1]) } else { c[0].to_string() }
            },
        )
        .into_owned()
}

/// PEM private key blocks keep their BEGIN/END lines (and what surrounds
/// them); the body between becomes [`REDACTED`].
fn redact_pem(s: &str) -> String {
    let bodies = pem_bodies(s);
    if bodies.is_empty() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    for body in bodies {
        out.push_str(&s[pos..body.start]);
        out.push_str(REDACTED);
        pos = body.end;
    }
    out.push_str(&s[pos..]);
    out
}

/// Byte ranges of the PEM private key bodies in `s`, in order, disjoint.
fn pem_bodies(s: &str) -> Vec<Range<usize>> {
    let mut bodies = Vec::new();
    let mut pos = 0;
    while let Some(begin) = PEM_BEGIN.find_at(s, pos) {
        pos = begin.end();
        if let Some(body) = pem_body(s, begin.end()) {
            pos = body.end;
            bodies.push(body);
        }
    }
    bodies
}

/// PEM body lines are this wide or wider (64 in PEM, 70 in OpenSSH, 76 in
/// MIME); a shorter first line is all there is of a body (cut, or tiny).
const PEM_MIN_WIDTH: usize = 40;

/// Armor headers of encrypted PEM (`Proc-Type`, `DEK-Info`) and PGP keys.
const PEM_HEADERS: &[&str] = &["Proc-Type:", "DEK-Info:", "Version:", "Comment:", "Hash:", "Charset:"];

/// The body of the key whose BEGIN line ends at `start`: its armor headers
/// and base64 chunks (lines, or runs separated by spaces or escaped `\n`
/// when the key was flattened into one line), up to the END line.
///
/// Without an END line right after the chunks (an excerpt cut the key, an
/// error message quoted its start), the body is bounded so that the text
/// after the key survives: lines as wide as the first (40+), then one
/// shorter final line; a first line shorter than 40 is all of it. A chunk
/// that reads as a word of prose (`Actions`, `restart`) is never taken
/// unless an END line follows.
fn pem_body(s: &str, start: usize) -> Option<Range<usize>> {
    let b = s.as_bytes();
    let mut p = start;
    let mut headers_from = None;
    loop {
        let (q, newlines) = pem_separator(b, p, 1);
        let Some(header_end) = PEM_HEADERS.iter().any(|h| s[q..].starts_with(h)).then(|| line_end(b, q)) else {
            break;
        };
        if newlines == 0 && q != start {
            break;
        }
        headers_from.get_or_insert(q);
        p = header_end;
    }
    // The blank line after armor headers is part of the body.
    let mut max_newlines = if headers_from.is_some() { 2 } else { 1 };
    let mut chunks: Vec<Range<usize>> = Vec::new();
    let mut ended_by_marker = false;
    loop {
        let (q, _) = pem_separator(b, p, max_newlines);
        max_newlines = 1;
        if q > p || chunks.is_empty() {
            if is_pem_end_at(s, q) {
                ended_by_marker = true;
                break;
            }
        } else {
            break;
        }
        let r = q + b[q..].iter().take_while(|c| is_base64_byte(**c)).count();
        if r == q || !ends_pem_chunk(s, r) {
            break;
        }
        chunks.push(q..r);
        p = r;
    }
    let first = chunks.first()?;
    let from = headers_from.unwrap_or(first.start);
    if ended_by_marker {
        return chunks.last().map(|last| from..last.end);
    }
    let width = first.len();
    if width < PEM_MIN_WIDTH {
        return looks_like_base64_data(&s[first.clone()]).then_some(from..first.end);
    }
    let mut last = first.end;
    for chunk in &chunks[1..] {
        if chunk.len() == width {
            last = chunk.end;
            continue;
        }
        if chunk.len() < width && looks_like_base64_data(&s[chunk.clone()]) {
            last = chunk.end;
        }
        break;
    }
    Some(from..last)
}

fn is_base64_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'='
}

/// Whether a base64 run ending at `r` is a chunk of a body: followed by the
/// end, a separator, a closing quote or bracket, punctuation, `…`, or the END
/// line; not by `_`, `-`, `:`, `@`, … that make it part of a word or name.
fn ends_pem_chunk(s: &str, r: usize) -> bool {
    match s.as_bytes().get(r) {
        None => true,
        Some(
            b' ' | b'\t' | b'\r' | b'\n' | b'\\' | b'"' | b'\'' | b',' | b';' | b'.' | b')' | b']' | b'}' | b'<' | b'>',
        ) => true,
        Some(b'-') => is_pem_end_at(s, r),
        Some(_) => s[r..].starts_with('…'),
    }
}

/// Spaces, tabs and at most `max_newlines` line breaks at `b[i..]`, real or
/// escaped as in a JSON string (`\n`, also doubly escaped); returns where they
/// end and how many line breaks there were.
fn pem_separator(b: &[u8], mut i: usize, max_newlines: usize) -> (usize, usize) {
    let mut newlines = 0;
    loop {
        match b.get(i) {
            Some(b' ' | b'\t' | b'\r') => i += 1,
            Some(b'\n') if newlines < max_newlines => {
                newlines += 1;
                i += 1;
            }
            Some(b'\\') => {
                let slashes = b[i..].iter().take(3).take_while(|c| **c == b'\\').count();
                match b.get(i + slashes) {
                    Some(b'r' | b't') => i += slashes + 1,
                    Some(b'n') if newlines < max_newlines => {
                        newlines += 1;
                        i += slashes + 1;
                    }
                    _ => break,
                }
            }
            _ => break,
        }
    }
    (i, newlines)
}

/// Where the line starting at `i` ends: at a real or escaped line break.
fn line_end(b: &[u8], i: usize) -> usize {
    i + b[i..].iter().take_while(|c| !matches!(c, b'\r' | b'\n' | b'\\')).count()
}

fn is_pem_end_at(s: &str, i: usize) -> bool {
    let Some(rest) = s.get(i..) else { return false };
    if !rest.starts_with("-----END ") {
        return false;
    }
    // The marker is short: look at a window, not the rest of the text.
    let mut window = rest.len().min(96);
    while !rest.is_char_boundary(window) {
        window -= 1;
    }
    PEM_END.find(&rest[..window]).is_some_and(|m| m.start() == 0)
}

/// Base64 data rather than a word of prose: a digit or `+/=` in it, or
/// letters mixed otherwise than in "word", "WORD", "Word".
fn looks_like_base64_data(w: &str) -> bool {
    let bytes = w.as_bytes();
    let marked = bytes.iter().any(|c| c.is_ascii_digit() || b"+/=".contains(c));
    let upper = bytes.iter().filter(|c| c.is_ascii_uppercase()).count();
    let lower = bytes.iter().filter(|c| c.is_ascii_lowercase()).count();
    let capitalised = upper == 1 && bytes.first().is_some_and(u8::is_ascii_uppercase);
    marked || (upper > 0 && lower > 0 && !capitalised)
}

/// A log line that is one line of PEM body on its own.
fn is_lone_pem_body_line(line: &str) -> bool {
    line.len() >= PEM_MIN_WIDTH && line.bytes().all(is_base64_byte) && looks_like_base64_data(line)
}

/// `scheme://user:password@host`, keeping scheme, user and host. The
/// password may hold `@`, `#`, `?` and even `/`: the host is what follows the
/// last `@` before the path that is followed by a host name (and port). A
/// `:` followed by a port and a path (`https://host:8443/a@b`) is no
/// password.
fn redact_url_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    // The token (up to a space or quote) of the last match and the `@`s in it
    // that a host follows, found once per token: many matches in one long
    // token stay linear.
    let mut token_end = 0;
    let mut hosts: Vec<usize> = Vec::new();
    while let Some(m) = URL_USERINFO.find_at(s, pos) {
        out.push_str(&s[pos..m.end()]);
        pos = m.end();
        if pos > token_end {
            token_end =
                s[pos..].find(|c: char| c.is_whitespace() || "\"'<>`\\".contains(c)).map_or(s.len(), |i| pos + i);
            hosts = s[pos..token_end]
                .match_indices('@')
                .map(|(i, _)| pos + i)
                .filter(|&i| is_url_host(&s[i + 1..token_end]))
                .collect();
        }
        if let Some(at) = url_password_end(s, pos, token_end, &hosts)
            && at > pos
            && &s[pos..at] != REDACTED
        {
            out.push_str(REDACTED);
            pos = at;
        }
    }
    out.push_str(&s[pos..]);
    out
}

/// Where the password starting at `pos` ends: at the `@` before the host.
/// `hosts`: the `@`s of the token (to `token_end`) that a host follows, in order.
fn url_password_end(s: &str, pos: usize, token_end: usize, hosts: &[usize]) -> Option<usize> {
    let path = s[pos..token_end].find('/').map_or(token_end, |i| pos + i);
    let hosts = &hosts[hosts.partition_point(|&at| at < pos)..];
    let before_path = hosts.partition_point(|&at| at < path);
    if before_path > 0 {
        return Some(hosts[before_path - 1]);
    }
    let port = &s[pos..path];
    if port.is_empty() || port.len() <= 5 && port.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    hosts.last().copied()
}

/// Whether `rest` starts with a host name or `[IPv6]`, an optional `:port`,
/// and then ends or goes on with the path, query or punctuation.
fn is_url_host(rest: &str) -> bool {
    let b = rest.as_bytes();
    let host = if b.first() == Some(&b'[') {
        // An IPv6 literal is short: do not search the whole rest for `]`.
        match b.iter().take(64).position(|&c| c == b']') {
            Some(i) => i + 1,
            None => return false,
        }
    } else {
        b.iter().take_while(|c| c.is_ascii_alphanumeric() || b"._-~%".contains(c)).count()
    };
    if host == 0 {
        return false;
    }
    let mut i = host;
    if b.get(i) == Some(&b':') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += 1 + digits;
    }
    b.get(i).is_none_or(|c| !(c.is_ascii_alphanumeric() || b":@".contains(c)))
}

/// `s` with every range replaced by [`REDACTED`] (ranges sorted, disjoint).
fn replace_ranges(s: &str, ranges: &[Range<usize>]) -> String {
    if ranges.is_empty() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    for r in ranges {
        out.push_str(&s[pos..r.start]);
        out.push_str(REDACTED);
        pos = r.end;
    }
    out.push_str(&s[pos..]);
    out
}

fn redact_hex_after_secret_word(s: &str) -> String {
    SECRET_WORD_HEX
        .replace_all(s, |c: &Captures<'_>| {
            let start = c.get(0).map(|m| m.start()).unwrap_or_default();
            let keep = c.get(1).map(|m| m.as_str()).unwrap_or_default();
            // An ARN's ":secret:" is a resource type, not an assignment.
            if start > 0 && s.as_bytes().get(start - 1) == Some(&b':') {
                c[0].to_string()
            } else {
                format!("{keep}{REDACTED}")
            }
        })
        .into_owned()
}

fn redact_bare_aws_secret_keys(s: &str) -> String {
    BASE64_RUN
        .replace_all(s, |c: &Captures<'_>| {
            let Some(m) = c.get(0) else { return String::new() };
            if is_bare_aws_secret_key(s, m.start(), m.end()) { REDACTED.to_string() } else { m.as_str().to_string() }
        })
        .into_owned()
}

/// Whether the base64 run `s[start..end]` is an AWS secret access key with
/// nothing naming it. Exactly 40 characters, not glued to `_`, `-` or `=`
/// (an identifier, a longer base64 blob), not inside an ARN; and random:
/// two upper and two lower case letters and a digit at least, and no run of
/// 16 hex digits. That leaves git SHAs (hex), log stream names such as
/// `ecs/api/<32-hex task id>` (40 characters of the alphabet, `/` included)
/// and 40-letter class names alone; a real key lacks a digit once in a
/// thousand.
fn is_bare_aws_secret_key(s: &str, start: usize, end: usize) -> bool {
    let b = s.as_bytes();
    if end - start != 40 {
        return false;
    }
    let glued = |c: Option<&u8>| c.is_some_and(|c| b"_-=".contains(c));
    if glued(start.checked_sub(1).and_then(|i| b.get(i))) || glued(b.get(end)) {
        return false;
    }
    let key = &b[start..end];
    let upper = key.iter().filter(|c| c.is_ascii_uppercase()).count();
    let lower = key.iter().filter(|c| c.is_ascii_lowercase()).count();
    let digits = key.iter().filter(|c| c.is_ascii_digit()).count();
    let (mut lower_hex, mut upper_hex, mut longest_hex) = (0, 0, 0);
    for c in key {
        lower_hex = if c.is_ascii_digit() || (b'a'..=b'f').contains(c) { lower_hex + 1 } else { 0 };
        upper_hex = if c.is_ascii_digit() || (b'A'..=b'F').contains(c) { upper_hex + 1 } else { 0 };
        longest_hex = longest_hex.max(lower_hex).max(upper_hex);
    }
    upper >= 2 && lower >= 2 && digits >= 1 && longest_hex < 16 && !in_arn(s, start)
}

/// Whether `s[start..]` is the resource part of an ARN (`…:secret:<name>`):
/// `:` before it and `arn:` a little further back (looked for in a bounded
/// window, so that many candidates on one long line stay linear).
fn in_arn(s: &str, start: usize) -> bool {
    if start == 0 || s.as_bytes().get(start - 1) != Some(&b':') {
        return false;
    }
    let mut from = start.saturating_sub(160);
    while !s.is_char_boundary(from) {
        from += 1;
    }
    s[from..start].contains("arn:")
}

/// `Cookie:` / `Set-Cookie:` headers in text: to the closing quote when
/// quoted, else to the end of the line.
fn redact_cookie_headers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(c) = COOKIE_HEADER.captures_at(s, pos) {
        let (Some(whole), Some(name)) = (c.get(0), c.get(1)) else { break };
        out.push_str(&s[pos..whole.end()]);
        pos = whole.end();
        let rest = &s[pos..];
        let value_len = match c.get(2) {
            Some(q) => closing_quote(rest, q.as_str()),
            None => rest.find(['\r', '\n', '\\']).unwrap_or(rest.len()),
        };
        let set_cookie = name.as_str().len() > "cookie".len() && name.as_str()[..4].eq_ignore_ascii_case("set-");
        out.push_str(&redact_cookie_value(&rest[..value_len], set_cookie));
        pos += value_len;
    }
    out.push_str(&s[pos..]);
    out
}

/// A cookie header's value with every cookie value redacted and the names
/// kept (`sid=***REDACTED***; theme=***REDACTED***`); `Set-Cookie`
/// attributes stay. A value with no `name=` in it is redacted whole when it
/// looks like a credential.
fn redact_cookie_value(v: &str, set_cookie: bool) -> String {
    if !v.contains('=') {
        let t = v.trim();
        let opaque = !t.is_empty() && !t.contains(char::is_whitespace) && t != REDACTED && looks_like_credential(t);
        return if opaque { v.replacen(t, REDACTED, 1) } else { v.to_string() };
    }
    let mut first = true;
    COOKIE_PAIR
        .replace_all(v, |c: &Captures<'_>| {
            let (name, value) = (&c[1], &c[2]);
            let attribute = set_cookie && !first && COOKIE_ATTRIBUTES.iter().any(|a| name.eq_ignore_ascii_case(a));
            first = false;
            if attribute || value.is_empty() || value == REDACTED {
                c[0].to_string()
            } else {
                format!("{name}={REDACTED}")
            }
        })
        .into_owned()
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

/// A literal every key [`redact_pairs`] acts on holds (lower case): the
/// secret words, the hints, the qualified keys and URLs, the session cookie
/// names, the JSON `pass`/`pw`, a query's `code`. A text without any of them
/// has no pair to redact.
const PAIR_WORDS: &[&str] = &[
    "pass",
    "pw",
    "secret",
    "token",
    "credential",
    "creds",
    "dsn",
    "salt",
    "pepper",
    "bearer",
    "auth",
    "key",
    "webhook",
    "conn",
    "pat",
    "url",
    "uri",
    "session",
    "sid",
    "private",
    "sig",
    "code",
];

/// Whether `s` holds a run of at least `n` base64 characters (a cheap test
/// before the bare-secret-key scan).
fn has_base64_run(s: &str, n: usize) -> bool {
    let mut run = 0;
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' {
            run += 1;
            if run >= n {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
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
        let quote = opening_quote(sep.as_str());
        // `"pass": "…"` is a JSON key holding a string; `pass=3` is a count.
        let quoted_key = c.get(1).is_some_and(|k| k.as_str().starts_with(['"', '\'', '\\']));
        let secret =
            is_secret_name(key.as_str()) || (quoted_key && quote.is_some() && is_secret_json_key(key.as_str()));
        // `?code=` / `&code=`: a function key or an authorization code in a URL.
        let in_query = s[..whole.start()].ends_with(['?', '&', '#']);
        let hinted = hints_secret(key.as_str()) || (in_query && key.as_str().eq_ignore_ascii_case("code"));
        if !starts_word || !(secret || hinted) {
            continue;
        }
        let rest = &s[pos..];
        // In a URL (`;jsessionid=…?q=1`, `?key=…#top`) the query and fragment end a value too.
        let url_param = in_query || s[..whole.start()].ends_with(';');
        let ends =
            |ch: char| ch.is_whitespace() || ",;&\"'}])<>\\".contains(ch) || url_param && (ch == '?' || ch == '#');
        let value_len = match quote {
            Some(q) => closing_quote(rest, q),
            None => rest.find(ends).unwrap_or(rest.len()),
        };
        let value = &rest[..value_len];
        // A name that only hints at a secret needs a value shaped like one.
        if !secret && !looks_random(value) {
            continue;
        }
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

/// A word of prose rather than a credential: letters only, all small or
/// Capitalised, shorter than 20 ("expired", "Detection").
fn is_prose_word(w: &str) -> bool {
    let b = w.as_bytes();
    !b.is_empty()
        && b.len() < 20
        && b.iter().all(u8::is_ascii_alphabetic)
        && b.iter().skip(1).all(u8::is_ascii_lowercase)
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

    // ---- XML elements: the bounds the expression no longer counts

    #[test]
    fn an_xml_element_named_secret_should_lose_its_text_within_the_bounds_only() {
        let word = "6KGS9G0vobmPsBje";
        let at_bound = format!("{word}{}", "x".repeat(XML_TEXT_MAX - word.len()));
        let out = redact_xml_elements(&format!("<a><password>{at_bound}</password></a>"));
        assert_eq!(out, format!("<a><password>{REDACTED}</password></a>"));
        // Past the text bound, as past the name bound, the element stays as read.
        let past = format!("<password>{at_bound}y</password>");
        assert_eq!(redact_xml_elements(&past), past);
        let long = format!("ns{}:password", "n".repeat(XML_NAME_MAX - 11));
        assert_eq!(long.chars().count(), XML_NAME_MAX);
        assert_eq!(redact_xml_elements(&format!("<{long}>{word}</{long}>")), format!("<{long}>{REDACTED}</{long}>"));
        let longer = format!("n{long}");
        let kept = format!("<{longer}>{word}</{longer}>");
        assert_eq!(redact_xml_elements(&kept), kept);
        // Different closing tag, or a text already redacted: unchanged.
        let mismatched = format!("<password>{word}</passwd>");
        assert_eq!(redact_xml_elements(&mismatched), mismatched);
        // Bounds count characters, not bytes.
        let wide = format!("{word}{}", "é".repeat(XML_TEXT_MAX - word.len()));
        assert_eq!(
            redact_xml_elements(&format!("<password>{wide}</password>")),
            format!("<password>{REDACTED}</password>")
        );
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
    fn values_shaped_like_keys_should_look_random_and_names_ids_and_paths_should_not() {
        for random in [
            "e93facc04764012d7bfb002500d5d1a6",
            "Zq8vR2pLxW4mN7bT1cY5dK3fH9gJ6sA0",
            "dXNlcjpwYXNzd29yZDEyMzQ1Njc4OQ==",
            "4IyXs3V00sL0JKulBKPSMna3EH6ScBPV_jmx3n",
            "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ] {
            assert!(looks_random(random), "{random}");
        }
        for readable in [
            "api.example.com",
            "payments-prod",
            "CorrectHorseBatteryStaple",
            "production-us-east-1",
            "subnet-0a1b2c3d4e5f60718",
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "https://vault.internal:8200/v1/secret/data/api",
            "/run/secrets/db_password",
            "incidents/prod/api/inc-20261206-062654-115e76/task-definition.json",
            "reports/daily/2026-11-20/report.html",
            "min-length-12",
            "ecs-container",
            "RS256",
            "1795183262000",
            "short",
            "aaaaaaaaaaaaaaaaaaaaaaaa",
            "has spaces in it and is prose",
        ] {
            assert!(!looks_random(readable), "{readable}");
        }
    }

    #[test]
    fn secrets_on_command_lines_should_go_and_file_or_variable_references_stay() {
        for (line, kept) in [
            ("-secret Zq8vR2pLx ok", "-secret ***REDACTED*** ok"),
            ("run\t-pass Zq8vR2pLx", "run\t-pass ***REDACTED***"),
            ("app --client-secret=Zq8vR2pLx --port 80", "app --client-secret=***REDACTED*** --port 80"),
            ("app --password $DB_PASSWORD --port 80", "app --password $DB_PASSWORD --port 80"),
            ("app --private-key /etc/tls/key.pem", "app --private-key /etc/tls/key.pem"),
            ("mysql -u root -p app", "mysql -u root -p app"),
        ] {
            assert_eq!(r().text(line), kept, "{line}");
        }
    }

    #[test]
    fn authorization_schemes_should_lose_credentials_but_not_prose() {
        for (line, kept) in [
            (
                "Authorization: Bot MzYwODAxNTA2NzM3NjcyODU2OA.hQ5KgH.4IyXs3V00sL0JKulBKPSMna3EH6S",
                "Authorization: Bot ",
            ),
            ("Authorization: SSWS 00aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5zA7b", "Authorization: SSWS "),
            ("authorization: GenieKey 3fa85f64-5717-4562-b3fc-2c963f66afa6", "authorization: GenieKey "),
        ] {
            assert_eq!(r().text(line), format!("{kept}{REDACTED}"), "{line}");
        }
        for prose in ["Authorization: bot detection enabled", "authorization: token expired, renewing"] {
            assert_eq!(r().text(prose), prose);
        }
    }

    #[test]
    fn names_that_hint_at_a_secret_should_redact_random_values_only() {
        assert!(hints_secret("PAGERDUTY_ROUTING_KEY") && hints_secret("mapsKey") && hints_secret("X-Client-Auth"));
        assert!(!hints_secret("KMS_KEY_ID") && !hints_secret("PUBLIC_KEY") && !hints_secret("TOKEN_TTL"));
        assert!(!hints_secret("LOG_LEVEL") && !hints_secret("region"));
        assert_eq!(r().text("ROUTING_KEY=e93facc04764012d7bfb002500d5d1a6"), "ROUTING_KEY=***REDACTED***");
        assert_eq!(r().text("CACHE_KEY=orders-v2 ok"), "CACHE_KEY=orders-v2 ok");
        let mut v = json!({"objectKey": "incidents/prod/api/inc-1/report.md", "signingMaterial": "Zq8vR2pLxW4mN7bT1cY5dK3fH9gJ6sA0"});
        r().json(&mut v);
        assert_eq!(v, json!({"objectKey": "incidents/prod/api/inc-1/report.md", "signingMaterial": REDACTED}));
        let env = json!([{"name": "PAGERDUTY_INTEGRATION_KEY", "value": "e93facc04764012d7bfb002500d5d1a6"},
                         {"name": "PAGERDUTY_SERVICE_KEY_NAME", "value": "orders-primary"}]);
        assert_eq!(secret_values_in(&env), ["e93facc04764012d7bfb002500d5d1a6"]);
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

    // ---- the shapes of the security issue

    #[test]
    fn url_passwords_holding_slash_at_or_hash_should_be_redacted_keeping_user_and_host() {
        assert_eq!(r().text("postgres://app:ab/cd+ef@db:5432/x"), "postgres://app:***REDACTED***@db:5432/x");
        assert_eq!(r().text("postgres://app:p@ss@db/x"), "postgres://app:***REDACTED***@db/x");
        assert_eq!(
            r().text("amqp://api:Zq8!vR2#pL@rabbit:5672/vhost ok"),
            "amqp://api:***REDACTED***@rabbit:5672/vhost ok"
        );
        assert_eq!(r().text("http://u:pw1@[::1]:8080/x"), "http://u:***REDACTED***@[::1]:8080/x");
        assert_eq!(r().text("https://u:p@host/path@v1"), "https://u:***REDACTED***@host/path@v1");
        for kept in [
            "https://example.com:8443/path@v1",
            "docker://registry:5000/team/app@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "http://localhost:8080/health",
            "ssh://git@github.com/org/repo.git",
        ] {
            assert_eq!(r().text(kept), kept);
        }
    }

    #[test]
    fn slack_tokens_should_be_redacted_anywhere() {
        for token in [
            "xoxb-123456789012-1234567890123-rwZbqcabUGJmGEp7CgQ0PBQF",
            "xoxp-123456789012-123456789012-1234567890123-0123456789abcdef0123456789abcdef",
            "xapp-1-A0123456789-1234567890123-0123456789abcdef0123456789abcdef",
            "xoxa-2-123456789012-abcdefghijkl",
            "xoxr-123456789012-abcdefghijkl",
            "xoxs-123456789012-abcdefghijkl",
            "xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAxMi0xMjM0",
        ] {
            assert_eq!(
                r().text(&format!("slack init with {token}, retrying")),
                "slack init with ***REDACTED***, retrying"
            );
        }
    }

    #[test]
    fn bare_aws_secret_keys_should_be_redacted_but_not_hashes_paths_or_names() {
        assert_eq!(
            r().text("AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            "***REDACTED*** ***REDACTED***"
        );
        assert_eq!(
            r().text("AWS_REGION=us-east-1\nje7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY\n"),
            "AWS_REGION=us-east-1\n***REDACTED***\n"
        );
        for kept in [
            "3f786850e387550fdab836ed7e6dc881de23001b",
            "3F786850E387550FDAB836ED7E6DC881DE23001B",
            "ecs/api/0123456789abcdef0123456789abcdef",
            "ecs/Api/0123456789abcdef0123456789abcdef",
            "AbstractSingletonProxyFactoryBeanHandler",
            "x_wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYX",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ] {
            assert_eq!(r().text(kept), kept);
        }
    }

    #[test]
    fn a_key_without_end_line_should_not_swallow_the_rest_of_the_message() {
        let alert = concat!(
            "ALERT api: task stopped\n",
            "Reason: failed to load -----BEGIN PRIVATE KEY-----\n",
            "PtYgjmUhBel31iEl2hpChYgCfrL1spNxnyVmihA/2O76UMFxFkM/R5Kjp1vRt+1f\n",
            "jORS/6ilI8ihN5KXSc7Tvo/hBKqFYY/kv5ZJr3J1TWDtkwtDDb+xHKas1VOqg6YY\n",
            "dJ8HyS5SUkCnD8zRA9a9SkpX==\n",
            "Actions\n",
            "Action taken: restarted the service\n",
            "Next steps: rotate the key\n",
            "https://console.aws.amazon.com/ecs/v2/clusters/prod/services/api\n",
        );
        assert_eq!(
            r().text(alert),
            concat!(
                "ALERT api: task stopped\n",
                "Reason: failed to load -----BEGIN PRIVATE KEY-----\n",
                "***REDACTED***\n",
                "Actions\n",
                "Action taken: restarted the service\n",
                "Next steps: rotate the key\n",
                "https://console.aws.amazon.com/ecs/v2/clusters/prod/services/api\n",
            )
        );
        // Cut right after a full-width line: the next line of prose is kept.
        let cut =
            "-----BEGIN PRIVATE KEY-----\nPtYgjmUhBel31iEl2hpChYgCfrL1spNxnyVmihA/2O76UMFxFkM/R5Kjp1vRt+1f\nRestart";
        assert_eq!(r().text(cut), "-----BEGIN PRIVATE KEY-----\n***REDACTED***\nRestart");
        // A BEGIN line quoted in prose has no body to redact.
        let prose = "error: -----BEGIN PRIVATE KEY----- is missing its END line";
        assert_eq!(r().text(prose), prose);
    }

    #[test]
    fn pem_keys_flattened_escaped_or_encrypted_should_be_redacted_whole() {
        let flat = "key=-----BEGIN PRIVATE KEY----- PtYgjmUhBel31iEl2hpChYgCfrL1spNxnyVmihA/2O76UMFxFkM/R5Kjp1vRt+1f dJ8HyS5SUkCnD8zRA9a9SkpX== -----END PRIVATE KEY----- loaded";
        assert_eq!(r().text(flat), "key=-----BEGIN PRIVATE KEY----- ***REDACTED*** -----END PRIVATE KEY----- loaded");
        let escaped = r#"{"k":"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oo\nAwEHoUQDQgAE\n-----END EC PRIVATE KEY-----\n","n":1}"#;
        assert_eq!(
            r().text(escaped),
            r#"{"k":"-----BEGIN EC PRIVATE KEY-----\n***REDACTED***\n-----END EC PRIVATE KEY-----\n","n":1}"#
        );
        let encrypted = concat!(
            "-----BEGIN RSA PRIVATE KEY-----\n",
            "Proc-Type: 4,ENCRYPTED\n",
            "DEK-Info: AES-128-CBC,3F17F5316E2BAC89\n",
            "\n",
            "PtYgjmUhBel31iEl2hpChYgCfrL1spNxnyVmihA/2O76UMFxFkM/R5Kjp1vRt+1f\n",
            "dJ8HyS5SUkCnD8zRA9a9SkpX==\n",
            "-----END RSA PRIVATE KEY-----"
        );
        assert_eq!(
            r().text(encrypted),
            "-----BEGIN RSA PRIVATE KEY-----\n***REDACTED***\n-----END RSA PRIVATE KEY-----"
        );
        let two = "-----BEGIN PRIVATE KEY-----\nAAAA1111\n-----END PRIVATE KEY----- and -----BEGIN PRIVATE KEY-----\nBBBB2222\n-----END PRIVATE KEY-----";
        let out = r().text(two);
        assert!(!out.contains("AAAA1111") && !out.contains("BBBB2222") && out.contains(" and "), "{out}");
    }

    const KEY_LINES: [&str; 8] = [
        "2024-05-01T10:00:00Z loading TLS key",
        "-----BEGIN PRIVATE KEY-----",
        "PtYgjmUhBel31iEl2hpChYgCfrL1spNxnyVmihA/2O76UMFxFkM/R5Kjp1vRt+1f",
        "jORS/6ilI8ihN5KXSc7Tvo/hBKqFYY/kv5ZJr3J1TWDtkwtDDb+xHKas1VOqg6YY",
        "dJ8HyS5SUkCnD8zRA9a9SkpX==",
        "-----END PRIVATE KEY-----",
        "listening on :8443",
        "",
    ];

    #[test]
    fn lines_should_redact_each_body_line_of_a_key_begun_in_an_earlier_line() {
        let out = r().lines(&KEY_LINES);
        assert_eq!(
            out,
            [
                "2024-05-01T10:00:00Z loading TLS key",
                "-----BEGIN PRIVATE KEY-----",
                REDACTED,
                REDACTED,
                REDACTED,
                "-----END PRIVATE KEY-----",
                "listening on :8443",
                "",
            ]
        );
        let owned: Vec<String> = KEY_LINES.iter().map(|l| l.to_string()).collect();
        assert_eq!(r().lines(&owned), out, "&[String] too");
        // Per line, text() could not know: the reason for lines().
        assert_eq!(r().text(KEY_LINES[3]), KEY_LINES[3]);
    }

    #[test]
    fn lines_should_keep_every_line_after_the_body_of_a_key_without_end() {
        let lines = [
            "ERROR bad key -----BEGIN RSA PRIVATE KEY-----",
            "PtYgjmUhBel31iEl2hpChYgCfrL1spNxnyVmihA/2O76UMFxFkM/R5Kjp1vRt+1f",
            "Actions",
            "restarted task 0123456789abcdef0123456789abcdef",
        ];
        assert_eq!(r().lines(&lines), [lines[0], REDACTED, lines[2], lines[3]],);
    }

    #[test]
    fn lines_should_redact_lone_body_lines_interleaved_after_a_begin() {
        let lines = [
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "z9w3QlY7Zkuvqdt7s8Stqcbnr3yBdGBLEPH1qhT61qtc4xatws8phP9nhFyJfm5di4PzJ5",
            "WARN slow request: GET /health took 1200 ms",
            "9FHz5r1pY4OjE2jBMptUsGr7CmY+uCu3ZR1zTOlUcR64cXQLioDnkHIfxIq2HZt/PlJhx2",
            "-----END OPENSSH PRIVATE KEY-----",
            "ZYn9ZhyiA4uoRgnatmUdjAWtGSU8po+799NksnRH9ucAUsdMlHUvTCQCyEZDz/Td",
        ];
        assert_eq!(r().lines(&lines), [lines[0], REDACTED, lines[2], REDACTED, lines[4], lines[5]]);
        // No END line at all: the region lasts, prose in it stays.
        let lines = [lines[0], lines[1], lines[2], lines[3], "done: 3 keys loaded"];
        assert_eq!(r().lines(&lines), [lines[0], REDACTED, lines[2], REDACTED, lines[4]]);
        assert!(r().lines(&[] as &[&str]).is_empty());
    }

    #[test]
    fn cookie_headers_should_lose_their_values_and_keep_their_names() {
        assert_eq!(
            r().text("Cookie: session=XN5LvSHV0fkxuxe0tGlhP5sSv07G4AOk; theme=dark"),
            "Cookie: session=***REDACTED***; theme=***REDACTED***"
        );
        assert_eq!(
            r().text("set-cookie: sid=Hs0GnG5mAld; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT; HttpOnly"),
            "set-cookie: sid=***REDACTED***; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT; HttpOnly"
        );
        assert_eq!(
            r().text(r#"{"headers":{"Cookie":"a=1x; b=2y","Host":"api"}}"#),
            r#"{"headers":{"Cookie":"a=***REDACTED***; b=***REDACTED***","Host":"api"}}"#
        );
        assert_eq!(r().text("Cookie: 9f8e7d6c5b4a3928"), "Cookie: ***REDACTED***");
        for kept in ["Cookie consent banner shown", "cookie: none", "set-cookie header missing"] {
            assert_eq!(r().text(kept), kept);
        }
    }

    #[test]
    fn json_cookie_headers_should_lose_their_values_and_keep_their_names() {
        let mut v = json!({
            "headers": {"cookie": "sid=abc123; theme=dark", "user-agent": "curl/8"},
            "multiValueHeaders": {"Set-Cookie": ["sid=abc123; Path=/; Secure", 7]},
            "cookies": ["sid=abc123"],
            "cf": [{"key": "Cookie", "value": "sid=abc123"}]
        });
        r().json(&mut v);
        assert_eq!(v["headers"]["cookie"], "sid=***REDACTED***; theme=***REDACTED***");
        assert_eq!(v["headers"]["user-agent"], "curl/8");
        assert_eq!(v["multiValueHeaders"]["Set-Cookie"], json!(["sid=***REDACTED***; Path=/; Secure", 7]));
        assert_eq!(v["cookies"][0], "sid=***REDACTED***");
        assert_eq!(v["cf"][0]["value"], "sid=***REDACTED***");
        assert_eq!(v["cf"][0]["key"], "Cookie");
    }

    #[test]
    fn presigned_url_signatures_and_credentials_should_be_redacted() {
        assert_eq!(
            r().text("GET https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=300&X-Amz-Security-Token=IQoJb3JpZ2lu%2Fabc&X-Amz-SignedHeaders=host&X-Amz-Signature=65f846d34530325fed10a47b851832b6 403"),
            "GET https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***REDACTED***&X-Amz-Date=20240101T000000Z&X-Amz-Expires=300&X-Amz-Security-Token=***REDACTED***&X-Amz-SignedHeaders=host&X-Amz-Signature=***REDACTED*** 403"
        );
        assert_eq!(
            r().text("https://a.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&sig=nYE8UV8JMi5nKaLvR61T5WAry%3D"),
            "https://a.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&sig=***REDACTED***"
        );
        assert_eq!(
            r().text("https://d1.cloudfront.net/v.mp4?Expires=1700000000&Signature=KfgFoeOASl1YCJlS24R~5gA2q&Key-Pair-Id=K2JCJMDEHXQW5F"),
            "https://d1.cloudfront.net/v.mp4?Expires=1700000000&Signature=***REDACTED***&Key-Pair-Id=K2JCJMDEHXQW5F"
        );
        assert_eq!(
            r().text("https://storage.googleapis.com/b/o?X-Goog-Signature=255bc509cb3a"),
            "https://storage.googleapis.com/b/o?X-Goog-Signature=***REDACTED***"
        );
    }

    #[test]
    fn json_pass_and_pw_keys_should_be_secret_but_not_the_bare_variable_pass() {
        let mut v = json!({"user": "bob", "pass": "hunter2", "pwd": "x1", "pw": "y2", "PASS": 3,
                           "environment": [{"name": "PASS", "value": "3"}]});
        r().json(&mut v);
        assert_eq!(v["pass"], REDACTED);
        assert_eq!(v["pwd"], REDACTED);
        assert_eq!(v["pw"], REDACTED);
        assert_eq!(v["PASS"], 3, "a number under PASS is a count");
        assert_eq!(v["environment"][0]["value"], "3");
        assert_eq!(r().text(r#"{"user":"bob","pass":"hunter2"}"#), r#"{"user":"bob","pass":"***REDACTED***"}"#);
        assert_eq!(r().text("suite done: pass=3 fail=0"), "suite done: pass=3 fail=0");
        assert!(!is_secret_name("PASS"));
        let values = secret_values_in(&json!({"db": {"pass": "hunter2-db"}}));
        assert_eq!(values, ["hunter2-db"]);
    }

    #[test]
    fn vendor_tokens_should_be_redacted_but_not_lookalike_names() {
        let out = r().text("deploy sk-proj-qv81RKMGHZEM9YpvujA-C5Q52ryFlwRlOEVHzc0X0AWIRh ok");
        assert_eq!(out, "deploy ***REDACTED*** ok");
        for kept in
            ["sk-payments-worker-deployment-blue", "task-definition/api:42", "skipping key-rotation step", "SKU 1234"]
        {
            assert_eq!(r().text(kept), kept);
        }
    }

    // ---- hostile input

    #[test]
    fn deeply_nested_json_should_be_redacted_without_overflowing_the_stack() {
        let depth = 10_000;
        let mut v = json!({"password": "hunter2", "note": "AKIAIOSFODNN7EXAMPLE"});
        for i in 0..depth {
            // Not json!: it would serialize `v` recursively.
            v = if i % 2 == 0 {
                Value::Array(vec![v])
            } else {
                Value::Object([("child".to_string(), v)].into_iter().collect())
            };
        }
        assert_eq!(secret_values_in(&v), ["hunter2"]);
        r().json(&mut v);
        let mut at = &v;
        while let Some(next) = at.get(0).or_else(|| at.get("child")) {
            at = next;
        }
        assert_eq!(at["password"], REDACTED);
        assert_eq!(at["note"], REDACTED);
        drop_iteratively(v);
    }

    /// serde_json drops recursively; take a deep value apart by hand.
    fn drop_iteratively(v: Value) {
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                Value::Array(items) => stack.extend(items),
                Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
                _ => {}
            }
        }
    }

    #[test]
    fn control_characters_replacement_characters_and_odd_bytes_should_not_panic() {
        let odd = "\u{0}\u{1}\u{7f}\u{1b}[31m\u{fffd}\u{fffd}password=\u{fffd}x\r\n\t\u{feff}-----BEGIN PRIVATE KEY-----\u{fffd}\\\\n\\";
        for s in [
            odd,
            "\u{fffd}",
            "@",
            "a://b:",
            "a://b:@",
            "x://:@[",
            "Cookie:",
            "Set-Cookie: =;=;",
            "-----BEGIN PRIVATE KEY-----\\",
            "-----BEGIN PRIVATE KEY-----\n-----END ",
        ] {
            let _ = r().text(s);
            let _ = r().lines(&[s, s]);
        }
        assert_eq!(
            r().text("bad bytes \u{fffd}\u{fffd} token=abc\u{fffd}1 end"),
            "bad bytes \u{fffd}\u{fffd} token=***REDACTED*** end"
        );
    }

    #[test]
    fn redaction_time_should_stay_linear_in_long_hostile_lines() {
        // Each piece, repeated (most without a space), drives one scanner
        // hard: four times the input should take about four times as long.
        for piece in [
            "-----BEGIN PRIVATE KEY----- AAAA a://u:p@ Cookie: a=b; password=x \u{fffd} wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY ",
            "a://u:@",
            "a://u:[@x",
            ",wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY:",
            "Cookie:a=",
            "-----BEGIN PRIVATE KEY-----a",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n",
            "\"pass\":\"",
            "{\"name\":\"DB_PASSWORD\",\"value\":\"",
            "token=",
            "Authorization: Bearer ",
        ] {
            let time = |n: usize| {
                let s = piece.repeat(n / piece.len());
                let start = std::time::Instant::now();
                let _ = r().text(&s);
                start.elapsed()
            };
            let small = time(8_000);
            let large = time(32_000);
            // Generous: the machine may be busy; quadratic would be 16 times.
            assert!(large < small * 10 + std::time::Duration::from_millis(300), "{piece:?}: {small:?} then {large:?}");
        }
    }

    #[test]
    fn lines_of_100_kb_and_more_should_be_redacted() {
        let piece =
            "ERROR \u{1b}[31m\u{fffd} password=hunter2 Cookie: sid=abc123 -----BEGIN PRIVATE KEY-----\nAAAA1111\n ";
        let line = piece.repeat(120_000 / piece.len());
        let out = r().text(&line);
        assert!(!out.contains("hunter2") && !out.contains("abc123") && !out.contains("AAAA1111"));
        assert_eq!(out.matches("ERROR").count(), line.matches("ERROR").count());
        let mut v = json!({"msg": line, "password": "hunter2"});
        r().json(&mut v);
        assert!(!v.to_string().contains("hunter2"));
    }

    // ---- corpora

    /// The corpus: fake secrets in the shapes public secret scanners document,
    /// each in the line it would appear in, and readable look-alikes. One
    /// file for these unit tests and the integration test that plants it in
    /// every input (`tests/tests/it/redaction.rs`).
    const CORPUS_JSON: &str = include_str!("../../tests/fixtures/redaction/corpus.json");

    struct Leak {
        shape: String,
        family: String,
        text: String,
        secret: String,
    }

    struct Corpus {
        leaks: Vec<Leak>,
        readable: Vec<String>,
    }

    fn corpus() -> &'static Corpus {
        static CORPUS: LazyLock<Corpus> = LazyLock::new(|| {
            let v: Value = serde_json::from_str(CORPUS_JSON).expect("the corpus is JSON");
            let s = |x: &Value| x.as_str().expect("a string").to_string();
            Corpus {
                leaks: v["leaks"]
                    .as_array()
                    .expect("leaks")
                    .iter()
                    .map(|l| Leak {
                        shape: s(&l["shape"]),
                        family: s(&l["family"]),
                        text: s(&l["text"]),
                        secret: s(&l["secret"]),
                    })
                    .collect(),
                readable: v["readable"].as_array().expect("readable").iter().map(s).collect(),
            }
        });
        &CORPUS
    }

    #[test]
    fn corpora_should_hold_at_least_150_shapes_and_60_readable_look_alikes() {
        let c = corpus();
        assert!(c.leaks.len() >= 150, "{} secret shapes", c.leaks.len());
        assert!(c.readable.len() >= 60, "{} readable look-alikes", c.readable.len());
        let mut names: Vec<&str> = c.leaks.iter().map(|l| l.shape.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), c.leaks.len(), "shape names are distinct");
        for l in &c.leaks {
            assert!(l.text.contains(&l.secret), "{}: the secret is in its line", l.shape);
            assert!(!l.family.is_empty() && l.secret.len() >= 4, "{}", l.shape);
            assert_ne!(l.text, l.secret, "{}: a line, not the bare secret", l.shape);
        }
        let mut readable = c.readable.clone();
        readable.sort();
        readable.dedup();
        assert_eq!(readable.len(), c.readable.len(), "readable values are distinct");
    }

    fn corpus_redactor() -> Redactor {
        Redactor::with_known_secrets(["correct-horse-battery-staple".to_string()])
    }

    /// The carriers a secret reaches us in, as text.
    fn carriers(text: &str) -> [(&'static str, String); 5] {
        [
            ("plain log line", format!("2024-05-01T10:00:00.123Z ERROR worker: {text}")),
            ("key=value", format!("level=error service=api msg={text} retry=2")),
            ("URL", format!("GET https://api.example.com/v1/hook?ctx={text} HTTP/1.1")),
            ("HTTP header line", format!("X-Debug-Context: {text}")),
            ("ECS service event", format!("(service api) failed to launch a task with (error {text}).")),
        ]
    }

    /// The words around the secret that are no secret on their own: they
    /// must survive its redaction. The ones touching the secret are cut at it
    /// (`postgres://app:` and `@db:5432/x`).
    fn context_of<'a>(red: &Redactor, text: &'a str, secret: &str) -> Vec<&'a str> {
        let Some(at) = text.find(secret) else { return Vec::new() };
        let (before, after) = (&text[..at], &text[at + secret.len()..]);
        before.split_whitespace().chain(after.split_whitespace()).filter(|w| red.text(w) == *w).collect()
    }

    #[test]
    fn every_shape_of_the_leak_corpus_should_vanish_in_every_carrier_keeping_its_context() {
        let red = corpus_redactor();
        let mut checked = 0;
        let mut failures = Vec::new();
        for Leak { shape: name, text, secret, .. } in &corpus().leaks {
            let context = context_of(&red, text, secret);
            if context.is_empty() {
                failures.push(format!("{name}: plant some context"));
            }
            let mut outputs: Vec<(&str, String)> = Vec::new();
            for (carrier, line) in carriers(text) {
                outputs.push((carrier, red.text(&line)));
                let lines: Vec<&str> = line.split('\n').collect();
                outputs.push(("log lines", red.lines(&lines).join("\n")));
            }
            let raw = json!({"level": "error", "msg": text}).to_string();
            let mut parsed: Value = serde_json::from_str(&raw).expect("JSON");
            red.json(&mut parsed);
            outputs.push(("JSON log line", parsed["msg"].as_str().unwrap_or_default().to_string()));
            for (carrier, out) in outputs {
                if out.contains(secret.as_str()) {
                    failures.push(format!("{name} leaked in a {carrier}: {out}"));
                }
                for word in &context {
                    if !out.contains(word) {
                        failures.push(format!("{name} lost {word:?} in a {carrier}: {out}"));
                    }
                }
                if red.text(&out) != out {
                    failures.push(format!("{name}: redaction is not stable in a {carrier}: {out}"));
                }
                checked += 1;
            }
        }
        assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
        assert_eq!(checked, corpus().leaks.len() * 11);
    }

    #[test]
    fn every_entry_of_the_keep_corpus_should_stay_byte_identical() {
        let red = corpus_redactor();
        let mut failures = Vec::new();
        for text in &corpus().readable {
            let out = red.text(text);
            if out != *text {
                failures.push(format!("text: {text:?} -> {out:?}"));
            }
            let lines: Vec<&str> = text.split('\n').collect();
            if red.lines(&lines) != lines {
                failures.push(format!("as log lines: {text:?}"));
            }
            let mut v = json!({"msg": text});
            red.json(&mut v);
            if v["msg"] != *text {
                failures.push(format!("in JSON: {text:?} -> {}", v["msg"]));
            }
        }
        assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
    }

    /// Every family of the corpus, for the README's list (which must name each).
    #[test]
    fn the_readme_should_list_every_family_of_the_corpus() {
        let readme = include_str!("../../README.md").split_whitespace().collect::<Vec<_>>().join(" ");
        let mut families: Vec<&str> = corpus().leaks.iter().map(|l| l.family.as_str()).collect();
        families.sort_unstable();
        families.dedup();
        let missing: Vec<&&str> = families.iter().filter(|f| !readme.contains(&format!("**{f}**"))).collect();
        assert!(missing.is_empty(), "README lacks the families {missing:?}");
    }

    /// Throughput of `text` over typical log lines (most without any secret)
    /// and some with one: `cargo test --release -p autopilot-shared --lib
    /// redact::tests::bench -- --ignored --nocapture`. Prints ns per line.
    #[test]
    #[ignore = "a measurement, run by hand in release"]
    fn bench_text_throughput() {
        let lines: Vec<String> = [
            "2026-11-20T14:02:11.123Z INFO  GET /health 200 3ms user=bob",
            "2026-11-20T14:02:11.456Z ERROR worker: pool exhausted after 30s (active=20 idle=0 waiting=14)",
            "level=info msg=\"request done\" method=POST path=/v1/orders status=201 duration_ms=42 request_id=3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "{\"level\":\"warn\",\"ts\":1795183331.5,\"msg\":\"slow query\",\"table\":\"orders\",\"rows\":1204,\"ms\":812}",
            "\tat com.example.orders.OrderService.place(OrderService.java:142)",
            "Traceback (most recent call last): File \"/app/worker.py\", line 88, in run",
            "panic: runtime error: index out of range [3] with length 3",
            "INFO  Started OrdersApplication in 4.21 seconds (process running for 4.9)",
            "connecting to postgres://db.internal:5432/app as app",
            "image 111122223333.dkr.ecr.us-east-1.amazonaws.com/api@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            "deployed commit 3f786850e387550fdab836ed7e6dc881de23001b to prod",
            "login user=bob password=hunter2x9 ok",
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "postgres://app:pw123@db.internal:5432/app",
            "using key AKIAIOSFODNN7EXAMPLE now",
            "git auth ghp_8X0rGd2hWcQ5fJ7Vt1yZb4Lk9Nm3Pq6Rs2Tu now",
            "Cookie: session=XN5LvSHV0fkxuxe0tGlhP5sSv07G4AOk; theme=dark",
        ]
        .iter()
        .map(|l| l.to_string())
        .collect();
        let red = Redactor::with_known_secrets(["correct-horse-battery-staple".to_string()]);
        let rounds = 3_000;
        let started = std::time::Instant::now();
        let mut bytes = 0usize;
        for _ in 0..rounds {
            for l in &lines {
                bytes += red.text(l).len();
            }
        }
        let elapsed = started.elapsed();
        let n = rounds * lines.len();
        println!(
            "BENCH redact text: {n} lines, {:.0} ns/line, {:.1} MB/s (out {bytes} B)",
            elapsed.as_nanos() as f64 / n as f64,
            lines.iter().map(String::len).sum::<usize>() as f64 * rounds as f64 / elapsed.as_secs_f64() / 1e6
        );
        // A 2 MiB page of ordinary text (the daily report's HTML is redacted whole).
        let page: String = lines[..12].join("\n").repeat(2 * 1024 * 1024 / lines[..12].join("\n").len());
        let started = std::time::Instant::now();
        let out = red.text(&page);
        println!("BENCH redact page: {} KiB in {:.1} ms", page.len() / 1024, started.elapsed().as_secs_f64() * 1e3);
        assert!(out.len() >= page.len() / 2);
    }

    // ---- properties (PROPTEST_CASES=1000000 for a long run; 256 by default)

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Fragments that reach every scanner, glued with arbitrary text
        /// (control characters and U+FFFD included).
        fn hostile_text() -> impl Strategy<Value = String> {
            let fragment = prop_oneof![
                any::<String>(),
                "[\\x00-\\x1f\\x7f\u{fffd}\\\\\"'=:;,@/#?&\\[\\]{} \n\r\t-]{0,8}",
                "[A-Za-z0-9+/=]{1,80}",
                Just("-----BEGIN PRIVATE KEY-----".to_string()),
                Just("-----END PRIVATE KEY-----".to_string()),
                Just("Proc-Type: 4,ENCRYPTED\n".to_string()),
                Just("\\n".to_string()),
                Just("postgres://app:".to_string()),
                Just("Cookie: ".to_string()),
                Just("Set-Cookie: a=".to_string()),
                Just("password=".to_string()),
                Just("\"pass\": \"".to_string()),
                Just("Authorization: Bearer ".to_string()),
                Just("?X-Amz-Signature=".to_string()),
                Just("AKIAIOSFODNN7EXAMPLE".to_string()),
                Just("xoxb-123456789012-".to_string()),
                Just("{\"name\":\"DB_PASSWORD\",\"value\":\"".to_string()),
            ];
            prop::collection::vec(fragment, 0..24).prop_map(|parts| parts.concat())
        }

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                prop::sample::select(vec![
                    "password",
                    "pass",
                    "pwd",
                    "Cookie",
                    "set-cookie",
                    "cookies",
                    "name",
                    "value",
                    "Key",
                    "Value",
                    "token",
                    "note"
                ])
                .prop_map(str::to_string),
            ]
        }

        fn arbitrary_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                hostile_text().prop_map(Value::String),
            ];
            leaf.prop_recursive(8, 128, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                    prop::collection::vec((key(), inner), 0..8)
                        .prop_map(|entries| Value::Object(entries.into_iter().collect())),
                ]
            })
        }

        fn config() -> ProptestConfig {
            // No regression files: they would land in the source tree.
            ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
        }

        proptest! {
            #![proptest_config(config())]

            /// Hostile text and JSON never panic, and a known secret planted
            /// anywhere in them never comes out, whatever surrounds it.
            #[test]
            fn redaction_never_panics_and_never_grows_secrets(
                before in hostile_text(),
                after in hostile_text(),
                secret in "[A-Za-z0-9]{24}",
                mut doc in arbitrary_json(),
            ) {
                let red = Redactor::with_known_secrets([secret.clone()]);
                let _ = red.text(&before);
                let planted = format!("{before}{secret}{after}");
                let out = red.text(&planted);
                prop_assert!(!out.contains(&secret), "{out:?}");

                let lines: Vec<&str> = planted.split('\n').collect();
                let out = red.lines(&lines);
                prop_assert_eq!(out.len(), lines.len());
                prop_assert!(out.iter().all(|line| !line.contains(&secret)), "{out:?}");

                red.json(&mut doc);
                let mut doc = json!({"msg": planted, "doc": doc});
                red.json(&mut doc);
                prop_assert!(!doc.to_string().contains(&secret));
            }

            /// Arbitrary strings, control characters included, through every entry point.
            #[test]
            fn arbitrary_strings_never_panic(s in any::<String>(), c in "[\\x00-\\x1f\\x7f]{0,16}") {
                let s = format!("{c}{s}{c}");
                let _ = r().text(&s);
                let _ = r().lines(&[s.as_str(), s.as_str()]);
                let _ = secret_values_in(&Value::String(s.clone()));
                let _ = is_secret_name(&s);
            }

            /// Prose after a key without its END line always survives.
            #[test]
            fn prose_after_an_unterminated_key_survives(
                body in prop::collection::vec("[A-Za-z0-9+/]{64}", 1..6),
                tail in "[A-Za-z0-9+/]{1,63}",
                prose in prop::collection::vec("[A-Za-z]{1,12}( [a-z]{1,12}){1,6}[.:]?", 1..6),
            ) {
                let text = format!("-----BEGIN PRIVATE KEY-----\n{}\n{tail}\n{}", body.join("\n"), prose.join("\n"));
                let out = r().text(&text);
                for line in &prose {
                    prop_assert!(out.contains(line.as_str()), "{line:?} lost: {out:?}");
                }
                for line in &body {
                    prop_assert!(!out.contains(line.as_str()), "{out:?}");
                }
            }
        }
    }
}
