//! SNS: the notifier. Every message carries the attributes subscribers
//! filter on (`severity`, `cluster`, `service`, `cause`, `kind`, `team`,
//! and the fleet's `account` and `region`).
//!
//! Published with `MessageStructure=json` ([`crate::notify::chat::sns_message`]):
//! the plain text under `default` (SNS sends it to e-mail, SQS, Lambda, HTTP
//! and every protocol without a key of its own) and the Amazon Q Developer
//! custom notification under `https`, the protocol the chat integration
//! subscribes with. Other HTTPS subscribers receive the JSON too.

use aws_sdk_sns::types::MessageAttributeValue;

use super::{AwsError, Clients, aws_error};
use crate::notify::render::Message;
use crate::outcome::Kind;

fn attribute(value: &str) -> Option<MessageAttributeValue> {
    // SNS rejects empty attribute values.
    let value = if value.is_empty() { "none" } else { value };
    MessageAttributeValue::builder().data_type("String").string_value(value).build().ok()
}

fn kind_word(kind: Kind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Publish; returns the SNS message id.
///
/// Published from a member's clients, the message names the member's account
/// and region ([`Message::placed`]); every message carries the `account` and
/// `region` attributes (home's own when it is about home).
pub async fn publish(clients: &Clients, topic_arn: &str, m: &Message) -> Result<String, AwsError> {
    let placed;
    let m = match (clients.scope().place(), &m.place) {
        (Some(place), None) => {
            placed = m.clone().placed(place);
            &placed
        }
        _ => m,
    };
    let (account, region) = match &m.place {
        Some(p) => (p.account.clone(), p.region.clone()),
        None => {
            (crate::invocation::own_account().unwrap_or_default(), clients.region().unwrap_or_default().to_string())
        }
    };
    let message = crate::notify::chat::sns_message(m);
    let subject = crate::notify::render::subject_line(&m.subject);
    let mut req =
        clients.sns().publish().topic_arn(topic_arn).subject(subject).message_structure("json").message(message);
    for (k, v) in [
        ("severity", m.severity.as_str().to_string()),
        ("cluster", m.cluster.clone()),
        ("service", m.service.clone()),
        ("cause", m.cause.as_str().to_string()),
        ("kind", kind_word(m.kind)),
        // Always present ("none" when the service has no autopilot:team tag),
        // so that a catch-all subscription can match {"team": ["none"]}.
        ("team", m.team.clone().unwrap_or_default()),
        ("account", account),
        ("region", region),
    ] {
        if let Some(a) = attribute(&v) {
            req = req.message_attributes(k, a);
        }
    }
    let resp = req.send().await.map_err(|e| aws_error("sns", "Publish", topic_arn, &e))?;
    Ok(resp.message_id().unwrap_or_default().to_string())
}
