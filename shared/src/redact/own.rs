//! Links we made, kept out of redaction by construction.
//!
//! A presigned URL carries `X-Amz-Signature`, which [`Redactor::text`]
//! rightly masks in anything it is given: a signature in a log line or an
//! error message is a credential. Our own report links are presigned too, so
//! a message built as one string and then redacted would send links that do
//! not open. The way out is not a pattern ("a URL to our bucket") — a URL an
//! attacker writes into a log line could match any pattern — but the type:
//! an [`OwnLink`] can only be made by this crate's code (the S3 adapter that
//! presigns, the console-URL builder), and an [`Outgoing`] text keeps such
//! links apart from everything else, which it redacts when it is rendered.
//! A text that merely contains the same URL is redacted like any other.

use super::Redactor;

/// A URL this crate built from its own configuration (bucket, key, region)
/// or presigned with its own credentials. Not constructible outside the
/// crate, so outside data can never become one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnLink {
    url: String,
}

impl OwnLink {
    /// Only for URLs this crate made itself (never for text read from AWS,
    /// events or logs).
    pub(crate) fn new(url: impl Into<String>) -> Self {
        Self { url: url.into() }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A presigned GET URL and how long it opens: `lifetime_seconds` from the
/// signing time `signed_at` to `expires_at` (epoch seconds), on the
/// [`LinkLifetime`] basis the signer knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedLink {
    pub link: OwnLink,
    pub signed_at: i64,
    pub expires_at: i64,
    pub lifetime_seconds: i64,
    pub basis: LinkLifetime,
}

/// What a presigned link's lifetime rests on. S3 accepts a presigned URL
/// no longer than the credentials that signed it live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkLifetime {
    /// The whole lifetime asked for (long-term keys, or credentials that
    /// outlive it).
    Full,
    /// Cut to the signing credentials' expiry.
    CutToCredentials,
    /// Signed with temporary credentials whose expiry the signer was not
    /// told (a Lambda role's): the link dies with that session, within hours,
    /// `expires_at` at the latest.
    UntilSessionEnds,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Anyone's text: redacted when rendered.
    Text(String),
    /// Ours: kept as it is.
    Own(OwnLink),
}

/// A text on its way out (a message body): other people's text, redacted
/// when rendered, with our own links between it, never redacted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    parts: Vec<Part>,
}

impl Outgoing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Text from anywhere (names, reasons, log lines, our own words alike).
    pub fn text(&mut self, text: impl Into<String>) -> &mut Self {
        let text = text.into();
        match self.parts.last_mut() {
            Some(Part::Text(last)) => last.push_str(&text),
            _ => self.parts.push(Part::Text(text)),
        }
        self
    }

    /// One of our links.
    pub fn link(&mut self, link: &OwnLink) -> &mut Self {
        self.parts.push(Part::Own(link.clone()));
        self
    }

    /// The text as it leaves: every text part redacted as a whole (a part
    /// runs from one of our links to the next, so a secret cannot straddle
    /// a redaction boundary inside other people's text), our links as they are.
    pub fn render(&self, redactor: &Redactor) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(&redactor.text(t)),
                Part::Own(l) => out.push_str(l.url()),
            }
        }
        out
    }

    /// Our links in it, in order.
    pub fn links(&self) -> Vec<&OwnLink> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Own(l) => Some(l),
                Part::Text(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::REDACTED;

    const OURS: &str = "http://127.0.0.1:5000/ev/reports/daily/2026-11-20/report.html?X-Amz-Algorithm=AWS4-HMAC-SHA256\
&X-Amz-Credential=testing%2F20261120%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261120T090000Z\
&X-Amz-Expires=604800&X-Amz-SignedHeaders=host\
&X-Amz-Signature=1e4f0c0a63bd7a5b1f2d9c8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b";

    #[test]
    fn our_presigned_link_should_leave_whole_and_the_same_url_in_text_should_not() {
        let mut m = Outgoing::new();
        m.text("HTML: ").link(&OwnLink::new(OURS)).text("\n");
        // The very same URL, written into a service's event by whoever controls it.
        m.text(format!("service event: (service api) was unable to reach {OURS}\n"));
        let out = m.render(&Redactor::new());
        assert!(out.starts_with(&format!("HTML: {OURS}\n")), "{out}");
        let event = out.lines().nth(1).unwrap();
        assert!(event.contains("X-Amz-Signature=***REDACTED***"), "{event}");
        assert!(!event.contains("1e4f0c0a63bd"), "{event}");
        assert_eq!(out.matches(OURS).count(), 1);
    }

    #[test]
    fn text_around_our_links_should_be_redacted_and_links_listed_in_order() {
        let mut m = Outgoing::new();
        let a = OwnLink::new("https://us-east-1.console.aws.amazon.com/s3/object/ev?prefix=a");
        let b = OwnLink::new(OURS);
        m.text("password=hunter2x9 ").link(&a).text(" token=").text("abc123def ").link(&b);
        let out = m.render(&Redactor::new());
        assert_eq!(out, format!("password={REDACTED} {} token={REDACTED} {OURS}", a.url()));
        assert_eq!(m.links(), vec![&a, &b]);
    }

    #[test]
    fn known_secret_values_should_be_masked_in_text_but_our_link_is_never_searched() {
        // A known secret that happens to occur inside our link (it cannot
        // come from there: the link is ours) does not touch the link.
        let red = Redactor::with_known_secrets(["1e4f0c0a63bd7a5b".to_string()]);
        let mut m = Outgoing::new();
        m.text("leaked 1e4f0c0a63bd7a5b here: ").link(&OwnLink::new(OURS));
        let out = m.render(&red);
        assert_eq!(out, format!("leaked {REDACTED} here: {OURS}"));
    }
}
