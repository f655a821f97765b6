//! The one owner of the application's background workers (job runner, webhook and notification
//! dispatchers, scheduler). Each worker gets a cancellation token; shutdown cancels them all and
//! waits, up to a grace period, for each to finish or release what it holds.

use std::{future::Future, time::Duration};

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
