//! The eight operations of Team Admin API v1, with their own wire types.
//!
//! Every team operation passes the same gate, in this order: bearer token (401), scope
//! (403), team administered by the caller (the one 403), team rate bucket (429). Only
//! requests that reach the limiter carry rate-limit headers, as documented.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::config::{AuthErrorFormat, ForeignTeamFilter, Quirks, UnassignSuccess};
use super::grants::Caller;
use super::problem::{Problem, add_rate_headers, aps_error};
use super::ratelimit::{Bucket, RateInfo};
use super::state::{
    ChangeSource, EffectiveAssignment, MemberStatus, Outcome, PoolView, Refusal, Role, Source,
    UserView, World,
};
use super::{API_BASE_PATH, Sandbox, lock};

pub(crate) const TEAM_READ: &str = "tmadmapi:team:read";
pub(crate) const TEAM_WRITE: &str = "tmadmapi:team:write";
pub(crate) const USERS_READ: &str = "tmadmapi:team-users:read";
pub(crate) const USERS_WRITE: &str = "tmadmapi:team-users:write";
pub(crate) const PRODUCTS_READ: &str = "tmadmapi:team-products:read";
pub(crate) const PRODUCTS_WRITE: &str = "tmadmapi:team-products:write";

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route(&format!("{API_BASE_PATH}/teams"), get(list_teams))
        .route(
            &format!("{API_BASE_PATH}/teams/{{team_id}}/users"),
            get(list_users).post(add_user),
        )
        .route(
            &format!("{API_BASE_PATH}/teams/{{team_id}}/users/{{user_id}}"),
            get(get_user),
        )
        .route(
            &format!("{API_BASE_PATH}/teams/{{team_id}}/product-pools"),
            get(list_pools),
        )
        .route(
            &format!("{API_BASE_PATH}/teams/{{team_id}}/assignments"),
            get(list_assignments).post(assign).delete(unassign),
        )
}

/// A failed request: a Problem, or a body in another format (APS auth errors).
pub(crate) enum ApiError {
    Problem(Problem),
    Raw(Box<Response>),
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        Self::Problem(p)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Problem(p) => p.into_response(),
            Self::Raw(r) => *r,
        }
    }
}

type ApiResult = Result<Response, ApiError>;

// ---------- wire types (the API's, not flexsync's) ----------

#[derive(Serialize)]
struct TeamDto<'a> {
    id: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserDto {
    id: String,
    email: String,
    first_name: String,
    last_name: String,
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
}

