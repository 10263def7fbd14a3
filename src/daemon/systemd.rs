//! systemd's notify protocol: READY once serving, STATUS lines, WATCHDOG
//! pings, STOPPING on shutdown. Every call is a no-op outside systemd.

use std::time::Duration;

use sd_notify::NotifyState;

pub fn ready(status: &str) {
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    let _ = sd_notify::notify(&[NotifyState::Status(status)]);
}

pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// How often to ping the watchdog: half of WatchdogSec, when set.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

pub fn ping() {
    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
}
