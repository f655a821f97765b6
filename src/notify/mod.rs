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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(smtp: Option<&str>, sms: Option<(&str, &str)>, secret: Option<&str>) -> NotifyConfig {
        NotifyConfig {
            smtp_url: smtp.map(str::to_string),
            sms_gateway_url: sms.map(|(url, _)| url.to_string()),
            sms_gateway_kind: sms.map_or("webhook", |(_, kind)| kind).to_string(),
            sms_gateway_secret: secret.map(str::to_string),
            ..NotifyConfig::default()
        }
    }

    #[tokio::test]
    async fn smtp_urls_choose_plain_starttls_or_tls() {
        for url in [
            "smtp://localhost:2525",
            "smtp://user:pass@mail.example.com:587?tls=required",
            "smtps://user:pass@mail.example.com",
        ] {
            let t = Transports::from_config(&with(Some(url), None, None)).unwrap();
            assert_eq!(
                t.availability(),
                Availability {
                    email: true,
                    sms: false
                }
            );
        }
        assert!(Transports::from_config(&with(Some("imap://x"), None, None)).is_err());
    }

    #[tokio::test]
    async fn sms_gateways_need_their_credentials() {
        const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let twilio = "https://AC1:tok@api.twilio.com/2010-04-01/Accounts/AC1/Messages.json";
        assert!(Transports::from_config(&with(None, Some((twilio, "twilio")), None)).is_ok());
        let no_auth = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json";
        assert!(Transports::from_config(&with(None, Some((no_auth, "twilio")), None)).is_err());
        let hook = Some(("https://sms.example.com/send", "webhook"));
        assert!(
            Transports::from_config(&with(None, hook, None)).is_err(),
            "unsigned"
        );
        assert!(Transports::from_config(&with(None, hook, Some(SECRET))).is_ok());
        let fax = Some(("https://sms.example.com/send", "fax"));
        assert!(Transports::from_config(&with(None, fax, Some(SECRET))).is_err());
        let none = Transports::from_config(&NotifyConfig::default()).unwrap();
        assert_eq!(none.availability().notes().len(), 2);
    }
}
