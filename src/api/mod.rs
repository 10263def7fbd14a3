//! The Team Admin API v1 client.
//!
//! - [`wire`]: the API's JSON (private to this module);
//! - [`auth`]: OAuth, the token store, single-flight refresh;
//! - [`budget`]: the per-team 60-calls-per-UTC-minute budget (pure);
//! - [`shared_budget`]: that budget shared by the processes of one machine;
//! - [`error`]: typed errors with actionable messages;
//! - [`login`]: the interactive three-legged login;
//! - `retry`: what to do with one answer, as a pure function;
//! - `files`: private directories, no-follow opens, bounded locks.
//!
//! Every call goes through [`Client::call`]: it waits for the team's budget,
//! attaches a fresh `X-Request-Id`, retries transient failures with backoff
//! and jitter, honours `Retry-After`, and refreshes the token at most once on
//! a 401. Callers get `model` types, never wire types.

pub mod auth;
pub mod budget;
pub mod error;
mod files;
pub mod login;
mod retry;
pub mod shared_budget;
mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::BackoffBuilder;
use jiff::{SignedDuration, Timestamp};
use reqwest::{Method, StatusCode};

use crate::model::{self, Email, ObservedTeam, ProductId, TeamId, TeamUser, UserId};
use auth::TokenSource;
use budget::{Budget, WindowCount};
pub use error::{ApiError, UrlProblem};
use shared_budget::SharedBudgets;
use tokio_util::sync::CancellationToken;

/// Autodesk's production endpoint.
pub const DEFAULT_API_URL: &str = "https://developer.api.autodesk.com/team-admin/v1";

/// The path every Team Admin API base URL ends in.
pub const API_BASE_SUFFIX: &str = "/team-admin/v1";

/// Time for the client: real in production; tests drive the sandbox's clock
/// so rate windows and token expiry move without sleeping.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The wall clock and tokio's timer.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Connection settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub api_url: url::Url,
    /// Calls per UTC minute left to the humans and tools sharing a team.
    pub reserve: u32,
    /// Attempts per call for transient failures (5xx, timeouts, resets).
    pub max_attempts: usize,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Starting delay of the exponential backoff.
    pub min_backoff: Duration,
    /// Where the processes of this machine share each team's budget;
    /// `None` counts this process's calls only.
    pub budget_dir: Option<PathBuf>,
}

impl ClientConfig {
    /// Checks the URL: https, or plain http only to a loopback address (the
    /// sandbox), so a token never crosses a network in clear text.
    pub fn new(api_url: &str) -> Result<Self, ApiError> {
        let refused = |problem| ApiError::ApiUrl {
            url: api_url.to_owned(),
            problem,
        };
        let mut url = url::Url::parse(api_url).map_err(|e| refused(UrlProblem::NotAUrl(e)))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => return Err(refused(UrlProblem::PlainHttp)),
            other => return Err(refused(UrlProblem::Scheme(other.to_owned()))),
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(ClientConfig {
            api_url: url,
            reserve: 5,
            max_attempts: 5,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            min_backoff: Duration::from_millis(500),
            budget_dir: None,
        })
    }

    /// The APS OAuth endpoints on the same origin as the API.
    pub fn oauth_urls(&self) -> Result<(url::Url, url::Url), ApiError> {
        let join = |p: &str| {
            self.api_url
                .join(p)
                .map_err(|e| ApiError::Internal(format!("bad OAuth URL: {e}")))
        };
        Ok((
            join("/authentication/v2/authorize")?,
            join("/authentication/v2/token")?,
        ))
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// An HTTP client that refuses redirects (a redirected call could carry the
/// token elsewhere) and ignores proxies for loopback.
pub fn http_client(config: &ClientConfig) -> Result<reqwest::Client, ApiError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        .user_agent(concat!("flexsync/", env!("CARGO_PKG_VERSION")));
    if is_loopback(&config.api_url) {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| {
        // reqwest says only "builder error"; the cause (no CA certificates
        // on this system, say) is further down the chain.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        ApiError::HttpClient(message)
    })
}

/// Hears about every HTTP answer (e.g. to count requests by operation and
/// status in metrics). Status 0 means no answer (connection failed).
pub trait CallObserver: Send + Sync {
    fn response(&self, team: &str, op: &'static str, status: u16);
}

/// Counters a run reports (and the service exports).
#[derive(Debug, Default)]
pub struct CallStats {
    pub calls: AtomicU64,
    pub rate_limited: AtomicU64,
    pub retries: AtomicU64,
}

/// The outcome of Assign Product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assigned {
    /// 201: a new assignment.
    Created,
    /// 200: it existed already (the API converges).
    AlreadyThere,
}

/// The outcome of Unassign Product: every variant means "not directly
/// assigned any more".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unassigned {
    Removed,
    /// 404: nothing was assigned (e.g. a retry after success).
    WasNotAssigned,
    /// 422, and only an inherited assignment remains.
    OnlyInheritedRemains,
}

