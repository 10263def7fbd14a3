//! OAuth like APS Authentication v2: three-legged authorization code with PKCE S256,
//! single-use rotating refresh tokens, expiring access tokens.
//!
//! `/authorize` has no sign-in page: it approves at once as an admin of the seed
//! (`login_hint` picks which one) and redirects back with a code.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::config::OAuthClient;
use super::grants::{AuthCode, Grant};
use super::problem::oauth_error;
use super::{Sandbox, ids, lock};

pub(crate) const AUTHORIZE_PATH: &str = "/authentication/v2/authorize";
pub(crate) const TOKEN_PATH: &str = "/authentication/v2/token";

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route(AUTHORIZE_PATH, get(authorize))
        .route(TOKEN_PATH, post(token))
}

fn find_client<'c>(sb: &'c Sandbox, client_id: &str) -> Option<&'c OAuthClient> {
    sb.inner
        .config
        .auth
        .clients
        .iter()
        .find(|c| c.client_id == client_id)
}

/// Exact match, or the same loopback URL on another port (a CLI's ephemeral listener).
fn redirect_allowed(client: &OAuthClient, uri: &str) -> bool {
    client.redirect_uris.iter().any(|r| {
        r == uri || loopback_without_port(r).is_some_and(|a| loopback_without_port(uri) == Some(a))
    })
}

fn loopback_without_port(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("http://")?;
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = match authority.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split_once(']')?.0),
        None => authority.split(':').next()?.to_owned(),
    };
    matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]").then(|| format!("{host}/{path}"))
}

fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let q: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect();
    format!("{uri}{sep}{}", q.join("&"))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn authorize(
    State(sb): State<Sandbox>,
    query: Result<Query<BTreeMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "malformed query string",
        );
    };
    match authorization_request(&sb, &q) {
        Ok(request) => issue_code(&sb, request),
        Err(refusal) => *refusal,
    }
}

/// A valid `/authorize` request.
struct AuthRequest<'q> {
    client_id: String,
    redirect_uri: &'q str,
    state: Option<&'q str>,
    challenge: Option<String>,
    scopes: Vec<String>,
    login: Option<String>,
}

/// The request, checked; or the answer refusing it: shown while client and
/// redirect URI are unknown, sent back to the redirect URI after.
fn authorization_request<'q>(
    sb: &Sandbox,
    q: &'q BTreeMap<String, String>,
) -> Result<AuthRequest<'q>, Box<Response>> {
    let get = |k: &str| q.get(k).map(String::as_str);
    // Until client and redirect URI are known good, errors are shown, never redirected:
    // redirecting to an unchecked URI would make this an open redirector.
    let Some(client) = get("client_id").and_then(|id| find_client(sb, id)) else {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "unknown client_id",
        )));
    };
    let Some(redirect_uri) = get("redirect_uri").filter(|u| redirect_allowed(client, u)) else {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri is missing or not registered for this client",
        )));
    };
    let state = get("state");
    let fail = |error: &str, description: &str| {
        Err(Box::new(redirect_error(
            redirect_uri,
            state,
            error,
            description,
        )))
    };
    if state.is_some_and(|s| {
        !s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b',' | b'.' | b'_' | b'-'))
    }) {
        return fail(
            "invalid_request",
            "state may only contain letters, digits , . _ -",
        );
    }
    if get("response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported here",
        );
    }
    let challenge = get("code_challenge").map(str::to_owned);
    if challenge.is_some() && get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if challenge.is_none() && client.client_secret.is_none() {
        return fail("invalid_request", "public clients must use PKCE");
    }
    let scopes: Vec<String> = get("scope")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if scopes.len() > 50 {
        return fail("invalid_scope", "at most 50 scopes");
    }
    Ok(AuthRequest {
        client_id: client.client_id.clone(),
        redirect_uri,
        state,
        challenge,
        scopes,
        login: get("login_hint")
            .map(str::to_owned)
            .or_else(|| sb.inner.config.auth.default_login.clone()),
    })
}