impl UserDto {
    fn new(u: UserView, quirks: &Quirks) -> Self {
        Self {
            id: u.id,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            role: match u.role {
                Role::User => "USER",
                Role::ExternalUser => "EXTERNAL_USER",
            },
            status: quirks.user_status_field.then_some(match u.status {
                MemberStatus::Active => "ACTIVE",
                MemberStatus::Pending => "PENDING",
            }),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PoolDto {
    product_id: String,
    team_id: String,
    total_quantity: Option<u32>,
    assigned_quantity: Option<u32>,
    unlimited: bool,
    start_date: String,
    end_date: String,
    product_name: String,
}

impl PoolDto {
    fn new(team_id: &str, v: PoolView) -> Self {
        Self {
            product_id: v.pool.product_id,
            team_id: team_id.to_owned(),
            total_quantity: if v.pool.unlimited {
                None
            } else {
                v.pool.total_quantity
            },
            assigned_quantity: v.assigned,
            unlimited: v.pool.unlimited,
            start_date: super::clock::format_api_time(v.pool.start_date),
            end_date: super::clock::format_api_time(v.pool.end_date),
            product_name: v.pool.product_name,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AssignmentDto {
    user_id: String,
    email: String,
    team_id: String,
    product_id: String,
    assignment_type: String,
}

impl AssignmentDto {
    fn new(a: EffectiveAssignment, quirks: &Quirks) -> Self {
        Self {
            user_id: a.user_id,
            email: a.email,
            team_id: a.team_id,
            product_id: a.product_id,
            assignment_type: match a.source {
                Source::Direct => "DIRECT".to_owned(),
                Source::Group => quirks.group_assignment_type.clone(),
                Source::Team => quirks.team_assignment_type.clone(),
            },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    cursor: Option<String>,
    has_more: bool,
}

#[derive(Serialize)]
struct PageDto<T> {
    data: Vec<T>,
    pagination: Pagination,
}

#[derive(Serialize)]
struct DataDto<T> {
    data: T,
}

// ---------- helpers ----------

/// Query parameters in order; the first occurrence of a name wins.
struct Params(Vec<(String, String)>);

impl Params {
    fn from(q: Result<Query<Vec<(String, String)>>, QueryRejection>) -> Result<Self, Problem> {
        q.map(|Query(v)| Self(v))
            .map_err(|_| Problem::invalid_request("The query string is malformed."))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn json(status: StatusCode, body: impl Serialize, rate: Option<RateInfo>) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    if let Some(info) = rate {
        add_rate_headers(res.headers_mut(), info);
    }
    res
}

fn single(status: StatusCode, body: impl Serialize, rate: RateInfo, quirks: &Quirks) -> Response {
    if quirks.wrap_single_in_data {
        json(status, DataDto { data: body }, Some(rate))
    } else {
        json(status, body, Some(rate))
    }
}

fn path_value<T>(p: Result<Path<T>, PathRejection>) -> Result<T, Problem> {
    p.map(|Path(v)| v)
        .map_err(|_| Problem::invalid_request("The path is malformed."))
}

/// Checks the bearer token and its scopes.
fn authenticate(sb: &Sandbox, headers: &HeaderMap, needed: &[&str]) -> Result<Caller, ApiError> {
    let format = lock(&sb.inner.runtime).quirks.auth_error_format;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let now = sb.now();
    let caller = token.and_then(|t| lock(&sb.inner.world).oauth.caller(t, now));
    let Some(caller) = caller else {
        let message = "The access token is missing, invalid or expired.";
        let mut res = match format {
            AuthErrorFormat::ApsError => aps_error(StatusCode::UNAUTHORIZED, "AUTH-006", message),
            AuthErrorFormat::ProblemDetails => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                message,
            )
            .into_response(),
        };
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Err(ApiError::Raw(Box::new(res)));
    };
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|s| !caller.scopes.iter().any(|have| have == s))
        .collect();
    if !missing.is_empty() {
        let message = format!(
            "The access token lacks the required scope(s): {}.",
            missing.join(" ")
        );
        return Err(match format {
            AuthErrorFormat::ApsError => ApiError::Raw(Box::new(aps_error(
                StatusCode::FORBIDDEN,
                "AUTH-010",
                &message,
            ))),
            AuthErrorFormat::ProblemDetails => Problem::new(
                StatusCode::FORBIDDEN,
                "insufficient-scope",
                "Insufficient scope",
                message,
            )
            .into(),
        });
    }
    Ok(caller)
}

/// The gate of every team operation: auth, scope, admin role (re-checked now), budget.
fn enter_team(
    sb: &Sandbox,
    headers: &HeaderMap,
    team_id: &str,
    needed: &[&str],
) -> Result<RateInfo, ApiError> {
    let caller = authenticate(sb, headers, needed)?;
    if !lock(&sb.inner.world).administers(&caller.account_id, team_id) {
        return Err(Problem::forbidden_team().into());
    }
    let info = lock(&sb.inner.limiter).check(
        Bucket::Team(team_id.to_owned()),
        sb.inner.config.limits.team_per_minute,
        sb.now(),
    );
    if !info.allowed {
        lock(&sb.inner.counters).team_refused(team_id);
        return Err(Problem::rate_limited(info).into());
    }
    lock(&sb.inner.counters).team_used(team_id, info.limit.saturating_sub(info.remaining));
    Ok(info)
}

/// A team operation past its gate, with its query's parameters.
struct TeamQuery {
    team_id: String,
    info: RateInfo,
    params: Params,
}

/// The start of a team operation with a query: the team from the path, the
/// gate ([`enter_team`]), then the parameters (refused with the rate headers).
fn enter_team_query(
    sb: &Sandbox,
    headers: &HeaderMap,
    team: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    needed: &[&str],
) -> Result<TeamQuery, ApiError> {
    let team_id = path_value(team)?;
    let info = enter_team(sb, headers, &team_id, needed)?;
    let params = Params::from(query).map_err(|p| p.with_rate(info))?;
    Ok(TeamQuery {
        team_id,
        info,
        params,
    })
}

impl TeamQuery {
    /// The page asked for of the team's list `kind` (its cursors bound to
    /// `kind/{team}`), of the `items` read once the page request is valid.
    fn page<T: Serialize>(
        &self,
        kind: &str,
        items: impl FnOnce(&str, &Params) -> Vec<T>,
    ) -> ApiResult {
        let list = format!("{kind}/{}", self.team_id);
        let page = page_request(&self.params, &list).map_err(|p| p.with_rate(self.info))?;
        let items = items(&self.team_id, &self.params);
        Ok(json(
            StatusCode::OK,
            paginate(items, &page, &list),
            Some(self.info),
        ))
    }
}

/// A write that converges: 201 when it made something, 200 when it was there.
pub(crate) fn created_or_ok(outcome: Outcome) -> StatusCode {
    match outcome {
        Outcome::Created => StatusCode::CREATED,
        Outcome::Existed => StatusCode::OK,
    }
}

/// `limit` and `cursor` of a paginated list.
struct PageRequest {
    limit: usize,
    offset: usize,
}

fn page_request(params: &Params, list: &str) -> Result<PageRequest, Problem> {
    let limit = match params.get("limit") {
        None => 50,
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(n @ 1..=100) => n as usize,
            _ => {
                return Err(Problem::invalid_field(
                    "limit",
                    "limit must be an integer between 1 and 100",
                ));
            }
        },
    };
    let offset = match params.get("cursor") {
        None => 0,
        Some(c) => decode_cursor(c, list)
            .ok_or_else(|| Problem::invalid_field("cursor", "cursor is not valid for this list"))?,
    };
    Ok(PageRequest { limit, offset })
}

// Cursors name their list so one cannot be replayed against another list.
fn encode_cursor(list: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{list}|{offset}"))
}

fn decode_cursor(cursor: &str, list: &str) -> Option<usize> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (l, offset) = raw.rsplit_once('|')?;
    (l == list).then(|| offset.parse().ok()).flatten()
}

fn paginate<T>(items: Vec<T>, req: &PageRequest, list: &str) -> PageDto<T> {
    let total = items.len();
    let end = req.offset.saturating_add(req.limit).min(total);
    let has_more = end < total;
    let data = items.into_iter().skip(req.offset).take(req.limit).collect();
    PageDto {
        data,
        pagination: Pagination {
            cursor: has_more.then(|| encode_cursor(list, end)),
            has_more,
        },
    }
}

fn body_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, Problem> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Problem::invalid_request(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(Problem::invalid_request(format!(
            "The request body is not valid JSON: {e}"
        ))),
    }
}

fn required_string(m: &serde_json::Map<String, Value>, field: &str) -> Result<String, Problem> {
    match m.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => Err(Problem::invalid_field(
            field,
            format!("{field} is required and must be a non-empty string"),
        )),
    }
}

fn optional_string(m: &serde_json::Map<String, Value>, field: &str) -> Result<String, Problem> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.trim().to_owned()),
        _ => Err(Problem::invalid_field(
            field,
            format!("{field} must be a string"),
        )),
    }
}

