//! `/_sandbox/`: what tests and rehearsals need that the real API does not offer: read
//! the world, move the clock, change faults and settings, and act as another admin
//! behind the client's back (to create drift). Mounted only when
//! `SandboxConfig::admin_endpoints` is on. These calls use no rate budget.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::api::created_or_ok;
use super::clock::format_api_time;
use super::config::Quirks;
use super::faults::FaultSettings;
use super::problem::Problem;
use super::state::ChangeSource;
use super::{Sandbox, lock};

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/_sandbox/state", get(state))
        .route("/_sandbox/clock", get(clock).post(set_clock))
        .route("/_sandbox/faults", get(faults).put(set_faults))
        .route("/_sandbox/settings", get(settings).put(set_settings))
        .route("/_sandbox/invitations", get(invitations))
        .route("/_sandbox/changes", get(changes))
        .route("/_sandbox/stats", get(stats))
        .route(
            "/_sandbox/teams/{team_id}/assignments",
            post(assign).delete(unassign),
        )
        .route("/_sandbox/teams/{team_id}/users", post(add_user))
        .route("/_sandbox/admins/{account_id}/teams", put(set_admin_teams))
}

type AdminResult = Result<Response, Problem>;

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(body)
        .map_err(|e| Problem::invalid_request(format!("Invalid JSON body: {e}")))
}

fn saved<R>(r: Result<R, super::SandboxError>) -> Result<R, Problem> {
    r.map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "Internal server error",
            e.to_string(),
        )
    })
}

async fn state(State(sb): State<Sandbox>) -> Response {
    axum::Json(serde_json::json!({
        "now": format_api_time(sb.now()),
        "world": sb.state_json(),
    }))
    .into_response()
}

#[derive(Serialize)]
struct ClockDto {
    now: String,
}

