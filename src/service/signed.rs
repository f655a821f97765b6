//! Requests signed the Standard Webhooks way: by API keys with a signing secret, and by the
//! loyalty platform calling the remote coupon source.

use crate::{
    domain::signature,
    service::{Error, Result},
};

/// The Standard Webhooks headers of a request, as sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Checks the headers of a request against its raw body, at the server clock.
pub fn verify(headers: &SignedHeaders, secret: &str, body: &[u8]) -> Result<()> {
    let (Some(id), Some(timestamp), Some(sig)) = (headers.id, headers.timestamp, headers.signature)
    else {
        return Err(Error::unauthorized(
            "signature_required",
            "this API key signs its requests: send webhook-id, webhook-timestamp and \
             webhook-signature (Standard Webhooks) over the raw body",
        ));
    };
    let invalid = |why: String| {
        Error::unauthorized(
            "invalid_signature",
            format!("the request signature is not valid: {why}"),
        )
    };
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| invalid("webhook-timestamp is not a number of seconds".into()))?;
    let now = chrono::Utc::now().timestamp();
    signature::verify(secret, id, timestamp, body, sig, now).map_err(|e| invalid(e.to_string()))
}
