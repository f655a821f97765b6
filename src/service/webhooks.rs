//! Webhooks out: events are queued in the outbox inside the transaction of the change they
//! announce, then delivered, signed the Standard Webhooks way, by a worker that retries failed
//! deliveries with exponential backoff. Delivery is at least once; `webhook-id` stays the same
//! across retries so receivers can drop duplicates.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use entity::{coupons, customers, outbox};
use rand::Rng;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::{
    domain::{
        coupon::CouponStatus,
        signature,
        webhook::{self, MAX_ATTEMPTS, WebhookEvent},
    },
    store::{self, events::EventKind, outbox::WEBHOOK},
    supervisor,
};

/// Rows a worker claims per round.
const BATCH: u64 = 50;
/// Deliveries one worker has in flight to one subscription at once: a receiver flooded by
/// every replica's whole batch answers late, and a late answer is a timeout and a resend.
const PER_SUBSCRIPTION: usize = 8;
/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long claimed rows stay a worker's: a whole batch queued behind one subscription's bound,
/// every delivery timing out, plus time to record the outcomes. A lease that ran out while its
/// worker still delivered would let another replica send the same rows again.
const LEASE: TimeDelta = TimeDelta::seconds(
    DELIVERY_TIMEOUT.as_secs() as i64 * BATCH.div_ceil(PER_SUBSCRIPTION as u64) as i64 + 30,
);
/// Tries at recording that a message went out: each lost record is a message sent again.
const RECORD_TRIES: u32 = 3;

/// Queues `event` for every subscription of the org that wants it, in the caller's transaction.
/// `occurrence` names this happening among the org's events of that kind (the coupon id for
/// `coupon.issued`, the redemption id for `coupon.redeemed`, ...): queueing the same occurrence
/// twice delivers it once.
pub async fn enqueue<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    event: WebhookEvent,
    occurrence: &str,
    data: Value,
) -> Result<(), DbErr> {
    enqueue_many(db, org_id, event, vec![(occurrence.to_string(), data)]).await
}

/// [`enqueue`] for many occurrences of one event, (occurrence, data) each, in few statements.
pub async fn enqueue_many<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    event: WebhookEvent,
    occurrences: Vec<(String, Value)>,
) -> Result<(), DbErr> {
    let subscriptions = store::webhooks::subscribed(db, org_id, event).await?;
    if subscriptions.is_empty() || occurrences.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let mut messages = Vec::with_capacity(subscriptions.len() * occurrences.len());
    for (occurrence, data) in occurrences {
        let body = webhook::envelope(event, now, data);
        for sub in &subscriptions {
            let dedup_key = format!("webhook:{}:{}:{occurrence}", sub.id, event.as_str());
            // Generated here, not from the row id, so it is unique across databases and
            // stays the same for every retry of this message.
            let message_id = format!("msg_{}", uuid::Uuid::now_v7());
            messages.push((
                dedup_key,
                json!({"webhook_id": sub.id, "message_id": message_id, "body": body}),
            ));
        }
    }
    store::outbox::push_many(db, org_id, WEBHOOK, messages).await
}

/// Announces a change of a coupon that subscribers may follow (redeemed, reversed,
/// invalidated, transferred, expired), in the caller's transaction; other changes announce
/// nothing. `occurrence` names this change (see [`enqueue`]); `detail` joins the coupon data.
pub async fn announce<C: ConnectionTrait>(
    db: &C,
    coupon: &coupons::Model,
    kind: EventKind,
    occurrence: String,
    detail: Option<Value>,
) -> Result<(), DbErr> {
    let event = match kind {
        EventKind::Redeem => WebhookEvent::CouponRedeemed,
        EventKind::Unredeem => WebhookEvent::CouponReversed,
        EventKind::Invalidate => WebhookEvent::CouponInvalidated,
        EventKind::Transfer => WebhookEvent::CouponTransferred,
        EventKind::Expire => WebhookEvent::CouponExpired,
        _ => return Ok(()),
    };
    let mut data = coupon_data(coupon, None);
    data["detail"] = detail.unwrap_or(Value::Null);
    enqueue(db, coupon.org_id, event, &occurrence, data).await
}

/// Names one issue of a coupon (a coupon may be issued again after being unassigned).
pub fn issue_occurrence(coupon: &coupons::Model) -> String {
    let at = coupon.issued_at.map_or(0, |t| t.timestamp_micros());
    format!("coupon-{}-issued-{at}", coupon.id)
}

/// The `data` of coupon events: the coupon and, when known, the customer concerned.
pub fn coupon_data(coupon: &coupons::Model, customer: Option<&customers::Model>) -> Value {
    json!({
        "coupon": {
            "id": coupon.id,
            "code": coupon.code,
            "pool_id": coupon.pool_id,
            "status": CouponStatus::from_i16(coupon.status).map(CouponStatus::as_str),
            "issued_at": coupon.issued_at,
            "expires_at": coupon.expires_at,
            "redeemable_from": coupon.redeemable_from,
            "balance": coupon.balance,
        },
        "customer": customer.map(|c| json!({"id": c.id, "external_id": c.external_id})),
    })
}

