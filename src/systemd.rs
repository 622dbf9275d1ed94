//! systemd integration: readiness, status lines, stopping, and a watchdog
//! that pings only while every subsystem reports healthy, so a wedged
//! pipeline gets the daemon restarted by systemd.
//!
//! All calls are no-ops when the daemon is not run by systemd (no
//! `NOTIFY_SOCKET`).

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

pub fn ready() {
    notify(&[NotifyState::Ready]);
}

pub fn status(line: &str) {
    notify(&[NotifyState::Status(line)]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// Before a restart in place (`exec` of the same PID to apply a new
/// configuration): a reload, which the next [`ready`] ends. Not `STOPPING=1`:
/// systemd would then take the service as going away, and kill the
/// restarted daemon when `TimeoutStopSec` ran out (it did, mid-call, in the
/// virtual room).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("Restarting to apply a new configuration"),
        ]),
        Err(e) => tracing::debug!("no monotonic clock for sd_notify: {e}"),
    }
}

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

/// The watchdog interval systemd asked for, if any.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec))
}

/// Ping the watchdog at half its interval while `healthy` says so. When a
/// subsystem stays unhealthy, pings stop and systemd restarts the daemon.
pub async fn watchdog(interval: Duration, mut healthy: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval / 2);
    let mut was_healthy = true;
    loop {
        tick.tick().await;
        let ok = *healthy.borrow_and_update();
        if ok {
            notify(&[NotifyState::Watchdog]);
        } else if was_healthy {
            tracing::warn!("a subsystem is unhealthy: withholding watchdog pings");
        }
        was_healthy = ok;
    }
}