/// How one team's state was read, for the plan's cost line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadStats {
    pub calls: u64,
    pub user_strategy: UserStrategy,
}

/// How a read found the team's people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserStrategy {
    /// Every member, page by page: the read also tells the team's size.
    List,
    /// One lookup per declared email: cheaper for a few people in a big
    /// team, blind to everyone else.
    EmailLookups,
}

/// What a read needs to know to choose the cheapest way.
#[derive(Clone, Debug, Default)]
pub struct ReadHint {
    /// Declared emails of the team.
    pub emails: BTreeSet<Email>,
    /// Team size from an earlier read, if any.
    pub known_users: Option<u64>,
}

/// The Team Admin API client. Cheap to share (`Arc`) between tasks.
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
    tokens: Arc<TokenSource>,
    clock: Arc<dyn Clock>,
    /// This process's view of each bucket; merged with the shared count
    /// (when there is one) at every decision.
    budgets: Arc<Mutex<HashMap<TeamId, Budget>>>,
    shared: Option<Arc<SharedBudgets>>,
    stats: Mutex<HashMap<String, Arc<CallStats>>>,
    teams: tokio::sync::Mutex<Option<BTreeMap<TeamId, String>>>,
    observer: Option<Arc<dyn CallObserver>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("api_url", &self.config.api_url.as_str())
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

/// `team` for team-scoped calls; List Teams has its own per-client bucket.
const LIST_TEAMS_BUCKET: &str = "(list teams)";

impl Client {
    pub fn new(
        config: ClientConfig,
        http: reqwest::Client,
        tokens: Arc<TokenSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let shared = config
            .budget_dir
            .clone()
            .map(|dir| Arc::new(SharedBudgets::new(dir, config.api_url.as_str())));
        Client {
            http,
            config,
            tokens,
            clock,
            budgets: Arc::new(Mutex::new(HashMap::new())),
            shared,
            stats: Mutex::new(HashMap::new()),
            teams: tokio::sync::Mutex::new(None),
            observer: None,
        }
    }

    /// Reports every answer to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Forgets the cached team list, so the next read asks again (the
    /// service does this each cycle: admin roles can change).
    pub async fn forget_teams(&self) {
        *self.teams.lock().await = None;
    }

