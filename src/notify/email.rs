//! Email over SMTP with lettre: plain, STARTTLS or TLS as the URL says, text and HTML parts.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
};
use serde_json::Value;

use super::SendError;
use crate::domain::message;

const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// An email ready to go: one or more recipients, a subject and a text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
}

impl Email {
    /// Reads an outbox payload: `{to, subject, text}`, or the issual-limit notice queued by
    /// issuance (`template: pool_issual_limit_near`).
    pub fn from_payload(payload: &Value) -> Result<Email, String> {
        let to = match &payload["to"] {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        if to.is_empty() {
            return Err("the message has no recipient".into());
        }
        if payload["template"] == "pool_issual_limit_near" {
            let (subject, text) = message::limit_notice(
                payload["pool_name"].as_str().unwrap_or_default(),
                payload["remaining"].as_u64().unwrap_or_default(),
                payload["max_total"].as_u64().unwrap_or_default(),
            );
            return Ok(Email { to, subject, text });
        }
        let field = |name: &str| {
            payload[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("the message has no {name}"))
        };
        Ok(Email {
            to,
            subject: field("subject")?,
            text: field("text")?,
        })
    }
}

/// A pooled async SMTP connection and the From address.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(url: &str, from: &str) -> Result<Mailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("COUPOND_SMTP_URL: {e}"))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from = from
            .parse()
            .map_err(|e| format!("COUPOND_MAIL_FROM `{from}`: {e}"))?;
        Ok(Mailer { transport, from })
    }

    pub async fn send(&self, email: &Email) -> Result<(), SendError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(&email.subject);
        for to in &email.to {
            let mailbox: Mailbox = to
                .parse()
                .map_err(|e| SendError::Permanent(format!("bad recipient `{to}`: {e}")))?;
            builder = builder.to(mailbox);
        }
        let html = message::html_body(&email.text);
        let built = builder
            .multipart(MultiPart::alternative_plain_html(email.text.clone(), html))
            .map_err(|e| SendError::Permanent(format!("cannot build the email: {e}")))?;
        self.transport.send(built).await.map(drop).map_err(|e| {
            if e.is_permanent() {
                SendError::Permanent(format!("the SMTP server refused it: {e}"))
            } else {
                SendError::Transient(format!("SMTP: {e}"))
            }
        })
    }
}
