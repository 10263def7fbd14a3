//! Every failure of the client, typed, with messages that say what happened
//! and what to do: answers parsed from Problem Details
//! (`application/problem+json`) or the APS gateway shape, transport, the
//! token store and login, a refused `--api-url`, a missing APS app.

use serde::Deserialize;

/// What went wrong with one call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "you are not an administrator of team {team}, or it does not exist (HTTP 403{}) — ask a primary, secondary or SSO admin of the team to run `flexsync login`",
        rid(request_id)
    )]
    Forbidden {
        team: String,
        request_id: Option<String>,
    },
    #[error(
        "the login lacks a permission this call needs (HTTP 403{}): {detail} — run `flexsync login` again",
        rid(request_id)
    )]
    MissingScope {
        detail: String,
        request_id: Option<String>,
    },
    #[error("the access token was refused (HTTP 401{}): {detail}", rid(request_id))]
    Unauthorized {
        detail: String,
        request_id: Option<String>,
    },
    #[error("the saved login is no longer valid ({detail}) — run `flexsync login` again")]
    LoginRequired { detail: String },
    #[error(
        "the login timed out: no sign-in reached {callback} within {waited} — run `flexsync login` again and finish signing in sooner (the browser must reach that address; from a remote shell, forward the port with `ssh -L`)"
    )]
    LoginTimedOut { callback: String, waited: String },
    #[error("not logged in: {path} holds no tokens — run `flexsync login` (or try --sandbox)")]
    NotLoggedIn { path: String },
    #[error("not found (HTTP 404{}): {detail}", rid(request_id))]
    NotFound {
        detail: String,
        request_id: Option<String>,
    },
    #[error("Autodesk refused the change (HTTP 422{}): {detail}", rid(request_id))]
    Unprocessable {
        detail: String,
        request_id: Option<String>,
    },
    #[error("invalid request (HTTP 400{}): {detail}", rid(request_id))]
    BadRequest {
        detail: String,
        request_id: Option<String>,
    },
    #[error("rate limit of team {team} exhausted (HTTP 429{})", rid(request_id))]
    RateLimited {
        team: String,
        retry_after: Option<jiff::SignedDuration>,
        request_id: Option<String>,
    },
    #[error("Autodesk answered HTTP {status}{}: {detail}", rid(request_id))]
    Server {
        status: u16,
        detail: String,
        request_id: Option<String>,
    },
    #[error("could not reach {url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("unexpected answer from {url}: {detail}")]
    InvalidResponse { url: String, detail: String },
    #[error("token store {path}: {detail}")]
    TokenStore { path: String, detail: String },
    /// `--api-url` that flexsync will not send a token to.
    #[error("--api-url {url}: {problem}")]
    ApiUrl { url: String, problem: UrlProblem },
    /// The access token needs renewing and no APS app is configured.
    #[error(
        "the access token in {} has expired or was refused, and renewing it needs the APS app: \
         set FLEXSYNC_CLIENT_ID (and FLEXSYNC_CLIENT_SECRET or --client-secret-file)",
        token_file.display()
    )]
    NoApp { token_file: std::path::PathBuf },
    /// The login's one-shot callback listener failed.
    #[error("login callback: {0}")]
    LoginCallback(String),
    /// The HTTP client could not be built (its causes, e.g. no CA
    /// certificates on this system, spelled out).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    /// The operating system gave no randomness for request ids or state.
    #[error("no system randomness: {0}")]
    Randomness(String),
    /// A request flexsync itself built wrongly: a bug.
    #[error("{0}")]
    Internal(String),
}

/// What is wrong with an `--api-url`.
#[derive(Debug, thiserror::Error)]
pub enum UrlProblem {
    #[error("not a URL ({0})")]
    NotAUrl(url::ParseError),
    #[error("uses plain http to a non-loopback host; use https")]
    PlainHttp,
    #[error("unsupported scheme {0:?}")]
    Scheme(String),
}

/// A transport error with its causes ("error sending request: connection
/// refused"), without the URL (it is reported separately).
pub(crate) fn transport_detail(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

fn rid(id: &Option<String>) -> String {
    match id {
        Some(id) => format!(", request id {id}"),
        None => String::new(),
    }
}

impl ApiError {
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Forbidden { request_id, .. }
            | ApiError::MissingScope { request_id, .. }
            | ApiError::Unauthorized { request_id, .. }
            | ApiError::NotFound { request_id, .. }
            | ApiError::Unprocessable { request_id, .. }
            | ApiError::BadRequest { request_id, .. }
            | ApiError::RateLimited { request_id, .. }
            | ApiError::Server { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// HTTP status, where there was one.
    pub fn status(&self) -> Option<u16> {
        Some(match self {
            ApiError::Forbidden { .. } | ApiError::MissingScope { .. } => 403,
            ApiError::Unauthorized { .. } => 401,
            ApiError::NotFound { .. } => 404,
            ApiError::Unprocessable { .. } => 422,
            ApiError::BadRequest { .. } => 400,
            ApiError::RateLimited { .. } => 429,
            ApiError::Server { status, .. } => *status,
            _ => return None,
        })
    }
}

/// The two error body shapes, read leniently: any field may be missing.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    // Problem Details (RFC 9457).
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub errors: Vec<FieldError>,
    // APS gateway shape.
    #[serde(default)]
    pub developer_message: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    // OAuth errors.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FieldError {
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

impl ErrorBody {
    pub fn parse(bytes: &[u8]) -> ErrorBody {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    /// One line saying what the server said.
    pub fn summary(&self, status: u16) -> String {
        let mut parts: Vec<String> = Vec::new();
        for text in [
            &self.detail,
            &self.developer_message,
            &self.error_description,
            &self.title,
            &self.error,
        ]
        .into_iter()
        .flatten()
        {
            if !parts.contains(text) {
                parts.push(text.clone());
            }
        }
        for e in &self.errors {
            parts.push(format!(
                "{}: {}",
                e.field.as_deref().unwrap_or("?"),
                e.detail.as_deref().unwrap_or("invalid")
            ));
        }
        if let Some(code) = &self.error_code {
            parts.push(format!("({code})"));
        }
        if parts.is_empty() {
            format!("HTTP {status}")
        } else {
            parts.join("; ")
        }
    }
}