/// Issues a code for the admin signing in and sends the browser back with
/// it.
fn issue_code(sb: &Sandbox, r: AuthRequest<'_>) -> Response {
    let now = sb.now();
    let lifetime = signed(sb.inner.config.auth.code_lifetime);
    let code = ids::token();
    let issued = sb.mutate(|w| {
        let account_id = match &r.login {
            Some(who) => w.find_admin(who)?,
            None => w.admins.keys().next()?.clone(),
        };
        w.oauth.prune(now);
        w.oauth.codes.insert(
            code.clone(),
            AuthCode {
                client_id: r.client_id.clone(),
                account_id,
                redirect_uri: r.redirect_uri.to_owned(),
                scopes: r.scopes.clone(),
                code_challenge: r.challenge.clone(),
                expires_at: now.saturating_add(lifetime).unwrap_or(now),
            },
        );
        Some(())
    });
    let fail = |error: &str, description: &str| {
        redirect_error(r.redirect_uri, r.state, error, description)
    };
    match issued {
        Ok(Some(())) => {
            let mut pairs = vec![("code", code.as_str())];
            if let Some(s) = r.state {
                pairs.push(("state", s));
            }
            found(&with_query(r.redirect_uri, &pairs)).into_response()
        }
        Ok(None) => fail("access_denied", "no such admin to sign in as"),
        Err(_) => fail("server_error", "the sandbox could not save its state"),
    }
}

/// An OAuth error sent back to a checked redirect URI, with the state.
fn redirect_error(
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    found(&with_query(redirect_uri, &pairs)).into_response()
}

/// 302, as APS documents for `/authorize` (axum's `Redirect::to` would send 303).
fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        Err(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unusable redirect_uri",
        ),
    }
}

fn signed(d: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// Client credentials from `Authorization: Basic` or the body (public clients).
fn client_credentials(
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> Result<(String, Option<String>), OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let in_body = form.contains_key("client_id") || form.contains_key("client_secret");
    match basic {
        Some(_) if in_body => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client credentials must not be sent both in the Authorization header and in the body",
        )),
        Some(b64) => {
            let decoded = STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.split_once(':').map(|(i, p)| (i.to_owned(), p.to_owned())));
            decoded
                .map(|(i, p)| (i, Some(p)))
                .ok_or_else(|| invalid_client("malformed Basic credentials"))
        }
        None => match form.get("client_id") {
            Some(id) => Ok((id.clone(), form.get("client_secret").cloned())),
            None => Err(invalid_client("client authentication is required")),
        },
    }
}

/// An OAuth error on its way to becoming a response.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut res = oauth_error(self.status, self.error, &self.description);
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        }
        res
    }
}

fn invalid_client(description: &str) -> OAuthError {
    OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// The 400 `invalid_request` of a token request without `field`.
fn missing(field: &str) -> OAuthError {
    OAuthError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        format!("{field} is required"),
    )
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: String,
}

async fn token(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    form: Result<Form<BTreeMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Result<Response, OAuthError> {
    let Ok(Form(form)) = form else {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected an application/x-www-form-urlencoded body",
        ));
    };
    let (client_id, secret) = client_credentials(&headers, &form)?;
    let Some(client) = find_client(&sb, &client_id) else {
        return Err(invalid_client("unknown client"));
    };
    match (&client.client_secret, &secret) {
        // Confidential clients must send their secret with Basic, as APS documents.
        (Some(_), _) if !headers.contains_key(header::AUTHORIZATION) => {
            return Err(invalid_client(
                "this client must authenticate with HTTP Basic",
            ));
        }
        (Some(expected), Some(given)) if expected == given => {}
        (None, None) => {}
        _ => return Err(invalid_client("wrong client credentials")),
    }
    let now = sb.now();
    let get = |k: &str| form.get(k).map(String::as_str);
    let outcome = match get("grant_type") {
        Some("authorization_code") => exchange_code(&sb, &client_id, &form, now),
        Some("refresh_token") => refresh(&sb, &client_id, &form, now),
        Some(_) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        )),
        None => Err(missing("grant_type")),
    };
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(outcome?),
    )
        .into_response())
}

fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

