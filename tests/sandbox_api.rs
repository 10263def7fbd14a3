//! The eight operations: envelopes, pagination, convergence, status codes.

mod sandbox_support;

use std::collections::BTreeSet;

use reqwest::StatusCode;
use sandbox_support::{call, problem, send, start_admin, start_logged_in, walk};
use serde_json::{Value, json};

const ENG: &str = "100001";
const MFG: &str = "100002";
const ALICE: &str = "US1000000001";
const BOB: &str = "US1000000002";
const CAROL: &str = "US1000000003";
const DAVE: &str = "US1000000004";
const ERIN: &str = "US1000000005";
const FLEX: &str = "prod_flex_platform";
const ACAD: &str = "prod_acad_premium"; // 4 seats, 3 taken
const DOCS: &str = "prod_docs"; // inherited through the team
const REVIT: &str = "prod_revit_next_term"; // not started
const NAVIS: &str = "prod_navisworks_old"; // expired
const LEGACY: &str = "prod_legacy_suite"; // unsupported

fn row<'a>(rows: &'a Value, user: &str, product: &str) -> Option<&'a Value> {
    rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["userId"] == user && r["productId"] == product)
}

#[tokio::test]
async fn pagination_walks_every_user_exactly_once() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let path = format!("/teams/{MFG}/users");
    // 140 generated + Alice.
    let (users, pages) = walk(&ts, &path, &t.access, Some(7)).await;
    assert_eq!(users.len(), 141);
    assert_eq!(pages, 21);
    let ids: BTreeSet<&str> = users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 141, "no user twice");
    // Default page size is 50.
    let (users, pages) = walk(&ts, &path, &t.access, None).await;
    assert_eq!((users.len(), pages), (141, 3));
    let (users, pages) = walk(&ts, &path, &t.access, Some(100)).await;
    assert_eq!((users.len(), pages), (141, 2));
    ts.stop().await;
}

#[tokio::test]
async fn first_page_has_the_documented_envelope() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let (status, body) = call(
        ts.get(&format!("/teams/{MFG}/users"), &t.access)
            .query(&[("limit", "2")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["pagination"]["hasMore"], true);
    assert!(body["pagination"]["cursor"].is_string());
    let alice = &body["data"][0];
    assert_eq!(
        alice,
        &json!({"id": ALICE, "email": "alice@example.com", "firstName": "Alice", "lastName": "Anders", "role": "USER"})
    );
    ts.stop().await;
}

#[tokio::test]
async fn limit_outside_1_to_100_is_400_problem_details() {
    let (ts, t) = start_logged_in(|_| {}).await;
    for bad in ["0", "101", "-1", "ten", ""] {
        let body = problem(
            ts.get(&format!("/teams/{ENG}/users"), &t.access)
                .query(&[("limit", bad)]),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(
            body["type"],
            "https://developer.api.autodesk.com/problems/invalid-request"
        );
        assert_eq!(body["errors"][0]["field"], "limit", "limit={bad}");
    }
    let body = problem(
        ts.get("/teams", &t.access).query(&[("limit", "101")]),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "limit");
    let body = problem(
        ts.get(&format!("/teams/{ENG}/product-pools"), &t.access)
            .query(&[("cursor", "bogus")]),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "cursor");
    ts.stop().await;
}

#[tokio::test]
async fn unknown_team_and_foreign_team_get_the_identical_403() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let strip = |mut v: Value| {
        let o = v.as_object_mut().unwrap();
        o.remove("requestId");
        o.remove("instance");
        v
    };
    let foreign = strip(
        problem(
            ts.get("/teams/100003/users", &t.access),
            StatusCode::FORBIDDEN,
        )
        .await,
    );
    let unknown = strip(
        problem(
            ts.get("/teams/999999/users", &t.access),
            StatusCode::FORBIDDEN,
        )
        .await,
    );
    assert_eq!(foreign, unknown);
    // List Teams filtered to a foreign team: the same 403 (a quirk; see docs).
    problem(
        ts.get("/teams", &t.access).query(&[("teamId", "100003")]),
        StatusCode::FORBIDDEN,
    )
    .await;
    let (_, body) = call(ts.get("/teams", &t.access).query(&[("teamId", ENG)])).await;
    assert_eq!(
        body["data"],
        json!([{"id": ENG, "name": "Example Engineering"}])
    );
    ts.stop().await;
}

#[tokio::test]
async fn email_filter_is_exact_and_get_user_finds_members_only() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let path = format!("/teams/{ENG}/users");
    let (_, body) = call(
        ts.get(&path, &t.access)
            .query(&[("email", "bob@example.com")]),
    )
    .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["id"], BOB);
    assert_eq!(body["pagination"]["hasMore"], false);
    let (_, body) = call(ts.get(&path, &t.access).query(&[("email", "bob@example")])).await;
    assert_eq!(body["data"], json!([]), "no partial match");
    let (status, body) = call(ts.get(&format!("/teams/{ENG}/users/{CAROL}"), &t.access)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["email"], "carol@example.com");
    // Gina exists, but on another team.
    problem(
        ts.get(&format!("/teams/{ENG}/users/US1000000010"), &t.access),
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        ts.get(&format!("/teams/{ENG}/users/US0"), &t.access),
        StatusCode::NOT_FOUND,
    )
    .await;
    ts.stop().await;
}

