//! How the daemon is asked to stop or to start again, and how its actors
//! learn that it is stopping: handles passed in, never statics. `daemon`
//! owns the receiving side of [`Restart`] and the sending side of
//! [`Shutdown`], and decides the order things stop in.

use std::sync::Arc;

use tokio::sync::Notify;

/// Asks the daemon to shut down cleanly and start again in place (to apply a
/// new configuration). Cheap to clone.
#[derive(Clone, Default)]
pub struct Restart {
    notify: Arc<Notify>,
}

impl Restart {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask for a restart; the daemon's main loop sees it even if it was not
    /// waiting at that moment.
    pub fn request(&self) {
        self.notify.notify_one();
    }

    /// Resolves once a restart was asked for.
    pub async fn requested(&self) {
        self.notify.notified().await;
    }
}

/// The daemon's side of a shutdown: [`Shutdown::trigger`] tells every
/// [`Stopping`] at once.
pub struct Shutdown {
    tx: tokio::sync::watch::Sender<bool>,
}

/// An actor's side: resolves [`Stopping::wait`] once the daemon stops.
/// Cheap to clone.
#[derive(Clone)]
pub struct Stopping {
    rx: tokio::sync::watch::Receiver<bool>,
}

/// A new shutdown signal and its first receiver.
pub fn shutdown() -> (Shutdown, Stopping) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    (Shutdown { tx }, Stopping { rx })
}

impl Shutdown {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Stopping {
    /// Whether the daemon is stopping.
    pub fn is_set(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once the daemon stops (at once if it already is; also when
    /// the daemon's side is gone).
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|s| *s).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_receiver_sees_the_shutdown() {
        let (s, a) = shutdown();
        let mut b = a.clone();
        assert!(!a.is_set());
        s.trigger();
        tokio::time::timeout(std::time::Duration::from_secs(1), b.wait())
            .await
            .expect("woken");
        assert!(a.is_set());
    }

    #[tokio::test]
    async fn a_request_made_before_waiting_is_not_lost() {
        let r = Restart::new();
        r.clone().request();
        tokio::time::timeout(std::time::Duration::from_secs(1), r.requested())
            .await
            .expect("the earlier request is seen");
    }
}