/// What one round of the worker did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub failed: usize,
}

impl Round {
    fn claimed(&self) -> usize {
        self.delivered + self.failed
    }
}

/// Delivers queued webhooks. Safe to run on every replica at once.
#[derive(Clone)]
pub struct Worker {
    db: DatabaseConnection,
}

impl Worker {
    pub fn new(db: DatabaseConnection) -> Worker {
        Worker { db }
    }

    /// Claims the deliveries due at `now` (at most one batch) and attempts each once, at most
    /// [`PER_SUBSCRIPTION`] at a time per subscription. Every claimed row is seen through: one
    /// delivery's database error does not abandon the others, which may already be on the wire
    /// (abandoned, they would be sent again once their lease ran out).
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Round, DbErr> {
        let claimed = store::outbox::claim(
            &self.db,
            store::outbox::Claim {
                channel: WEBHOOK,
                now,
                lease_until: now + LEASE,
                max_attempts: MAX_ATTEMPTS,
                limit: BATCH,
            },
        )
        .await?;
        let mut bounds: HashMap<i64, Arc<Semaphore>> = HashMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        for row in claimed {
            let bound = bounds
                .entry(row.payload["webhook_id"].as_i64().unwrap_or_default())
                .or_insert_with(|| Arc::new(Semaphore::new(PER_SUBSCRIPTION)))
                .clone();
            let worker = self.clone();
            tasks.spawn(async move {
                let _turn = bound.acquire_owned().await;
                worker.deliver(row, now).await
            });
        }
        let settled = supervisor::settle(tasks, |e| {
            DbErr::Custom(format!("delivery task failed: {e}"))
        })
        .await;
        match settled.error {
            Some(err) => Err(err),
            None => Ok(Round {
                delivered: settled.sent,
                failed: settled.failed,
            }),
        }
    }

    /// One round for the supervisor's periodic worker; true when a full batch was claimed,
    /// so more rows may be due at once.
    pub async fn round(&self) -> bool {
        match self.run_once(Utc::now()).await {
            Ok(round) => round.claimed() as u64 == BATCH,
            Err(err) => {
                tracing::warn!(%err, "webhook round failed");
                false
            }
        }
    }

    /// One attempt at one row; true when the receiver took it.
    async fn deliver(&self, row: outbox::Model, now: DateTime<Utc>) -> Result<bool, DbErr> {
        let Some(sub) = self.subscription_of(&row).await? else {
            let error = "the subscription was deleted";
            store::outbox::give_up(&self.db, row.id, error, MAX_ATTEMPTS).await?;
            return Ok(false);
        };
        match self.post(&row, &sub).await {
            Ok(()) => {
                self.record_sent(row.id).await?;
                Ok(true)
            }
            Err(error) => {
                let error = if row.attempts >= MAX_ATTEMPTS {
                    format!("gave up after {} attempts: {error}", row.attempts)
                } else {
                    error
                };
                let spread = rand::rng().random::<f64>();
                let next = now + webhook::jittered(webhook::backoff(row.attempts), spread);
                store::outbox::mark_failed(&self.db, row.id, &error, next).await?;
                Ok(false)
            }
        }
    }

    /// Marks a delivered row sent, trying again on a database hiccup: the receiver has the
    /// message, and a row left unsent goes out again when its lease runs out.
    async fn record_sent(&self, id: i64) -> Result<(), DbErr> {
        let mut pause = Duration::from_millis(200);
        let mut tries = 1;
        loop {
            match store::outbox::mark_sent(&self.db, id, Utc::now()).await {
                Err(err) if tries < RECORD_TRIES => {
                    tracing::warn!(id, %err, "could not record a delivered webhook; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                    tries += 1;
                }
                done => return done,
            }
        }
    }

    async fn subscription_of(
        &self,
        row: &outbox::Model,
    ) -> Result<Option<entity::webhooks::Model>, DbErr> {
        match row.payload["webhook_id"].as_i64() {
            Some(id) => store::webhooks::get(&self.db, id).await,
            None => Ok(None),
        }
    }

    async fn post(&self, row: &outbox::Model, sub: &entity::webhooks::Model) -> Result<(), String> {
        let body = serde_json::to_vec(&row.payload["body"]).map_err(|e| e.to_string())?;
        let msg_id = match row.payload["message_id"].as_str() {
            Some(id) => id.to_string(),
            // Queued before messages carried their own id.
            None => format!("msg_{}", row.id),
        };
        let timestamp = Utc::now().timestamp();
        let signature =
            signature::sign(&sub.secret, &msg_id, timestamp, &body).map_err(|e| e.to_string())?;
        let url = reqwest::Url::parse(&sub.url).map_err(|e| e.to_string())?;
        super::outbound::check_literal(&url)?;
        let resp = super::outbound::client()
            .post(url)
            .timeout(DELIVERY_TIMEOUT)
            .header("content-type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {}", resp.status()))
        }
    }
}