fn plausible_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    e.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn refusal(r: Refusal) -> Problem {
    let detail = r.to_string();
    let unprocessable = |slug, title| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            slug,
            title,
            detail.clone(),
        )
    };
    match r {
        Refusal::UnknownProduct(_) => unprocessable("unknown-product", "Unknown product"),
        Refusal::UnsupportedProduct(_) => {
            unprocessable("unsupported-product", "Unsupported product")
        }
        Refusal::UserNotOnTeam(_) => unprocessable("user-not-on-team", "User not on team"),
        Refusal::PoolNotStarted(_) | Refusal::PoolExpired(_) => {
            unprocessable("pool-not-active", "Product pool not active")
        }
        Refusal::NoSeats(_) => unprocessable("no-seats-available", "No seats available"),
        Refusal::OnlyInherited { .. } => {
            unprocessable("inherited-assignment", "Inherited assignment")
        }
        Refusal::NothingToRemove { .. } => Problem::not_found(detail),
    }
}

fn internal(e: super::SandboxError) -> ApiError {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal-error",
        "Internal server error",
        format!("The sandbox could not save its state: {e}"),
    )
    .into()
}

// ---------- operations ----------

async fn list_teams(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let caller = authenticate(&sb, &headers, &[TEAM_READ])?;
    let info = lock(&sb.inner.limiter).check(
        Bucket::ListTeams {
            client_id: caller.client_id.clone(),
        },
        sb.inner.config.limits.list_teams_per_client_per_minute,
        sb.now(),
    );
    if !info.allowed {
        lock(&sb.inner.counters).list_teams_refused(&caller.client_id);
        return Err(Problem::rate_limited(info).into());
    }
    let params = Params::from(query).map_err(|p| p.with_rate(info))?;
    let page = page_request(&params, "teams").map_err(|p| p.with_rate(info))?;
    let world = lock(&sb.inner.world);
    let mut teams: Vec<(&String, &String)> = world
        .administered(&caller.account_id)
        .filter_map(|id| world.teams.get(id).map(|t| (id, &t.name)))
        .collect();
    if let Some(filter) = params.get("teamId") {
        let mine = teams.iter().any(|(id, _)| *id == filter);
        if !mine && sb.quirks().list_teams_foreign_filter == ForeignTeamFilter::Forbidden {
            return Err(Problem::forbidden_team().with_rate(info).into());
        }
        teams.retain(|(id, _)| *id == filter);
    }
    let items: Vec<TeamDto> = teams
        .into_iter()
        .map(|(id, name)| TeamDto { id, name })
        .collect();
    Ok(json(
        StatusCode::OK,
        paginate(items, &page, "teams"),
        Some(info),
    ))
}

