//! Remote pools: codes fetched at issue time from someone else's endpoint. coupond sends
//! Antavo's remote-source body (see [`request_body`]), signed with the pool's secret the
//! Standard Webhooks way, and expects `{"code": "..."}` back. Each attempt has the pool's
//! timeout; timeouts, connection failures, 429 and 5xx are retried up to the pool's `retries`
//! with the same `webhook-id`, so a source that did answer the first time can recognise the
//! retry. Callers run this outside any database transaction.

use std::time::Duration;

use crate::store::entity::{customers, pools};
use rand::{Rng, distr::Alphanumeric};
use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    domain::{
        coupon::check_uploaded_code,
        discount::DiscountType,
        remote::{RemoteCodeRequest, parse_code_response, percent_text},
        signature,
    },
    service::{Error, Result, outbound, pools::StoredRemote},
};

/// Pause before the first retry; doubled for each further one.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Asks the pool's source for `count` codes for `customer`, one request each.
pub async fn fetch(
    pool: &pools::Model,
    customer: &customers::Model,
    count: u32,
) -> Result<Vec<String>> {
    let remote = match &pool.remote {
        Some(settings) => settings,
        None => {
            return Err(Error::conflict(
                "remote_not_configured",
                "this remote pool has no remote source settings",
            ));
        }
    };
    let body = request_body(pool, remote, customer)
        .to_string()
        .into_bytes();
    let mut codes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        codes.push(fetch_one(remote, &body).await?);
    }
    Ok(codes)
}

/// What coupond sends: `api_key` (the pool's `remote.api_key`, or `pool-<id>` without one),
/// `customer` (the customer's external id), `type` (the pool's discount type), `value` (the
/// pool's value in minor units or basis points, as text), `coupon_percentage` (percentage pools:
/// the percentage, e.g. "12.5"), and two extras: `currency` and `pool_id`.
pub fn request_body(
    pool: &pools::Model,
    remote: &StoredRemote,
    customer: &customers::Model,
) -> Value {
    let request = RemoteCodeRequest {
        api_key: remote
            .api_key
            .clone()
            .unwrap_or_else(|| format!("pool-{}", pool.id)),
        customer: customer.external_id.clone(),
        kind: Some(pool.discount_type.as_str().to_string()),
        value: pool.value.map(|v| v.to_string()),
        coupon_percentage: (pool.discount_type == DiscountType::Percentage)
            .then_some(pool.value)
            .flatten()
            .map(percent_text),
    };
    let mut body = request.to_json();
    if let Some(currency) = &pool.currency {
        body["currency"] = Value::String(currency.clone());
    }
    body["pool_id"] = Value::String(pool.id.to_string());
    body
}

/// Why one attempt failed, and whether another might succeed.
enum Failure {
    Retry(String),
    Final(Error),
}

async fn fetch_one(remote: &StoredRemote, body: &[u8]) -> Result<String> {
    let msg_id = message_id();
    let mut pause = FIRST_RETRY_PAUSE;
    let mut last = String::new();
    for attempt in 0..=remote.retries {
        if attempt > 0 {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        match attempt_once(remote, &msg_id, body).await {
            Ok(code) => return Ok(code),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Retry(why)) => {
                tracing::warn!(url = %remote.url, attempt, %why, "remote source attempt failed");
                last = why;
            }
        }
    }
    Err(bad_gateway(
        "remote_unavailable",
        format!(
            "the remote source failed {} time(s); last: {last}",
            remote.retries + 1
        ),
    ))
}

async fn attempt_once(remote: &StoredRemote, msg_id: &str, body: &[u8]) -> Result<String, Failure> {
    let url = reqwest::Url::parse(&remote.url).map_err(|e| Failure::Final(Error::internal(e)))?;
    outbound::check_literal(&url)
        .map_err(|why| Failure::Final(bad_gateway("remote_unavailable", why)))?;
    let mut req = outbound::client()
        .post(url)
        .timeout(Duration::from_millis(u64::from(remote.timeout_ms)))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(secret) = &remote.secret {
        let timestamp = chrono::Utc::now().timestamp();
        let signed = signature::sign(secret, msg_id, timestamp, body)
            .map_err(|e| Failure::Final(Error::internal(e)))?;
        req = req
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signed);
    }
    let resp = req.send().await.map_err(|e| {
        Failure::Retry(if e.is_timeout() {
            format!("no answer within {} ms", remote.timeout_ms)
        } else {
            format!("request failed: {e}")
        })
    })?;
    let status = resp.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Failure::Retry(format!("answered {status}")));
    }
    if !status.is_success() {
        return Err(Failure::Final(bad_gateway(
            "remote_rejected",
            format!("the remote source refused the request with {status}"),
        )));
    }
    let bytes = outbound::read_capped(resp, outbound::MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| Failure::Retry(format!("reading the answer failed: {e}")))?;
    code_from(&bytes).map_err(Failure::Final)
}

/// The code in a source's answer, or why there is none usable.
fn code_from(body: &[u8]) -> Result<String> {
    let code = parse_code_response(body).map_err(|e| {
        let kind = if e.reason == "is empty" {
            "remote_empty_code"
        } else {
            "remote_bad_response"
        };
        bad_gateway(kind, format!("the remote source's answer: {e}"))
    })?;
    check_uploaded_code(&code).map_err(|why| {
        bad_gateway(
            "remote_bad_response",
            format!("the remote source's code is unusable: {why}"),
        )
    })?;
    Ok(code)
}

/// The source sent a code this org already has.
pub fn duplicate(code: &str) -> Error {
    bad_gateway(
        "remote_duplicate_code",
        format!("the remote source sent {code}, a code that already exists in this org"),
    )
}

fn bad_gateway(code: &str, detail: String) -> Error {
    Error::upstream(code.to_string(), detail)
}

fn message_id() -> String {
    let random: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("msg_{random}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem_code(body: &str) -> String {
        code_from(body.as_bytes()).unwrap_err().code().to_string()
    }

    #[test]
    fn answers_without_a_usable_code_are_named() {
        assert_eq!(code_from(br#"{"code": " AB-12 "}"#).unwrap(), "AB-12");
        assert_eq!(problem_code(r#"{"code": ""}"#), "remote_empty_code");
        assert_eq!(problem_code(r#"{"code": "  "}"#), "remote_empty_code");
        assert_eq!(problem_code(r#"{"nope": 1}"#), "remote_bad_response");
        assert_eq!(problem_code("<html>"), "remote_bad_response");
        assert_eq!(problem_code(r#"{"code": "A B"}"#), "remote_bad_response");
        let long = format!(r#"{{"code": "{}"}}"#, "X".repeat(65));
        assert_eq!(problem_code(&long), "remote_bad_response");
    }
}
