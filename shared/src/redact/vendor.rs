//! Tokens whose own text says what they are: a vendor prefix (`ghp_`,
//! `xoxb-`, `AKIA`, `glpat-`, …) or a fixed infix (`:AA` of a Telegram bot
//! token, `Q~` of an Azure AD client secret, `-us<N>` of a Mailchimp key).
//! The shapes follow the public rule sets of secret scanners (gitleaks'
//! `config/gitleaks.toml`, trufflehog's detectors, GitHub's secret-scanning
//! patterns); the expressions are written here.
//!
//! One forward scan finds them all: a table by first byte says which rules
//! can start at a position, a rule's literal must be there, and only then
//! its expression runs, anchored, on a bounded window. Infix rules look for
//! their literal and match around it. No expression ever runs over the
//! whole text, so a hundred rules cost about what one does.

use std::ops::Range;
use std::sync::LazyLock;

use regex_lite::Regex;

/// Where a rule's literal stands in its token.
#[derive(Clone, Copy)]
enum At {
    /// The token starts with the literal; the expression is anchored there.
    Start,
    /// The literal is inside the token, at most `back` bytes after its start.
    Inside { back: usize },
}

struct Rule {
    /// What the token is (read by the tests; here it documents the table).
    #[cfg_attr(not(test), allow(dead_code))]
    name: &'static str,
    literal: &'static str,
    at: At,
    /// The whole token (it contains the literal).
    pattern: &'static str,
    /// A further check of the matched token (what an expression cannot say).
    check: Option<fn(&str) -> bool>,
    /// Whether the token may be glued to a word before it (`bot<id>:AA…`
    /// in Telegram's API URLs); otherwise it must start a word.
    glued: bool,
}

const fn start(name: &'static str, literal: &'static str, pattern: &'static str) -> Rule {
    Rule { name, literal, at: At::Start, pattern, check: None, glued: false }
}

const fn inside(name: &'static str, literal: &'static str, back: usize, pattern: &'static str) -> Rule {
    Rule { name, literal, at: At::Inside { back }, pattern, check: None, glued: false }
}

const fn checked(mut rule: Rule, check: fn(&str) -> bool) -> Rule {
    rule.check = Some(check);
    rule
}

const fn glued(mut rule: Rule) -> Rule {
    rule.glued = true;
    rule
}

/// The longest token any rule takes, plus a margin (the window an
/// expression sees).
const WINDOW: usize = 1100;

