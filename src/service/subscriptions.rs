//! Webhook subscriptions of an org: creating them with a checked destination and secret,
//! listing and deleting them. Delivery is `service::webhooks`.

use base64::Engine;
use rand::Rng;
use sea_orm::DatabaseConnection;

use crate::{
    domain::{signature, webhook::WebhookEvent},
    service::{Error, Result, outbound},
    store::{self, entity::webhooks},
};

/// Subscribes `url` to `events` and returns the row and its signing secret: `secret` when
/// given, else a new one (shown once).
pub async fn create(
    db: &DatabaseConnection,
    org_id: i64,
    url: String,
    events: Vec<WebhookEvent>,
    secret: Option<String>,
) -> Result<(webhooks::Model, String)> {
    check_url(&url)?;
    outbound::check_destination(&url)
        .await
        .map_err(|why| Error::invalid("url", why))?;
    if events.is_empty() {
        return Err(Error::invalid("events", "name at least one event"));
    }
    let secret = match secret {
        Some(s) => {
            signature::secret_key(&s).map_err(|e| Error::invalid("secret", e.to_string()))?;
            s
        }
        None => new_secret(),
    };
    let row = store::webhooks::create(db, org_id, url, &events, secret.clone()).await?;
    Ok((row, secret))
}

/// The org's subscriptions in id order.
pub async fn list(db: &DatabaseConnection, org_id: i64) -> Result<Vec<webhooks::Model>> {
    Ok(store::webhooks::list(db, org_id).await?)
}

pub async fn delete(db: &DatabaseConnection, org_id: i64, id: i64) -> Result<()> {
    if store::webhooks::delete(db, org_id, id).await? {
        Ok(())
    } else {
        Err(Error::not_found("webhook", id))
    }
}

fn check_url(url: &str) -> Result<()> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
        _ => Err(Error::invalid("url", "an http:// or https:// URL")),
    }
}

/// A Standard Webhooks secret: `whsec_` and 24 random bytes in base64.
fn new_secret() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}
