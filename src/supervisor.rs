//! The one owner of the application's background workers (job runner, webhook and notification
//! dispatchers, scheduler). Each worker gets a cancellation token; shutdown cancels them all and
//! waits, up to a grace period, for each to finish or release what it holds.

use std::{future::Future, time::Duration};

use tokio::task::JoinSet;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

#[derive(Clone, Default)]
pub struct Supervisor {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Supervisor {
    pub fn new() -> Supervisor {
        Supervisor::default()
    }

    /// Runs a worker until it returns. The worker must return soon after its token is
    /// cancelled: stop claiming, finish or release the current item.
    pub fn spawn_worker<F, Fut>(&self, name: &'static str, worker: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let run = worker(self.cancel.child_token());
        self.tracker.spawn(async move {
            tracing::info!(worker = name, "worker started");
            run.await;
            tracing::info!(worker = name, "worker stopped");
        });
    }

    /// Tells every worker to stop (they stop claiming at once); [`Supervisor::shutdown`] waits.
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Cancels every worker and waits up to `grace` for them to stop; false if some did not.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.cancel.cancel();
        self.tracker.close();
        let drained = tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok();
        if !drained {
            tracing::warn!("background workers did not stop within the grace period");
        }
        drained
    }
}

/// How a round of sends ended: how many went out, how many failed, and the first error met.
#[derive(Debug)]
pub struct Settled<E> {
    pub sent: usize,
    pub failed: usize,
    pub error: Option<E>,
}

/// Waits for every send of a round (each answering whether it went out). An error does not
/// abandon the other sends: they may already be on the wire, and a send abandoned before its
/// outcome is recorded goes out again when its lease runs out. A send that panicked is an error
/// made by `panicked`.
pub async fn settle<E: 'static>(
    mut sends: JoinSet<Result<bool, E>>,
    panicked: impl Fn(tokio::task::JoinError) -> E,
) -> Settled<E> {
    let mut settled = Settled {
        sent: 0,
        failed: 0,
        error: None,
    };
    while let Some(done) = sends.join_next().await {
        match done.map_err(&panicked).and_then(|sent| sent) {
            Ok(true) => settled.sent += 1,
            Ok(false) => settled.failed += 1,
            Err(err) => {
                settled.failed += 1;
                settled.error.get_or_insert(err);
            }
        }
    }
    settled
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use super::*;

    #[tokio::test]
    async fn shutdown_cancels_and_waits_for_workers() {
        let supervisor = Supervisor::new();
        let released = Arc::new(AtomicBool::new(false));
        let flag = released.clone();
        supervisor.spawn_worker("test", move |cancel| async move {
            cancel.cancelled().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            flag.store(true, Ordering::SeqCst);
        });
        assert!(supervisor.shutdown(Duration::from_secs(5)).await);
        assert!(released.load(Ordering::SeqCst));
    }
}
