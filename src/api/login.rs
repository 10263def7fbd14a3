//! The interactive three-legged login: Authorization Code with PKCE (S256)
//! and a `state` check, the redirect caught by a one-shot loopback listener
//! that gives up after [`LOGIN_TIMEOUT`].

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::auth::{OAuthClient, Tokens, pkce_pair, random_token};
use super::error::ApiError;

/// How long a login waits for the browser's redirect. Autodesk's
/// authorization codes live 5 minutes, so a sign-in that takes longer could
/// not be completed anyway; and a browser that cannot reach the listener
/// (a remote shell without port forwarding) must not hang the command.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// A login in progress: the URL to open and the listener awaiting the
/// browser's redirect.
pub struct PendingLogin {
    pub url: url::Url,
    redirect_uri: String,
    state: String,
    verifier: String,
    listener: TcpListener,
    timeout: Duration,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// Starts a login: binds `callback` (e.g. `http://localhost:8910/callback`,
/// which must be registered with the APS app; port 0 picks a free port, which
/// only the sandbox accepts) and builds the authorize URL.
pub async fn start(oauth: &OAuthClient, callback: &url::Url) -> Result<PendingLogin, ApiError> {
    let host = callback
        .host_str()
        .ok_or_else(|| ApiError::LoginCallback(format!("callback URL {callback} has no host")))?;
    let port = callback.port_or_known_default().unwrap_or(80);
    let bind_host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    let listener = TcpListener::bind((bind_host, port))
        .await
        .map_err(|e| ApiError::LoginCallback(format!("cannot listen on {host}:{port}: {e}")))?;
    let actual = listener
        .local_addr()
        .map_err(|e| ApiError::LoginCallback(e.to_string()))?;
    let mut redirect = callback.clone();
    let _ = redirect.set_port(Some(actual.port()));
    let redirect_uri = redirect.to_string();
    let (verifier, challenge) = pkce_pair()?;
    let state = random_token(16)?;
    let url = oauth.authorize_link(&redirect_uri, &state, &challenge);
    Ok(PendingLogin {
        url,
        redirect_uri,
        state,
        verifier,
        listener,
        timeout: LOGIN_TIMEOUT,
    })
}

impl PendingLogin {
    /// Waits `timeout` instead of [`LOGIN_TIMEOUT`] for the redirect.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where the browser is sent back to (the listener's address).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits for the redirect (at most the timeout), checks `state`,
    /// exchanges the code.
    pub async fn finish(
        self,
        oauth: &OAuthClient,
        now: jiff::Timestamp,
    ) -> Result<Tokens, ApiError> {
        // One deadline covers waiting for a connection and reading it, so a
        // connection that never sends a request cannot hang us either.
        let code = tokio::time::timeout(self.timeout, self.receive_code())
            .await
            .map_err(|_| ApiError::LoginTimedOut {
                callback: self.redirect_uri.clone(),
                waited: waited(self.timeout),
            })??;
        oauth
            .exchange_code(&code, &self.redirect_uri, &self.verifier, now)
            .await
    }

    /// Accepts the browser's redirect, answers it, and returns the code.
    async fn receive_code(&self) -> Result<String, ApiError> {
        let (mut socket, _) = self
            .listener
            .accept()
            .await
            .map_err(|e| ApiError::LoginCallback(e.to_string()))?;
        // The request line is all we need; browsers send small requests.
        let mut buf = vec![0u8; 8192];
        let mut len = 0;
        loop {
            let n = socket
                .read(&mut buf[len..])
                .await
                .map_err(|e| ApiError::LoginCallback(e.to_string()))?;
            len += n;
            if n == 0 || buf[..len].windows(4).any(|w| w == b"\r\n\r\n") || len == buf.len() {
                break;
            }
        }
        let request = String::from_utf8_lossy(&buf[..len]);
        let target = request
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/");
        let url = url::Url::parse("http://callback.invalid")
            .and_then(|base| base.join(target))
            .map_err(|e| ApiError::LoginCallback(e.to_string()))?;
        let param = |k: &str| {
            url.query_pairs()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.into_owned())
        };
        let result = match (param("code"), param("state"), param("error")) {
            (_, _, Some(err)) => Err(ApiError::LoginRequired {
                detail: format!("Autodesk refused the login: {err}"),
            }),
            (Some(code), Some(state), None) if state == self.state => Ok(code),
            (Some(_), _, None) => Err(ApiError::LoginRequired {
                detail: "the login callback carried a wrong state (possible CSRF); try again"
                    .into(),
            }),
            _ => Err(ApiError::LoginRequired {
                detail: "the login callback carried no code".into(),
            }),
        };
        let page = if result.is_ok() {
            "flexsync: login complete. You can close this window."
        } else {
            "flexsync: login failed. See the terminal."
        };
        let _ = socket
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                )
                .as_bytes(),
            )
            .await;
        result
    }
}

/// "5 minutes", "30 s", "10 ms".
fn waited(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        60 => "1 minute".into(),
        s if s >= 60 && s % 60 == 0 => format!("{} minutes", s / 60),
        0 => format!("{} ms", d.as_millis()),
        s => format!("{s} s"),
    }
}

/// Completes a login without a browser, for an authorization server that
/// approves at once (the flexsync sandbox): fetches the authorize URL and
/// delivers its redirect to our own callback listener.
pub async fn approve_without_browser(
    http: &reqwest::Client,
    url: &url::Url,
) -> Result<(), ApiError> {
    let transport = |e: reqwest::Error| ApiError::Transport {
        url: url.to_string(),
        detail: super::error::transport_detail(e),
    };
    let resp = http.get(url.clone()).send().await.map_err(transport)?;
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::InvalidResponse {
            url: url.to_string(),
            detail: format!(
                "authorize answered HTTP {} without a redirect",
                resp.status()
            ),
        })?
        .to_owned();
    http.get(&location).send().await.map_err(transport)?;
    Ok(())
}
