//! Three-legged OAuth (APS Authentication v2) and the token store.
//!
//! Refresh tokens are single-use: each refresh returns a new one and voids
//! the old. Losing the new one locks flexsync out until a human logs in
//! again, so every refresh writes the new refresh token to disk (atomically,
//! 0600) before the new access token is used, and renewed tokens whose save
//! failed are never used. Several flexsync processes may share one token
//! file (`run` beside `plan`): a renewal happens under the file's lock,
//! after re-reading it, so a process adopts what another one saved instead
//! of spending a refresh token that is already void.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::error::{ApiError, ErrorBody};
use super::files;
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

/// The token file's format. Files written before the version was
/// recorded are format 1.
pub const TOKEN_FILE_VERSION: u32 = 1;

/// The token file: the tokens and the format's version beside them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenFileOut<'a> {
    format_version: u32,
    #[serde(flatten)]
    tokens: &'a Tokens,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenFileIn {
    #[serde(default = "first_token_file_version")]
    format_version: u32,
    #[serde(flatten)]
    tokens: Tokens,
}

fn first_token_file_version() -> u32 {
    1
}

impl Tokens {
    /// Reads a token file's contents; the error says what is wrong, for the
    /// caller to put after the file's name.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Tokens, String> {
        let file: TokenFileIn = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a token file written by `flexsync login` ({e})"))?;
        if file.format_version != TOKEN_FILE_VERSION {
            return Err(format!(
                "token file format {} is not one this flexsync reads ({TOKEN_FILE_VERSION}); run `flexsync login` again with this version",
                file.format_version
            ));
        }
        Ok(file.tokens)
    }

    /// What the token file holds.
    pub fn to_file_bytes(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec_pretty(&TokenFileOut {
            format_version: TOKEN_FILE_VERSION,
            tokens: self,
        })
    }
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
    getrandom::fill(&mut buf).map_err(|e| ApiError::Randomness(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// How long to wait for another process's hold on the token file: it holds
/// the lock for one token request at most, which the HTTP timeouts bound.
const TOKEN_LOCK_WAIT: Duration = Duration::from_secs(120);

/// Token files are a few hundred bytes; anything far larger is not one.
pub const MAX_TOKEN_FILE_BYTES: u64 = 1 << 20;

/// The token file, shared by every flexsync process given the same path.
///
/// Writers hold an exclusive lock on a sibling `<file>.lock` (not on the
/// token file, which is replaced by rename). A symlinked token file stays a
/// symlink: the file it points to is the one replaced.
#[derive(Clone, Debug)]
pub struct TokenStore {
    path: PathBuf,
}

/// The token file's lock, held until dropped.
struct TokenLock {
    _file: std::fs::File,
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

    /// Where the tokens really live (a symlink's target).
    fn real_path(&self) -> Result<PathBuf, ApiError> {
        files::resolve_symlinks(&self.path).map_err(|e| self.error(e))
    }

    /// The directory the tokens really live in: processes sharing the token
    /// file share it, so it also holds what they share besides (the budget).
    pub fn real_dir(&self) -> Result<PathBuf, ApiError> {
        Ok(files::parent_dir(&self.real_path()?).to_path_buf())
    }

    /// Reads the tokens. The file is replaced by rename, so a read needs no
    /// lock: it sees the old or the new tokens, never half. A file others
    /// may read is made 0600 first, with a warning.
    pub fn load(&self) -> Result<Option<Tokens>, ApiError> {
        use crate::input_file::{ReadError, open_regular};
        let (file, len) = match open_regular(&self.path) {
            Ok(f) => f,
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        self.make_private(&file)?;
        if len > MAX_TOKEN_FILE_BYTES {
            return Err(self.error(ReadError::TooLarge {
                cap: MAX_TOKEN_FILE_BYTES,
            }));
        }
        let mut bytes = Vec::new();
        file.take(MAX_TOKEN_FILE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| self.error(e))?;
        Tokens::from_file_bytes(&bytes)
            .map(Some)
            .map_err(|e| self.error(format!("unreadable: {e}; run `flexsync login` again")))
    }

    /// Fixes rather than refuses: the secret may already have been read, and
    /// refusing would stop a running service over a `chmod`. Refuses only
    /// when it cannot fix (someone else's file).
    #[cfg(unix)]
    fn make_private(&self, file: &std::fs::File) -> Result<(), ApiError> {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(|e| self.error(e))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 == 0 {
            return Ok(());
        }
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| {
                self.error(format!(
                    "readable by others (mode {mode:o}) and cannot be made private ({e}); `chmod 600` it"
                ))
            })?;
        tracing::warn!(
            token_file = %self.path.display(),
            mode = format!("{mode:o}"),
            "the token file was readable by other users; made it 0600 (owner only)"
        );
        Ok(())
    }

    #[cfg(not(unix))]
    fn make_private(&self, _file: &std::fs::File) -> Result<(), ApiError> {
        Ok(())
    }

    /// Saves a new login (`flexsync login`), under the lock so it never
    /// interleaves with another process's refresh.
    pub fn save(&self, tokens: &Tokens) -> Result<(), ApiError> {
        let lock = self.lock()?;
        self.write(&lock, tokens)
    }

    /// [`save`](Self::save) off the async runtime (the lock may be held).
    pub async fn save_async(&self, tokens: &Tokens) -> Result<(), ApiError> {
        let store = self.clone();
        let tokens = tokens.clone();
        off_runtime(&self.path, move || store.save(&tokens)).await?
    }

    /// Takes the exclusive lock shared with every process using this file.
    fn lock(&self) -> Result<TokenLock, ApiError> {
        let real = self.real_path()?;
        files::create_private_dir(files::parent_dir(&real)).map_err(|e| self.error(e))?;
        let path = files::with_suffix(&real, ".lock");
        let file = files::open_private(&path).map_err(|e| self.error(e))?;
        files::lock_within(&file, TOKEN_LOCK_WAIT).map_err(|e| self.error(e))?;
        Ok(TokenLock { _file: file })
    }

    /// Replaces the file atomically: temp file (new, 0600, never through a
    /// symlink) + fsync + rename + fsync of the directory, so a crash leaves
    /// the old or the new tokens. The caller holds the lock.
    fn write(&self, _lock: &TokenLock, tokens: &Tokens) -> Result<(), ApiError> {
        let real = self.real_path()?;
        let dir = files::parent_dir(&real);
        files::create_private_dir(dir).map_err(|e| self.error(e))?;
        let bytes = tokens.to_file_bytes().map_err(|e| self.error(e))?;
        // One fixed name is enough: only the lock holder writes it, so an
        // existing one is left over from a crash.
        let tmp = files::with_suffix(&real, ".tmp");
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.error(format!("cannot replace {}: {e}", tmp.display()))),
        }
        let result = (|| -> std::io::Result<()> {
            let mut f = files::private_file_options()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            files::owned_like_its_directory(&f, &tmp);
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &real)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(|e| self.error(e))
    }

    /// Locks and reads, off the async runtime.
    async fn lock_and_load(&self) -> Result<(TokenLock, Option<Tokens>), ApiError> {
        let store = self.clone();
        off_runtime(&self.path, move || {
            let lock = store.lock()?;
            let tokens = store.load()?;
            Ok((lock, tokens))
        })
        .await?
    }

    /// Writes under `lock`, off the async runtime; gives the lock back.
    async fn write_async(
        &self,
        lock: TokenLock,
        tokens: &Tokens,
    ) -> Result<(TokenLock, Result<(), ApiError>), ApiError> {
        let store = self.clone();
        let tokens = tokens.clone();
        off_runtime(&self.path, move || {
            let written = store.write(&lock, &tokens);
            (lock, written)
        })
        .await
    }
}

/// Runs blocking file work (locks, fsync) on tokio's blocking pool.
async fn off_runtime<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::TokenStore {
            path: path.display().to_string(),
            detail: format!("file task failed: {e}"),
        })
}

