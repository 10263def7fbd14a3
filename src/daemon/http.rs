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

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/snapshot", get(snapshot_all))
        .route("/snapshot/{team}", get(snapshot_team))
        .with_state(state)
}

async fn readyz(State(s): State<AppState>) -> Response {
    let mut reasons = Vec::new();
    let decl = s.shared.declaration();
    if !decl.loaded {
        reasons.push("no valid declaration loaded yet".to_owned());
    }
    if let Some(e) = s.shared.credentials_error() {
        reasons.push(format!("credentials: {e}"));
    }
    for t in s.shared.teams().values() {
        if t.failing() {
            reasons.push(format!(
                "team {} is {}: {}",
                t.id,
                t.state,
                t.last_error.clone().unwrap_or_default()
            ));
        }
    }
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "ready": false, "reasons": reasons })),
        )
            .into_response()
    }
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
