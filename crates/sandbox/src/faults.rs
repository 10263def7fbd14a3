//! Fault injection: the failures a reliable client must survive, on demand.
//!
//! Shares are applied deterministically (an accumulator, not a random draw): a share of
//! 0.25 fails exactly every fourth request, so tests that use faults cannot flake.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Faults to inject into Team Admin API requests (and, if asked, OAuth token requests).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FaultSettings {
    /// Share (0.0–1.0) of requests answered `500 Internal Server Error`.
    pub error500_share: f64,
    /// Share (0.0–1.0) of requests answered `503 Service Unavailable`.
    pub error503_share: f64,
    /// Share (0.0–1.0) of requests whose connection is closed without any answer.
    pub drop_share: f64,
    /// Share (0.0–1.0) of requests that are handled (a write takes effect) and whose
    /// connection is then closed before the answer: the client cannot know it succeeded.
    pub drop_after_share: f64,
    /// Delay added before every affected request is handled, in milliseconds.
    pub latency_ms: u64,
    /// The next N affected requests get `429` (as if another integration drained the bucket).
    pub forced429: u32,
    /// Whether the OAuth token endpoint is affected too (the API always is).
    pub include_oauth: bool,
    /// Only writes (POST, DELETE) are affected: reads succeed, so a client
    /// gets as far as trying its changes.
    pub writes_only: bool,
}

impl FaultSettings {
    /// Rejects shares outside 0–1.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("error500Share", self.error500_share),
            ("error503Share", self.error503_share),
            ("dropShare", self.drop_share),
            ("dropAfterShare", self.drop_after_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        Ok(())
    }

    /// The configured added latency.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
}

/// What to do to one request instead of handling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    Drop,
    DropAfter,
    TooManyRequests,
    Internal,
    Unavailable,
}

/// Settings plus the accumulators that turn shares into exact counts.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    pub settings: FaultSettings,
    acc_drop: f64,
    acc_drop_after: f64,
    acc_500: f64,
    acc_503: f64,
}

impl FaultState {
    pub fn new(settings: FaultSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// Replaces the settings and restarts the share counting.
    pub fn replace(&mut self, settings: FaultSettings) {
        *self = Self::new(settings);
    }

    /// Decides the fate of the next affected request.
    pub fn next(&mut self) -> Option<Fault> {
        if tick(&mut self.acc_drop, self.settings.drop_share) {
            return Some(Fault::Drop);
        }
        if tick(&mut self.acc_drop_after, self.settings.drop_after_share) {
            return Some(Fault::DropAfter);
        }
        if self.settings.forced429 > 0 {
            self.settings.forced429 -= 1;
            return Some(Fault::TooManyRequests);
        }
        if tick(&mut self.acc_500, self.settings.error500_share) {
            return Some(Fault::Internal);
        }
        if tick(&mut self.acc_503, self.settings.error503_share) {
            return Some(Fault::Unavailable);
        }
        None
    }
}

fn tick(acc: &mut f64, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    *acc += share;
    // The epsilon keeps shares like 0.1 (not exact in binary) from drifting a request late.
    if *acc >= 1.0 - 1e-9 {
        *acc -= 1.0;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_exact_over_a_run() {
        let mut s = FaultState::new(FaultSettings {
            error500_share: 0.1,
            ..FaultSettings::default()
        });
        let hits = (0..100).filter(|_| s.next().is_some()).count();
        assert_eq!(hits, 10);
    }

    #[test]
    fn forced_429_runs_out() {
        let mut s = FaultState::new(FaultSettings {
            forced429: 2,
            ..FaultSettings::default()
        });
        assert_eq!(s.next(), Some(Fault::TooManyRequests));
        assert_eq!(s.next(), Some(Fault::TooManyRequests));
        assert_eq!(s.next(), None);
    }
}