/// Where access tokens come from. One exists per connection (shared by
/// `Arc`), so the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum TokenSource {
    /// `FLEXSYNC_ACCESS_TOKEN`: short-lived, never refreshed (CI).
    Fixed(Secret),
    /// The token file, refreshed through the OAuth client.
    Stored(StoredTokens),
}

/// A token file and the OAuth client that renews it.
pub struct StoredTokens {
    store: TokenStore,
    /// `None` without an APS app configured: the saved access token is
    /// used until it expires, and renewing it is an error that says what
    /// is missing. Reads need no client id; refreshes do.
    oauth: Option<OAuthClient>,
    /// The token endpoint the saved login must belong to.
    token_url: url::Url,
    /// Held across a renewal: that makes renewals single-flight within the
    /// process (the file lock does it between processes).
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// What calls use: always tokens read from, or saved to, the file.
    tokens: Option<Tokens>,
    /// Renewed tokens whose save failed. Never handed out: their refresh
    /// token replaced the saved one, so using them would leave a spent
    /// token on disk. Saving is retried before the next call.
    unsaved: Option<Unsaved>,
}

struct Unsaved {
    renewed: Tokens,
    /// The refresh token the renewal spent (what the file still holds).
    spent: Option<Secret>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Fixed(_) => f.write_str("TokenSource::Fixed(redacted)"),
            TokenSource::Stored(s) => {
                write!(f, "TokenSource::Stored({})", s.store.path.display())
            }
        }
    }
}