const RULES: &[Rule] = &[
    // cloud providers
    start("AWS access key id", "AKIA", r"AKIA[A-Z0-9]{16}\b"),
    start("AWS temporary access key id", "ASIA", r"ASIA[A-Z0-9]{16}\b"),
    start("AWS access key id (ABIA)", "ABIA", r"ABIA[A-Z0-9]{16}\b"),
    start("AWS access key id (ACCA)", "ACCA", r"ACCA[A-Z0-9]{16}\b"),
    start("AWS access key id (A3T)", "A3T", r"A3T[A-Z0-9][A-Z0-9]{16}\b"),
    start("AWS session token", "IQoJb3JpZ2luX2Vj", r"IQoJb3JpZ2luX2Vj[A-Za-z0-9/+=]{20,}"),
    start("AWS session token (legacy)", "FwoGZXIvYXdzE", r"FwoGZXIvYXdzE[A-Za-z0-9/+=]{20,}"),
    start("Amazon Bedrock API key", "ABSK", r"ABSK[A-Za-z0-9+/]{100,}={0,2}"),
    start("Google API key", "AIza", r"AIza[0-9A-Za-z_\-]{35}"),
    start("Google OAuth client secret", "GOCSPX-", r"GOCSPX-[A-Za-z0-9_\-]{24,}"),
    start("Google OAuth access token", "ya29.", r"ya29\.[A-Za-z0-9_\-]{20,}"),
    start("Google OAuth refresh token", "1//0", r"1//0[A-Za-z0-9_\-]{40,}"),
    checked(inside("Azure AD client secret", "Q~", 4, r"[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}"), mixed),
    start("Alibaba Cloud access key id", "LTAI", r"LTAI[A-Za-z0-9]{20}\b"),
    start("Cloudflare origin CA key", "v1.0-", r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}"),
    start("DigitalOcean token", "do", r"do[opr]_v1_[a-f0-9]{64}"),
    start("Heroku API key", "HRKU-AA", r"HRKU-AA[A-Za-z0-9_\-]{58}"),
    start("Fly.io token", "fo1_", r"fo1_[A-Za-z0-9_\-]{43}"),
    start("Fly.io macaroon", "fm", r"fm(?:1[ar]|2)_[A-Za-z0-9+/]{100,}={0,3}"),
    start("OpenShift token", "sha256~", r"sha256~[A-Za-z0-9_\-]{43}"),
    start("Scalingo token", "tk-us-", r"tk-us-[A-Za-z0-9_\-]{48}"),
    start("Yandex Cloud API key", "AQVN", r"AQVN[A-Za-z0-9_\-]{35,38}\b"),
    start("Netlify token", "nfp_", r"nfp_[A-Za-z0-9]{36}"),
    start("Render API key", "rnd_", r"rnd_[A-Za-z0-9]{32}\b"),
    start("Deno Deploy token", "ddp_", r"ddp_[A-Za-z0-9]{36}"),
    start("Tailscale key", "tskey-", r"tskey-(?:api|auth|client|webhook|scim)-[A-Za-z0-9]{6,}-[A-Za-z0-9]{16,}"),
    // source hosting and CI
    start("GitHub token", "gh", r"gh[pousr]_[A-Za-z0-9]{36,255}\b"),
    start("GitHub fine-grained token", "github_pat_", r"github_pat_[A-Za-z0-9_]{22,255}\b"),
    start("GitLab token", "gl", r"gl(?:pat|dt|ptt|rt|soat|cbt|ffct|imt|ft|agent|oas)-[A-Za-z0-9_\-]{20,}"),
    start("GitLab runner registration token", "GR1348941", r"GR1348941[A-Za-z0-9_\-]{20}"),
    start("Grafana token", "gl", r"gl(?:c|sa)_[A-Za-z0-9_=+/\-]{32,}"),
    start("Bitbucket app password", "ATBB", r"ATBB[A-Za-z0-9_\-=]{32,}"),
    start("Atlassian API token", "AT", r"AT[AC]TT[A-Za-z0-9_\-=]{20,}"),
    start("Buildkite token", "bkua_", r"bkua_[a-f0-9]{40}"),
    start("CircleCI token", "CCIPAT_", r"CCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}"),
    start("Octopus Deploy API key", "API-", r"API-[A-Z0-9]{26}\b"),
    start("SonarQube token", "sq", r"sq[upa]_[a-f0-9]{40}"),
    start("Sourcegraph token", "sgp_", r"sgp_(?:[a-fA-F0-9]{16}_)?[a-fA-F0-9]{40}"),
    start("Linear key", "lin_", r"lin_(?:api|oauth)_[A-Za-z0-9]{40}"),
    // registries and package managers
    start("npm token", "npm_", r"npm_[A-Za-z0-9]{36}"),
    start("PyPI token", "pypi-Ag", r"pypi-Ag[A-Za-z0-9_\-]{50,}"),
    start("RubyGems key", "rubygems_", r"rubygems_[a-f0-9]{48}"),
    start("Clojars token", "CLOJARS_", r"CLOJARS_[a-z0-9]{60}"),
    start("Docker Hub token", "dckr_", r"dckr_(?:pat|oat)_[A-Za-z0-9_\-]{20,}"),
    start("Artifactory API key", "AKCp", r"AKCp[A-Za-z0-9]{69}\b"),
    // chat and messaging
    start("Slack token", "xox", r"xox[abposre](?:\.xox[bp])?-[A-Za-z0-9\-]{10,}"),
    start("Slack app token", "xapp-", r"xapp-[0-9]-[A-Za-z0-9\-]{10,}"),
    glued(inside("Telegram bot token", ":AA", 10, r"[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}")),
    checked(start("Discord bot token", "M", DISCORD), discord_user_id),
    checked(start("Discord bot token (N)", "N", DISCORD), discord_user_id),
    checked(start("Discord bot token (O)", "O", DISCORD), discord_user_id),
    start("SendGrid key", "SG.", r"SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}"),
    start("Twilio API key", "SK", r"SK[0-9a-fA-F]{32}\b"),
    start("Mailgun key", "key-", r"key-[0-9a-f]{32}\b"),
    checked(inside("Mailchimp API key", "-us", 32, r"[0-9a-f]{32}-us[0-9]{1,2}\b"), random_hex),
    start("Brevo key", "xkeysib-", r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}"),
    start("Firebase Cloud Messaging server key", "AAAA", r"AAAA[A-Za-z0-9_\-]{7}:APA91b[A-Za-z0-9_\-]{100,}"),
    // AI services
    checked(start("OpenAI-style key", "sk-", r"sk-[A-Za-z0-9_\-]{20,}"), has_digit),
    start("Hugging Face token", "hf_", r"hf_[A-Za-z0-9]{30,}"),
    start("Hugging Face organization token", "api_org_", r"api_org_[A-Za-z]{34}"),
    start("Perplexity key", "pplx-", r"pplx-[A-Za-z0-9]{48}"),
    start("Replicate token", "r8_", r"r8_[A-Za-z0-9]{37}\b"),
    start("Groq key", "gsk_", r"gsk_[A-Za-z0-9]{52}"),
    start("xAI key", "xai-", r"xai-[A-Za-z0-9]{80}"),
    start("LangSmith key", "lsv2_", r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}"),
    start("Pinecone key", "pcsk_", r"pcsk_[A-Za-z0-9]{5,7}_[A-Za-z0-9]{60,}"),
    // payments
    start("Stripe secret key", "sk_", r"sk_(?:live|test|prod)_[A-Za-z0-9]{10,}\b"),
    start("Stripe restricted key", "rk_", r"rk_(?:live|test|prod)_[A-Za-z0-9]{10,}\b"),
    start("Stripe webhook secret", "whsec_", r"whsec_[A-Za-z0-9]{24,}"),
    start("Shopify token", "shp", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    start("Square access token", "EAAA", r"EAAA[A-Za-z0-9_\-]{22,60}\b"),
    start("Square OAuth secret", "sq0", r"sq0(?:atp|csp)-[A-Za-z0-9_\-]{22,60}"),
    start("Duffel token", "duffel_", r"duffel_(?:test|live)_[A-Za-z0-9_\-=]{43}"),
    start("EasyPost key", "EZ", r"EZ[AT]K[A-Za-z0-9]{54}\b"),
    start("Flutterwave key", "FLWSECK", r"FLWSECK(?:_TEST)?-[A-Za-z0-9]{32}-X"),
    start("Shippo token", "shippo_", r"shippo_(?:live|test)_[a-fA-F0-9]{40}"),
    // observability, incident and identity tooling
    start("New Relic key", "NRAK-", r"NRAK-[A-Z0-9]{27}"),
    start("Sentry token", "sntry", r"sntry[su]_[A-Za-z0-9_=+/\-]{30,}"),
    start("Dynatrace token", "dt0c01.", r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}"),
    start("Grafana API key", "eyJrIjoi", r"eyJrIjoi[A-Za-z0-9]{70,400}={0,3}"),
    start("JWT", "eyJ", r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),
    // secret stores, password managers, encryption
    start("Vault token", "hv", r"hv[sbr]\.[A-Za-z0-9_\-]{20,}"),
    checked(start("Vault legacy service token", "s.", r"s\.[A-Za-z0-9]{24}\b"), mixed),
    start("Doppler token", "dp.", r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}"),
    start("Pulumi token", "pul-", r"pul-[a-f0-9]{40}"),
    start(
        "1Password secret key",
        "A3-",
        r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}",
    ),
    start("1Password service account token", "ops_eyJ", r"ops_eyJ[A-Za-z0-9+/]{100,}={0,3}"),
    start("age secret key", "AGE-SECRET-KEY-1", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    checked(
        start("base64 of a PEM private key", "LS0tLS1CRUdJTi", r"LS0tLS1CRUdJTi[A-Za-z0-9+/]{20,}={0,2}"),
        pem_private_in_base64,
    ),
    // developer tools and data platforms
    start("Postman key", "PMAK-", r"PMAK-[A-Za-z0-9]{24}-[A-Za-z0-9]{34}"),
    start("Databricks token", "dapi", r"dapi[a-f0-9]{32}(?:-[0-9])?\b"),
    start("Harness token", "pat.", r"pat\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}"),
    start("Harness service token", "sat.", r"sat\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}"),
    start("Airtable token", "pat", r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}"),
    start("Frame.io token", "fio-u-", r"fio-u-[A-Za-z0-9_\-=]{64}"),
    start("Infracost key", "ico-", r"ico-[A-Za-z0-9]{32}\b"),
    inside("MaxMind license key", "_mmk", 37, r"[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk\b"),
    start("Notion token", "ntn_", r"ntn_[0-9]{11}[A-Za-z0-9]{35}"),
    start("PlanetScale token", "pscale_", r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_=.\-]{32,64}"),
    start("Prefect key", "pnu_", r"pnu_[A-Za-z0-9]{36}"),
    start("ReadMe key", "rdme_", r"rdme_[a-z0-9]{70}"),
    start("Typeform token", "tfp_", r"tfp_[A-Za-z0-9_\-.=]{59}"),
    start("Adobe client secret", "p8e-", r"p8e-[A-Za-z0-9]{32}\b"),
    start("Mapbox secret token", "sk.eyJ", r"sk\.eyJ[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_\-]{20,}"),
    start("Contentful token", "CFPAT-", r"CFPAT-[A-Za-z0-9_\-]{43}"),
    start("Figma token", "figd_", r"figd_[A-Za-z0-9_\-]{40}"),
    start("Supabase token", "sbp_", r"sbp_[a-f0-9]{40}"),
    start("Supabase secret key", "sb_secret_", r"sb_secret_[A-Za-z0-9_\-]{20,}"),
    inside("Terraform Cloud token", ".atlasv1.", 14, r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,}"),
];

/// Base64url of a Discord user id (17 to 20 digits), a timestamp, an HMAC.
const DISCORD: &str = r"[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40}\b";

struct Compiled {
    rule: &'static Rule,
    regex: Regex,
}

/// Rules by the first byte of their literal.
struct Table {
    by_first: Vec<Vec<Compiled>>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut by_first: Vec<Vec<Compiled>> = (0..256).map(|_| Vec::new()).collect();
    for rule in RULES {
        let Some(&first) = rule.literal.as_bytes().first() else { continue };
        let pattern = match rule.at {
            At::Start => format!("^(?:{})", rule.pattern),
            At::Inside { .. } => rule.pattern.to_string(),
        };
        by_first[usize::from(first)].push(Compiled { rule, regex: super::re(&pattern) });
    }
    Table { by_first }
});

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Byte ranges of the vendor tokens in `s`, in order, disjoint.
pub(super) fn ranges(s: &str) -> Vec<Range<usize>> {
    let table = &*TABLE;
    let b = s.as_bytes();
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let candidates = &table.by_first[usize::from(b[i])];
        let mut found: Option<Range<usize>> = None;
        for c in candidates {
            if !b[i..].starts_with(c.rule.literal.as_bytes()) {
                continue;
            }
            let hit = match c.rule.at {
                At::Start => {
                    if i > 0 && !c.rule.glued && is_word_byte(b[i - 1]) {
                        continue;
                    }
                    let end = floor_boundary(s, (i + WINDOW).min(b.len()));
                    c.regex.find(&s[i..end]).map(|m| i..i + m.end())
                }
                At::Inside { back } => {
                    let from = ceil_boundary(s, i.saturating_sub(back));
                    let end = floor_boundary(s, (i + WINDOW).min(b.len()));
                    c.regex
                        .find_iter(&s[from..end])
                        .map(|m| from + m.start()..from + m.end())
                        .find(|r| r.start <= i && i < r.end)
                        .filter(|r| c.rule.glued || r.start == 0 || !is_word_byte(b[r.start - 1]))
                }
            };
            let Some(hit) = hit.filter(|r| c.rule.check.is_none_or(|check| check(&s[r.clone()]))) else { continue };
            if found.as_ref().is_none_or(|f| hit.end > f.end) {
                found = Some(hit);
            }
        }
        match found {
            Some(r) => {
                // An infix match may start before tokens already taken: merge.
                match out.last_mut() {
                    Some(last) if r.start < last.end => last.end = last.end.max(r.end),
                    _ => out.push(r.clone()),
                }
                i = r.end.max(i + 1);
            }
            None => i += 1,
        }
    }
    out
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Upper and lower case letters and a digit: random, not a word.
fn mixed(t: &str) -> bool {
    let b = t.as_bytes();
    b.iter().any(u8::is_ascii_uppercase) && b.iter().any(u8::is_ascii_lowercase) && b.iter().any(u8::is_ascii_digit)
}

