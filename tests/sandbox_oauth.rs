//! OAuth of the sandbox: authorization code with PKCE, rotation, expiry, scopes.

mod sandbox_support;

use flexsync_sandbox::{ALL_SCOPES, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use reqwest::StatusCode;
use sandbox_support::{REDIRECT, VERIFIER, call, send, start, start_logged_in};
use serde_json::Value;

async fn oauth_error(res: reqwest::Response, status: StatusCode, error: &str) {
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
}

/// A 400 `invalid_grant`: the code or refresh token is refused.
async fn invalid_grant(res: reqwest::Response) {
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn login_gives_a_token_that_lists_the_admins_teams() {
    let (ts, t) = start_logged_in(|_| {}).await;
    assert_eq!(t.expires_in, 3600);
    let (status, body) = call(ts.get("/teams", &t.access)).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["100001", "100002"], "Ada does not administer 100003");
    ts.stop().await;
}

#[tokio::test]
async fn login_hint_signs_in_as_another_admin() {
    let ts = start(|_| {}).await;
    let t = ts.login_as(ALL_SCOPES, Some("bea.boss@example.com")).await;
    let (_, body) = call(ts.get("/teams", &t.access)).await;
    assert_eq!(body["data"][0]["id"], "100003");
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    ts.stop().await;
}

#[tokio::test]
async fn wrong_pkce_verifier_is_rejected_and_the_right_one_still_works() {
    let ts = start(|_| {}).await;
    let code = ts.authorize(ALL_SCOPES, None).await;
    invalid_grant(ts.exchange(&code, "not-the-verifier").await).await;
    let res = ts
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .await;
    invalid_grant(res).await;
    assert_eq!(ts.exchange(&code, VERIFIER).await.status(), StatusCode::OK);
    ts.stop().await;
}

#[tokio::test]
async fn a_code_is_single_use() {
    let ts = start(|_| {}).await;
    let code = ts.authorize(ALL_SCOPES, None).await;
    assert_eq!(ts.exchange(&code, VERIFIER).await.status(), StatusCode::OK);
    invalid_grant(ts.exchange(&code, VERIFIER).await).await;
    ts.stop().await;
}

#[tokio::test]
async fn a_code_expires_after_five_minutes() {
    let ts = start(|_| {}).await;
    let fresh = ts.authorize(ALL_SCOPES, None).await;
    let stale = ts.authorize(ALL_SCOPES, None).await;
    ts.advance(299);
    assert_eq!(ts.exchange(&fresh, VERIFIER).await.status(), StatusCode::OK);
    ts.advance(1);
    invalid_grant(ts.exchange(&stale, VERIFIER).await).await;
    ts.stop().await;
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_is_rejected() {
    let ts = start(|_| {}).await;
    let first = ts.login().await;
    let second = ts.refreshed(&first.refresh).await;
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    invalid_grant(ts.refresh(&first.refresh).await).await;
    // The new one works once, and the access token it gave is good.
    let third = ts.refreshed(&second.refresh).await;
    assert_eq!(
        call(ts.get("/teams", &third.access)).await.0,
        StatusCode::OK
    );
    ts.stop().await;
}

#[tokio::test]
async fn refresh_can_narrow_but_not_widen_scopes() {
    let ts = start(|_| {}).await;
    let t = ts.login_as("tmadmapi:team:read", None).await;
    let res = ts
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &t.refresh),
            ("scope", "tmadmapi:team:read tmadmapi:team:write"),
        ])
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_scope").await;
    ts.stop().await;
}

#[tokio::test]
async fn access_token_expires_after_an_hour_and_refresh_recovers() {
    let (ts, t) = start_logged_in(|_| {}).await;
    ts.advance(3599);
    assert_eq!(call(ts.get("/teams", &t.access)).await.0, StatusCode::OK);
    ts.advance(1);
    let res = ts.get("/teams", &t.access).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert!(res.headers().contains_key("x-request-id"));
    let fresh = ts.refreshed(&t.refresh).await;
    assert_eq!(
        call(ts.get("/teams", &fresh.access)).await.0,
        StatusCode::OK
    );
    ts.stop().await;
}

#[tokio::test]
async fn token_lifetime_is_configurable() {
    let (ts, t) =
        start_logged_in(|c| c.auth.access_token_lifetime = std::time::Duration::from_secs(120))
            .await;
    assert_eq!(t.expires_in, 120);
    ts.advance(120);
    assert_eq!(
        call(ts.get("/teams", &t.access)).await.0,
        StatusCode::UNAUTHORIZED
    );
    ts.stop().await;
}