impl TokenSource {
    pub fn stored(store: TokenStore, oauth: OAuthClient) -> Self {
        TokenSource::Stored(StoredTokens {
            store,
            token_url: oauth.token_url.clone(),
            oauth: Some(oauth),
            held: Mutex::new(Held::default()),
        })
    }

    /// The token file without the app that renews it: its access token
    /// serves until it expires (or is refused); then the error says a
    /// client id is needed.
    pub fn stored_without_app(store: TokenStore, token_url: url::Url) -> Self {
        TokenSource::Stored(StoredTokens {
            store,
            oauth: None,
            token_url,
            held: Mutex::new(Held::default()),
        })
    }

    /// The token file, if tokens come from one.
    pub fn store(&self) -> Option<&TokenStore> {
        match self {
            TokenSource::Fixed(_) => None,
            TokenSource::Stored(s) => Some(&s.store),
        }
    }

    /// A usable access token, renewing first when it is about to expire.
    pub async fn access_token(&self, now: Timestamp) -> Result<Secret, ApiError> {
        match self {
            TokenSource::Fixed(t) => Ok(t.clone()),
            TokenSource::Stored(s) => s.access_token(now).await,
        }
    }

    /// After a 401 with `rejected`: renew once, unless another caller (here
    /// or in another process) already did; then its token is returned.
    /// `None` when renewing is impossible (a fixed token).
    pub async fn refresh_after_rejection(
        &self,
        rejected: &Secret,
        now: Timestamp,
    ) -> Result<Option<Secret>, ApiError> {
        match self {
            TokenSource::Fixed(_) => Ok(None),
            TokenSource::Stored(s) => s.after_rejection(rejected, now).await.map(Some),
        }
    }
}

/// Whether `tokens` may be used at `now` (and are not the ones refused).
fn usable(tokens: &Tokens, now: Timestamp, rejected: Option<&Secret>) -> bool {
    let fresh = now
        .saturating_add(EXPIRY_MARGIN)
        .is_ok_and(|soon| soon < tokens.expires_at);
    fresh && rejected != Some(&tokens.access_token)
}

