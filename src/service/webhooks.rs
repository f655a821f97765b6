//! Webhooks out: events are queued in the outbox inside the transaction of the change they
//! announce, then delivered, signed the Standard Webhooks way, by a worker that retries failed
//! deliveries with exponential backoff. Delivery is at least once; `webhook-id` stays the same
//! across retries so receivers can drop duplicates.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::store::entity::{coupons, customers, outbox, webhooks};
use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use serde_json::{Value, json};
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    domain::{
        message::OutboxChannel,
        signature,
        webhook::{self, MAX_ATTEMPTS, WebhookEvent},
    },
    store::{self, events::EventKind},
};

/// Rows a worker claims at once.
const BATCH: u64 = 200;
/// Rows an endpoint may have queued per delivery slot before more are handed back.
const QUEUE_PER_SLOT: usize = 4;
/// How long a row handed back (its endpoint's queue was full) waits before it is due again,
/// and the worker before it claims again.
const DEFER: Duration = Duration::from_millis(100);
/// How long finished deliveries wait for others to be recorded with them.
const SETTLE_WINDOW: Duration = Duration::from_millis(10);
/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long claimed rows stay a worker's: a row admitted behind its endpoint's whole queue
/// waits for every slot-holder before it, each up to the delivery timeout, then its own turn
/// at the overall bound, plus time to record the outcome. A lease that ran out while its worker
/// still delivered would let another replica send the same row again.
const LEASE: TimeDelta =
    TimeDelta::seconds(DELIVERY_TIMEOUT.as_secs() as i64 * (QUEUE_PER_SLOT as i64 + 2) + 30);
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
    let subscribed = subscribed(db, org_id, event).await?;
    enqueue_to(db, org_id, &subscribed, event, occurrences).await
}

/// The ids of the org's subscriptions to `event`.
pub async fn subscribed<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    event: WebhookEvent,
) -> Result<Vec<i64>, DbErr> {
    let subscriptions = store::webhooks::subscribed(db, org_id, event).await?;
    Ok(subscriptions.into_iter().map(|w| w.id).collect())
}

/// [`enqueue_many`] for subscriptions the caller read (with other rows, in one statement).
pub async fn enqueue_to<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    subscribed: &[i64],
    event: WebhookEvent,
    occurrences: Vec<(String, Value)>,
) -> Result<(), DbErr> {
    if subscribed.is_empty() || occurrences.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let mut messages = Vec::with_capacity(subscribed.len() * occurrences.len());
    for (occurrence, data) in occurrences {
        let body = webhook::envelope(event, now, data);
        for id in subscribed {
            let dedup_key = format!("webhook:{id}:{}:{occurrence}", event.as_str());
            // Generated here, not from the row id, so it is unique across databases and
            // stays the same for every retry of this message; a random UUID (v4), as the
            // single-event fan-out makes them in the database.
            let message_id = format!("msg_{}", uuid::Uuid::new_v4());
            messages.push((
                dedup_key,
                json!({"webhook_id": id, "message_id": message_id, "body": body}),
            ));
        }
    }
    store::outbox::push_many(db, org_id, OutboxChannel::Webhook, messages).await
}

/// A change of a coupon, as its history records it.
#[derive(Debug, Clone)]
pub struct Happened<'a> {
    pub coupon: &'a coupons::Model,
    /// Whom the event is about: the coupon's holder unless the change is about another
    /// customer, as with transfers.
    pub customer_id: Option<i64>,
    pub kind: EventKind,
    /// Names this change among the org's events of its kind (see [`enqueue`]).
    pub occurrence: String,
    /// The event's detail; it joins the webhook's data.
    pub detail: Option<Value>,
}

/// Records a change in the coupon's history and, for changes subscribers may follow
/// (redeemed, reversed, invalidated, transferred, expired), queues its webhook to the org's
/// subscriptions, in the caller's transaction.
pub async fn record<C: ConnectionTrait>(db: &C, h: Happened<'_>) -> Result<(), DbErr> {
    let Some(fanout) = announced(&h) else {
        return store::events::record(db, h.coupon, h.customer_id, h.kind, h.detail).await;
    };
    store::events::record_announced(db, h.coupon, h.customer_id, h.kind, h.detail, fanout).await
}

/// A redemption's [`record`], with the coupon's row saved as `redeemed.coupon` shows it in
/// the same step (one statement on PostgreSQL). The caller holds the row's lock.
pub async fn save_redeemed<C: ConnectionTrait>(
    db: &C,
    redeemed: Happened<'_>,
) -> Result<(), DbErr> {
    let h = Happened {
        kind: EventKind::Redeem,
        ..redeemed
    };
    let fanout = webhook_of(&h, WebhookEvent::CouponRedeemed);
    store::events::save_announced(db, h.coupon, h.customer_id, h.kind, h.detail, fanout).await
}

