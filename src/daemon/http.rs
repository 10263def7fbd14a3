//! The service's HTTP endpoints: `/healthz`, `/readyz`, `/metrics`,
//! `/status`, and (when enabled) `/snapshot` and `/snapshot/{team}`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::state::Shared;
use crate::api::auth::Secret;
use crate::metrics::Metrics;
use crate::model::{Observed, TeamId};
use crate::snapshot::Snapshot;

#[derive(Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
    /// Bearer token guarding `/snapshot`; `None` turns it off.
    pub snapshot_token: Option<Secret>,
}

/// What `router` always serves, in this order: liveness, readiness,
/// metrics, status. `run --check` prints it, and deployment checks hold
/// probes and scrape paths to it.
pub const ENDPOINTS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/status"];
/// Served only with a snapshot token (404 otherwise).
pub const SNAPSHOT_ENDPOINTS: [&str; 2] = ["/snapshot", "/snapshot/{team}"];

pub fn router(state: AppState) -> Router {
    let [healthz_path, readyz_path, metrics_path, status_path] = ENDPOINTS;
    let [snapshot_path, snapshot_team_path] = SNAPSHOT_ENDPOINTS;
    Router::new()
        .route(healthz_path, get(healthz))
        .route(readyz_path, get(readyz))
        .route(metrics_path, get(metrics))
        .route(status_path, get(status))
        .route(snapshot_path, get(snapshot_all))
        .route(snapshot_team_path, get(snapshot_team))
        .with_state(state)
}

/// The controller's loop wakes at least this often; a loop that has not run
/// for this long is stuck, and liveness fails so the supervisor restarts it.
pub const LIVENESS_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Liveness: the controller's loop is running (not merely the listener).
async fn healthz(State(s): State<AppState>) -> Response {
    match s.shared.since_beat() {
        Some(d) if d > LIVENESS_LIMIT => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the controller loop has not run for {} s\n", d.as_secs()),
        )
            .into_response(),
        _ => (StatusCode::OK, "ok\n").into_response(),
    }
}

/// Readiness means "can serve /status, /metrics and /snapshot": true once
/// the controller has read the declaration, whatever it found. Problems
/// (no valid declaration, a lost login, failing teams) are listed in the
/// body, /status and metrics, and alerted on; they do not take the pod out
/// of its Service, which would hide /status exactly during an incident.
async fn readyz(State(s): State<AppState>) -> Response {
    if !s.shared.is_started() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "ready": false, "problems": ["starting"] })),
        )
            .into_response();
    }
    let mut problems = Vec::new();
    let decl = s.shared.declaration();
    if !decl.loaded {
        problems.push("no valid declaration: nothing is reconciled (see /status)".to_owned());
    } else if !decl.valid {
        problems
            .push("the declaration on disk is invalid; the last good one is in force".to_owned());
    }
    if let Some(e) = s.shared.credentials_error() {
        problems.push(format!("login lost: {e}"));
    }
    for t in s.shared.teams().values() {
        if t.failing() {
            problems.push(format!(
                "team {} is {}: {}",
                t.id,
                t.state,
                t.last_error.clone().unwrap_or_default()
            ));
        }
    }
    (
        StatusCode::OK,
        axum::Json(json!({ "ready": true, "problems": problems })),
    )
        .into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn status(State(s): State<AppState>) -> Response {
    let teams: Vec<_> = s.shared.teams().into_values().collect();
    axum::Json(json!({
        "dryRun": s.shared.dry_run,
        "declaration": s.shared.declaration(),
        "credentialsError": s.shared.credentials_error(),
        "summary": s.shared.summary(),
        "teams": teams,
    }))
    .into_response()
}

/// Compares digests, so the comparison takes the same time whatever the
/// guess.
/// `None` when the request may read snapshots, else the refusal.
fn refusal(s: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &s.snapshot_token else {
        return Some((StatusCode::NOT_FOUND, "snapshots are not enabled\n").into_response());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if Sha256::digest(given.as_bytes()) == Sha256::digest(token.expose().as_bytes()) {
        None
    } else {
        Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a valid bearer token is required\n",
            )
                .into_response(),
        )
    }
}

fn snapshot_of(s: &AppState, only: Option<&TeamId>) -> Option<Snapshot> {
    let mut observed = Observed::default();
    let mut oldest: Option<jiff::Timestamp> = None;
    for (id, t) in s.shared.teams() {
        if only.is_some_and(|o| o != &id) {
            continue;
        }
        if let Some((team, at)) = t.observed {
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
            observed.teams.insert(id, team);
        }
    }
    if observed.teams.is_empty() {
        return None;
    }
    Some(Snapshot::new(&observed, oldest))
}

async fn snapshot_all(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = refusal(&s, &headers) {
        return r;
    }
    match snapshot_of(&s, None) {
        Some(snap) => axum::Json(snap).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no team has been read yet\n",
        )
            .into_response(),
    }
}

async fn snapshot_team(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(team): Path<String>,
) -> Response {
    if let Some(r) = refusal(&s, &headers) {
        return r;
    }
    match snapshot_of(&s, Some(&TeamId(team))) {
        Some(snap) => axum::Json(snap).into_response(),
        None => (StatusCode::NOT_FOUND, "that team has not been read\n").into_response(),
    }
}
