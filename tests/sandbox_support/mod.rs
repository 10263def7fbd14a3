//! Shared harness of the sandbox's black-box tests: a real server on 127.0.0.1:0, a
//! frozen clock the tests move, and an OAuth login through the real endpoints.
#![allow(dead_code)] // each test crate uses a different part of the harness

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flexsync_sandbox::{
    ALL_SCOPES, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, ManualClock, Sandbox, SandboxConfig,
    Seed, serve,
};
use jiff::{SignedDuration, Timestamp};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// 20 seconds into a UTC minute, so rate-window arithmetic is visible in tests.
pub const START: &str = "2026-11-26T10:15:20Z";
pub const REDIRECT: &str = "http://127.0.0.1:53682/callback";
pub const VERIFIER: &str = "a-test-verifier-that-is-long-enough-for-pkce-0123456789";

pub struct TestSandbox {
    pub base: String,
    pub http: Client,
    pub clock: Arc<ManualClock>,
    pub sandbox: Sandbox,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub expires_in: u64,
}

pub fn start_time() -> Timestamp {
    START.parse().expect("valid timestamp")
}

/// A config with a frozen clock at [`START`]; `tweak` changes it further.
pub fn config(tweak: impl FnOnce(&mut SandboxConfig)) -> (SandboxConfig, Arc<ManualClock>) {
    let clock = ManualClock::shared(start_time());
    let mut config = SandboxConfig {
        clock: clock.clone(),
        ..SandboxConfig::default()
    };
    tweak(&mut config);
    (config, clock)
}

/// Starts an in-memory sandbox from the bundled seed.
pub async fn start(tweak: impl FnOnce(&mut SandboxConfig)) -> TestSandbox {
    let (config, clock) = config(tweak);
    let sandbox = Sandbox::new(&Seed::bundled().expect("bundled seed"), config);
    start_sandbox(sandbox, clock).await
}

/// The same, and the default admin's login.
pub async fn start_logged_in(tweak: impl FnOnce(&mut SandboxConfig)) -> (TestSandbox, Tokens) {
    let ts = start(tweak).await;
    let t = ts.login().await;
    (ts, t)
}

/// The same with the `/_sandbox/` admin endpoints on.
pub async fn start_admin(tweak: impl FnOnce(&mut SandboxConfig)) -> (TestSandbox, Tokens) {
    start_logged_in(|c| {
        c.admin_endpoints = true;
        tweak(c);
    })
    .await
}

pub async fn start_sandbox(sandbox: Sandbox, clock: Arc<ManualClock>) -> TestSandbox {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(serve(listener, sandbox.clone(), async {
        let _ = rx.await;
    }));
    let http = Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestSandbox {
        base,
        http,
        clock,
        sandbox,
        stop: Some(tx),
        task: Some(task),
    }
}

pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl TestSandbox {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/team-admin/v1{path}", self.base)
    }

    pub fn advance(&self, secs: i64) {
        use flexsync_sandbox::Clock;
        self.clock.advance(SignedDuration::from_secs(secs));
    }

    /// Runs /authorize and returns the code from the redirect.
    pub async fn authorize(&self, scope: &str, login_hint: Option<&str>) -> String {
        let mut query = vec![
            ("client_id", DEFAULT_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "xyz.1"),
            ("code_challenge_method", "S256"),
        ];
        let ch = challenge(VERIFIER);
        query.push(("code_challenge", &ch));
        if let Some(h) = login_hint {
            query.push(("login_hint", h));
        }
        let res = self
            .http
            .get(self.url("/authentication/v2/authorize"))
            .query(&query)
            .send()
            .await
            .expect("authorize");
        assert_eq!(res.status(), StatusCode::FOUND, "authorize must redirect");
        let location = res.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let url = reqwest::Url::parse(&location).expect("redirect url");
        assert!(location.starts_with(REDIRECT), "{location}");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(
            pairs.contains(&("state".into(), "xyz.1".into())),
            "{location}"
        );
        pairs
            .into_iter()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no code in {location}"))
    }

    /// Posts to the token endpoint with Basic auth of the default client.
    pub async fn token_request(&self, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url("/authentication/v2/token"))
            .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
            .form(form)
            .send()
            .await
            .expect("token request")
    }

    pub async fn exchange(&self, code: &str, verifier: &str) -> Response {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    /// A refresh that must succeed: the new tokens.
    pub async fn refreshed(&self, refresh_token: &str) -> Tokens {
        let res = self.refresh(refresh_token).await;
        assert_eq!(res.status(), StatusCode::OK);
        tokens(res).await
    }

    /// A full login as the default admin (Ada) with every scope.
    pub async fn login(&self) -> Tokens {
        self.login_as(ALL_SCOPES, None).await
    }

    pub async fn login_as(&self, scope: &str, login_hint: Option<&str>) -> Tokens {
        let code = self.authorize(scope, login_hint).await;
        let res = self.exchange(&code, VERIFIER).await;
        assert_eq!(res.status(), StatusCode::OK);
        tokens(res).await
    }

    pub fn get(&self, path: &str, token: &str) -> RequestBuilder {
        self.http.get(self.api(path)).bearer_auth(token)
    }

    pub fn post(&self, path: &str, token: &str, body: Value) -> RequestBuilder {
        self.http
            .post(self.api(path))
            .bearer_auth(token)
            .json(&body)
    }

    pub fn delete(&self, path: &str, token: &str) -> RequestBuilder {
        self.http.delete(self.api(path)).bearer_auth(token)
    }

    /// Stops the server and waits for it (it saves its state on the way out).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("serve result");
        }
    }
}

pub async fn tokens(res: Response) -> Tokens {
    let body: Value = res.json().await.expect("token json");
    assert_eq!(body["token_type"], "Bearer");
    Tokens {
        access: body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh: body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
        expires_in: body["expires_in"].as_u64().expect("expires_in"),
    }
}

/// Sends, and returns the answer whatever its status.
pub async fn send(req: RequestBuilder) -> Response {
    req.send().await.expect("request")
}

/// Sends and returns status plus JSON body (Null when empty).
pub async fn call(req: RequestBuilder) -> (StatusCode, Value) {
    let res = req.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, body)
}

/// Asserts a Problem Details response and returns its body.
pub async fn problem(req: RequestBuilder, status: StatusCode) -> Value {
    let res = req.send().await.expect("request");
    assert_eq!(res.status(), status);
    let ct = res.headers()["content-type"]
        .to_str()
        .expect("ct")
        .to_owned();
    assert_eq!(ct, "application/problem+json");
    let header_id = res.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let body: Value = res.json().await.expect("problem json");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["requestId"], header_id.as_str());
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://"))
    );
    body
}

/// Walks every page of a paginated list; returns the items and the number of pages.
pub async fn walk(
    ts: &TestSandbox,
    path: &str,
    token: &str,
    limit: Option<u32>,
) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut req = ts.get(path, token);
        if let Some(l) = limit {
            req = req.query(&[("limit", l.to_string())]);
        }
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let (status, body) = call(req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        pages += 1;
        items.extend(body["data"].as_array().expect("data").iter().cloned());
        let has_more = body["pagination"]["hasMore"].as_bool().expect("hasMore");
        if has_more {
            cursor = Some(
                body["pagination"]["cursor"]
                    .as_str()
                    .expect("cursor")
                    .to_owned(),
            );
        } else {
            assert!(body["pagination"]["cursor"].is_null());
            return (items, pages);
        }
    }
}