fn has_digit(t: &str) -> bool {
    t.bytes().any(|b| b.is_ascii_digit())
}

/// A Mailchimp key's 32 hex digits mix letters and digits (a key, not a
/// run of zeros or a decimal number).
fn random_hex(t: &str) -> bool {
    let hex = t.get(..32).unwrap_or(t);
    hex.bytes().any(|b| b.is_ascii_alphabetic()) && has_digit(hex)
}

/// The first part of a Discord bot token is the bot's user id in base64url.
fn discord_user_id(t: &str) -> bool {
    let first = t.split('.').next().unwrap_or_default();
    decode_base64(first).is_some_and(|d| (17..=20).contains(&d.len()) && d.iter().all(u8::is_ascii_digit))
}

/// A base64 run that decodes to a PEM private key's BEGIN line.
fn pem_private_in_base64(t: &str) -> bool {
    let head: String = t.chars().take(80).collect();
    let cut = head.len() - head.len() % 4;
    decode_base64(&head[..cut]).is_some_and(|d| {
        let text = String::from_utf8_lossy(&d);
        text.contains("PRIVATE KEY") || text.contains("ENCRYPTED PRIVATE")
    })
}

/// Standard or URL-safe base64, padded or not; `None` when it is not.
pub(super) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        }))
    }
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_should_compile_with_a_literal_and_a_distinct_name() {
        let mut names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RULES.len(), "rule names are distinct");
        for rule in RULES {
            assert!(!rule.literal.is_empty(), "{}", rule.name);
            super::super::re(rule.pattern);
        }
        assert!(TABLE.by_first.iter().map(Vec::len).sum::<usize>() >= 100, "{} rules", RULES.len());
    }

    #[test]
    fn tokens_glued_to_a_word_should_not_start_a_token_but_telegram_in_its_url_does() {
        assert!(ranges("xAKIAIOSFODNN7EXAMPL1 ok").is_empty(), "glued to x");
        let url = "https://api.telegram.org/bot123456789:AAEEmXL1uhLsc4Rr4aKxU3f0BJxrxDwzkl-/getMe";
        let r = ranges(url);
        assert_eq!(r.len(), 1);
        assert_eq!(&url[r[0].clone()], "123456789:AAEEmXL1uhLsc4Rr4aKxU3f0BJxrxDwzkl-");
    }

    #[test]
    fn checks_should_tell_tokens_from_look_alikes() {
        // A Discord-shaped string whose first part is no user id.
        assert!(ranges("MyVeryLongClassNameForThings.method.andTheRestOfTheCallChainHere1").is_empty());
        assert!(ranges("vault path s.abcdefghijklmnopqrstuvwx done").is_empty(), "no digit, no capital");
        assert!(ranges("LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0KTUlJQklq public").is_empty(), "a public key");
        assert_eq!(decode_base64("aGVsbG8gd29ybGQ=").as_deref(), Some(&b"hello world"[..]));
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn a_token_at_the_end_of_a_multibyte_text_should_not_panic() {
        let s = format!("{}ghp_{}", "é".repeat(600), "a1".repeat(30));
        assert_eq!(ranges(&s).len(), 1);
        let s = format!("{}Q~{}", "é".repeat(3), "x".repeat(40));
        let _ = ranges(&s);
        let _ = ranges("é:AAé");
    }
}