#[tokio::test]
async fn unknown_or_missing_bearer_is_401_in_aps_error_format() {
    let ts = start(|_| {}).await;
    let res = send(ts.get("/teams/100001/users", "made-up")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(
        !res.headers().contains_key("x-ratelimit-limit"),
        "the limiter never saw it"
    );
    let body: Value = res.json().await.unwrap();
    assert!(body["developerMessage"].is_string());
    let res = ts.http.get(ts.api("/teams")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    ts.stop().await;
}

#[tokio::test]
async fn a_token_without_the_scope_gets_403() {
    let ts = start(|_| {}).await;
    let t = ts
        .login_as("tmadmapi:team:read tmadmapi:team-users:read", None)
        .await;
    assert_eq!(
        call(ts.get("/teams/100001/users", &t.access)).await.0,
        StatusCode::OK
    );
    let (status, body) = call(ts.get("/teams/100001/assignments", &t.access)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["developerMessage"]
            .as_str()
            .unwrap()
            .contains("tmadmapi:team-products:read")
    );
    ts.stop().await;
}

#[tokio::test]
async fn client_authentication_rules() {
    let ts = start(|_| {}).await;
    let code = ts.authorize(ALL_SCOPES, None).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    // Wrong secret.
    let res = send(
        ts.http
            .post(ts.url("/authentication/v2/token"))
            .basic_auth(DEFAULT_CLIENT_ID, Some("wrong"))
            .form(&form),
    )
    .await;
    oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // Credentials both in the header and in the body.
    let mut both = form.to_vec();
    both.push(("client_id", DEFAULT_CLIENT_ID));
    let res = ts.token_request(&both).await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    // A confidential client may not skip Basic.
    let mut body_only = form.to_vec();
    body_only.push(("client_id", DEFAULT_CLIENT_ID));
    body_only.push(("client_secret", DEFAULT_CLIENT_SECRET));
    let res = send(
        ts.http
            .post(ts.url("/authentication/v2/token"))
            .form(&body_only),
    )
    .await;
    oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // The code survived all that.
    assert_eq!(ts.exchange(&code, VERIFIER).await.status(), StatusCode::OK);
    ts.stop().await;
}

#[tokio::test]
async fn authorize_refuses_unregistered_redirects_and_plain_pkce() {
    let ts = start(|_| {}).await;
    let res = send(ts.http.get(ts.url("/authentication/v2/authorize")).query(&[
        ("client_id", DEFAULT_CLIENT_ID),
        ("response_type", "code"),
        ("redirect_uri", "https://attacker.example/callback"),
    ]))
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "no open redirect");
    let res = send(ts.http.get(ts.url("/authentication/v2/authorize")).query(&[
        ("client_id", DEFAULT_CLIENT_ID),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("code_challenge", "abc"),
        ("code_challenge_method", "plain"),
    ]))
    .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(location.contains("error=invalid_request"), "{location}");
    assert!(!location.contains("code="), "{location}");
    ts.stop().await;
}

#[tokio::test]
async fn a_public_client_sends_its_id_in_the_body_and_must_use_pkce() {
    let ts = start(|c| {
        c.auth.clients.push(flexsync_sandbox::OAuthClient {
            client_id: "public-cli".into(),
            client_secret: None,
            redirect_uris: vec!["http://localhost/callback".into()],
        })
    })
    .await;
    let redirect = "http://localhost:40000/callback";
    let authorize = |extra: Vec<(&'static str, String)>| {
        let mut q = vec![
            ("client_id", "public-cli".to_owned()),
            ("response_type", "code".to_owned()),
            ("redirect_uri", redirect.to_owned()),
            ("scope", ALL_SCOPES.to_owned()),
        ];
        q.extend(extra);
        ts.http
            .get(ts.url("/authentication/v2/authorize"))
            .query(&q)
            .send()
    };
    let res = authorize(vec![]).await.unwrap();
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .contains("error=invalid_request")
    );
    let res = authorize(vec![
        ("code_challenge", sandbox_support::challenge(VERIFIER)),
        ("code_challenge_method", "S256".into()),
    ])
    .await
    .unwrap();
    let location = reqwest::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let res = send(ts.http.post(ts.url("/authentication/v2/token")).form(&[
        ("grant_type", "authorization_code"),
        ("client_id", "public-cli"),
        ("code", &code),
        ("redirect_uri", redirect),
        ("code_verifier", VERIFIER),
    ]))
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    ts.stop().await;
}

#[tokio::test]
async fn auth_errors_can_be_problem_details_instead() {
    let ts =
        start(|c| c.quirks.auth_error_format = flexsync_sandbox::AuthErrorFormat::ProblemDetails)
            .await;
    let body =
        sandbox_support::problem(ts.get("/teams", "made-up"), StatusCode::UNAUTHORIZED).await;
    assert!(body["type"].as_str().unwrap().ends_with("/unauthorized"));
    let t = ts.login_as("tmadmapi:team:read", None).await;
    sandbox_support::problem(
        ts.get("/teams/100001/assignments", &t.access),
        StatusCode::FORBIDDEN,
    )
    .await;
    ts.stop().await;
}