async fn list_users(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    team: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let gate = enter_team_query(&sb, &headers, team, query, &[USERS_READ, TEAM_READ])?;
    gate.page("users", |team_id, params| {
        let quirks = sb.quirks();
        let users = lock(&sb.inner.world).users(
            team_id,
            params.get("email"),
            quirks.email_filter_ignores_case,
        );
        users
            .into_iter()
            .map(|u| UserDto::new(u, &quirks))
            .collect()
    })
}

async fn get_user(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let (team_id, user_id) = path_value(path)?;
    let info = enter_team(&sb, &headers, &team_id, &[USERS_READ, TEAM_READ])?;
    let quirks = sb.quirks();
    let user = lock(&sb.inner.world).user(&team_id, &user_id);
    match user {
        Some(u) => Ok(single(
            StatusCode::OK,
            UserDto::new(u, &quirks),
            info,
            &quirks,
        )),
        None => Err(
            Problem::not_found(format!("User {user_id} is not a member of this team."))
                .with_rate(info)
                .into(),
        ),
    }
}

async fn add_user(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    team: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> ApiResult {
    let team_id = path_value(team)?;
    let info = enter_team(&sb, &headers, &team_id, &[USERS_WRITE, TEAM_WRITE])?;
    let parsed = (|| {
        let m = body_object(&body)?;
        let email = required_string(&m, "email")?;
        if !plausible_email(&email) {
            return Err(Problem::invalid_field(
                "email",
                "email is not a valid email address",
            ));
        }
        Ok((
            email,
            optional_string(&m, "firstName")?,
            optional_string(&m, "lastName")?,
        ))
    })();
    let (email, first, last) = parsed.map_err(|p| p.with_rate(info))?;
    let quirks = sb.quirks();
    let now = sb.now();
    let added = sb
        .mutate(|w| w.add_user(&team_id, &email, &first, &last, now, ChangeSource::Api))
        .map_err(internal)?;
    match added {
        Some((user, outcome)) => Ok(single(
            created_or_ok(outcome),
            UserDto::new(user, &quirks),
            info,
            &quirks,
        )),
        None => Err(Problem::forbidden_team().with_rate(info).into()),
    }
}

async fn list_pools(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    team: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let gate = enter_team_query(&sb, &headers, team, query, &[PRODUCTS_READ, TEAM_READ])?;
    gate.page("pools", |team_id, _| {
        let quirks = sb.quirks();
        let pools = lock(&sb.inner.world).pools(team_id, sb.now(), &quirks);
        pools
            .into_iter()
            .map(|p| PoolDto::new(team_id, p))
            .collect()
    })
}

async fn list_assignments(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    team: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let TeamQuery {
        team_id,
        info,
        params,
    } = enter_team_query(&sb, &headers, team, query, &[PRODUCTS_READ, TEAM_READ])?;
    let quirks = sb.quirks();
    if quirks.assignments_reject_paging_params {
        for field in ["limit", "cursor"] {
            if params.get(field).is_some() {
                return Err(
                    Problem::invalid_field(field, "List Assignments is not paginated")
                        .with_rate(info)
                        .into(),
                );
            }
        }
    }
    let user = params.get("userId");
    let product = params.get("productId");
    // Only team-wide answers lag behind writes; filtered ones are current.
    let delay = sb.consistency_delay();
    let as_of = (user.is_none() && product.is_none() && !delay.is_zero())
        .then(|| sb.now().saturating_sub(delay).ok())
        .flatten();
    let rows = lock(&sb.inner.world).assignments(&team_id, user, product, as_of, quirks.precedence);
    let data: Vec<AssignmentDto> = rows
        .into_iter()
        .map(|a| AssignmentDto::new(a, &quirks))
        .collect();
    Ok(json(StatusCode::OK, DataDto { data }, Some(info)))
}

async fn assign(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    team: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> ApiResult {
    let team_id = path_value(team)?;
    let info = enter_team(&sb, &headers, &team_id, &[PRODUCTS_WRITE])?;
    let parsed = (|| {
        let m = body_object(&body)?;
        let user = required_string(&m, "userId")?;
        let product = required_string(&m, "productId")?;
        match m.get("assignmentType") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "DIRECT" => {}
            Some(_) => {
                return Err(Problem::invalid_field(
                    "assignmentType",
                    "only DIRECT assignments can be created",
                ));
            }
        }
        Ok((user, product))
    })();
    let (user, product) = parsed.map_err(|p| p.with_rate(info))?;
    let quirks = sb.quirks();
    let now = sb.now();
    let result = write_assignment(&sb, now, |w| {
        w.assign(&team_id, &user, &product, now, &quirks, ChangeSource::Api)
    })?;
    match result {
        Ok((row, outcome)) => Ok(single(
            created_or_ok(outcome),
            AssignmentDto::new(row, &quirks),
            info,
            &quirks,
        )),
        Err(r) => Err(refusal(r).with_rate(info).into()),
    }
}

/// An assignment write at `now`, saved: first the removals that no lagging
/// list can show any more are forgotten.
fn write_assignment<R>(
    sb: &Sandbox,
    now: Timestamp,
    write: impl FnOnce(&mut World) -> R,
) -> Result<R, ApiError> {
    let delay = sb.consistency_delay();
    sb.mutate(|w| {
        if let Ok(horizon) = now.saturating_sub(delay) {
            w.prune_history(horizon);
        }
        write(w)
    })
    .map_err(internal)
}

async fn unassign(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    team: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let TeamQuery {
        team_id,
        info,
        params,
    } = enter_team_query(&sb, &headers, team, query, &[PRODUCTS_WRITE])?;
    let required = |name: &str| {
        params
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| {
                Problem::invalid_field(name, format!("query parameter {name} is required"))
                    .with_rate(info)
            })
    };
    let user = required("userId")?;
    let product = required("productId")?;
    let quirks = sb.quirks();
    let now = sb.now();
    let result = write_assignment(&sb, now, |w| {
        w.unassign(&team_id, &user, &product, now, ChangeSource::Api)
    })?;
    match result {
        Ok(removed) => Ok(match quirks.unassign_success {
            UnassignSuccess::NoContent => {
                let mut res = StatusCode::NO_CONTENT.into_response();
                add_rate_headers(res.headers_mut(), info);
                res
            }
            UnassignSuccess::OkWithBody => single(
                StatusCode::OK,
                AssignmentDto::new(removed, &quirks),
                info,
                &quirks,
            ),
        }),
        Err(r) => Err(refusal(r).with_rate(info).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_is_bound_to_its_list() {
        let c = encode_cursor("users/100001", 50);
        assert_eq!(decode_cursor(&c, "users/100001"), Some(50));
        assert_eq!(decode_cursor(&c, "users/100002"), None);
        assert_eq!(decode_cursor("garbage!", "users/100001"), None);
    }

    #[test]
    fn email_plausibility() {
        assert!(plausible_email("a.b@example.com"));
        assert!(!plausible_email("nobody"));
        assert!(!plausible_email("a@b"));
        assert!(!plausible_email("a b@example.com"));
    }
}
