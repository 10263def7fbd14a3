//! The per-team call budget: 60 calls per UTC minute, shared with every other
//! app and admin of the team.
//!
//! This is a fixed window aligned to UTC minutes, as the API counts, not a
//! token bucket: a 15-call apply in a fresh window goes out at once instead
//! of one call per second. A small reserve is left for the humans and tools
//! sharing the team. The logic is pure (time is an argument); the client
//! does the waiting, and `shared_budget` carries a [`WindowCount`] between
//! the processes of one machine.

use jiff::{SignedDuration, Timestamp};

/// Documented limit of calls per team per UTC minute.
pub const TEAM_LIMIT: u32 = 60;

/// What one process tells the others about a team's window: calls known
/// spent in it and a 429's wait. Both only ever grow within a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowCount {
    /// UTC minute index.
    pub window: i64,
    pub used: u32,
    pub throttled_until: Option<Timestamp>,
}

/// One team's budget.
#[derive(Clone, Debug)]
pub struct Budget {
    limit: u32,
    reserve: u32,
    /// UTC minute index of the window `used` counts in.
    window: i64,
    /// Calls known to be spent in this window (ours, or others' as reported
    /// by the server's remaining-count header).
    used: u32,
    /// A 429 told us to wait until then.
    throttled_until: Option<Timestamp>,
}

impl Budget {
    pub fn new(limit: u32, reserve: u32) -> Self {
        Budget {
            limit,
            reserve: reserve.min(limit.saturating_sub(1)),
            window: i64::MIN,
            used: 0,
            throttled_until: None,
        }
    }

    fn roll(&mut self, now: Timestamp) {
        let window = minute_of(now);
        if window != self.window {
            self.window = window;
            self.used = 0;
        }
    }

    /// Takes one call at `now`, or says when to try again.
    pub fn try_acquire(&mut self, now: Timestamp) -> Result<(), Timestamp> {
        if let Some(until) = self.throttled_until {
            if now < until {
                return Err(until);
            }
            self.throttled_until = None;
        }
        self.roll(now);
        if self.used < self.limit - self.reserve {
            self.used += 1;
            Ok(())
        } else {
            Err(next_minute(now))
        }
    }

    /// When a call could go out: `None` now, else the time to wait for. Takes
    /// nothing (see [`Budget::try_acquire`]).
    pub fn ready_at(&self, now: Timestamp) -> Option<Timestamp> {
        if let Some(until) = self.throttled_until.filter(|u| now < *u) {
            return Some(until);
        }
        (self.remaining(now) == 0).then(|| next_minute(now))
    }

    /// Learns from the server's rate headers: `remaining` calls are left in
    /// the current window. Others may have spent some, so never trust our own
    /// count over the server's.
    pub fn observe(&mut self, now: Timestamp, limit: Option<u32>, remaining: Option<u32>) {
        self.roll(now);
        if let Some(limit) = limit.filter(|l| *l > 0) {
            self.limit = limit;
            self.reserve = self.reserve.min(limit.saturating_sub(1));
        }
        if let Some(remaining) = remaining {
            self.used = self.used.max(self.limit.saturating_sub(remaining));
        }
    }

    /// A 429: no call until `until` (from Retry-After, or the next minute).
    pub fn throttled(&mut self, now: Timestamp, retry_after: Option<SignedDuration>) {
        let until = match retry_after {
            Some(d) => now.saturating_add(d).unwrap_or(now),
            None => next_minute(now),
        };
        self.throttled_until = Some(self.throttled_until.map_or(until, |t| t.max(until)));
        self.roll(now);
        self.used = self.limit;
    }

    /// Takes in what other processes counted. Counts of another window and
    /// waits already over are stale and ignored.
    pub fn merge(&mut self, now: Timestamp, shared: &WindowCount) {
        self.roll(now);
        if shared.window == self.window {
            self.used = self.used.max(shared.used.min(self.limit));
        }
        if let Some(until) = shared.throttled_until.filter(|u| now < *u) {
            self.throttled_until = Some(self.throttled_until.map_or(until, |t| t.max(until)));
        }
    }

    /// What to tell the other processes after a decision at `now`.
    pub fn count(&mut self, now: Timestamp) -> WindowCount {
        self.roll(now);
        WindowCount {
            window: self.window,
            used: self.used,
            throttled_until: self.throttled_until.filter(|u| now < *u),
        }
    }

