//! When each team is reconciled next: a pure policy (time and jitter are
//! arguments), so its behaviour is tested without clocks or sleeps.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// Pacing of the service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pacing {
    /// Normal period between passes (drift repair).
    pub interval: Duration,
    /// ± share of the interval added at random, so many teams (and many
    /// replicas of other tools) do not hit the API in lockstep.
    pub jitter: f64,
    /// Delay after the first failure; doubles with each further one, up to
    /// the interval.
    pub first_backoff: Duration,
    /// Failures in a row after which a team is degraded.
    pub degrade_after: u32,
    /// A degraded team waits this many intervals between passes.
    pub degraded_factor: u32,
}

impl Pacing {
    pub fn new(interval: Duration) -> Self {
        Pacing {
            interval,
            jitter: 0.1,
            first_backoff: Duration::from_secs(10).min(interval),
            degrade_after: 5,
            degraded_factor: 4,
        }
    }
}

/// One team's schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TeamSchedule {
    pub next_at: Timestamp,
    /// Failures in a row.
    pub failures: u32,
    pub degraded: bool,
    /// A trigger arrived since the current pass started: the team runs
    /// again as soon as the pass ends, whatever its outcome.
    pub pending: bool,
}

fn after(now: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    now.saturating_add(d).unwrap_or(now)
}

impl TeamSchedule {
    /// A new team is due at once.
    pub fn new(now: Timestamp) -> Self {
        TeamSchedule {
            next_at: now,
            failures: 0,
            degraded: false,
            pending: false,
        }
    }

    /// A change of the files or SIGHUP: due now, whatever the backoff. If a
    /// pass is running, the team runs again right after it.
    pub fn trigger(&mut self, now: Timestamp) {
        self.next_at = self.next_at.min(now);
        self.pending = true;
    }

    /// A pass starts: it sees every trigger so far.
    pub fn started(&mut self) {
        self.pending = false;
    }

    /// Due again no later than `at` (e.g. when held removals may go).
    pub fn wake_by(&mut self, at: Timestamp) {
        self.next_at = self.next_at.min(at);
    }

    /// A trigger that arrived during the pass is not lost to the interval.
    fn keep_pending(&mut self, now: Timestamp) {
        if self.pending {
            self.next_at = now;
        }
    }

    /// `unit` is a random number in [0, 1) for the jitter.
    pub fn succeeded(&mut self, now: Timestamp, pacing: &Pacing, unit: f64) {
        self.failures = 0;
        self.degraded = false;
        let factor = 1.0 + pacing.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let wait = Duration::try_from_secs_f64(pacing.interval.as_secs_f64() * factor.max(0.0))
            .unwrap_or(Duration::MAX);
        self.next_at = after(now, wait);
        self.keep_pending(now);
    }

    /// Exponential backoff, then the degraded pace (like a quarantine that
    /// lifts by itself when a pass succeeds).
    pub fn failed(&mut self, now: Timestamp, pacing: &Pacing) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= pacing.degrade_after {
            self.degraded = true;
            let wait = pacing.interval.saturating_mul(pacing.degraded_factor);
            self.next_at = after(now, wait);
        } else {
            let doubling = 2u32.saturating_pow(self.failures - 1);
            let backoff = pacing
                .first_backoff
                .saturating_mul(doubling)
                .min(pacing.interval);
            self.next_at = after(now, backoff);
        }
        self.keep_pending(now);
    }

    pub fn due(&self, now: Timestamp) -> bool {
        self.next_at <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn success_waits_an_interval_give_or_take_the_jitter() {
        let p = Pacing::new(Duration::from_secs(600));
        let now = t("2026-11-26T10:00:00Z");
        let mut s = TeamSchedule::new(now);
        assert!(s.due(now));
        s.succeeded(now, &p, 0.5);
        assert_eq!(s.next_at, t("2026-11-26T10:10:00Z"));
        s.succeeded(now, &p, 0.0);
        assert_eq!(s.next_at, t("2026-11-26T10:09:00Z"));
        s.succeeded(now, &p, 0.999_999);
        assert!(s.next_at > t("2026-11-26T10:10:59Z") && s.next_at <= t("2026-11-26T10:11:00Z"));
    }

    #[test]
    fn failures_back_off_then_degrade_then_recover() {
        let p = Pacing::new(Duration::from_secs(600));
        let now = t("2026-11-26T10:00:00Z");
        let mut s = TeamSchedule::new(now);
        let waits: Vec<i64> = (0..6)
            .map(|_| {
                s.failed(now, &p);
                s.next_at.duration_since(now).as_secs()
            })
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 2400, 2400]);
        assert!(s.degraded);
        s.trigger(now);
        assert!(s.due(now));
        s.succeeded(now, &p, 0.5);
        assert!(!s.degraded);
        assert_eq!(s.failures, 0);
    }

    #[test]
    fn a_trigger_during_a_pass_is_not_lost_to_the_interval() {
        let p = Pacing::new(Duration::from_secs(600));
        let now = t("2026-11-26T10:00:00Z");
        let mut s = TeamSchedule::new(now);
        s.started();
        s.trigger(now);
        s.succeeded(now, &p, 0.5);
        assert!(s.due(now), "the trigger that arrived mid-pass was dropped");
        s.started();
        s.succeeded(now, &p, 0.5);
        assert_eq!(s.next_at, t("2026-11-26T10:10:00Z"));

        // A failing pass too.
        s.started();
        s.trigger(now);
        s.failed(now, &p);
        assert!(s.due(now));
    }

    #[test]
    fn held_removals_wake_the_team_early_and_huge_intervals_do_not_overflow() {
        let p = Pacing::new(Duration::from_secs(600));
        let now = t("2026-11-26T10:00:00Z");
        let mut s = TeamSchedule::new(now);
        s.started();
        s.succeeded(now, &p, 0.5);
        s.wake_by(t("2026-11-26T10:01:00Z"));
        assert_eq!(s.next_at, t("2026-11-26T10:01:00Z"));

        let mut p = Pacing::new(Duration::from_secs(u64::MAX / 2));
        p.degrade_after = 1;
        s.failed(now, &p);
        assert!(s.degraded && s.next_at > now);
    }
}
