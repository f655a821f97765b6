//! Webhooks: the events an org can subscribe to, the envelope they are delivered in, and when a
//! failed delivery is tried again.

use chrono::{DateTime, TimeDelta, Utc};
use poem_openapi::Enum;
use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

/// Something that happened which subscribers may be told about.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    /// A coupon was issued to a customer.
    #[oai(rename = "coupon.issued")]
    CouponIssued,
    /// A coupon was redeemed at a checkout.
    #[oai(rename = "coupon.redeemed")]
    CouponRedeemed,
    /// A redemption was reversed and the coupon reinstated.
    #[oai(rename = "coupon.reversed")]
    CouponReversed,
    /// A coupon passed its expiry date unused.
    #[oai(rename = "coupon.expired")]
    CouponExpired,
    /// A program manager invalidated a coupon.
    #[oai(rename = "coupon.invalidated")]
    CouponInvalidated,
    /// A coupon moved from one customer to another.
    #[oai(rename = "coupon.transferred")]
    CouponTransferred,
    /// A pool's remaining issuals dropped to its notification threshold.
    #[oai(rename = "pool.issual_limit_near")]
    PoolIssualLimitNear,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 7] = [
        WebhookEvent::CouponIssued,
        WebhookEvent::CouponRedeemed,
        WebhookEvent::CouponReversed,
        WebhookEvent::CouponExpired,
        WebhookEvent::CouponInvalidated,
        WebhookEvent::CouponTransferred,
        WebhookEvent::PoolIssualLimitNear,
    ];

    /// The name subscribers see in `type`; never rename, subscriptions store these.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::CouponIssued => "coupon.issued",
            WebhookEvent::CouponRedeemed => "coupon.redeemed",
            WebhookEvent::CouponReversed => "coupon.reversed",
            WebhookEvent::CouponExpired => "coupon.expired",
            WebhookEvent::CouponInvalidated => "coupon.invalidated",
            WebhookEvent::CouponTransferred => "coupon.transferred",
            WebhookEvent::PoolIssualLimitNear => "pool.issual_limit_near",
        }
    }

    pub fn parse(s: &str) -> Option<WebhookEvent> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// The events a subscription is to, as its row holds them (a JSON list of names). Names this
/// version does not know (written by a newer one) are skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default, FromJsonQueryResult)]
pub struct WebhookEvents(pub Vec<WebhookEvent>);

impl Serialize for WebhookEvents {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|e| e.as_str()))
    }
}

impl<'de> Deserialize<'de> for WebhookEvents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<WebhookEvents, D::Error> {
        super::lenient_list(deserializer, |v| v.as_str().and_then(WebhookEvent::parse))
            .map(WebhookEvents)
    }
}

/// Attempts after which a delivery is given up (about 29 hours of retrying in all).
pub const MAX_ATTEMPTS: i32 = 16;

const FIRST_RETRY_SECS: i64 = 10;
const LONGEST_RETRY_SECS: i64 = 6 * 60 * 60;

/// How long to wait after the `failed_attempts`-th failed attempt: 10 s, doubling each time, at
/// most 6 hours.
pub fn backoff(failed_attempts: i32) -> TimeDelta {
    let doublings = failed_attempts.saturating_sub(1).clamp(0, 30) as u32;
    let secs = FIRST_RETRY_SECS
        .saturating_mul(1_i64 << doublings)
        .min(LONGEST_RETRY_SECS);
    TimeDelta::seconds(secs)
}

/// Spreads a retry delay over 90% to 110% of itself (`unit` in 0..1), so rows that failed
/// together (an endpoint that was down) do not all come due in the same second again.
pub fn jittered(delay: TimeDelta, unit: f64) -> TimeDelta {
    let factor = 0.9 + 0.2 * unit.clamp(0.0, 1.0);
    TimeDelta::milliseconds((delay.num_milliseconds() as f64 * factor) as i64)
}

/// The body delivered to subscribers, in the Standard Webhooks shape.
pub fn envelope(event: WebhookEvent, timestamp: DateTime<Utc>, data: Value) -> Value {
    json!({
        "type": event.as_str(),
        "timestamp": timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_round_trip() {
        for e in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(e.as_str()), Some(e));
        }
        assert_eq!(WebhookEvent::parse("coupon.deleted"), None);
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_six_hours() {
        let secs: Vec<i64> = (1..=5).map(|n| backoff(n).num_seconds()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160]);
        assert_eq!(backoff(0).num_seconds(), 10);
        assert_eq!(backoff(12).num_seconds(), 20_480);
        assert_eq!(backoff(13).num_seconds(), LONGEST_RETRY_SECS);
        assert_eq!(backoff(i32::MAX).num_seconds(), LONGEST_RETRY_SECS);
    }

    #[test]
    fn jitter_stays_within_a_tenth_of_the_delay() {
        let base = TimeDelta::seconds(100);
        assert_eq!(jittered(base, 0.0).num_seconds(), 90);
        assert_eq!(jittered(base, 0.5).num_seconds(), 100);
        assert_eq!(jittered(base, 1.0).num_seconds(), 110);
        assert_eq!(jittered(base, 7.0).num_seconds(), 110);
    }

    #[test]
    fn retries_span_more_than_a_day() {
        let total: i64 = (1..MAX_ATTEMPTS).map(|n| backoff(n).num_seconds()).sum();
        assert!(total > 24 * 60 * 60, "{total}");
    }

    #[test]
    fn envelope_names_the_event_and_carries_the_data() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            envelope(WebhookEvent::CouponIssued, at, json!({"coupon_id": 7})),
            json!({"type": "coupon.issued", "timestamp": "2026-11-21T10:00:00.000Z",
                   "data": {"coupon_id": 7}})
        );
    }
}
