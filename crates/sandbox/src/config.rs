//! Every knob of the sandbox, with the defaults an unconfigured sandbox uses.
//!
//! `Quirks` collects the behaviours the API reference marks [NOT FOUND]: the sandbox
//! picks the most plausible one by default and lets tests flip it, so a client can be
//! proven to cope with either.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::clock::{SharedClock, SystemClock};
use super::faults::FaultSettings;

/// Client id of the OAuth client every sandbox knows (see [`OAuthClient::default_client`]).
pub const DEFAULT_CLIENT_ID: &str = "flexsync-sandbox";
/// Secret of the default OAuth client. Not a secret: the sandbox holds no real data.
pub const DEFAULT_CLIENT_SECRET: &str = "flexsync-sandbox-secret";

/// How the sandbox behaves. `SandboxConfig::default()` is the embedded default.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Rate limits.
    pub limits: Limits,
    /// OAuth lifetimes and clients.
    pub auth: AuthSettings,
    /// Choices for behaviour the reference leaves open.
    pub quirks: Quirks,
    /// How long a write takes to show in team-wide (unfiltered) List Assignments.
    /// Filtered lists are always current. Changeable at run time through `/_sandbox/`.
    pub consistency_delay: Duration,
    /// Faults injected from the start. Changeable at run time through `/_sandbox/faults`.
    pub faults: FaultSettings,
    /// Whether the `/_sandbox/` admin endpoints exist. Off by default: a client under
    /// test must not be able to reach behind the API by accident.
    pub admin_endpoints: bool,
    /// The time source.
    pub clock: SharedClock,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            auth: AuthSettings::default(),
            quirks: Quirks::default(),
            consistency_delay: Duration::ZERO,
            faults: FaultSettings::default(),
            admin_endpoints: false,
            clock: Arc::new(SystemClock::new()),
        }
    }
}

/// Fixed-window request budgets (documented: 60 and 60).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Calls per team per UTC minute, shared by the seven team operations and all callers.
    pub team_per_minute: u32,
    /// List Teams calls per OAuth client per UTC minute.
    pub list_teams_per_client_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            team_per_minute: 60,
            list_teams_per_client_per_minute: 60,
        }
    }
}

/// OAuth behaviour.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// Access token lifetime (documented: 60 minutes).
    pub access_token_lifetime: Duration,
    /// Refresh token lifetime (documented: 15 days; each rotation starts a fresh one).
    pub refresh_token_lifetime: Duration,
    /// Authorization code lifetime (documented: 5 minutes).
    pub code_lifetime: Duration,
    /// Clients allowed to log in.
    pub clients: Vec<OAuthClient>,
    /// Admin (user id or email) that `/authentication/v2/authorize` logs in as when the
    /// request carries no `login_hint`. `None`: the first admin of the seed.
    pub default_login: Option<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_token_lifetime: Duration::from_secs(60 * 60),
            refresh_token_lifetime: Duration::from_secs(15 * 24 * 60 * 60),
            code_lifetime: Duration::from_secs(5 * 60),
            clients: vec![OAuthClient::default_client()],
            default_login: None,
        }
    }
}

/// A registered OAuth application.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The `client_id`.
    pub client_id: String,
    /// `Some` for a confidential client (Traditional Web App: HTTP Basic auth at the token
    /// endpoint), `None` for a public client (sends `client_id` in the body, must use PKCE).
    pub client_secret: Option<String>,
    /// Registered callback URLs. A loopback URL (127.0.0.1, localhost, [::1]) also matches
    /// the same URL on any other port, because a CLI listens on an ephemeral port.
    pub redirect_uris: Vec<String>,
}

impl OAuthClient {
    /// The client every sandbox knows: confidential, loopback callback on any port.
    pub fn default_client() -> Self {
        Self {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: Some(DEFAULT_CLIENT_SECRET.to_owned()),
            redirect_uris: vec![
                "http://127.0.0.1/callback".to_owned(),
                "http://localhost/callback".to_owned(),
            ],
        }
    }
}

// The secret stays out of logs and `Debug` output.
impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

/// Behaviour the API reference marks [NOT FOUND]; defaults are the most plausible reading.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Quirks {
    /// `assignmentType` of an assignment inherited through a group.
    pub group_assignment_type: String,
    /// `assignmentType` of an assignment inherited through the team.
    pub team_assignment_type: String,
    /// Which source is the effective one when a user holds a product both directly and
    /// by inheritance.
    pub precedence: Precedence,
    /// Success status of Unassign Product.
    pub unassign_success: UnassignSuccess,
    /// List Teams `?teamId=` naming a team the caller does not administer.
    pub list_teams_foreign_filter: ForeignTeamFilter,
    /// Whether List Team Users' `email` filter ignores letter case.
    pub email_filter_ignores_case: bool,
    /// Whether List Assignments rejects `limit`/`cursor` with 400 (else ignores them).
    pub assignments_reject_paging_params: bool,
    /// Whether user objects carry a `status` (`ACTIVE` / `PENDING`). The client must not
    /// rely on it.
    pub user_status_field: bool,
    /// Whether inherited holders count in `assignedQuantity` and use up seats.
    pub inherited_use_seats: bool,
    /// Whether single objects (Get/Add Team User, Assign) are wrapped in `{"data": ...}`.
    pub wrap_single_in_data: bool,
    /// Body format of 401 and missing-scope 403 responses.
    pub auth_error_format: AuthErrorFormat,
    /// Whether a pool that has not started reports `assignedQuantity: null`.
    pub unstarted_pool_assigned_null: bool,
    /// Whether responses carry the `X-RateLimit-*` headers. Their names and meanings
    /// are unknown, so a client must keep within the limit without them.
    pub rate_limit_headers: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Self {
            group_assignment_type: "GROUP".to_owned(),
            team_assignment_type: "TEAM".to_owned(),
            precedence: Precedence::DirectFirst,
            unassign_success: UnassignSuccess::NoContent,
            list_teams_foreign_filter: ForeignTeamFilter::Forbidden,
            email_filter_ignores_case: true,
            assignments_reject_paging_params: true,
            user_status_field: false,
            inherited_use_seats: true,
            wrap_single_in_data: false,
            auth_error_format: AuthErrorFormat::ApsError,
            unstarted_pool_assigned_null: true,
            rate_limit_headers: true,
        }
    }
}

/// Effective source when several apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Precedence {
    /// Direct, then group, then team.
    DirectFirst,
    /// Group, then team, then direct.
    InheritedFirst,
}

/// Success answer of Unassign Product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UnassignSuccess {
    /// 204 with no body.
    NoContent,
    /// 200 with the removed assignment.
    OkWithBody,
}

/// List Teams filtered to a team the caller does not administer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ForeignTeamFilter {
    /// The generic 403.
    Forbidden,
    /// 200 with an empty `data`.
    Empty,
}

/// Body of auth failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthErrorFormat {
    /// The APS gateway format, `application/json`
    /// (`developerMessage`, `errorCode`, `more info`).
    ApsError,
    /// `application/problem+json`, like the API's own errors.
    ProblemDetails,
}