#[tokio::test]
async fn add_team_user_converges_on_email_and_counts_one_invitation() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let path = format!("/teams/{ENG}/users");
    let new = json!({"email": "Zoe.Zed@example.com", "firstName": "Zoe", "lastName": "Zed"});
    let (status, first) = call(ts.post(&path, &t.access, new)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["role"], "USER");
    assert!(
        first.get("status").is_none(),
        "no status field unless the quirk asks"
    );
    assert_eq!(ts.sandbox.invitations(ENG, "zoe.zed@example.com"), 1);
    let (status, again) =
        call(ts.post(&path, &t.access, json!({"email": "zoe.zed@EXAMPLE.com"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(
        ts.sandbox.invitations(ENG, "zoe.zed@example.com"),
        1,
        "no second invitation"
    );
    // The newcomer is listed and can be given a product straight away.
    let (_, found) = call(
        ts.get(&path, &t.access)
            .query(&[("email", "zoe.zed@example.com")]),
    )
    .await;
    assert_eq!(found["data"][0]["id"], first["id"]);
    let (status, _) = call(ts.post(
        &format!("/teams/{ENG}/assignments"),
        &t.access,
        json!({"userId": first["id"], "productId": FLEX}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // An existing member is returned unchanged: no invitation at all.
    let (status, bob) = call(ts.post(&path, &t.access, json!({"email": "BOB@example.com"}))).await;
    assert_eq!((status, bob["id"].as_str()), (StatusCode::OK, Some(BOB)));
    assert_eq!(ts.sandbox.invitations(ENG, "bob@example.com"), 0);
    ts.stop().await;
}

#[tokio::test]
async fn the_team_decides_the_role_and_known_accounts_keep_their_name() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let (status, ext) = call(ts.post(
        &format!("/teams/{ENG}/users"),
        &t.access,
        json!({"email": "pat@partner.example.org", "firstName": "Pat", "lastName": "Partner"}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(ext["role"], "EXTERNAL_USER");
    // Carol has an Autodesk account already (team 100001); adding her to 100002 keeps it.
    let (status, carol) = call(ts.post(
        &format!("/teams/{MFG}/users"),
        &t.access,
        json!({"email": "carol@example.com", "firstName": "Other", "lastName": "Name"}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (carol["id"].as_str(), carol["firstName"].as_str()),
        (Some(CAROL), Some("Carol"))
    );
    ts.stop().await;
}

#[tokio::test]
async fn add_team_user_validates_the_body() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let path = format!("/teams/{ENG}/users");
    for body in [
        json!({}),
        json!({"email": "not-an-email"}),
        json!({"email": 42}),
        json!([1]),
    ] {
        problem(ts.post(&path, &t.access, body), StatusCode::BAD_REQUEST).await;
    }
    let body = problem(
        ts.http
            .post(ts.api(&path))
            .bearer_auth(&t.access)
            .body("{nope"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("JSON"));
    ts.stop().await;
}

#[tokio::test]
async fn product_pools_list_supported_pools_with_documented_fields() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let (status, body) = call(ts.get(&format!("/teams/{ENG}/product-pools"), &t.access)).await;
    assert_eq!(status, StatusCode::OK);
    let pools = body["data"].as_array().unwrap();
    let ids: Vec<&str> = pools
        .iter()
        .map(|p| p["productId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [FLEX, ACAD, DOCS, REVIT, NAVIS],
        "the unsupported pool is hidden"
    );
    let flex = &pools[0];
    assert_eq!(
        flex,
        &json!({
            "productId": FLEX, "teamId": ENG, "totalQuantity": null, "assignedQuantity": null,
            "unlimited": true, "startDate": "2025-01-01T00:00:00.000Z",
            "endDate": "2099-12-31T23:59:59.000Z", "productName": "Autodesk Flex - Platform Services"
        })
    );
    assert_eq!(
        (
            pools[1]["totalQuantity"].as_u64(),
            pools[1]["assignedQuantity"].as_u64()
        ),
        (Some(4), Some(3))
    );
    assert!(
        pools[3]["assignedQuantity"].is_null(),
        "a pool that has not started"
    );
    assert_eq!(
        body["pagination"],
        json!({"cursor": null, "hasMore": false})
    );
    ts.stop().await;
}

#[tokio::test]
async fn assignments_show_the_effective_type_once_per_pair() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let (status, rows) = call(ts.get(&format!("/teams/{ENG}/assignments"), &t.access)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(rows.get("pagination").is_none(), "not paginated");
    let kind = |u, p| row(&rows, u, p).map(|r| r["assignmentType"].as_str().unwrap().to_owned());
    assert_eq!(
        kind(BOB, ACAD).as_deref(),
        Some("DIRECT"),
        "direct wins over group"
    );
    assert_eq!(kind(CAROL, ACAD).as_deref(), Some("GROUP"));
    assert_eq!(kind(ERIN, DOCS).as_deref(), Some("TEAM"));
    assert_eq!(
        kind(ALICE, LEGACY),
        None,
        "unsupported products are never listed"
    );
    let pairs: BTreeSet<(String, String)> = rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["userId"].to_string(), r["productId"].to_string()))
        .collect();
    assert_eq!(
        pairs.len(),
        rows["data"].as_array().unwrap().len(),
        "each pair at most once"
    );
    // 6 Docs (team) + Alice flex/acad + Bob acad + Carol acad + Dave flex.
    assert_eq!(pairs.len(), 11);
    let r = row(&rows, ALICE, FLEX).unwrap();
    assert_eq!(
        r,
        &json!({"userId": ALICE, "email": "alice@example.com", "teamId": ENG, "productId": FLEX, "assignmentType": "DIRECT"})
    );
    // Filters.
    let (_, mine) = call(
        ts.get(&format!("/teams/{ENG}/assignments"), &t.access)
            .query(&[("userId", ALICE)]),
    )
    .await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 3);
    let (_, acad) = call(
        ts.get(&format!("/teams/{ENG}/assignments"), &t.access)
            .query(&[("productId", ACAD)]),
    )
    .await;
    assert_eq!(acad["data"].as_array().unwrap().len(), 3);
    let (status, none) = call(
        ts.get(&format!("/teams/{ENG}/assignments"), &t.access)
            .query(&[("productId", LEGACY)]),
    )
    .await;
    assert_eq!((status, none), (StatusCode::OK, json!({"data": []})));
    problem(
        ts.get(&format!("/teams/{ENG}/assignments"), &t.access)
            .query(&[("limit", "10")]),
        StatusCode::BAD_REQUEST,
    )
    .await;
    ts.stop().await;
}

#[tokio::test]
async fn assign_converges_201_then_200() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let path = format!("/teams/{ENG}/assignments");
    let body = json!({"userId": ERIN, "productId": FLEX});
    let (status, first) = call(ts.post(&path, &t.access, body.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["assignmentType"], "DIRECT");
    let (status, second) = call(ts.post(&path, &t.access, body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first, second);
    let (status, _) = call(ts.post(
        &path,
        &t.access,
        json!({"userId": ERIN, "productId": DOCS, "assignmentType": "DIRECT"}),
    ))
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a direct one on top of a team-inherited one"
    );
    ts.stop().await;
}

#[tokio::test]
async fn assign_refusals() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let path = format!("/teams/{ENG}/assignments");
    let refused = |user: &str, product: &str| {
        ts.post(
            &path,
            &t.access,
            json!({"userId": user, "productId": product}),
        )
    };
    // The last free AutoCAD seat goes to Dave; Erin finds the pool full.
    assert_eq!(call(refused(DAVE, ACAD)).await.0, StatusCode::CREATED);
    let body = problem(refused(ERIN, ACAD), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("no-seats-available")
    );
    // Carol already holds a seat through her group, so a direct one needs no new seat.
    assert_eq!(call(refused(CAROL, ACAD)).await.0, StatusCode::CREATED);
    problem(refused(ERIN, REVIT), StatusCode::UNPROCESSABLE_ENTITY).await;
    problem(refused(ERIN, NAVIS), StatusCode::UNPROCESSABLE_ENTITY).await;
    let body = problem(refused(ERIN, LEGACY), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("unsupported-product")
    );
    problem(
        refused("US0000000000", FLEX),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(refused(ERIN, "prod_nope"), StatusCode::UNPROCESSABLE_ENTITY).await;
    problem(
        ts.post(
            &path,
            &t.access,
            json!({"userId": ERIN, "productId": FLEX, "assignmentType": "GROUP"}),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        ts.post(&path, &t.access, json!({"userId": ERIN})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    // Nothing changed for Erin.
    let (_, rows) = call(ts.get(&path, &t.access).query(&[("userId", ERIN)])).await;
    assert_eq!(rows["data"].as_array().unwrap().len(), 1, "only Docs");
    ts.stop().await;
}

#[tokio::test]
async fn unassign_removes_direct_keeps_inherited_and_is_not_status_idempotent() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let path = format!("/teams/{ENG}/assignments");
    let del = |user: &str, product: &str| {
        ts.delete(&path, &t.access)
            .query(&[("userId", user), ("productId", product)])
    };
    // Alice's direct Flex: removed, then nothing left → 404.
    let (status, body) = call(del(ALICE, FLEX)).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    problem(del(ALICE, FLEX), StatusCode::NOT_FOUND).await;
    // Bob: direct + group. Removing the direct one leaves the group one.
    assert_eq!(call(del(BOB, ACAD)).await.0, StatusCode::NO_CONTENT);
    let (_, rows) = call(
        ts.get(&path, &t.access)
            .query(&[("userId", BOB), ("productId", ACAD)]),
    )
    .await;
    assert_eq!(rows["data"][0]["assignmentType"], "GROUP");
    let body = problem(del(BOB, ACAD), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("inherited-assignment")
    );
    // Only inherited from the start.
    problem(del(CAROL, ACAD), StatusCode::UNPROCESSABLE_ENTITY).await;
    problem(del(ERIN, DOCS), StatusCode::UNPROCESSABLE_ENTITY).await;
    // Unsupported pool: 422 and Alice keeps it (as the state shows).
    problem(del(ALICE, LEGACY), StatusCode::UNPROCESSABLE_ENTITY).await;
    // Missing parameters.
    problem(
        ts.delete(&path, &t.access).query(&[("userId", ALICE)]),
        StatusCode::BAD_REQUEST,
    )
    .await;
    ts.stop().await;
}

#[tokio::test]
async fn request_ids_are_echoed_when_valid_and_minted_otherwise() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let res = send(
        ts.get("/teams", &t.access)
            .header("X-Request-Id", "  trace-1.2_3  "),
    )
    .await;
    assert_eq!(res.headers()["x-request-id"], "trace-1.2_3");
    let long = "x".repeat(129);
    for bad in ["has space", long.as_str(), "semi;colon"] {
        let res = send(ts.get("/teams", &t.access).header("X-Request-Id", bad)).await;
        let minted = res.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(minted, bad.trim());
        assert_eq!(minted.len(), 36, "uuid-shaped: {minted}");
    }
    let body = problem(
        ts.get("/teams/999999/users", &t.access)
            .header("X-Request-Id", "mine-42"),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(body["requestId"], "mine-42");
    ts.stop().await;
}

#[tokio::test]
async fn losing_the_admin_role_stops_a_valid_token() {
    let (ts, t) = start_admin(|_| {}).await;
    assert_eq!(
        call(ts.get(&format!("/teams/{ENG}/users"), &t.access))
            .await
            .0,
        StatusCode::OK
    );
    let res = send(
        ts.http
            .put(ts.url("/_sandbox/admins/USADMIN00001/teams"))
            .json(&json!([MFG])),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    problem(
        ts.get(&format!("/teams/{ENG}/users"), &t.access),
        StatusCode::FORBIDDEN,
    )
    .await;
    let (_, teams) = call(ts.get("/teams", &t.access)).await;
    assert_eq!(
        teams["data"],
        json!([{"id": MFG, "name": "Example Manufacturing"}])
    );
    ts.stop().await;
}

#[tokio::test]
async fn list_teams_paginates_too() {
    let (ts, t) = start_logged_in(|_| {}).await;
    let (teams, pages) = walk(&ts, "/teams", &t.access, Some(1)).await;
    assert_eq!(pages, 2);
    assert_eq!(
        teams,
        [
            json!({"id": ENG, "name": "Example Engineering"}),
            json!({"id": MFG, "name": "Example Manufacturing"})
        ]
    );
    ts.stop().await;
}

#[tokio::test]
async fn inherited_first_precedence_shows_the_group_for_bob() {
    let (ts, t) =
        start_logged_in(|c| c.quirks.precedence = flexsync_sandbox::Precedence::InheritedFirst)
            .await;
    let (_, rows) = call(
        ts.get(&format!("/teams/{ENG}/assignments"), &t.access)
            .query(&[("userId", BOB)]),
    )
    .await;
    assert_eq!(row(&rows, BOB, ACAD).unwrap()["assignmentType"], "GROUP");
    // The direct one is still there to remove.
    let res = send(
        ts.delete(&format!("/teams/{ENG}/assignments"), &t.access)
            .query(&[("userId", BOB), ("productId", ACAD)]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    ts.stop().await;
}
