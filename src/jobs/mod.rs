//! The job runner: claims job rows by lease, runs them with their lease renewed, and records
//! how they end. Any number of runners on any number of replicas share the rows; a job whose
//! holder died is claimed again once its lease lapses and resumes from its checkpoint.

use std::time::Duration;

use crate::store::entity::imports;
use chrono::Utc;
use sea_orm::{DatabaseConnection, DbErr};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    domain::job::JobKind,
    service::{
        self, Error,
        jobs::{self, Outcome, Run},
    },
    store::{self, imports::Lease},
    telemetry::Metrics,
};

/// A job claimed this many times without ending is given up (it kills its worker each time).
const MAX_ATTEMPTS: i32 = 10;

/// How runners claim and hold jobs.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a claim lasts without renewal: the time a crashed job waits to be resumed.
    pub lease: Duration,
    /// Pause between claims when nothing is due.
    pub poll: Duration,
}

#[derive(Clone)]
pub struct Runner {
    db: DatabaseConnection,
    settings: Settings,
    metrics: Metrics,
}

impl Runner {
    pub fn new(db: DatabaseConnection, settings: Settings, metrics: Metrics) -> Runner {
        Runner {
            db,
            settings,
            metrics,
        }
    }

    /// Claims and runs jobs until `cancel`; the job in hand is stopped at its next chunk and
    /// released, so a restarted process (or another replica) takes it over at once.
    pub async fn run(self, cancel: CancellationToken) {
        let owner = jobs::new_owner();
        while !cancel.is_cancelled() {
            match self.run_once(&owner, &cancel).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => tracing::warn!(%err, "claiming a job failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.poll) => {}
                () = cancel.cancelled() => {}
            }
        }
    }

    /// Claims one due job and works on it until it ends or is stopped; false when none was due.
    pub async fn run_once(&self, owner: &str, cancel: &CancellationToken) -> Result<bool, DbErr> {
        let now = Utc::now();
        let until = now + self.settings.lease;
        let Some(job) = store::imports::claim(&self.db, owner, now, until).await? else {
            return Ok(false);
        };
        let span = tracing::info_span!(
            "job",
            job = job.id,
            kind = job.kind.as_str(),
            org = job.org_id
        );
        self.work(job, owner, cancel).instrument(span).await;
        Ok(true)
    }

    async fn work(&self, job: imports::Model, owner: &str, cancel: &CancellationToken) {
        tracing::info!(attempt = job.attempts, "job claimed");
        let lease = Lease {
            job_id: job.id,
            owner: owner.to_string(),
        };
        let run = Run {
            db: self.db.clone(),
            job,
            lease: lease.clone(),
            cancel: cancel.child_token(),
        };
        let work = work_on(&run);
        let result = jobs::holding(&self.db, &lease, self.settings.lease, &run.cancel, work).await;
        jobs::conclude(&self.db, &lease, &result).await;
        self.metrics.job_ended(run.job.kind.as_str(), &result);
    }
}

async fn work_on(run: &Run) -> service::Result<Outcome> {
    if run.job.attempts > MAX_ATTEMPTS {
        return Err(Error::conflict(
            "job_abandoned",
            format!("the job was started {MAX_ATTEMPTS} times without finishing; it was given up"),
        ));
    }
    match run.job.kind {
        JobKind::Generate => service::generation::run(run).await,
        JobKind::IssueBatch => service::batch_issue::run(run).await,
        JobKind::Revocation => service::revocation::revoke_list(run).await,
        JobKind::AllowList => service::customer_lists::allow_list(run).await,
        JobKind::Codes => Err(service::codes::interrupted()),
    }
}
