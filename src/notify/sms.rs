//! SMS through a gateway: a webhook receiving signed JSON, or Twilio's Messages API.

use std::time::Duration;

use chrono::Utc;
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

use super::SendError;
use crate::{config::NotifyConfig, domain::signature};

const SEND_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// POST `{to, from, body}` as JSON, signed the Standard Webhooks way.
    Webhook,
    /// POST form-encoded `To`, `From`, `Body` with basic auth, as Twilio's Messages.json takes it.
    Twilio,
}

/// An SMS ready to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub to: String,
    pub body: String,
}

impl Sms {
    pub fn from_payload(payload: &Value) -> Result<Sms, String> {
        let field = |name: &str| {
            payload[name]
                .as_str()
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("the message has no {name}"))
        };
        Ok(Sms {
            to: field("to")?,
            body: field("body")?,
        })
    }
}

pub struct Gateway {
    client: reqwest::Client,
    url: Url,
    kind: Kind,
    from: String,
    /// Twilio's account SID and auth token, taken out of the URL.
    basic_auth: Option<(String, String)>,
    secret: Option<String>,
}

impl Gateway {
    pub fn new(url: &str, config: &NotifyConfig) -> Result<Gateway, String> {
        let mut url = Url::parse(url).map_err(|e| format!("COUPOND_SMS_GATEWAY_URL: {e}"))?;
        let kind = match config.sms_gateway_kind.as_str() {
            "webhook" => Kind::Webhook,
            "twilio" => Kind::Twilio,
            other => {
                return Err(format!(
                    "COUPOND_SMS_GATEWAY_KIND `{other}`: expected webhook or twilio"
                ));
            }
        };
        let basic_auth = (!url.username().is_empty()).then(|| {
            (
                url.username().to_string(),
                url.password().unwrap_or_default().to_string(),
            )
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
        if kind == Kind::Twilio && basic_auth.is_none() {
            return Err(
                "COUPOND_SMS_GATEWAY_URL: Twilio needs ACCOUNT_SID:AUTH_TOKEN@ in the URL".into(),
            );
        }
        crate::service::outbound::check_literal(&url)
            .map_err(|why| format!("COUPOND_SMS_GATEWAY_URL: {why}"))?;
        let secret = config.sms_gateway_secret.clone();
        if let Some(secret) = &secret {
            signature::secret_key(secret)
                .map_err(|e| format!("COUPOND_SMS_GATEWAY_SECRET: {e}"))?;
        }
        if kind == Kind::Webhook && secret.is_none() {
            return Err("COUPOND_SMS_GATEWAY_SECRET is needed to sign webhook SMS".into());
        }
        Ok(Gateway {
            client: crate::service::outbound::client().clone(),
            url,
            kind,
            from: config.sms_from.clone(),
            basic_auth,
            secret,
        })
    }

    /// Sends one SMS; `msg_id` stays the same across retries so the gateway can drop repeats.
    pub async fn send(&self, sms: &Sms, msg_id: &str) -> Result<(), SendError> {
        let request = match self.kind {
            Kind::Webhook => self.webhook_request(sms, msg_id)?,
            Kind::Twilio => self.twilio_request(sms),
        };
        let resp = request
            .timeout(SEND_TIMEOUT)
            .send()
            .await
            .map_err(|e| SendError::Transient(format!("SMS gateway: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let detail = resp.text().await.unwrap_or_default();
        let error = format!("the SMS gateway answered {status}: {}", detail.trim());
        if status.is_client_error()
            && status != StatusCode::REQUEST_TIMEOUT
            && status != StatusCode::TOO_MANY_REQUESTS
        {
            Err(SendError::Permanent(error))
        } else {
            Err(SendError::Transient(error))
        }
    }

    fn webhook_request(
        &self,
        sms: &Sms,
        msg_id: &str,
    ) -> Result<reqwest::RequestBuilder, SendError> {
        let body = json!({"to": sms.to, "from": self.from, "body": sms.body}).to_string();
        let timestamp = Utc::now().timestamp();
        let secret = self.secret.as_deref().unwrap_or_default();
        let signed = signature::sign(secret, msg_id, timestamp, body.as_bytes())
            .map_err(|e| SendError::Permanent(format!("cannot sign: {e}")))?;
        Ok(self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signed)
            .body(body))
    }

    fn twilio_request(&self, sms: &Sms) -> reqwest::RequestBuilder {
        let (user, password) = self.basic_auth.clone().unwrap_or_default();
        let form = [
            ("To", sms.to.as_str()),
            ("From", self.from.as_str()),
            ("Body", sms.body.as_str()),
        ];
        self.client
            .post(self.url.clone())
            .basic_auth(user, Some(password))
            .form(&form)
    }
}
