//! Harness of the API client's tests: the sandbox on 127.0.0.1:0 with a
//! frozen clock, and a client logged in through the real OAuth flow whose
//! sleeps move the sandbox's clock instead of waiting.
#![allow(dead_code)] // each test crate uses a different part of the harness

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use flexsync::api::auth::{OAuthClient, Secret, TokenSource, TokenStore};
use flexsync::api::{self, Client, ClientConfig, login};
use flexsync_sandbox::{
    self as sandbox, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, ManualClock, Sandbox, SandboxConfig,
    Seed,
};
use jiff::{SignedDuration, Timestamp};

/// 20 s into a UTC minute.
pub const START: &str = "2026-11-26T10:15:20Z";

/// The client's time is the sandbox's; sleeping advances it.
pub struct SandboxTime(pub Arc<ManualClock>);

impl api::Clock for SandboxTime {
    fn now(&self) -> Timestamp {
        sandbox::Clock::now(&*self.0)
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let by = SignedDuration::try_from(d).unwrap_or(SignedDuration::ZERO);
        sandbox::Clock::advance(&*self.0, by);
        Box::pin(tokio::task::yield_now())
    }
}

pub struct Harness {
    pub sandbox: Sandbox,
    pub clock: Arc<ManualClock>,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub token_file: PathBuf,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn start(tweak: impl FnOnce(&mut SandboxConfig)) -> Harness {
    let clock = ManualClock::shared(START.parse().unwrap());
    let mut config = SandboxConfig {
        clock: clock.clone(),
        ..SandboxConfig::default()
    };
    tweak(&mut config);
    let sandbox = Sandbox::new(&Seed::bundled().unwrap(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(sandbox::serve(listener, sandbox.clone(), async {
        let _ = rx.await;
    }));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("state").join("token.json");
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Harness {
        sandbox,
        clock,
        base,
        dir,
        token_file,
        http,
        stop: Some(tx),
    }
}

/// Forwards to `target`, leaving out its `x-ratelimit-*` headers. The
/// reference does not name Autodesk's rate headers, so the client must keep
/// to the budget without them; this shows what it does when it learns
/// nothing from the server.
async fn without_rate_headers(target: String) -> String {
    use axum::http::header;
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (http, target) = (http.clone(), target.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut forward = http
                .request(parts.method, format!("{target}{path}"))
                .body(body);
            for (name, value) in &parts.headers {
                if name != header::HOST {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.send().await.unwrap();
            let mut back = axum::http::Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                let hop = name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING;
                if !hop && !name.as_str().starts_with("x-ratelimit-") {
                    back = back.header(name, value);
                }
            }
            let bytes = answer.bytes().await.unwrap();
            back.body(axum::body::Body::from(bytes)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

impl Harness {
    /// From now on, clients reach the sandbox through a proxy that hides
    /// its rate headers (see [`without_rate_headers`]).
    pub async fn hide_rate_headers(&mut self) {
        self.base = without_rate_headers(self.base.clone()).await;
    }

    /// Shared by every client of the harness, as by the processes using
    /// one token file (the budget sits beside it).
    pub fn budget_dir(&self) -> PathBuf {
        self.token_file.with_file_name("budget")
    }

    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(&format!("{}/team-admin/v1", self.base)).unwrap();
        c.min_backoff = Duration::from_millis(10);
        c.budget_dir = Some(self.budget_dir());
        c
    }

    pub fn oauth(&self) -> OAuthClient {
        let config = self.config();
        let (authorize, token) = config.oauth_urls().unwrap();
        OAuthClient::new(
            authorize,
            token,
            DEFAULT_CLIENT_ID.into(),
            Some(Secret::new(DEFAULT_CLIENT_SECRET)),
            api::http_client(&config).unwrap(),
        )
    }

    /// Logs in through /authorize and the callback listener, saving tokens.
    pub async fn login(&self) {
        let oauth = self.oauth();
        let callback = url::Url::parse("http://127.0.0.1:0/callback").unwrap();
        let pending = login::start(&oauth, &callback).await.unwrap();
        let url = pending.url.clone();
        let http = self.http.clone();
        let approve =
            tokio::spawn(async move { login::approve_without_browser(&http, &url).await });
        let tokens = pending.finish(&oauth, self.now()).await.unwrap();
        approve.await.unwrap().unwrap();
        TokenStore::new(self.token_file.clone())
            .save(&tokens)
            .unwrap();
    }

    pub fn client(&self) -> Client {
        self.client_with(self.config())
    }

    /// A client with its own settings (e.g. no shared budget), on the
    /// harness's token file and clock.
    pub fn client_with(&self, config: ClientConfig) -> Client {
        let tokens = TokenSource::stored(TokenStore::new(self.token_file.clone()), self.oauth());
        Client::new(
            config.clone(),
            api::http_client(&config).unwrap(),
            Arc::new(tokens),
            Arc::new(SandboxTime(self.clock.clone())),
        )
    }

    pub async fn logged_in_client(&self) -> Client {
        self.login().await;
        self.client()
    }

    pub fn now(&self) -> Timestamp {
        sandbox::Clock::now(&*self.clock)
    }

    pub fn advance(&self, secs: i64) {
        sandbox::Clock::advance(&*self.clock, SignedDuration::from_secs(secs));
    }

    /// Puts an access token the server does not know (as after a
    /// revocation) in the token file, keeping its refresh token; returns
    /// the tokens written.
    pub fn revoke_saved_access_token(&self) -> serde_json::Value {
        let mut stale = self.saved_tokens();
        stale["accessToken"] = "not-a-valid-token".into();
        std::fs::write(&self.token_file, serde_json::to_vec(&stale).unwrap()).unwrap();
        stale
    }

    pub fn saved_tokens(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.token_file).unwrap()).unwrap()
    }
}
