//! Fault injection and the `/_sandbox/` admin endpoints.

mod sandbox_support;

use std::time::{Duration, Instant};

use flexsync_sandbox::FaultSettings;
use reqwest::{RequestBuilder, StatusCode};
use sandbox_support::{TestSandbox, call, problem, send, start, start_admin};
use serde_json::{Value, json};

const ENG: &str = "100001";

#[tokio::test]
async fn admin_endpoints_are_off_by_default() {
    let ts = start(|_| {}).await;
    for path in [
        "/_sandbox/state",
        "/_sandbox/clock",
        "/_sandbox/faults",
        "/_sandbox/invitations",
    ] {
        let res = ts.http.get(ts.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let res = send(faults(&ts, json!({"error500Share": 1.0}))).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    ts.stop().await;
}

/// PUT /_sandbox/faults.
fn faults(ts: &TestSandbox, body: Value) -> RequestBuilder {
    ts.http.put(ts.url("/_sandbox/faults")).json(&body)
}

async fn put_faults(ts: &TestSandbox, body: Value) {
    let res = faults(ts, body).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
}

/// PUT /_sandbox/settings, which must succeed.
async fn put_settings(ts: &TestSandbox, body: Value) {
    let (status, answer) = call(ts.http.put(ts.url("/_sandbox/settings")).json(&body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// Another admin removes `user`'s `product` in team 100001 behind the
/// client's back.
fn removed_behind_the_back(ts: &TestSandbox, user: &str, product: &str) -> RequestBuilder {
    ts.http
        .delete(ts.url(&format!("/_sandbox/teams/{ENG}/assignments")))
        .query(&[("userId", user), ("productId", product)])
}

#[tokio::test]
async fn a_share_of_500_and_503_at_run_time() {
    let (ts, t) = start_admin(|_| {}).await;
    put_faults(&ts, json!({"error500Share": 0.5})).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            send(ts.get(&format!("/teams/{ENG}/users"), &t.access))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 500, 200, 500]);
    put_faults(&ts, json!({"error503Share": 1.0})).await;
    let body = problem(ts.get("/teams", &t.access), StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("service-unavailable")
    );
    // OAuth is spared unless asked.
    assert_eq!(ts.refresh(&t.refresh).await.status(), StatusCode::OK);
    put_faults(&ts, json!({})).await;
    assert_eq!(call(ts.get("/teams", &t.access)).await.0, StatusCode::OK);
    let res = send(faults(&ts, json!({"dropShare": 2}))).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    ts.stop().await;
}

#[tokio::test]
async fn faults_configured_at_start_can_include_the_token_endpoint() {
    let ts = start(|c| {
        c.faults = FaultSettings {
            error500_share: 1.0,
            include_oauth: true,
            ..FaultSettings::default()
        }
    })
    .await;
    let code = ts.authorize(flexsync_sandbox::ALL_SCOPES, None).await;
    let res = ts.exchange(&code, sandbox_support::VERIFIER).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    ts.sandbox.set_faults(FaultSettings::default());
    assert_eq!(
        ts.exchange(&code, sandbox_support::VERIFIER).await.status(),
        StatusCode::OK,
        "the failed attempt did not use the code"
    );
    ts.stop().await;
}

#[tokio::test]
async fn forced_429s_then_normal_service() {
    let (ts, t) = start_admin(|_| {}).await;
    put_faults(&ts, json!({"forced429": 2})).await;
    for _ in 0..2 {
        let res = send(ts.get(&format!("/teams/{ENG}/users"), &t.access)).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()["retry-after"], "40");
    }
    let res = send(ts.get(&format!("/teams/{ENG}/users"), &t.access)).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Forced 429s did not use the real budget.
    assert_eq!(res.headers()["x-ratelimit-remaining"], "59");
    ts.stop().await;
}

#[tokio::test]
async fn dropped_connections_give_no_answer() {
    let (ts, t) = start_admin(|_| {}).await;
    put_faults(&ts, json!({"dropShare": 1.0})).await;
    let err = ts
        .get(&format!("/teams/{ENG}/users"), &t.access)
        .send()
        .await
        .unwrap_err();
    assert!(err.status().is_none(), "no HTTP status at all: {err}");
    put_faults(&ts, json!({})).await;
    assert_eq!(
        call(ts.get(&format!("/teams/{ENG}/users"), &t.access))
            .await
            .0,
        StatusCode::OK
    );
    ts.stop().await;
}

#[tokio::test]
async fn a_drop_after_handling_loses_the_answer_not_the_write() {
    let (ts, t) = start_admin(|_| {}).await;
    put_faults(&ts, json!({"dropAfterShare": 1.0})).await;
    let err = ts
        .post(
            &format!("/teams/{ENG}/users"),
            &t.access,
            json!({"email": "lost@example.com"}),
        )
        .send()
        .await
        .unwrap_err();
    assert!(err.status().is_none(), "no HTTP status at all: {err}");
    put_faults(&ts, json!({})).await;
    let (_, invitations) = call(ts.http.get(ts.url("/_sandbox/invitations"))).await;
    assert_eq!(
        invitations[ENG]["lost@example.com"], 1,
        "the write was made"
    );
    ts.stop().await;
}

#[tokio::test]
async fn added_latency_delays_answers() {
    // The one test that takes real time: a bounded 50 ms.
    let (ts, t) = start_admin(|_| {}).await;
    put_faults(&ts, json!({"latencyMs": 50})).await;
    let began = Instant::now();
    assert_eq!(call(ts.get("/teams", &t.access)).await.0, StatusCode::OK);
    assert!(began.elapsed() >= Duration::from_millis(50));
    ts.stop().await;
}

#[tokio::test]
async fn another_admin_can_create_drift_behind_the_clients_back() {
    let (ts, t) = start_admin(|_| {}).await;
    let path = format!("/teams/{ENG}/assignments");
    let res = removed_behind_the_back(&ts, "US1000000001", "prod_flex_platform")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = send(
        ts.http
            .post(ts.url(&format!("/_sandbox/teams/{ENG}/assignments")))
            .json(&json!({"userId": "US1000000005", "productId": "prod_flex_platform"})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let (_, rows) = call(
        ts.get(&path, &t.access)
            .query(&[("productId", "prod_flex_platform")]),
    )
    .await;
    let users: Vec<&str> = rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userId"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["US1000000004", "US1000000005"]);
    // The client's own unassign of what is gone: 404.
    problem(
        ts.delete(&path, &t.access).query(&[
            ("userId", "US1000000001"),
            ("productId", "prod_flex_platform"),
        ]),
        StatusCode::NOT_FOUND,
    )
    .await;
    // Behind-the-back calls use no budget.
    let res = ts.get(&path, &t.access).send().await.unwrap();
    assert_eq!(res.headers()["x-ratelimit-remaining"], "57");
    ts.stop().await;
}

#[tokio::test]
async fn state_clock_and_invitation_endpoints() {
    let (ts, t) = start_admin(|_| {}).await;
    call(ts.post(
        &format!("/teams/{ENG}/users"),
        &t.access,
        json!({"email": "Neo@example.com"}),
    ))
    .await;
    let (status, inv) = call(ts.http.get(ts.url("/_sandbox/invitations"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inv[ENG], json!({"neo@example.com": 1}));
    let (_, state) = call(ts.http.get(ts.url("/_sandbox/state"))).await;
    assert_eq!(state["now"], "2026-11-26T10:15:20.000Z");
    assert!(state["world"]["teams"]["100003"].is_object());
    // Moving the clock through the endpoint expires the token.
    let (status, clock) = call(
        ts.http
            .post(ts.url("/_sandbox/clock"))
            .json(&json!({"advanceSeconds": 3600})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(clock["now"], "2026-11-26T11:15:20.000Z");
    assert_eq!(
        call(ts.get("/teams", &t.access)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = call(
        ts.http
            .post(ts.url("/_sandbox/clock"))
            .json(&json!({"now": "2026-12-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, clock) = call(ts.http.get(ts.url("/_sandbox/clock"))).await;
    assert_eq!(clock["now"], "2026-12-01T00:00:00.000Z");
    ts.stop().await;
}

#[tokio::test]
async fn settings_endpoint_changes_delay_and_quirks_at_run_time() {
    let (ts, t) = start_admin(|_| {}).await;
    let (status, settings) = call(ts.http.get(ts.url("/_sandbox/settings"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(settings["consistencyDelaySeconds"], 0);
    let mut quirks = settings["quirks"].clone();
    quirks["unassignSuccess"] = json!("okWithBody");
    quirks["userStatusField"] = json!(true);
    put_settings(&ts, json!({"quirks": quirks})).await;
    let (status, body) = call(
        ts.delete(&format!("/teams/{ENG}/assignments"), &t.access)
            .query(&[
                ("userId", "US1000000001"),
                ("productId", "prod_flex_platform"),
            ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["assignmentType"], "DIRECT");
    let (_, user) = call(ts.post(
        &format!("/teams/{ENG}/users"),
        &t.access,
        json!({"email": "q@example.com"}),
    ))
    .await;
    assert_eq!(user["status"], "PENDING");
    ts.stop().await;
}

#[tokio::test]
async fn changes_and_stats_count_what_the_world_does_not_show() {
    let (ts, t) = start_admin(|c| c.limits.team_per_minute = 3).await;
    // A real change, a convergent repeat (no change), a drift by another admin.
    for _ in 0..2 {
        call(ts.post(
            &format!("/teams/{ENG}/assignments"),
            &t.access,
            json!({"userId": "US1000000005", "productId": "prod_flex_platform"}),
        ))
        .await;
    }
    call(removed_behind_the_back(
        &ts,
        "US1000000001",
        "prod_flex_platform",
    ))
    .await;
    let (_, changes) = call(ts.http.get(ts.url("/_sandbox/changes"))).await;
    let seen: Vec<String> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {} {} {}",
                c["by"], c["action"], c["email"], c["productId"]
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            r#""api" "assign" "erin@example.com" "prod_flex_platform""#,
            r#""admin" "unassign" "alice@example.com" "prod_flex_platform""#,
        ]
    );

    // One call left in the window, then the limiter's 429; a forced one apart.
    call(ts.get(&format!("/teams/{ENG}/users"), &t.access)).await;
    let (status, _) = call(ts.get(&format!("/teams/{ENG}/users"), &t.access)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    put_faults(&ts, json!({"forced429": 1})).await;
    call(ts.get("/teams", &t.access)).await;
    // A refresh token works once.
    assert_eq!(ts.refresh(&t.refresh).await.status(), StatusCode::OK);
    assert_eq!(
        ts.refresh(&t.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
    let (_, stats) = call(ts.http.get(ts.url("/_sandbox/stats"))).await;
    assert_eq!(stats["rateLimited"][ENG], 1);
    assert_eq!(stats["busiestWindow"][ENG], 3);
    assert_eq!(stats["forced429"], 1);
    assert_eq!(stats["refreshed"], 1);
    assert_eq!(stats["refreshRefused"], 1);
    ts.stop().await;
}

#[tokio::test]
async fn rate_limit_headers_can_be_switched_off() {
    let (ts, t) = start_admin(|c| c.limits.team_per_minute = 1).await;
    let res = send(ts.get(&format!("/teams/{ENG}/users"), &t.access)).await;
    assert!(res.headers().contains_key("x-ratelimit-remaining"));
    put_settings(&ts, json!({"quirks": {"rateLimitHeaders": false}})).await;
    let res = send(ts.get(&format!("/teams/{ENG}/users"), &t.access)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    assert!(
        !res.headers()
            .keys()
            .any(|k| k.as_str().starts_with("x-ratelimit-")),
        "{:?}",
        res.headers()
    );
    ts.stop().await;
}
