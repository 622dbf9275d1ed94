//! How the daemon is asked to stop or to start again: handles passed to the
//! parts that may ask (the command layer, for `config.set`), never statics.
//! `daemon` owns the receiving side and decides what happens.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_made_before_waiting_is_not_lost() {
        let r = Restart::new();
        r.clone().request();
        tokio::time::timeout(std::time::Duration::from_secs(1), r.requested())
            .await
            .expect("the earlier request is seen");
    }
}
