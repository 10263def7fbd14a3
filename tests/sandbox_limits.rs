//! Rate windows and eventual consistency, with a moved clock (no sleeping).

mod sandbox_support;

use std::time::Duration;

use reqwest::StatusCode;
use sandbox_support::{call, problem, send, start, start_logged_in};
use serde_json::json;

const ENG: &str = "100001";
const MFG: &str = "100002";

fn header(res: &reqwest::Response, name: &str) -> u64 {
    res.headers()[name].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn sixty_calls_per_team_per_utc_minute_shared_by_all_operations() {
    let (ts, t) = start_logged_in(|_| {}).await;
    // START is 10:15:20, so the window resets in 40 s.
    let mut last_remaining = None;
    for i in 0..60 {
        let req = match i % 4 {
            0 => ts.get(&format!("/teams/{ENG}/users"), &t.access),
            1 => ts.get(&format!("/teams/{ENG}/product-pools"), &t.access),
            2 => ts.get(&format!("/teams/{ENG}/assignments"), &t.access),
            _ => ts.post(
                &format!("/teams/{ENG}/assignments"),
                &t.access,
                json!({"userId": "US1000000005", "productId": "prod_flex_platform"}),
            ),
        };
        let res = req.send().await.unwrap();
        assert!(res.status().is_success(), "call {i}: {}", res.status());
        assert_eq!(header(&res, "x-ratelimit-limit"), 60);
        assert_eq!(header(&res, "x-ratelimit-reset"), 40);
        last_remaining = Some(header(&res, "x-ratelimit-remaining"));
    }
    assert_eq!(last_remaining, Some(0));
    ts.advance(10);
    let res = send(ts.get(&format!("/teams/{ENG}/users"), &t.access)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&res, "retry-after"),
        30,
        "seconds to the next UTC minute"
    );
    assert_eq!(header(&res, "x-ratelimit-remaining"), 0);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    // Writes share the bucket.
    problem(
        ts.post(
            &format!("/teams/{ENG}/users"),
            &t.access,
            json!({"email": "new@example.com"}),
        ),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(
        ts.sandbox.invitations(ENG, "new@example.com"),
        0,
        "a refused write changes nothing"
    );
    // Another team's bucket and the List Teams bucket are untouched.
    assert_eq!(
        call(ts.get(&format!("/teams/{MFG}/users"), &t.access))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(call(ts.get("/teams", &t.access)).await.0, StatusCode::OK);
    // A new UTC minute: a fresh allowance.
    ts.advance(30);
    let res = send(ts.get(&format!("/teams/{ENG}/users"), &t.access)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-ratelimit-remaining"), 59);
    assert_eq!(header(&res, "x-ratelimit-reset"), 60);
    ts.stop().await;
}

#[tokio::test]
async fn the_team_bucket_is_shared_between_admins_and_apps() {
    let ts = start(|c| c.limits.team_per_minute = 3).await;
    let ada = ts.login().await;
    let ada_again = ts.login().await;
    for token in [&ada.access, &ada_again.access, &ada.access] {
        assert_eq!(
            call(ts.get(&format!("/teams/{ENG}/users"), token)).await.0,
            StatusCode::OK
        );
    }
    problem(
        ts.get(&format!("/teams/{ENG}/users"), &ada_again.access),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    ts.stop().await;
}

#[tokio::test]
async fn list_teams_has_its_own_bucket_per_client() {
    let (ts, t) = start_logged_in(|c| c.limits.list_teams_per_client_per_minute = 2).await;
    assert_eq!(call(ts.get("/teams", &t.access)).await.0, StatusCode::OK);
    let res = ts.get("/teams", &t.access).send().await.unwrap();
    assert_eq!(header(&res, "x-ratelimit-remaining"), 0);
    let res = ts.get("/teams", &t.access).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&res, "retry-after"), 40);
    // Team operations are not affected.
    assert_eq!(
        call(ts.get(&format!("/teams/{ENG}/users"), &t.access))
            .await
            .0,
        StatusCode::OK
    );
    ts.advance(40);
    assert_eq!(call(ts.get("/teams", &t.access)).await.0, StatusCode::OK);
    ts.stop().await;
}

#[tokio::test]
async fn rejected_before_the_limiter_means_no_rate_headers_and_no_budget_used() {
    let (ts, t) = start_logged_in(|c| c.limits.team_per_minute = 1).await;
    let res = send(ts.get("/teams/100003/users", &t.access)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!res.headers().contains_key("x-ratelimit-limit"));
    // A 400 has passed the limiter: it carries the headers and uses budget.
    let res = send(
        ts.get(&format!("/teams/{ENG}/users"), &t.access)
            .query(&[("limit", "0")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header(&res, "x-ratelimit-remaining"), 0);
    problem(
        ts.get(&format!("/teams/{ENG}/users"), &t.access),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    ts.stop().await;
}

#[tokio::test]
async fn team_wide_assignments_lag_behind_writes_but_filtered_ones_do_not() {
    let (ts, t) = start_logged_in(|c| c.consistency_delay = Duration::from_secs(30)).await;
    let path = format!("/teams/{ENG}/assignments");
    let erin_flex = |rows: &serde_json::Value| {
        rows["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["userId"] == "US1000000005" && r["productId"] == "prod_flex_platform")
    };
    let (status, _) = call(ts.post(
        &path,
        &t.access,
        json!({"userId": "US1000000005", "productId": "prod_flex_platform"}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, all) = call(ts.get(&path, &t.access)).await;
    assert!(!erin_flex(&all), "team-wide list has not caught up yet");
    let (_, mine) = call(
        ts.get(&path, &t.access)
            .query(&[("userId", "US1000000005")]),
    )
    .await;
    assert!(erin_flex(&mine), "a filtered list is current");
    let (_, by_product) = call(
        ts.get(&path, &t.access)
            .query(&[("productId", "prod_flex_platform")]),
    )
    .await;
    assert!(erin_flex(&by_product));
    ts.advance(29);
    assert!(!erin_flex(&call(ts.get(&path, &t.access)).await.1));
    ts.advance(1);
    assert!(erin_flex(&call(ts.get(&path, &t.access)).await.1));

    // Removals lag the same way.
    let res = send(ts.delete(&path, &t.access).query(&[
        ("userId", "US1000000005"),
        ("productId", "prod_flex_platform"),
    ]))
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(
        erin_flex(&call(ts.get(&path, &t.access)).await.1),
        "still shown team-wide"
    );
    let (_, mine) = call(
        ts.get(&path, &t.access)
            .query(&[("userId", "US1000000005")]),
    )
    .await;
    assert!(!erin_flex(&mine));
    ts.advance(30);
    assert!(!erin_flex(&call(ts.get(&path, &t.access)).await.1));
    ts.stop().await;
}

#[tokio::test]
async fn without_a_delay_team_wide_lists_are_current() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let path = format!("/teams/{ENG}/assignments");
    call(ts.post(
        &path,
        &t.access,
        json!({"userId": "US1000000005", "productId": "prod_flex_platform"}),
    ))
    .await;
    let (_, all) = call(ts.get(&path, &t.access)).await;
    assert!(
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["userId"] == "US1000000005" && r["productId"] == "prod_flex_platform")
    );
    ts.stop().await;
}