    fn observe(&self, bucket: &str, op: &'static str, status: u16) {
        if let Some(o) = &self.observer {
            o.response(bucket, op, status);
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Where the client's access tokens come from.
    pub fn tokens(&self) -> &Arc<TokenSource> {
        &self.tokens
    }

    /// Counters for a team (or List Teams' bucket).
    pub fn stats(&self, team: &str) -> Arc<CallStats> {
        let mut map = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(team.to_owned()).or_default().clone()
    }

    /// Calls this client may still make to `team` in the current window, as
    /// last seen (shared counts are read at each call, not here).
    pub fn budget_remaining(&self, team: &TeamId) -> u32 {
        let now = self.clock.now();
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        budgets
            .entry(team.clone())
            .or_insert_with(|| Budget::new(budget::TEAM_LIMIT, self.config.reserve))
            .remaining(now)
    }

    /// Calls per window this client allows itself for a team.
    pub fn calls_per_window(&self) -> u32 {
        Budget::new(budget::TEAM_LIMIT, self.config.reserve).per_window()
    }

    /// Waits until a call to `team` would go out without waiting for its
    /// budget (this machine's shared count included), taking nothing; false
    /// if `stop` is cancelled first. Lets a caller decide at the last moment
    /// whether to send a write at all.
    pub async fn ready_for(&self, team: &TeamId, stop: &CancellationToken) -> bool {
        loop {
            if stop.is_cancelled() {
                return false;
            }
            let now = self.clock.now();
            let until = self
                .with_budget(&team.0, now, move |b: &mut Budget| b.ready_at(now))
                .await;
            let Some(until) = until else {
                return true;
            };
            let wait = Duration::try_from(until.duration_since(now)).unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = self.clock.sleep(wait.max(Duration::from_millis(1))) => {}
            }
        }
    }

    /// Applies `step` to the bucket's budget: merged with the count the
    /// processes of this machine share (and written back) when there is one,
    /// else in this process alone.
    async fn with_budget<R, F>(&self, bucket: &str, now: Timestamp, step: F) -> R
    where
        R: Send + 'static,
        F: Fn(&mut Budget) -> R + Send + Sync + 'static,
    {
        let budgets = self.budgets.clone();
        let reserve = self.config.reserve;
        let key = TeamId(bucket.to_owned());
        let local = Arc::new(move |seen: Option<WindowCount>| -> (R, WindowCount) {
            let mut map = budgets.lock().unwrap_or_else(|p| p.into_inner());
            let b = map
                .entry(key.clone())
                .or_insert_with(|| Budget::new(budget::TEAM_LIMIT, reserve));
            if let Some(seen) = &seen {
                b.merge(now, seen);
            }
            let result = step(b);
            let mine = b.count(now);
            // A process that read the clock after us may have opened the
            // next window already: never overwrite its count with ours.
            let count = match seen {
                Some(seen) if seen.window > mine.window => seen,
                _ => mine,
            };
            (result, count)
        });
        let Some(shared) = self.shared.clone() else {
            return local(None).0;
        };
        let in_file = local.clone();
        let name = bucket.to_owned();
        // The file lock may be held by another process: off the runtime.
        let outcome = tokio::task::spawn_blocking(move || {
            let mut result = None;
            let written = shared.update(&name, |seen| {
                let (r, count) = in_file(seen);
                result = Some(r);
                count
            });
            if let Err(e) = &written {
                shared.report(e);
            }
            result
        })
        .await;
        match outcome {
            Ok(Some(result)) => result,
            Ok(None) => local(None).0,
            Err(e) => {
                tracing::warn!(team = bucket, error = %e, "shared rate budget task failed; counting in this process");
                local(None).0
            }
        }
    }

    /// Waits until the bucket allows one more call.
    async fn wait_for_budget(&self, bucket: &str) {
        loop {
            let now = self.clock.now();
            let wait = match self
                .with_budget(bucket, now, move |b| b.try_acquire(now))
                .await
            {
                Ok(()) => return,
                Err(until) => until.duration_since(now),
            };
            let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
            tracing::info!(
                team = bucket,
                wait_ms = wait.as_millis() as u64,
                "rate budget spent; waiting for the next window"
            );
            self.clock.sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// Learns from an answer's rate headers and 429s, for this process and
    /// the others sharing the budget.
    async fn learn(&self, bucket: &str, headers: &reqwest::header::HeaderMap, status: StatusCode) {
        let now = self.clock.now();
        let num =
            |name: &str| -> Option<u32> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let limit = num("x-ratelimit-limit");
        let remaining = num("x-ratelimit-remaining");
        let throttled = (status == StatusCode::TOO_MANY_REQUESTS).then(|| retry_after(headers));
        if limit.is_none() && remaining.is_none() && throttled.is_none() {
            return;
        }
        self.with_budget(bucket, now, move |b| {
            b.observe(now, limit, remaining);
            if let Some(retry_after) = throttled {
                b.throttled(now, retry_after);
            }
        })
        .await;
    }

    /// Sends one logical call: budget, request id, retries, one refresh on
    /// 401. Returns status and body of the final answer, or a typed error
    /// for a 4xx/5xx. What each answer leads to is [`retry::classify`]'s
    /// decision; this loop carries it out.
    async fn call(
        &self,
        bucket: &str,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<Answer, ApiError> {
        let url = self
            .config
            .api_url
            .join(path)
            .map_err(|e| ApiError::Internal(format!("bad path {path}: {e}")))?;
        let request = Request {
            bucket,
            op,
            method,
            url,
            query,
            body,
        };
        let mut backoff = self.backoff();
        let mut seen = retry::Seen::default();
        let mut token = self.tokens.access_token(self.clock.now()).await?;
        loop {
            self.wait_for_budget(bucket).await;
            let reply = match self.exchange(&request, &token).await {
                Ok(reply) => reply,
                Err(err @ ApiError::Transport { .. }) => {
                    if self.back_off(&mut backoff, bucket, op, &err).await {
                        continue;
                    }
                    return Err(err);
                }
                Err(err) => return Err(err),
            };
            let step = retry::classify(
                reply.status.as_u16(),
                &reply.body,
                &reply.request_id,
                retry_after(&reply.headers),
                bucket,
                bucket != LIST_TEAMS_BUCKET,
                seen,
            );
            match step {
                retry::Step::Done => return Ok(reply.into_answer()),
                retry::Step::Throttled(request_id) => {
                    self.stats(bucket)
                        .rate_limited
                        .fetch_add(1, Ordering::Relaxed);
                    seen.throttles += 1;
                    let request_id = request_id.unwrap_or_default();
                    tracing::warn!(op, team = bucket, %request_id, "HTTP 429: waiting for the rate window");
                }
                retry::Step::Refresh(unauthorized) => {
                    seen.refreshed = true;
                    let now = self.clock.now();
                    match self.tokens.refresh_after_rejection(&token, now).await? {
                        Some(t) => token = t,
                        None => return Err(unauthorized),
                    }
                }
                retry::Step::Retry(err) => {
                    if !self.back_off(&mut backoff, bucket, op, &err).await {
                        return Err(err);
                    }
                }
                retry::Step::Fail(ApiError::NotFound { detail, request_id }) => {
                    let detail = self.base_hint(detail);
                    return Err(ApiError::NotFound { detail, request_id });
                }
                retry::Step::Fail(err) => return Err(err),
            }
        }
    }

    /// The waits between attempts of one call: exponential with jitter, up
    /// to `max_attempts` in all.
    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.config.min_backoff)
            .with_max_delay(Duration::from_secs(20))
            .with_max_times(self.config.max_attempts.saturating_sub(1))
            .with_jitter()
            .build()
    }

    /// Waits before another attempt after `err` (counted and logged);
    /// false once the attempts are spent.
    async fn back_off(
        &self,
        backoff: &mut impl Iterator<Item = Duration>,
        bucket: &str,
        op: &'static str,
        err: &ApiError,
    ) -> bool {
        let Some(delay) = backoff.next() else {
            return false;
        };
        self.stats(bucket).retries.fetch_add(1, Ordering::Relaxed);
        let retry_in_ms = delay.as_millis() as u64;
        match err {
            ApiError::Transport { detail, .. } => {
                tracing::warn!(op, team = bucket, error = %detail, retry_in_ms, "request failed; retrying");
            }
            _ => {
                let status = err.status().unwrap_or(0);
                let request_id = err.request_id().unwrap_or_default();
                tracing::warn!(
                    op,
                    team = bucket,
                    status,
                    request_id,
                    retry_in_ms,
                    "server error; retrying"
                );
            }
        }
        self.clock.sleep(delay).await;
        true
    }

    /// One attempt of `r` and its whole answer, with the budget, metrics
    /// and call count told: status, headers, body and the request id the
    /// server echoed (else ours). A failure to send or to read the body is
    /// [`ApiError::Transport`].
    async fn exchange(&self, r: &Request<'_>, token: &auth::Secret) -> Result<Reply, ApiError> {
        let request_id = auth::random_token(12)?;
        let mut req = self
            .http
            .request(r.method.clone(), r.url.clone())
            .bearer_auth(token.expose())
            .header("X-Request-Id", &request_id)
            .query(r.query);
        if let Some(b) = &r.body {
            req = req.json(b);
        }
        let transport = |e: reqwest::Error| ApiError::Transport {
            url: r.url.to_string(),
            detail: error::transport_detail(e),
        };
        self.stats(r.bucket).calls.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let resp = req.send().await.map_err(|e| {
            self.observe(r.bucket, r.op, 0);
            transport(e)
        })?;
        let status = resp.status();
        self.observe(r.bucket, r.op, status.as_u16());
        let headers = resp.headers().clone();
        self.learn(r.bucket, &headers, status).await;
        let echoed = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(&request_id)
            .to_owned();
        let body = resp.bytes().await.map_err(transport)?.to_vec();
        tracing::debug!(
            op = r.op,
            team = r.bucket,
            status = status.as_u16(),
            request_id = %echoed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "api call"
        );
        Ok(Reply {
            status,
            headers,
            body,
            request_id: echoed,
        })
    }

    /// A 404 from an API URL without the version path is a wrong
    /// `--api-url` (a common slip: the host alone), not a missing thing:
    /// say which URL to use.
    fn base_hint(&self, detail: String) -> String {
        let url = &self.config.api_url;
        if url.path().trim_end_matches('/').ends_with(API_BASE_SUFFIX) {
            return detail;
        }
        let mut suggested = url.clone();
        suggested.set_path(&format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            API_BASE_SUFFIX.trim_start_matches('/')
        ));
        format!(
            "{detail} — the API URL {url} does not end in {API_BASE_SUFFIX}; try --api-url {suggested}"
        )
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, op: &str, body: &[u8]) -> Result<T, ApiError> {
        serde_json::from_slice(body).map_err(|e| ApiError::InvalidResponse {
            url: format!("{}{op}", self.config.api_url),
            detail: e.to_string(),
        })
    }

    /// Follows cursors with `limit=100` (the fewest calls).
    async fn paginate<T: serde::de::DeserializeOwned>(
        &self,
        bucket: &str,
        op: &'static str,
        path: &str,
        filters: &[(&str, &str)],
    ) -> Result<Vec<T>, ApiError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        // A server that keeps saying hasMore with the same cursor must not
        // keep us here forever.
        let mut seen = BTreeSet::new();
        loop {
            let mut query: Vec<(&str, &str)> = vec![("limit", "100")];
            query.extend_from_slice(filters);
            if let Some(c) = &cursor {
                query.push(("cursor", c));
            }
            let answer = self
                .call(bucket, op, Method::GET, path, &query, None)
                .await?;
            let page: wire::Page<T> = self.decode(path, &answer.body)?;
            out.extend(page.data);
            match page.pagination {
                Some(p) if p.has_more => match p.cursor {
                    Some(c) if seen.insert(c.clone()) => cursor = Some(c),
                    _ => {
                        return Err(ApiError::InvalidResponse {
                            url: path.to_owned(),
                            detail: "hasMore without a new cursor".into(),
                        });
                    }
                },
                _ => return Ok(out),
            }
        }
    }

