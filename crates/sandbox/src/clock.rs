//! Time source of the sandbox.
//!
//! Every time-dependent rule (rate windows, code and token lifetimes, pool dates, the
//! consistency delay) reads [`Clock::now`], so tests move time instead of sleeping.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};

/// A source of "now" that the sandbox can also be told to move.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant (UTC).
    fn now(&self) -> Timestamp;

    /// Moves the clock so that `now()` returns `to` (and goes on from there).
    fn set(&self, to: Timestamp);

    /// Moves the clock by `by` (may be negative).
    fn advance(&self, by: SignedDuration) {
        let to = self.now().saturating_add(by).unwrap_or(self.now());
        self.set(to);
    }
}

/// A shareable clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// Real time plus an adjustable offset.
///
/// The offset lets `/_sandbox/clock` move a running sandbox forward (for example to an
/// hour later, to see tokens expire) while time keeps flowing.
#[derive(Debug, Default)]
pub struct SystemClock {
    offset: Mutex<SignedDuration>,
}

impl SystemClock {
    /// A clock that follows real time.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let offset = *self.offset.lock().unwrap_or_else(PoisonError::into_inner);
        Timestamp::now()
            .saturating_add(offset)
            .unwrap_or(Timestamp::now())
    }

    fn set(&self, to: Timestamp) {
        let offset = to.duration_since(Timestamp::now());
        *self.offset.lock().unwrap_or_else(PoisonError::into_inner) = offset;
    }
}

/// A clock that stands still until told to move: tests use it so nothing depends on
/// how fast the machine is.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock frozen at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// A shareable clock frozen at `start`.
    pub fn shared(start: Timestamp) -> Arc<Self> {
        Arc::new(Self::new(start))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, to: Timestamp) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }
}

/// Seconds from `now` to the start of the next UTC minute (1..=60).
///
/// Fixed rate windows reset on the minute, so this is both `Retry-After` and the
/// reset value of the rate-limit headers.
pub fn seconds_to_next_minute(now: Timestamp) -> u64 {
    let into_minute = now.as_second().rem_euclid(60);
    // A request at exactly :00 still has the whole minute ahead of it.
    (60 - into_minute) as u64
}

/// Index of the UTC minute that contains `now` (the fixed rate window).
pub fn minute_window(now: Timestamp) -> i64 {
    now.as_second().div_euclid(60)
}

/// The API's timestamp format: ISO-8601 UTC with milliseconds, e.g. `2026-01-01T00:00:00.000Z`.
pub fn format_api_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_time_has_milliseconds_and_z() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(format_api_time(t), "2026-01-01T00:00:00.000Z");
    }

    #[test]
    fn next_minute_counts_whole_minute_at_boundary() {
        let t: Timestamp = "2026-01-01T10:15:00Z".parse().unwrap();
        assert_eq!(seconds_to_next_minute(t), 60);
        let t: Timestamp = "2026-01-01T10:15:59.900Z".parse().unwrap();
        assert_eq!(seconds_to_next_minute(t), 1);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let before = c.now();
        c.advance(SignedDuration::from_secs(90));
        assert_eq!(
            c.now().duration_since(before),
            SignedDuration::from_secs(90)
        );
    }
}
