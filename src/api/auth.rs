//! Three-legged OAuth (APS Authentication v2) and the token store.
//!
//! Refresh tokens are single-use: each refresh returns a new one and voids
//! the old. Losing the new one locks flexsync out until a human logs in
//! again, so every refresh writes the new refresh token to disk (atomically,
//! 0600) before the new access token is used, and refreshes are single-flight
//! so two callers never spend the same refresh token.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::error::{ApiError, ErrorBody};
use super::wire::TokenResponse;

/// Every scope flexsync uses: read and write teams, users and products.
pub const SCOPES: &str = "tmadmapi:team:read tmadmapi:team:write tmadmapi:team-users:read tmadmapi:team-users:write tmadmapi:team-products:read tmadmapi:team-products:write";

/// Refresh this long before the access token expires, so a call never
/// starts with a token about to die.
const EXPIRY_MARGIN: SignedDuration = SignedDuration::from_secs(60);

/// A secret string. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

/// What the token store holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    pub access_token: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    pub expires_at: Timestamp,
    /// The token endpoint these belong to, so a store made against the
    /// sandbox is never sent to Autodesk.
    pub token_url: String,
}

/// App credentials and the token endpoint.
#[derive(Clone, Debug)]
pub struct OAuthClient {
    pub token_url: url::Url,
    pub authorize_url: url::Url,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    http: reqwest::Client,
}

impl OAuthClient {
    pub fn new(
        authorize_url: url::Url,
        token_url: url::Url,
        client_id: String,
        client_secret: Option<Secret>,
        http: reqwest::Client,
    ) -> Self {
        OAuthClient {
            token_url,
            authorize_url,
            client_id,
            client_secret,
            http,
        }
    }

    /// The browser URL that starts a login.
    pub fn authorize_link(&self, redirect_uri: &str, state: &str, challenge: &str) -> url::Url {
        let mut url = self.authorize_url.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", SCOPES)
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        url
    }

    /// Authorization Code grant with the PKCE verifier.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        now: Timestamp,
    ) -> Result<Tokens, ApiError> {
        self.token_request(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ],
            None,
            now,
        )
        .await
    }

    /// Refresh grant. The answer's refresh token replaces the old one; if the
    /// server sends none, the old one stays.
    pub async fn refresh(
        &self,
        refresh_token: &Secret,
        now: Timestamp,
    ) -> Result<Tokens, ApiError> {
        self.token_request(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
                ("scope", SCOPES),
            ],
            Some(refresh_token),
            now,
        )
        .await
    }

    async fn token_request(
        &self,
        form: &[(&str, &str)],
        old_refresh: Option<&Secret>,
        now: Timestamp,
    ) -> Result<Tokens, ApiError> {
        let mut req = self.http.post(self.token_url.clone());
        // Traditional Web Apps authenticate with Basic; public clients put
        // the id in the body. Never both (APS answers 400).
        let mut body: Vec<(&str, &str)> = form.to_vec();
        match &self.client_secret {
            Some(secret) => {
                req = req.basic_auth(&self.client_id, Some(secret.expose()));
            }
            None => body.push(("client_id", &self.client_id)),
        }
        let url = self.token_url.to_string();
        let resp = req
            .form(&body)
            .send()
            .await
            .map_err(|e| ApiError::Transport {
                url: url.clone(),
                detail: super::error::transport_detail(e),
            })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| ApiError::Transport {
            url: url.clone(),
            detail: super::error::transport_detail(e),
        })?;
        if !(200..300).contains(&status) {
            let body = ErrorBody::parse(&bytes);
            let detail = body.summary(status);
            return Err(
                if body.error.as_deref() == Some("invalid_grant") || status == 400 || status == 401
                {
                    ApiError::LoginRequired { detail }
                } else {
                    ApiError::Server {
                        status,
                        detail,
                        request_id: body.request_id,
                    }
                },
            );
        }
        let token: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidResponse {
                url: url.clone(),
                detail: format!("token response: {e}"),
            })?;
        Ok(Tokens {
            access_token: Secret(token.access_token),
            refresh_token: token
                .refresh_token
                .map(Secret)
                .or_else(|| old_refresh.cloned()),
            expires_at: now
                .saturating_add(SignedDuration::from_secs(token.expires_in.unwrap_or(3600)))
                .unwrap_or(now),
            token_url: url,
        })
    }
}

/// PKCE: a random verifier and its S256 challenge.
pub fn pkce_pair() -> Result<(String, String), ApiError> {
    let verifier = random_token(32)?;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Ok((verifier, challenge))
}