async fn clock(State(sb): State<Sandbox>) -> Response {
    axum::Json(ClockDto {
        now: format_api_time(sb.now()),
    })
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockChange {
    now: Option<Timestamp>,
    advance_seconds: Option<i64>,
}

async fn set_clock(State(sb): State<Sandbox>, body: Bytes) -> AdminResult {
    let change: ClockChange = parse(&body)?;
    let clock = sb.clock();
    let before = clock.now();
    match (change.now, change.advance_seconds) {
        (Some(t), None) => clock.set(t),
        (None, Some(s)) => clock.advance(SignedDuration::from_secs(s)),
        _ => {
            return Err(Problem::invalid_request(
                "Send exactly one of now, advanceSeconds.",
            ));
        }
    }
    // Counts from a window that now lies in the future would be wrong; start afresh.
    if clock.now() < before {
        lock(&sb.inner.limiter).clear();
    }
    Ok(axum::Json(ClockDto {
        now: format_api_time(clock.now()),
    })
    .into_response())
}

async fn faults(State(sb): State<Sandbox>) -> Response {
    axum::Json(lock(&sb.inner.runtime).faults.settings.clone()).into_response()
}

async fn set_faults(State(sb): State<Sandbox>, body: Bytes) -> AdminResult {
    let settings: FaultSettings = parse(&body)?;
    settings.validate().map_err(Problem::invalid_request)?;
    sb.set_faults(settings.clone());
    Ok(axum::Json(settings).into_response())
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettingsDto {
    consistency_delay_seconds: u64,
    quirks: Quirks,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsChange {
    consistency_delay_seconds: Option<u64>,
    quirks: Option<Quirks>,
}

fn current_settings(sb: &Sandbox) -> SettingsDto {
    let rt = lock(&sb.inner.runtime);
    SettingsDto {
        consistency_delay_seconds: rt.consistency_delay.as_secs(),
        quirks: rt.quirks.clone(),
    }
}

async fn settings(State(sb): State<Sandbox>) -> Response {
    axum::Json(current_settings(&sb)).into_response()
}

async fn set_settings(State(sb): State<Sandbox>, body: Bytes) -> AdminResult {
    let change: SettingsChange = parse(&body)?;
    {
        let mut rt = lock(&sb.inner.runtime);
        if let Some(s) = change.consistency_delay_seconds {
            rt.consistency_delay = Duration::from_secs(s);
        }
        if let Some(q) = change.quirks {
            rt.quirks = q;
        }
    }
    Ok(axum::Json(current_settings(&sb)).into_response())
}

async fn invitations(State(sb): State<Sandbox>) -> Response {
    axum::Json(lock(&sb.inner.world).invitations()).into_response()
}

async fn changes(State(sb): State<Sandbox>) -> Response {
    axum::Json(lock(&sb.inner.world).changes.clone()).into_response()
}

async fn stats(State(sb): State<Sandbox>) -> Response {
    axum::Json(&*lock(&sb.inner.counters)).into_response()
}

/// What the sandbox refused or injected since it started, for `GET /_sandbox/stats`:
/// nothing in the world shows a 429. Not saved, like the rate counters themselves.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Counters {
    /// 429s the team limiter sent (budget really spent), by team id.
    rate_limited: BTreeMap<String, u64>,
    /// The most calls a team's limiter let through in one window, by team id: how
    /// close clients came to the limit.
    busiest_window: BTreeMap<String, u32>,
    /// 429s the List Teams limiter sent, by OAuth client id.
    rate_limited_list_teams: BTreeMap<String, u64>,
    /// 429s sent by the `forced429` fault (not counted above).
    forced429: u64,
    /// Refresh-token grants answered with new tokens.
    refreshed: u64,
    /// Refresh-token grants refused: the token was unknown, expired or already used.
    refresh_refused: u64,
}

impl Counters {
    pub fn team_used(&mut self, team: &str, calls: u32) {
        let busiest = self.busiest_window.entry(team.to_owned()).or_default();
        *busiest = (*busiest).max(calls);
    }

    pub fn team_refused(&mut self, team: &str) {
        *self.rate_limited.entry(team.to_owned()).or_default() += 1;
    }

    pub fn list_teams_refused(&mut self, client_id: &str) {
        *self
            .rate_limited_list_teams
            .entry(client_id.to_owned())
            .or_default() += 1;
    }

    pub fn forced429(&mut self) {
        self.forced429 += 1;
    }

    pub fn refreshed(&mut self) {
        self.refreshed += 1;
    }

    pub fn refresh_refused(&mut self) {
        self.refresh_refused += 1;
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignmentRef {
    user_id: String,
    product_id: String,
}

fn unknown_team(team_id: &str) -> Problem {
    Problem::not_found(format!("No team {team_id} in the sandbox."))
}

fn refused(r: super::state::Refusal) -> Problem {
    let status = match r {
        super::state::Refusal::NothingToRemove { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Problem::new(status, "refused", "Refused", r.to_string())
}

async fn assign(
    State(sb): State<Sandbox>,
    Path(team_id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let a: AssignmentRef = parse(&body)?;
    if !lock(&sb.inner.world).teams.contains_key(&team_id) {
        return Err(unknown_team(&team_id));
    }
    let now = sb.now();
    let quirks = sb.quirks();
    let result = saved(sb.mutate(|w| {
        let by = ChangeSource::Admin;
        w.assign(&team_id, &a.user_id, &a.product_id, now, &quirks, by)
    }))?;
    match result {
        Ok((_, outcome)) => Ok(created_or_ok(outcome).into_response()),
        Err(r) => Err(refused(r)),
    }
}

async fn unassign(
    State(sb): State<Sandbox>,
    Path(team_id): Path<String>,
    query: Result<Query<AssignmentRef>, QueryRejection>,
) -> AdminResult {
    let Ok(Query(a)) = query else {
        return Err(Problem::invalid_request(
            "userId and productId are required.",
        ));
    };
    if !lock(&sb.inner.world).teams.contains_key(&team_id) {
        return Err(unknown_team(&team_id));
    }
    let now = sb.now();
    let result = saved(sb.mutate(|w| {
        w.unassign(
            &team_id,
            &a.user_id,
            &a.product_id,
            now,
            ChangeSource::Admin,
        )
    }))?;
    match result {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(r) => Err(refused(r)),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewUser {
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

async fn add_user(
    State(sb): State<Sandbox>,
    Path(team_id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let u: NewUser = parse(&body)?;
    let now = sb.now();
    let added = saved(sb.mutate(|w| {
        let by = ChangeSource::Admin;
        w.add_user(&team_id, &u.email, &u.first_name, &u.last_name, now, by)
    }))?;
    match added {
        Some((user, outcome)) => Ok((
            created_or_ok(outcome),
            axum::Json(serde_json::json!({ "id": user.id, "email": user.email })),
        )
            .into_response()),
        None => Err(unknown_team(&team_id)),
    }
}

async fn set_admin_teams(
    State(sb): State<Sandbox>,
    Path(account_id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let teams: BTreeSet<String> = parse(&body)?;
    let result = saved(sb.mutate(|w| {
        if !w.admins.contains_key(&account_id) {
            return None;
        }
        w.admins.insert(account_id.clone(), teams.clone());
        Some(())
    }))?;
    match result {
        Some(()) => Ok(axum::Json(teams).into_response()),
        None => Err(Problem::not_found(format!(
            "No admin {account_id} in the sandbox."
        ))),
    }
}

// Keeps the map type name in one place for the docs of `GET /_sandbox/invitations`.
#[allow(dead_code)]
type InvitationCounts = BTreeMap<String, BTreeMap<String, u32>>;
