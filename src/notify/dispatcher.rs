//! Sends queued emails and SMS. Each round claims due rows of the channels this process can
//! send on (a lease, with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas never send a row
//! at once), sends them concurrently up to a bound, and marks them sent; a failure is retried
//! with exponential backoff and jitter until the attempts run out, then the row is `dead` with
//! its last error. Channels without a transport are not claimed: their rows stay queued.

use std::{sync::Arc, time::Duration};

use crate::store::entity::outbox;
use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{SendError, Transports, email::Email, sms::Sms};
use crate::{
    domain::message::{self, MAX_ATTEMPTS, OutboxChannel},
    store::{self, outbox::Claim},
    supervisor,
};

/// Rows claimed per channel per round.
const BATCH: u64 = 100;
/// How long claimed rows stay this dispatcher's: well past the send timeouts.
const LEASE: TimeDelta = TimeDelta::seconds(120);

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub sent: usize,
    pub failed: usize,
}

#[derive(Clone)]
pub struct Dispatcher {
    db: DatabaseConnection,
    transports: Arc<Transports>,
    concurrency: usize,
    retry_base: TimeDelta,
}

impl Dispatcher {
    pub fn new(
        db: DatabaseConnection,
        transports: Arc<Transports>,
        concurrency: usize,
        retry_base: Duration,
    ) -> Dispatcher {
        Dispatcher {
            db,
            transports,
            concurrency: concurrency.max(1),
            retry_base: TimeDelta::from_std(retry_base).unwrap_or(TimeDelta::seconds(10)),
        }
    }

    /// Claims the messages due now (a batch per channel) and attempts each once.
    pub async fn run_once(&self) -> Result<Round, DbErr> {
        let now = Utc::now();
        let mut rows = Vec::new();
        for (channel, can_send) in [
            (OutboxChannel::Email, self.transports.email.is_some()),
            (OutboxChannel::Sms, self.transports.sms.is_some()),
        ] {
            if can_send {
                rows.extend(self.claim(channel, now).await?);
            }
        }
        let limit = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        for row in rows {
            let this = self.clone();
            let limit = limit.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                this.attempt(row, now).await
            });
        }
        let settled =
            supervisor::settle(tasks, |e| DbErr::Custom(format!("send task failed: {e}"))).await;
        match settled.error {
            Some(err) => Err(err),
            None => Ok(Round {
                sent: settled.sent,
                failed: settled.failed,
            }),
        }
    }

    /// Runs rounds every `interval` until cancelled; a full batch goes again at once.
    pub async fn run(self, interval: Duration, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            loop {
                match self.run_once().await {
                    Ok(round) if (round.sent + round.failed) as u64 >= BATCH => continue,
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(%err, "outbox round failed");
                        break;
                    }
                }
            }
        }
    }

    async fn claim(
        &self,
        channel: OutboxChannel,
        now: DateTime<Utc>,
    ) -> Result<Vec<outbox::Model>, DbErr> {
        store::outbox::claim(
            &self.db,
            Claim {
                channel,
                now,
                lease_until: now + LEASE,
                max_attempts: MAX_ATTEMPTS,
                limit: BATCH,
            },
        )
        .await
    }

    /// One attempt at one row (its attempt already counted by the claim); true when sent.
    async fn attempt(&self, row: outbox::Model, now: DateTime<Utc>) -> Result<bool, DbErr> {
        match self.send(&row).await {
            Ok(()) => {
                store::outbox::mark_sent(&self.db, row.id, Utc::now()).await?;
                Ok(true)
            }
            Err(SendError::Permanent(error)) => {
                tracing::warn!(id = row.id, %error, "message refused for good");
                store::outbox::give_up(&self.db, row.id, &error, MAX_ATTEMPTS).await?;
                Ok(false)
            }
            Err(SendError::Transient(error)) => {
                let jitter: f64 = rand::random();
                let next = now + message::retry_delay(self.retry_base, row.attempts, jitter);
                let error = if row.attempts >= MAX_ATTEMPTS {
                    format!("gave up after {} attempts: {error}", row.attempts)
                } else {
                    error
                };
                store::outbox::mark_failed(&self.db, row.id, &error, next).await?;
                Ok(false)
            }
        }
    }

    async fn send(&self, row: &outbox::Model) -> Result<(), SendError> {
        let t = &self.transports;
        match (row.channel, &t.email, &t.sms) {
            (OutboxChannel::Email, Some(mailer), _) => {
                let email = Email::from_payload(&row.payload).map_err(SendError::Permanent)?;
                mailer.send(&email).await
            }
            (OutboxChannel::Sms, _, Some(gateway)) => {
                let sms = Sms::from_payload(&row.payload).map_err(SendError::Permanent)?;
                gateway.send(&sms, &format!("msg_{}", row.id)).await
            }
            (channel, _, _) => Err(SendError::Transient(format!(
                "no transport for channel {}",
                channel.as_str()
            ))),
        }
    }
}
