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
use flexsync::sandbox::{
    self, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, ManualClock, Sandbox, SandboxConfig, Seed,
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

impl Harness {
    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(&format!("{}/team-admin/v1", self.base)).unwrap();
        c.min_backoff = Duration::from_millis(10);
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
        let config = self.config();
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

    pub fn saved_tokens(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.token_file).unwrap()).unwrap()
    }
}