    /// List Teams: the teams this login administers, by id. Cached for the
    /// client's lifetime (it costs the per-client bucket, not a team's).
    pub async fn teams(&self) -> Result<BTreeMap<TeamId, String>, ApiError> {
        let mut cache = self.teams.lock().await;
        if let Some(t) = cache.as_ref() {
            return Ok(t.clone());
        }
        let teams: Vec<wire::Team> = self
            .paginate(LIST_TEAMS_BUCKET, "list_teams", "teams", &[])
            .await?;
        let map: BTreeMap<TeamId, String> =
            teams.into_iter().map(|t| (TeamId(t.id), t.name)).collect();
        *cache = Some(map.clone());
        Ok(map)
    }

    fn team_path(team: &TeamId, rest: &str) -> String {
        let id: String = url::form_urlencoded::byte_serialize(team.0.as_bytes()).collect();
        format!("teams/{id}/{rest}")
    }

    pub async fn list_users(
        &self,
        team: &TeamId,
        email: Option<&Email>,
    ) -> Result<Vec<TeamUser>, ApiError> {
        let filter: Vec<(&str, &str)> = email
            .map(|e| vec![("email", e.as_str())])
            .unwrap_or_default();
        let users: Vec<wire::User> = self
            .paginate(
                &team.0,
                "list_users",
                &Self::team_path(team, "users"),
                &filter,
            )
            .await?;
        Ok(users.into_iter().map(Into::into).collect())
    }