fn exchange_code(
    sb: &Sandbox,
    client_id: &str,
    form: &BTreeMap<String, String>,
    now: Timestamp,
) -> Result<TokenResponse, OAuthError> {
    let get = |k: &str| form.get(k).map(String::as_str);
    let Some(code) = get("code") else {
        return Err(missing("code"));
    };
    let issued = sb.mutate(|w| {
        let entry = w
            .oauth
            .codes
            .get(code)
            .filter(|c| c.expires_at > now)
            .cloned();
        let Some(entry) = entry else {
            return Err(invalid_grant(
                "the code is unknown, expired or already used",
            ));
        };
        if entry.client_id != client_id {
            return Err(invalid_grant("the code was issued to another client"));
        }
        if get("redirect_uri") != Some(entry.redirect_uri.as_str()) {
            return Err(invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        match (&entry.code_challenge, get("code_verifier")) {
            (Some(c), Some(v)) if pkce_matches(c, v) => {}
            (Some(_), Some(_)) => {
                return Err(invalid_grant("code_verifier does not match code_challenge"));
            }
            (Some(_), None) => return Err(invalid_grant("code_verifier is required")),
            (None, Some(_)) => {
                return Err(invalid_grant("no code_challenge was sent for this code"));
            }
            (None, None) => {}
        }
        // Single use: a successful exchange consumes the code.
        w.oauth.codes.remove(code);
        Ok(issue(
            sb,
            w,
            client_id,
            &entry.account_id,
            entry.scopes.clone(),
            entry.scopes,
            now,
        ))
    });
    saved(issued)
}

fn refresh(
    sb: &Sandbox,
    client_id: &str,
    form: &BTreeMap<String, String>,
    now: Timestamp,
) -> Result<TokenResponse, OAuthError> {
    let Some(presented) = form.get("refresh_token") else {
        return Err(missing("refresh_token"));
    };
    let requested: Option<Vec<String>> = form
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_owned).collect());
    let issued = sb.mutate(|w| {
        let grant = w
            .oauth
            .refresh_tokens
            .get(presented)
            .filter(|g| g.expires_at > now)
            .cloned();
        // A used token is gone, so reuse lands here too: rotation makes every refresh
        // token single-use.
        let Some(grant) = grant else {
            lock(&sb.inner.counters).refresh_refused();
            return Err(invalid_grant(
                "the refresh token is unknown, expired or already used",
            ));
        };
        if grant.client_id != client_id {
            return Err(invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        let access_scopes = match requested {
            Some(ref r) if r.iter().any(|s| !grant.scopes.contains(s)) => {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "scope must be a subset of the originally granted scopes",
                ));
            }
            Some(r) => r,
            None => grant.scopes.clone(),
        };
        w.oauth.refresh_tokens.remove(presented);
        lock(&sb.inner.counters).refreshed();
        Ok(issue(
            sb,
            w,
            client_id,
            &grant.account_id,
            access_scopes,
            grant.scopes,
            now,
        ))
    });
    saved(issued)
}

fn issue(
    sb: &Sandbox,
    w: &mut super::state::World,
    client_id: &str,
    account_id: &str,
    access_scopes: Vec<String>,
    refresh_scopes: Vec<String>,
    now: Timestamp,
) -> TokenResponse {
    let auth = &sb.inner.config.auth;
    w.oauth.prune(now);
    let access = ids::token();
    let refresh = ids::token();
    let access_life = signed(auth.access_token_lifetime);
    w.oauth.access_tokens.insert(
        access.clone(),
        Grant {
            client_id: client_id.to_owned(),
            account_id: account_id.to_owned(),
            scopes: access_scopes,
            expires_at: now.saturating_add(access_life).unwrap_or(now),
        },
    );
    // Each rotation starts a fresh refresh lifetime ([NOT FOUND]; see docs/sandbox.md).
    w.oauth.refresh_tokens.insert(
        refresh.clone(),
        Grant {
            client_id: client_id.to_owned(),
            account_id: account_id.to_owned(),
            scopes: refresh_scopes,
            expires_at: now
                .saturating_add(signed(auth.refresh_token_lifetime))
                .unwrap_or(now),
        },
    );
    TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: auth.access_token_lifetime.as_secs(),
        refresh_token: refresh,
    }
}

/// A grant's answer once the world holding it is saved; a 500 if it is not
/// (a token the state file does not know would not survive a restart).
fn saved(
    issued: Result<Result<TokenResponse, OAuthError>, crate::SandboxError>,
) -> Result<TokenResponse, OAuthError> {
    issued.unwrap_or_else(|_| {
        Err(OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "state not saved",
        ))
    })
}

/// For tests of this module only.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirect_matches_any_port() {
        let c = OAuthClient::default_client();
        assert!(redirect_allowed(&c, "http://127.0.0.1:45678/callback"));
        assert!(redirect_allowed(&c, "http://localhost/callback"));
        assert!(!redirect_allowed(&c, "http://127.0.0.1:45678/other"));
        assert!(!redirect_allowed(&c, "http://evil.example/callback"));
    }

    #[test]
    fn pkce_s256_known_vector() {
        // RFC 7636 appendix B.
        assert!(pkce_matches(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
    }
}
