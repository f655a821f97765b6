//! Sending email (SMTP) and SMS (a webhook gateway or Twilio), and the outbox dispatcher that
//! sends queued messages through them.

pub mod dispatcher;
pub mod email;
pub mod sms;

use crate::config::NotifyConfig;

pub use dispatcher::Dispatcher;

/// Why a send failed: worth retrying, or never going to work for this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

/// The ways out this process has; a channel without one keeps its messages queued.
pub struct Transports {
    pub email: Option<email::Mailer>,
    pub sms: Option<sms::Gateway>,
}

impl Transports {
    /// Builds the configured transports; a malformed URL or setting stops the start.
    pub fn from_config(config: &NotifyConfig) -> Result<Transports, String> {
        let email = match &config.smtp_url {
            Some(url) => Some(email::Mailer::new(url, &config.mail_from)?),
            None => None,
        };
        let sms = match &config.sms_gateway_url {
            Some(url) => Some(sms::Gateway::new(url, config)?),
            None => None,
        };
        Ok(Transports { email, sms })
    }

    pub fn availability(&self) -> Availability {
        Availability {
            email: self.email.is_some(),
            sms: self.sms.is_some(),
        }
    }
}

/// Which channels can send, for `/readyz` and the start-up log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Availability {
    pub email: bool,
    pub sms: bool,
}

impl Availability {
    /// One sentence per channel that cannot send; empty when both can.
    pub fn notes(&self) -> Vec<&'static str> {
        let mut notes = Vec::new();
        if !self.email {
            notes.push("email: no SMTP server configured (COUPOND_SMTP_URL); emails stay queued");
        }
        if !self.sms {
            notes.push("sms: no SMS gateway configured (COUPOND_SMS_GATEWAY_URL); SMS stay queued");
        }
        notes
    }

    /// Says once, at start-up, what cannot be sent.
    pub fn log(&self) {
        for note in self.notes() {
            tracing::warn!("{note}");
        }
    }
}