    pub async fn list_pools(&self, team: &TeamId) -> Result<Vec<model::ProductPool>, ApiError> {
        let pools: Vec<wire::Pool> = self
            .paginate(
                &team.0,
                "list_pools",
                &Self::team_path(team, "product-pools"),
                &[],
            )
            .await?;
        Ok(pools.into_iter().map(Into::into).collect())
    }

    pub async fn list_assignments(
        &self,
        team: &TeamId,
        user: Option<&UserId>,
        product: Option<&ProductId>,
    ) -> Result<Vec<model::Assignment>, ApiError> {
        let mut query = Vec::new();
        if let Some(u) = user {
            query.push(("userId", u.as_str()));
        }
        if let Some(p) = product {
            query.push(("productId", p.0.as_str()));
        }
        let answer = self
            .call(
                &team.0,
                "list_assignments",
                Method::GET,
                &Self::team_path(team, "assignments"),
                &query,
                None,
            )
            .await?;
        let list: wire::AssignmentList = self.decode("assignments", &answer.body)?;
        Ok(list.data.into_iter().map(Into::into).collect())
    }

    /// POSTs a JSON body to a team's collection.
    async fn post(
        &self,
        team: &TeamId,
        op: &'static str,
        collection: &str,
        body: &impl serde::Serialize,
    ) -> Result<Answer, ApiError> {
        let body = serde_json::to_value(body).map_err(|e| ApiError::Internal(e.to_string()))?;
        self.call(
            &team.0,
            op,
            Method::POST,
            &Self::team_path(team, collection),
            &[],
            Some(body),
        )
        .await
    }

