//! What every job shares: the lease a worker holds while it works, renewed in the background
//! and fenced on every commit, and the way a job's end is recorded. Failures keep a stable code
//! and a sentence; database text is logged, never stored for callers.

use std::{future::Future, time::Duration};

use crate::store::entity::imports;
use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::{
    service::{Error, Result},
    store::{self, imports::Lease},
};

/// How long a request that runs a job itself (an upload answered when it is done) holds it; if
/// the process dies, the job runner takes the job over this long after the last renewal.
pub const INLINE_LEASE: Duration = Duration::from_secs(30);

/// One claimed job being worked on.
pub struct Run {
    pub db: DatabaseConnection,
    pub job: imports::Model,
    pub lease: Lease,
    /// Cancelled on shutdown or when the lease is lost: the job stops after its current chunk.
    pub cancel: CancellationToken,
}

impl Run {
    /// Whether the job should stop before its next chunk.
    pub fn stopping(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// How a job's work came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every row or code is done.
    Finished,
    /// Stopped early (shutdown, lost lease); the next worker resumes from the checkpoint.
    Stopped,
}

/// A worker's name in lease rows: host, process and a random part, unique per holder.
pub fn new_owner() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "coupond".into());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Runs `work` while renewing the lease every third of `lease`. If the lease is lost, `cancel`
/// is cancelled so the work stops; its commits are fenced anyway.
pub async fn holding<T>(
    db: &DatabaseConnection,
    lease: &Lease,
    duration: Duration,
    cancel: &CancellationToken,
    work: impl Future<Output = T>,
) -> T {
    let renew = async {
        loop {
            tokio::time::sleep(duration / 3).await;
            let until = Utc::now() + duration;
            match store::imports::renew(db, lease, until).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(job = lease.job_id, "job lease lost; stopping");
                    cancel.cancel();
                    std::future::pending::<()>().await;
                }
                Err(err) => tracing::warn!(job = lease.job_id, %err, "job lease renewal failed"),
            }
        }
    };
    tokio::select! {
        biased;
        out = work => out,
        () = renew => unreachable!("renewal never ends"),
    }
}

/// Records how a job's work ended. Finished jobs are done; stopped ones are released for the
/// next worker; failures are recorded with their public code and sentence, and a database
/// that is unreachable leaves the job to be retried.
pub async fn conclude(db: &DatabaseConnection, lease: &Lease, result: &Result<Outcome>) {
    let recorded = match result {
        Ok(Outcome::Finished) => store::imports::finish(db, lease, Ok(())).await,
        Ok(Outcome::Stopped) => store::imports::release(db, lease).await,
        Err(Error::Db(e)) if super::error::is_unavailable(e) => {
            tracing::warn!(job = lease.job_id, err = %e, "job paused: database unavailable");
            store::imports::release(db, lease).await
        }
        Err(err) => {
            if err.is_caller_error() {
                tracing::info!(job = lease.job_id, %err, "job refused");
            } else {
                tracing::error!(job = lease.job_id, %err, "job failed");
            }
            let detail = err.public_detail();
            store::imports::finish(db, lease, Err((err.code(), &detail))).await
        }
    };
    if let Err(err) = recorded {
        tracing::error!(job = lease.job_id, %err, "could not record the end of a job");
    }
}

/// Runs a job the caller created holding its lease (an upload answered when done), and
/// returns its final record, or the error it failed with (recorded on the job too). If the
/// process dies meanwhile, the job runner takes the job over.
pub async fn run_inline<F, Fut>(
    db: &DatabaseConnection,
    job: imports::Model,
    owner: String,
    work: F,
) -> Result<imports::Model>
where
    F: FnOnce(Run) -> Fut,
    Fut: Future<Output = Result<Outcome>>,
{
    let lease = Lease {
        job_id: job.id,
        owner,
    };
    let (org_id, id) = (job.org_id, job.id);
    let cancel = CancellationToken::new();
    let run = Run {
        db: db.clone(),
        job,
        lease: lease.clone(),
        cancel: cancel.clone(),
    };
    let result = holding(db, &lease, INLINE_LEASE, &cancel, work(run)).await;
    conclude(db, &lease, &result).await;
    result?;
    store::imports::get(db, org_id, id)
        .await?
        .ok_or_else(|| Error::internal(format!("job {id} vanished")))
}

/// The holder of a job created to be run inline: the owner and its first lease deadline.
pub fn inline_holder(owner: &str) -> (&str, chrono::DateTime<Utc>) {
    (owner, Utc::now() + INLINE_LEASE)
}