/// The webhook of a change subscribers may follow.
fn announced(h: &Happened<'_>) -> Option<store::events::Fanout> {
    let event = match h.kind {
        EventKind::Redeem => WebhookEvent::CouponRedeemed,
        EventKind::Unredeem => WebhookEvent::CouponReversed,
        EventKind::Invalidate => WebhookEvent::CouponInvalidated,
        EventKind::Transfer => WebhookEvent::CouponTransferred,
        EventKind::Expire => WebhookEvent::CouponExpired,
        _ => return None,
    };
    Some(webhook_of(h, event))
}

fn webhook_of(h: &Happened<'_>, event: WebhookEvent) -> store::events::Fanout {
    let mut data = coupon_data(h.coupon, None);
    data["detail"] = h.detail.clone().unwrap_or(Value::Null);
    fanout(event, h.occurrence.clone(), data)
}

/// Records a new coupon's issue to `customer` and queues `coupon.issued` to the org's
/// subscriptions, in the caller's transaction.
pub async fn record_issue<C: ConnectionTrait>(
    db: &C,
    coupon: &coupons::Model,
    customer: &customers::Model,
) -> Result<(), DbErr> {
    let data = coupon_data(coupon, Some(customer));
    let fanout = fanout(WebhookEvent::CouponIssued, issue_occurrence(coupon), data);
    let customer_id = Some(customer.id);
    store::events::record_announced(db, coupon, customer_id, EventKind::Issue, None, fanout).await
}

fn fanout(event: WebhookEvent, occurrence: String, data: Value) -> store::events::Fanout {
    store::events::Fanout {
        event: event.as_str(),
        occurrence,
        body: envelope_now(event, data).to_string(),
    }
}

/// A webhook's body, sent now.
pub fn envelope_now(event: WebhookEvent, data: Value) -> Value {
    webhook::envelope(event, Utc::now(), data)
}

/// Names one issue of a coupon (a coupon may be issued again after being unassigned).
pub fn issue_occurrence(coupon: &coupons::Model) -> String {
    let (prefix, suffix) = issue_occurrence_parts(coupon.issued_at);
    format!("{prefix}{}{suffix}", coupon.id)
}

/// [`issue_occurrence`] around the coupon's id, for a coupon issued at `issued_at` whose id
/// is not known yet.
pub fn issue_occurrence_parts(issued_at: Option<DateTime<Utc>>) -> (String, String) {
    let at = issued_at.map_or(0, |t| t.timestamp_micros());
    ("coupon-".to_string(), format!("-issued-{at}"))
}

/// The `data` of coupon events: the coupon and, when known, the customer concerned.
pub fn coupon_data(coupon: &coupons::Model, customer: Option<&customers::Model>) -> Value {
    let customer = customer.map_or(Value::Null, |c| customer_ref(c.id, &c.external_id));
    coupon_data_with(coupon, customer)
}

/// A customer as webhooks name one.
pub fn customer_ref(id: i64, external_id: &str) -> Value {
    json!({"id": id, "external_id": external_id})
}

/// [`coupon_data`] with the customer as [`customer_ref`] gives it, or null.
pub fn coupon_data_with(coupon: &coupons::Model, customer: Value) -> Value {
    json!({
        "coupon": {
            "id": coupon.id,
            "code": coupon.code,
            "pool_id": coupon.pool_id,
            "status": coupon.status.as_str(),
            "issued_at": coupon.issued_at,
            "expires_at": coupon.expires_at,
            "redeemable_from": coupon.redeemable_from,
            "balance": coupon.balance,
        },
        "customer": customer,
    })
}

/// What one round of the worker did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub failed: usize,
}

/// How many deliveries may be in flight at once.
#[derive(Debug, Clone, Copy)]
pub struct Concurrency {
    /// To one subscription's endpoint, so one receiver is never flooded.
    pub per_endpoint: usize,
    /// From this worker over all endpoints.
    pub overall: usize,
}

impl Default for Concurrency {
    fn default() -> Concurrency {
        Concurrency {
            per_endpoint: 64,
            overall: 1024,
        }
    }
}

/// One endpoint's gates: `admitted` bounds the rows waiting for or holding one of its
/// `in_flight` slots, so a slow endpoint's backlog stays in the outbox, not in memory.
struct Endpoint {
    admitted: Arc<Semaphore>,
    in_flight: Semaphore,
}

/// What one claim took.
#[derive(Debug, Default, Clone, Copy)]
struct Claimed {
    rows: usize,
    /// Rows handed back to the outbox because their endpoint's queue was full.
    handed_back: usize,
}