/// Whether two reads of the file hold the same login.
fn same_tokens(a: &Tokens, b: &Tokens) -> bool {
    a.access_token == b.access_token && a.refresh_token == b.refresh_token
}

impl StoredTokens {
    async fn access_token(&self, now: Timestamp) -> Result<Secret, ApiError> {
        let mut held = self.held.lock().await;
        self.save_unsaved(&mut held).await?;
        if held.tokens.is_none() {
            held.tokens = self.store.load()?;
        }
        let Some(tokens) = held.tokens.as_ref() else {
            return Err(self.not_logged_in());
        };
        self.check_endpoint(tokens)?;
        if usable(tokens, now, None) {
            return Ok(tokens.access_token.clone());
        }
        self.renew(&mut held, None, now).await
    }

    async fn after_rejection(&self, rejected: &Secret, now: Timestamp) -> Result<Secret, ApiError> {
        let mut held = self.held.lock().await;
        self.save_unsaved(&mut held).await?;
        if let Some(tokens) = held.tokens.as_ref()
            && &tokens.access_token != rejected
            && usable(tokens, now, None)
        {
            // Another task of this process renewed while our call was out.
            return Ok(tokens.access_token.clone());
        }
        self.renew(&mut held, Some(rejected), now).await
    }

    fn not_logged_in(&self) -> ApiError {
        ApiError::NotLoggedIn {
            path: self.store.path.display().to_string(),
        }
    }

    fn check_endpoint(&self, tokens: &Tokens) -> Result<(), ApiError> {
        if tokens.token_url != self.token_url.as_str() {
            return Err(ApiError::LoginRequired {
                detail: format!(
                    "the saved login is for {}, not {}",
                    tokens.token_url, self.token_url
                ),
            });
        }
        Ok(())
    }

