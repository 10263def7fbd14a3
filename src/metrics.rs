//! The service's Prometheus metrics: typed families in one registry (no
//! globals), encoded as OpenMetrics text for `/metrics`.
//!
//! prometheus-client appends `_total` to counters itself, so counter names
//! here do not end in it.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::CallObserver;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TeamLabel {
    pub team: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub team: String,
    /// `success`, `failure`, `dry_run`, `suspended`, `superseded`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub team: String,
    /// `invite`, `assign`, `unassign`.
    pub kind: String,
    /// `done`, `failed`, `skipped`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BlockedLabels {
    pub team: String,
    /// The plan's block reason code, e.g. `removal_guard`, `probable_typo`.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub team: String,
    pub operation: String,
    /// HTTP status, or `0` when no answer came.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// `sent`, `failed` (after the retries), `dropped` (a webhook's queue
    /// was full), `held` (the rate limit held an event back).
    pub result: String,
}

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_seconds: Family<TeamLabel, Histogram>,
    pub actions: Family<ActionLabels, Counter>,
    pub drift: Family<TeamLabel, Gauge>,
    pub blocked: Family<TeamLabel, Gauge>,
    pub blocked_by_reason: Family<BlockedLabels, Gauge>,
    pub api_requests: Family<RequestLabels, Counter>,
    pub rate_limited: Family<TeamLabel, Counter>,
    pub budget_remaining: Family<TeamLabel, Gauge>,
    pub last_success: Family<TeamLabel, Gauge<f64, AtomicU64>>,
    pub degraded: Family<TeamLabel, Gauge>,
    pub config_load_errors: Counter,
    pub config_valid: Gauge,
    pub declaration_loaded: Gauge,
    pub login_valid: Gauge,
    pub notifications: Family<NotificationLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("flexsync");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconcile passes by team and result",
            reconciles.clone(),
        );
        let reconcile_seconds = Family::<TeamLabel, Histogram>::new_with_constructor(|| {
            // A pass is a few calls at best and minutes when the budget is
            // spent.
            Histogram::new([0.1, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 180.0, 600.0])
        });
        registry.register(
            "reconcile_duration_seconds",
            "Duration of a reconcile pass",
            reconcile_seconds.clone(),
        );
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "actions",
            "Writes by team, kind and result",
            actions.clone(),
        );
        let drift = Family::<TeamLabel, Gauge>::default();
        registry.register(
            "drift_changes",
            "Changes the last plan wanted (0 = converged)",
            drift.clone(),
        );
        let blocked = Family::<TeamLabel, Gauge>::default();
        registry.register(
            "blocked_changes",
            "Changes the last plan blocked (guards, seats, suspend)",
            blocked.clone(),
        );
        let blocked_by_reason = Family::<BlockedLabels, Gauge>::default();
        registry.register(
            "blocked_changes_by_reason",
            "Changes the last plan blocked, by reason (removal_guard, probable_typo, removal_delay, …)",
            blocked_by_reason.clone(),
        );
        let api_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Team Admin API answers by operation and HTTP status",
            api_requests.clone(),
        );
        let rate_limited = Family::<TeamLabel, Counter>::default();
        registry.register("rate_limited", "HTTP 429 answers", rate_limited.clone());
        let budget_remaining = Family::<TeamLabel, Gauge>::default();
        registry.register(
            "rate_budget_remaining",
            "Calls this service may still make in the team's current UTC minute",
            budget_remaining.clone(),
        );
        let last_success = Family::<TeamLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the team's last successful reconcile",
            last_success.clone(),
        );
        let degraded = Family::<TeamLabel, Gauge>::default();
        registry.register(
            "team_degraded",
            "1 when the team failed repeatedly and is reconciled at a slower pace",
            degraded.clone(),
        );
        let config_load_errors = Counter::default();
        registry.register(
            "config_load_errors",
            "Declaration loads that failed validation",
            config_load_errors.clone(),
        );
        let config_valid = Gauge::default();
        registry.register(
            "config_valid",
            "1 when the files on disk are valid (else the last good declaration is in force)",
            config_valid.clone(),
        );
        let declaration_loaded = Gauge::default();
        registry.register(
            "declaration_loaded",
            "1 when a valid declaration is in force (0: none was ever valid, nothing is reconciled)",
            declaration_loaded.clone(),
        );
        let login_valid = Gauge::default();
        // Unknown until the first read: assume it works rather than alert.
        login_valid.set(1);
        registry.register(
            "login_valid",
            "0 when the login is lost (refused refresh token, no token): run flexsync login",
            login_valid.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        // Every result from the start, so a rate over them is defined.
        for result in ["sent", "failed", "dropped", "held"] {
            drop(notifications.get_or_create(&NotificationLabels {
                result: result.to_owned(),
            }));
        }
        registry.register(
            "notifications",
            "Webhook notifications by result (sent, failed, dropped, held by the rate limit)",
            notifications.clone(),
        );
        Metrics {
            registry,
            notifications,
            declaration_loaded,
            login_valid,
            reconciles,
            reconcile_seconds,
            actions,
            drift,
            blocked,
            blocked_by_reason,
            api_requests,
            rate_limited,
            budget_remaining,
            last_success,
            degraded,
            config_load_errors,
            config_valid,
        }
    }

    /// The last plan's blocked changes of `team`: every reason is set, so a
    /// reason that no longer blocks anything reads 0, not its old count.
    pub fn record_blocked(&self, team: &str, by_reason: &std::collections::BTreeMap<&str, i64>) {
        for code in crate::plan::BlockReason::CODES {
            self.blocked_by_reason
                .get_or_create(&BlockedLabels {
                    team: team.to_owned(),
                    reason: (*code).to_owned(),
                })
                .set(by_reason.get(code).copied().unwrap_or(0));
        }
    }

    /// The notifications counter of `result`.
    pub fn notification(&self, result: &str) -> Counter {
        self.notifications
            .get_or_create(&NotificationLabels {
                result: result.to_owned(),
            })
            .clone()
    }

    /// OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

pub fn team(team: &str) -> TeamLabel {
    TeamLabel {
        team: team.to_owned(),
    }
}

impl CallObserver for Metrics {
    fn response(&self, team: &str, op: &'static str, status: u16) {
        self.api_requests
            .get_or_create(&RequestLabels {
                team: team.to_owned(),
                operation: op.to_owned(),
                status: status.to_string(),
            })
            .inc();
        if status == 429 {
            self.rate_limited.get_or_create(&self::team(team)).inc();
        }
    }
}
