//! Fixed-window request budgets, as documented: a window is one UTC minute
//! (10:15:00–10:15:59) and resets at the start of the next one.
//!
//! One bucket per team is shared by every team operation, app and admin; List Teams has
//! its own bucket per OAuth client. Refused requests do not use up budget.

use std::collections::HashMap;

use jiff::Timestamp;

use super::clock::{minute_window, seconds_to_next_minute};

/// Which budget a request draws from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Bucket {
    Team(String),
    ListTeams { client_id: String },
}

/// The limiter's verdict, also the content of the rate-limit headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateInfo {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets (also `Retry-After` when refused).
    pub reset_secs: u64,
}

#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    // (window index, calls counted in it)
    buckets: HashMap<Bucket, (i64, u32)>,
}

impl RateLimiter {
    /// Counts one call against `bucket` if it fits in `limit` for the current window.
    pub fn check(&mut self, bucket: Bucket, limit: u32, now: Timestamp) -> RateInfo {
        let window = minute_window(now);
        // Old windows are dead weight; drop them so the map stays small.
        self.buckets.retain(|_, (w, _)| *w == window);
        let entry = self.buckets.entry(bucket).or_insert((window, 0));
        let allowed = entry.1 < limit;
        if allowed {
            entry.1 += 1;
        }
        RateInfo {
            allowed,
            limit,
            remaining: limit.saturating_sub(entry.1),
            reset_secs: seconds_to_next_minute(now),
        }
    }

    /// Forgets all counts (used when the clock is moved backwards by an admin).
    pub fn clear(&mut self) {
        self.buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_resets_on_the_minute_not_sixty_seconds_later() {
        let mut l = RateLimiter::default();
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let b = || Bucket::Team("1".into());
        assert!(l.check(b(), 2, t("2026-01-01T10:15:58Z")).allowed);
        assert!(l.check(b(), 2, t("2026-01-01T10:15:59Z")).allowed);
        let refused = l.check(b(), 2, t("2026-01-01T10:15:59Z"));
        assert!(!refused.allowed);
        assert_eq!(refused.reset_secs, 1);
        assert!(l.check(b(), 2, t("2026-01-01T10:16:00Z")).allowed);
    }
}