/// `bytes` random bytes, base64url: for verifiers, states and request ids.
pub fn random_token(bytes: usize) -> Result<String, ApiError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|e| ApiError::Config(format!("no system randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// The token file.
#[derive(Clone, Debug)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    pub fn new(path: PathBuf) -> Self {
        TokenStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, detail: impl fmt::Display) -> ApiError {
        ApiError::TokenStore {
            path: self.path.display().to_string(),
            detail: detail.to_string(),
        }
    }

    pub fn load(&self) -> Result<Option<Tokens>, ApiError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| self.error(format!("unreadable ({e}); run `flexsync login` again"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Replaces the file atomically: temp file (0600) + fsync + rename +
    /// fsync of the directory, so a crash leaves the old or the new tokens,
    /// never half of one.
    pub fn save(&self, tokens: &Tokens) -> Result<(), ApiError> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        let bytes = serde_json::to_vec_pretty(tokens).map_err(|e| self.error(e))?;
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let result = (|| -> std::io::Result<()> {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(|e| self.error(e))
    }
}

/// Where access tokens come from. One exists per process, so the size
/// difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum TokenSource {
    /// `FLEXSYNC_ACCESS_TOKEN`: short-lived, never refreshed (CI).
    Fixed(Secret),
    /// The token store, refreshed through the OAuth client.
    Stored {
        store: TokenStore,
        oauth: OAuthClient,
        /// Held across a refresh: that is what makes refreshes single-flight.
        current: Mutex<Option<Tokens>>,
    },
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Fixed(_) => f.write_str("TokenSource::Fixed(redacted)"),
            TokenSource::Stored { store, .. } => {
                write!(f, "TokenSource::Stored({})", store.path.display())
            }
        }
    }
}

impl TokenSource {
    pub fn stored(store: TokenStore, oauth: OAuthClient) -> Self {
        TokenSource::Stored {
            store,
            oauth,
            current: Mutex::new(None),
        }
    }

    /// A usable access token, refreshing first when it is about to expire.
    pub async fn access_token(&self, now: Timestamp) -> Result<Secret, ApiError> {
        match self {
            TokenSource::Fixed(t) => Ok(t.clone()),
            TokenSource::Stored {
                store,
                oauth,
                current,
            } => {
                let mut guard = current.lock().await;
                if guard.is_none() {
                    *guard = store.load()?;
                }
                let Some(tokens) = guard.as_ref() else {
                    return Err(ApiError::NotLoggedIn {
                        path: store.path.display().to_string(),
                    });
                };
                if tokens.token_url != oauth.token_url.as_str() {
                    return Err(ApiError::LoginRequired {
                        detail: format!(
                            "the saved login is for {}, not {}",
                            tokens.token_url, oauth.token_url
                        ),
                    });
                }
                let fresh = now
                    .saturating_add(EXPIRY_MARGIN)
                    .is_ok_and(|soon| soon < tokens.expires_at);
                if fresh {
                    return Ok(tokens.access_token.clone());
                }
                let tokens = tokens.clone();
                refresh_locked(store, oauth, &tokens, now, &mut guard).await
            }
        }
    }

    /// After a 401 with `rejected`: refresh once, unless another caller
    /// already did (then its token is returned). `None` when refreshing is
    /// impossible (a fixed token).
    pub async fn refresh_after_rejection(
        &self,
        rejected: &Secret,
        now: Timestamp,
    ) -> Result<Option<Secret>, ApiError> {
        let TokenSource::Stored {
            store,
            oauth,
            current,
        } = self
        else {
            return Ok(None);
        };
        let mut guard = current.lock().await;
        if guard.is_none() {
            *guard = store.load()?;
        }
        let Some(tokens) = guard.as_ref() else {
            return Ok(None);
        };
        if &tokens.access_token != rejected {
            return Ok(Some(tokens.access_token.clone()));
        }
        let tokens = tokens.clone();
        refresh_locked(store, oauth, &tokens, now, &mut guard)
            .await
            .map(Some)
    }
}

/// Refreshes and persists before handing the new tokens out. Called with the
/// source's lock held.
async fn refresh_locked(
    store: &TokenStore,
    oauth: &OAuthClient,
    tokens: &Tokens,
    now: Timestamp,
    current: &mut Option<Tokens>,
) -> Result<Secret, ApiError> {
    let Some(refresh) = &tokens.refresh_token else {
        return Err(ApiError::LoginRequired {
            detail: "the access token expired and there is no refresh token".into(),
        });
    };
    let renewed = oauth.refresh(refresh, now).await?;
    let access = renewed.access_token.clone();
    // The old refresh token is void now. Keep the new one in memory whatever
    // happens, and get it to disk before the new access token is used.
    let saved = store.save(&renewed);
    *current = Some(renewed);
    if let Err(e) = saved {
        tracing::error!(error = %e, "refreshed, but the new refresh token could not be saved: a restart will need `flexsync login`");
        return Err(e);
    }
    tracing::info!(token_file = %store.path.display(), "access token refreshed; new refresh token saved");
    Ok(access)
}
