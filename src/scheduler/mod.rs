//! The cron scheduler: each job has a cron schedule (seconds first, UTC). A replica that finds a
//! job due claims the run by moving the job's `last_run_ms` from the value it read to now; of
//! replicas racing for one run exactly one wins, so each scheduled run happens once. Missed runs
//! (the service was down) collapse into one run at start-up.

pub mod clock;

use std::{str::FromStr, sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use cron::Schedule;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

pub use clock::{Clock, ManualClock, SystemClock};

use crate::{
    config::NotifyConfig,
    service::{self, expiry_sweep, housekeeping, limit_watch, reminders},
    store,
};

/// The jobs the scheduler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    ExpirySweep,
    Reminders,
    LimitWatch,
    Housekeeping,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::ExpirySweep => "expiry_sweep",
            Job::Reminders => "expiry_reminders",
            Job::LimitWatch => "issual_limit_watch",
            Job::Housekeeping => "housekeeping",
        }
    }
}

#[derive(Clone)]
struct Entry {
    job: Job,
    schedule: Schedule,
}

#[derive(Clone)]
pub struct Scheduler {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    entries: Vec<Entry>,
    retention: TimeDelta,
}

impl Scheduler {
    /// Parses the configured schedules; a malformed one stops the start.
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        config: &NotifyConfig,
    ) -> Result<Scheduler, String> {
        let parse = |job: Job, expr: &str| {
            Schedule::from_str(expr)
                .map(|schedule| Entry { job, schedule })
                .map_err(|e| format!("schedule of {} `{expr}`: {e}", job.name()))
        };
        Ok(Scheduler {
            db,
            clock,
            entries: vec![
                parse(Job::ExpirySweep, &config.expiry_cron)?,
                parse(Job::Reminders, &config.reminder_cron)?,
                parse(Job::LimitWatch, &config.limit_watch_cron)?,
                parse(Job::Housekeeping, &config.housekeeping_cron)?,
            ],
            retention: TimeDelta::days(i64::from(config.retention_days)),
        })
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Runs every job that is due at the clock's time and that this replica wins; returns the
    /// jobs it ran. A job that fails is logged and tried again at its next scheduled time; the
    /// others still run.
    pub async fn tick(&self) -> service::Result<Vec<Job>> {
        let now = self.clock.now();
        let mut ran = Vec::new();
        for entry in &self.entries {
            if !self.claim(entry, now).await? {
                continue;
            }
            if let Err(err) = self.run_job(entry.job, now).await {
                tracing::warn!(job = entry.job.name(), %err, "scheduled job failed");
            }
            ran.push(entry.job);
        }
        Ok(ran)
    }

    /// Ticks every `interval` until cancelled.
    pub async fn run(self, interval: Duration, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(err) = self.tick().await {
                tracing::warn!(%err, "scheduler could not claim its jobs");
            }
        }
    }

    /// Whether `entry` is due at `now` and this replica claimed the run.
    async fn claim(&self, entry: &Entry, now: DateTime<Utc>) -> service::Result<bool> {
        let name = entry.job.name();
        let last = store::notifications::last_run(&self.db, name).await?;
        if let Some(last_ms) = last {
            let last_at = DateTime::from_timestamp_millis(last_ms).unwrap_or_default();
            match entry.schedule.after(&last_at).next() {
                Some(next) if next <= now => {}
                _ => return Ok(false),
            }
        }
        let claimed =
            store::notifications::claim_run(&self.db, name, last, now.timestamp_millis()).await?;
        Ok(claimed)
    }

    /// Runs one job now, whatever its schedule (the scheduler calls this for due jobs; tests
    /// and operators may call it directly).
    pub async fn run_job(&self, job: Job, now: DateTime<Utc>) -> service::Result<()> {
        let started = std::time::Instant::now();
        let done = match job {
            Job::ExpirySweep => expiry_sweep::sweep(&self.db, now).await?,
            Job::Reminders => reminders::queue_due(&self.db, now).await?,
            Job::LimitWatch => limit_watch::check(&self.db, now).await?,
            Job::Housekeeping => housekeeping::clean(&self.db, now, self.retention).await?,
        };
        tracing::info!(
            job = job.name(),
            done,
            ms = started.elapsed().as_millis() as u64,
            "scheduled job ran"
        );
        Ok(())
    }
}