/// Where one claimed row ended up.
enum Outcome {
    Sent(i64),
    Failed {
        id: i64,
        error: String,
        next: DateTime<Utc>,
    },
    GaveUp(i64),
}

/// Delivers queued webhooks concurrently, bounded per endpoint and overall, marking them in
/// batches. Safe to run on every replica at once.
#[derive(Clone)]
pub struct Worker {
    db: DatabaseConnection,
    concurrency: Concurrency,
    overall: Arc<Semaphore>,
    endpoints: Arc<Mutex<HashMap<i64, Arc<Endpoint>>>>,
}

impl Worker {
    pub fn new(db: DatabaseConnection) -> Worker {
        Worker::bounded(db, Concurrency::default())
    }

    pub fn bounded(db: DatabaseConnection, concurrency: Concurrency) -> Worker {
        let concurrency = Concurrency {
            per_endpoint: concurrency.per_endpoint.max(1),
            overall: concurrency.overall.max(1),
        };
        Worker {
            db,
            concurrency,
            overall: Arc::new(Semaphore::new(concurrency.overall)),
            endpoints: Arc::default(),
        }
    }

    /// Claims the deliveries due at `now` (at most one batch), attempts each once and waits
    /// for them all.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Round, DbErr> {
        let mut tasks = JoinSet::new();
        self.dispatch(&mut tasks, now, BATCH).await?;
        let mut outcomes = Vec::new();
        while let Some(done) = tasks.join_next().await {
            outcomes.push(done.map_err(|e| DbErr::Custom(format!("delivery task failed: {e}")))?);
        }
        self.settle(&outcomes).await?;
        Ok(tally(&outcomes))
    }

    /// Delivers until cancelled: claims whenever there is room (at once after a full batch,
    /// else every `interval`), so a slow endpoint never holds back the others' deliveries.
    /// On cancellation it stops claiming and lets the deliveries in flight finish.
    pub async fn run(self, interval: Duration, cancel: CancellationToken) {
        let mut tasks = JoinSet::new();
        let mut next_claim = tokio::time::Instant::now();
        loop {
            let room = self.backlog().saturating_sub(tasks.len());
            let due = tokio::time::Instant::now() >= next_claim;
            if due && room > 0 && !cancel.is_cancelled() {
                let limit = room.min(BATCH as usize) as u64;
                let now = tokio::time::Instant::now();
                next_claim = match self.dispatch(&mut tasks, Utc::now(), limit).await {
                    // Some endpoint's queue is full: claiming again at once would hand its
                    // rows back again; they are due when its queue has drained a little.
                    Ok(claimed) if claimed.handed_back > 0 => now + DEFER,
                    Ok(claimed) if claimed.rows as u64 == limit => now,
                    Ok(_) => now + interval,
                    Err(err) => {
                        tracing::warn!(%err, "webhook claim failed");
                        tokio::time::Instant::now() + interval
                    }
                };
            }
            if cancel.is_cancelled() && tasks.is_empty() {
                return;
            }
            let wake = if cancel.is_cancelled() || room == 0 {
                None
            } else {
                Some(next_claim)
            };
            let outcomes = finished(&mut tasks, wake, &cancel).await;
            if let Err(err) = self.settle(&outcomes).await {
                tracing::warn!(%err, "recording webhook deliveries failed");
            }
        }
    }

    /// Rows claimed but not yet settled, at most: the queue in front of the overall limit.
    fn backlog(&self) -> usize {
        self.concurrency.overall * 2
    }

    /// Claims up to `limit` due rows and starts a delivery task for each, handing back those
    /// whose endpoint's queue is full.
    async fn dispatch(
        &self,
        tasks: &mut JoinSet<Outcome>,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Claimed, DbErr> {
        let claimed = store::outbox::claim(
            &self.db,
            store::outbox::Claim {
                channel: OutboxChannel::Webhook,
                now,
                lease_until: now + LEASE,
                max_attempts: MAX_ATTEMPTS,
                limit,
            },
        )
        .await?;
        let rows = claimed.len();
        if rows == 0 {
            return Ok(Claimed::default());
        }
        let ids = claimed.iter().filter_map(subscription_id);
        let subscriptions: HashMap<i64, Arc<webhooks::Model>> =
            store::webhooks::get_many(&self.db, ids)
                .await?
                .into_iter()
                .map(|sub| (sub.id, Arc::new(sub)))
                .collect();
        let mut deferred = Vec::new();
        for row in claimed {
            let sub = subscription_id(&row).and_then(|id| subscriptions.get(&id));
            let Some(sub) = sub.cloned() else {
                tasks.spawn(async move { Outcome::GaveUp(row.id) });
                continue;
            };
            let endpoint = self.endpoint(sub.id);
            let Ok(admitted) = endpoint.admitted.clone().try_acquire_owned() else {
                deferred.push(row.id);
                continue;
            };
            let worker = self.clone();
            tasks.spawn(async move {
                let _admitted = admitted;
                let _slot = endpoint.in_flight.acquire().await;
                let _overall = worker.overall.acquire().await;
                worker.attempt(&row, &sub, now).await
            });
        }
        let due = now + TimeDelta::milliseconds(DEFER.as_millis() as i64);
        store::outbox::release(&self.db, &deferred, due).await?;
        Ok(Claimed {
            rows,
            handed_back: deferred.len(),
        })
    }

    /// The gates of a subscription's endpoint; forgets idle endpoints as it goes.
    fn endpoint(&self, subscription: i64) -> Arc<Endpoint> {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        endpoints.retain(|id, e| *id == subscription || Arc::strong_count(e) > 1);
        let per_endpoint = self.concurrency.per_endpoint;
        endpoints
            .entry(subscription)
            .or_insert_with(|| {
                Arc::new(Endpoint {
                    admitted: Arc::new(Semaphore::new(per_endpoint * QUEUE_PER_SLOT)),
                    in_flight: Semaphore::new(per_endpoint),
                })
            })
            .clone()
    }

    /// One attempt at one row (the claim counted it).
    async fn attempt(
        &self,
        row: &outbox::Model,
        sub: &webhooks::Model,
        now: DateTime<Utc>,
    ) -> Outcome {
        match self.post(row, sub).await {
            Ok(()) => Outcome::Sent(row.id),
            Err(error) => {
                let error = if row.attempts >= MAX_ATTEMPTS {
                    format!("gave up after {} attempts: {error}", row.attempts)
                } else {
                    error
                };
                let spread = rand::rng().random::<f64>();
                let next = now + webhook::jittered(webhook::backoff(row.attempts), spread);
                Outcome::Failed {
                    id: row.id,
                    error,
                    next,
                }
            }
        }
    }

    /// Records outcomes, the sent first and in one statement. If that statement fails, each
    /// sent row is recorded on its own, a few tries each: a delivered row left unmarked would go
    /// out again once its lease ran out. A failure to record one row stops no other.
    async fn settle(&self, outcomes: &[Outcome]) -> Result<(), DbErr> {
        let sent: Vec<i64> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Sent(id) => Some(*id),
                _ => None,
            })
            .collect();
        let mut first_error = None;
        if store::outbox::mark_all_sent(&self.db, &sent, Utc::now())
            .await
            .is_err()
        {
            for &id in &sent {
                if let Err(err) = self.record_sent(id).await {
                    first_error.get_or_insert(err);
                }
            }
        }
        for outcome in outcomes {
            let recorded = match outcome {
                Outcome::Sent(_) => Ok(()),
                Outcome::Failed { id, error, next } => {
                    store::outbox::mark_failed(&self.db, *id, error, *next).await
                }
                Outcome::GaveUp(id) => {
                    let error = "the subscription was deleted";
                    store::outbox::give_up(&self.db, *id, error, MAX_ATTEMPTS).await
                }
            };
            if let Err(err) = recorded {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Marks one delivered row sent, trying again after a pause on a database hiccup.
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

    async fn post(&self, row: &outbox::Model, sub: &webhooks::Model) -> Result<(), String> {
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

fn subscription_id(row: &outbox::Model) -> Option<i64> {
    row.payload["webhook_id"].as_i64()
}

fn tally(outcomes: &[Outcome]) -> Round {
    let mut round = Round::default();
    for outcome in outcomes {
        match outcome {
            Outcome::Sent(_) => round.delivered += 1,
            Outcome::Failed { .. } | Outcome::GaveUp(_) => round.failed += 1,
        }
    }
    round
}

/// Waits for deliveries to finish, until `wake` (none: until one finishes, or all when
/// cancelled), then gathers every other one finishing within a short window so they are
/// recorded together.
async fn finished(
    tasks: &mut JoinSet<Outcome>,
    wake: Option<tokio::time::Instant>,
    cancel: &CancellationToken,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let first = async {
        match tasks.join_next().await {
            Some(done) => Some(done),
            None => std::future::pending().await,
        }
    };
    let sleep = async {
        match wake {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        done = first => outcomes.extend(done.and_then(Result::ok)),
        () = sleep => return outcomes,
        () = cancel.cancelled(), if !cancel.is_cancelled() => return outcomes,
    }
    let window = tokio::time::Instant::now() + SETTLE_WINDOW;
    while let Ok(Some(done)) = tokio::time::timeout_at(window, tasks.join_next()).await {
        outcomes.extend(done.ok());
    }
    outcomes
}
