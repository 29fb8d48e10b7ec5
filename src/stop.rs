//! The stop signal shared by long-running tasks: a `watch` channel that turns `true` once.

use tokio::sync::watch;

/// Resolves when `stop` is (or already was) set, or its sender is gone.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here rather than hold it in a caller's
    // `select!`.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}