    /// Under the file lock: adopts what another process saved, or refreshes
    /// and saves before handing the new access token out.
    async fn renew(
        &self,
        held: &mut Held,
        rejected: Option<&Secret>,
        now: Timestamp,
    ) -> Result<Secret, ApiError> {
        let (lock, on_disk) = self.store.lock_and_load().await?;
        self.adopt(held, on_disk);
        // A second try only when the file changed under a refused refresh
        // token, i.e. a writer that does not lock (an older flexsync).
        for attempt in 0..2 {
            let Some(tokens) = held.tokens.clone() else {
                return Err(self.not_logged_in());
            };
            self.check_endpoint(&tokens)?;
            if usable(&tokens, now, rejected) {
                return Ok(tokens.access_token);
            }
            let Some(refresh) = &tokens.refresh_token else {
                return Err(ApiError::LoginRequired {
                    detail: "the access token expired and there is no refresh token".into(),
                });
            };
            let Some(oauth) = &self.oauth else {
                return Err(ApiError::NoApp {
                    token_file: self.store.path.clone(),
                });
            };
            let renewed = match oauth.refresh(refresh, now).await {
                Ok(renewed) => renewed,
                Err(e @ ApiError::LoginRequired { .. }) => {
                    let on_disk = self.store.load()?;
                    let changed = on_disk
                        .as_ref()
                        .is_some_and(|d| d.refresh_token.as_ref() != Some(refresh));
                    if attempt == 0 && changed {
                        self.adopt(held, on_disk);
                        continue;
                    }
                    // Dead tokens: the next call reads the file again, so a
                    // new `flexsync login` is picked up without a restart.
                    held.tokens = None;
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            // The old refresh token is void now: the new one reaches the
            // disk before the new access token is used, or is not used.
            let (_lock, written) = self.store.write_async(lock, &renewed).await?;
            return match written {
                Ok(()) => {
                    tracing::info!(token_file = %self.store.path.display(), "access token refreshed; new refresh token saved");
                    let access = renewed.access_token.clone();
                    held.tokens = Some(renewed);
                    Ok(access)
                }
                Err(e) => {
                    held.tokens = None;
                    held.unsaved = Some(Unsaved {
                        renewed,
                        spent: tokens.refresh_token.clone(),
                    });
                    Err(self.unsaved_error(&e))
                }
            };
        }
        // Not reached: the second attempt never continues.
        Err(ApiError::LoginRequired {
            detail: "the saved refresh tokens were refused".into(),
        })
    }

    /// Takes what the file holds when it differs from ours: another process
    /// rotated (or someone logged in again), and ours may be spent.
    fn adopt(&self, held: &mut Held, on_disk: Option<Tokens>) {
        let Some(disk) = on_disk else {
            return;
        };
        if held.tokens.as_ref().is_some_and(|t| same_tokens(t, &disk)) {
            return;
        }
        if held.tokens.is_some() {
            tracing::info!(token_file = %self.store.path.display(), "using the tokens another flexsync process saved");
        }
        held.tokens = Some(disk);
    }

    /// Retries saving renewed tokens whose save failed; until it succeeds,
    /// no call is made.
    async fn save_unsaved(&self, held: &mut Held) -> Result<(), ApiError> {
        let Some(unsaved) = held.unsaved.take() else {
            return Ok(());
        };
        let (lock, on_disk) = match self.store.lock_and_load().await {
            Ok(r) => r,
            Err(e) => {
                held.unsaved = Some(unsaved);
                return Err(self.unsaved_error(&e));
            }
        };
        if let Some(disk) = on_disk
            && disk.refresh_token != unsaved.spent
        {
            // Someone saved another login meanwhile: the file wins.
            held.tokens = Some(disk);
            return Ok(());
        }
        let (_lock, written) = self.store.write_async(lock, &unsaved.renewed).await?;
        match written {
            Ok(()) => {
                tracing::info!(token_file = %self.store.path.display(), "the refreshed tokens are saved now");
                held.tokens = Some(unsaved.renewed);
                Ok(())
            }
            Err(e) => {
                held.unsaved = Some(unsaved);
                Err(self.unsaved_error(&e))
            }
        }
    }

    fn unsaved_error(&self, cause: &ApiError) -> ApiError {
        let detail = match cause {
            ApiError::TokenStore { detail, .. } => detail.clone(),
            other => other.to_string(),
        };
        tracing::error!(token_file = %self.store.path.display(), error = %detail, "refreshed, but the new refresh token could not be saved");
        self.store.error(format!(
            "refreshed, but the new refresh token could not be saved ({detail}); the saved one is spent. \
             flexsync retries saving before each call and makes none until it succeeds; \
             if this process stops first, run `flexsync login` again"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            access_token: Secret("a".into()),
            refresh_token: Some(Secret("r".into())),
            expires_at: Timestamp::UNIX_EPOCH,
            token_url: "https://developer.api.autodesk.com/authentication/v2/token".into(),
        }
    }

    #[test]
    fn the_token_file_carries_its_format_version_and_reads_back() {
        let bytes = tokens().to_file_bytes().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["formatVersion"], TOKEN_FILE_VERSION);
        let back = Tokens::from_file_bytes(&bytes).unwrap();
        assert_eq!(back.refresh_token, Some(Secret("r".into())));
        assert_eq!(back.token_url, tokens().token_url);
    }

    #[test]
    fn a_file_from_before_the_version_is_format_1_and_a_newer_one_is_refused() {
        let mut value: serde_json::Value =
            serde_json::from_slice(&tokens().to_file_bytes().unwrap()).unwrap();
        value.as_object_mut().unwrap().remove("formatVersion");
        let old = serde_json::to_vec(&value).unwrap();
        assert!(Tokens::from_file_bytes(&old).is_ok());
        value["formatVersion"] = 2.into();
        let newer = serde_json::to_vec(&value).unwrap();
        let err = Tokens::from_file_bytes(&newer).unwrap_err();
        assert!(err.contains("token file format 2"), "{err}");
        assert!(err.contains("flexsync login"), "{err}");
    }
}