    /// Calls this client may still make in the current window.
    pub fn remaining(&self, now: Timestamp) -> u32 {
        if minute_of(now) != self.window {
            return self.limit - self.reserve;
        }
        (self.limit - self.reserve).saturating_sub(self.used)
    }

    /// Calls per window available to this client.
    pub fn per_window(&self) -> u32 {
        self.limit - self.reserve
    }
}

fn minute_of(t: Timestamp) -> i64 {
    t.as_second().div_euclid(60)
}

/// The start of the next UTC minute.
pub fn next_minute(now: Timestamp) -> Timestamp {
    Timestamp::from_second((minute_of(now) + 1) * 60).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_fresh_window_allows_a_burst_up_to_the_limit_minus_the_reserve() {
        let mut b = Budget::new(60, 5);
        let now = t("2026-11-26T10:15:30Z");
        for _ in 0..55 {
            assert_eq!(b.try_acquire(now), Ok(()));
        }
        assert_eq!(b.try_acquire(now), Err(t("2026-11-26T10:16:00Z")));
        assert_eq!(b.remaining(now), 0);
        assert_eq!(b.ready_at(now), Some(t("2026-11-26T10:16:00Z")));
        assert_eq!(b.ready_at(t("2026-11-26T10:16:00Z")), None);
        // The next UTC minute is a new window.
        assert_eq!(b.try_acquire(t("2026-11-26T10:16:00Z")), Ok(()));
        assert_eq!(b.remaining(t("2026-11-26T10:16:00Z")), 54);
    }

    #[test]
    fn calls_spent_by_others_count() {
        let mut b = Budget::new(60, 0);
        let now = t("2026-11-26T10:15:30Z");
        b.try_acquire(now).unwrap();
        b.observe(now, Some(60), Some(2));
        assert_eq!(b.remaining(now), 2);
        b.try_acquire(now).unwrap();
        b.try_acquire(now).unwrap();
        assert!(b.try_acquire(now).is_err());
    }

    #[test]
    fn processes_sharing_a_window_count_never_exceed_it_together() {
        let now = t("2026-11-26T10:15:30Z");
        let (mut a, mut b) = (Budget::new(60, 5), Budget::new(60, 5));
        let mut shared: Option<WindowCount> = None;
        let mut granted = 0;
        // Each takes a call in turn, reading and writing the shared count.
        for i in 0..120 {
            let me = if i % 2 == 0 { &mut a } else { &mut b };
            if let Some(s) = &shared {
                me.merge(now, s);
            }
            if me.try_acquire(now).is_ok() {
                granted += 1;
            }
            shared = Some(me.count(now));
        }
        assert_eq!(granted, 55);
        // A count from an earlier window says nothing about this one.
        let mut c = Budget::new(60, 5);
        c.merge(t("2026-11-26T10:16:00Z"), &shared.unwrap());
        assert_eq!(c.remaining(t("2026-11-26T10:16:00Z")), 55);
    }

    #[test]
    fn a_429_seen_by_another_process_makes_this_one_wait_too() {
        let now = t("2026-11-26T10:15:30Z");
        let mut a = Budget::new(60, 5);
        a.throttled(now, Some(SignedDuration::from_secs(10)));
        let mut b = Budget::new(60, 5);
        b.merge(now, &a.count(now));
        assert_eq!(b.try_acquire(now), Err(t("2026-11-26T10:15:40Z")));
    }

    #[test]
    fn a_429_waits_for_retry_after_or_the_next_minute() {
        let mut b = Budget::new(60, 0);
        let now = t("2026-11-26T10:15:30Z");
        b.throttled(now, Some(SignedDuration::from_secs(10)));
        assert_eq!(b.try_acquire(now), Err(t("2026-11-26T10:15:40Z")));
        // After Retry-After, the window is spent until it rolls over.
        assert_eq!(
            b.try_acquire(t("2026-11-26T10:15:40Z")),
            Err(t("2026-11-26T10:16:00Z"))
        );
        assert_eq!(b.try_acquire(t("2026-11-26T10:16:00Z")), Ok(()));

        let mut b = Budget::new(60, 0);
        b.throttled(now, None);
        assert_eq!(b.try_acquire(now), Err(t("2026-11-26T10:16:00Z")));
    }
}