    /// Add Team User. Converges on email: an existing member is returned and
    /// no second invitation is sent.
    pub async fn add_user(
        &self,
        team: &TeamId,
        email: &Email,
        first_name: Option<&str>,
        last_name: Option<&str>,
    ) -> Result<(TeamUser, Receipt), ApiError> {
        let body = wire::NewUser {
            email: email.as_str(),
            first_name,
            last_name,
        };
        let answer = self.post(team, "add_user", "users", &body).await?;
        let user: wire::UserOrWrapped = self.decode("users", &answer.body)?;
        Ok((user.into_user().into(), Receipt::of(&answer)))
    }

    /// Assign Product (DIRECT). Converges: an existing assignment is success.
    pub async fn assign(
        &self,
        team: &TeamId,
        user: &UserId,
        product: &ProductId,
    ) -> Result<(Assigned, Receipt), ApiError> {
        let body = wire::NewAssignment {
            user_id: &user.0,
            product_id: &product.0,
            assignment_type: "DIRECT",
        };
        let answer = self.post(team, "assign", "assignments", &body).await?;
        let outcome = if answer.status == StatusCode::CREATED {
            Assigned::Created
        } else {
            Assigned::AlreadyThere
        };
        Ok((outcome, Receipt::of(&answer)))
    }

    /// Unassign Product. DELETE is not status-idempotent, so "already gone"
    /// answers count as done: 404, and a 422 when a filtered read confirms
    /// that no DIRECT assignment remains (the 422 for an unsupported pool is
    /// then still an error).
    pub async fn unassign(
        &self,
        team: &TeamId,
        user: &UserId,
        product: &ProductId,
    ) -> Result<(Unassigned, Receipt), ApiError> {
        let result = self
            .call(
                &team.0,
                "unassign",
                Method::DELETE,
                &Self::team_path(team, "assignments"),
                &[("userId", &user.0), ("productId", &product.0)],
                None,
            )
            .await;
        match result {
            Ok(answer) => Ok((Unassigned::Removed, Receipt::of(&answer))),
            Err(e @ ApiError::NotFound { .. }) => {
                Ok((Unassigned::WasNotAssigned, Receipt::of_error(&e)))
            }
            Err(err @ ApiError::Unprocessable { .. }) => {
                // Only an inherited row proves the "only inherited remains"
                // case; no row at all means an unsupported pool, whose
                // assignments the API never lists.
                let rows = self
                    .list_assignments(team, Some(user), Some(product))
                    .await?;
                if !rows.is_empty() && rows.iter().all(|a| !a.assignment_type.is_direct()) {
                    Ok((Unassigned::OnlyInheritedRemains, Receipt::of_error(&err)))
                } else {
                    Err(err)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Reads one team's state at the lowest call count: pools and users
    /// with `limit=100`, assignments in one unpaginated call. When the
    /// declaration is small and the team is known to be large, exact-email
    /// lookups replace listing everyone.
    pub async fn fetch_observed(
        &self,
        team: &TeamId,
        hint: &ReadHint,
    ) -> Result<(ObservedTeam, ReadStats), ApiError> {
        let teams = self.teams().await?;
        let Some(name) = teams.get(team).cloned() else {
            return Err(ApiError::Forbidden {
                team: team.0.clone(),
                request_id: None,
            });
        };
        let stats = self.stats(&team.0);
        let before = stats.calls.load(Ordering::Relaxed);
        let pools = self.list_pools(team).await?;
        let assignments = self.list_assignments(team, None, None).await?;
        // Without a known team size, listing is the safe bet: lookups that
        // miss a holder end in a full listing anyway.
        let list_cost = hint.known_users.map_or(0, |n| n.div_ceil(100).max(1));
        let (users, strategy) = if (hint.emails.len() as u64) < list_cost {
            match self
                .users_by_email(team, &hint.emails, &assignments)
                .await?
            {
                Some(users) => (users, UserStrategy::EmailLookups),
                None => (self.list_users(team, None).await?, UserStrategy::List),
            }
        } else {
            (self.list_users(team, None).await?, UserStrategy::List)
        };
        let calls = stats.calls.load(Ordering::Relaxed) - before;
        Ok((
            ObservedTeam {
                id: team.clone(),
                name,
                users,
                pools,
                assignments,
            },
            ReadStats {
                calls,
                user_strategy: strategy,
            },
        ))
    }

    /// Looks declared people up one by one. Holders of assignments who are
    /// not declared must be known too (prune needs their emails); when the
    /// lookups do not cover them, `None` says "list everyone instead".
    async fn users_by_email(
        &self,
        team: &TeamId,
        emails: &BTreeSet<Email>,
        assignments: &[model::Assignment],
    ) -> Result<Option<Vec<TeamUser>>, ApiError> {
        let holders: BTreeSet<&UserId> = assignments.iter().map(|a| &a.user_id).collect();
        // More holders than declared people: the lookups cannot cover them,
        // so they would only be spent before the listing anyway.
        if holders.len() > emails.len() {
            return Ok(None);
        }
        let mut users = Vec::new();
        for email in emails {
            users.extend(self.list_users(team, Some(email)).await?);
        }
        let known: BTreeSet<&UserId> = users.iter().map(|u| &u.id).collect();
        if holders.iter().all(|h| known.contains(h)) {
            Ok(Some(users))
        } else {
            Ok(None)
        }
    }
}

/// Retry-After in seconds (the HTTP-date form is not used by APS).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<SignedDuration> {
    let secs: i64 = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(SignedDuration::from_secs(secs.clamp(0, 3600)))
}

/// What stays the same over one call's attempts.
struct Request<'a> {
    bucket: &'a str,
    op: &'static str,
    method: Method,
    url: url::Url,
    query: &'a [(&'a str, &'a str)],
    body: Option<serde_json::Value>,
}

/// One answer as read, before [`retry::classify`] judges it.
struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
    request_id: String,
}

impl Reply {
    fn into_answer(self) -> Answer {
        Answer {
            status: self.status,
            body: self.body,
            request_id: self.request_id,
        }
    }
}

/// A successful answer. Private: callers get model types, never wire bytes.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
    request_id: String,
}

/// What a write's answer said, for reports and the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub status: u16,
    pub request_id: String,
}

impl Receipt {
    fn of(a: &Answer) -> Self {
        Receipt {
            status: a.status.as_u16(),
            request_id: a.request_id.clone(),
        }
    }

    fn of_error(e: &ApiError) -> Self {
        Receipt {
            status: e.status().unwrap_or(0),
            request_id: e.request_id().unwrap_or_default().to_owned(),
        }
    }
}
