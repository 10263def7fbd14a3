//! Notifications end to end: `flexsync run` against a served sandbox posts
//! to webhooks served here (axum), in each format, once per event, and
//! never logs a webhook's URL.

mod served;
mod service_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{Value, json};
use served::Served;
use service_support::{Service, declare, eventually};

/// What the receiver got: the URL path and the JSON body of each post.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<(String, Value)>>>);

impl Inbox {
    fn posts(&self, hook: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.starts_with(hook))
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// How many posts `hook` got whose text names `event`.
    fn count(&self, hook: &str, event: &str) -> usize {
        self.posts(hook)
            .iter()
            .filter(|b| event_of(b).as_deref() == Some(event))
            .count()
    }
}

/// The event a body announces, whatever its format.
fn event_of(body: &Value) -> Option<String> {
    if let Some(e) = body["event"].as_str() {
        return Some(e.to_owned());
    }
    // Slack and Teams: the title says "flexsync FIRING: team degraded".
    let title = body["text"].as_str().map(str::to_owned).or_else(|| {
        body["attachments"][0]["content"]["body"][0]["text"]
            .as_str()
            .map(str::to_owned)
    })?;
    let what = title.split(": ").nth(1)?.to_owned();
    Some(what.split(':').next()?.trim().replace(' ', "_"))
}

/// Receives webhooks on a free loopback port; a path starting with `fail`
/// always answers 500.
async fn receiver() -> (String, Inbox) {
    async fn hook(
        State(inbox): State<Inbox>,
        UrlPath(path): UrlPath<String>,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        inbox.0.lock().unwrap().push((path.clone(), value));
        if path.starts_with("fail") {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    }
    let inbox = Inbox::default();
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::post(hook))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, inbox)
}

/// Secret parts of the webhook URLs: none may ever reach the logs.
const SECRETS: [&str; 5] = [
    "T0JSON-s3cr3t-json",
    "T0SLACK-s3cr3t-slack",
    "T0TEAMS-s3cr3t-teams",
    "T0FAIL-s3cr3t-fail",
    "T0DEAD-s3cr3t-dead",
];

/// Writes one URL file per webhook; returns the flags.
fn webhooks(s: &Served, base: &str) -> Vec<String> {
    let hooks = [
        ("json", format!("{base}/json/{}", SECRETS[0])),
        ("slack", format!("{base}/slack/{}", SECRETS[1])),
        ("teams", format!("{base}/teams/{}", SECRETS[2])),
        ("json", format!("{base}/fail/{}", SECRETS[3])),
        // Nothing listens on port 1: the connection is refused.
        ("json", format!("http://127.0.0.1:1/dead/{}", SECRETS[4])),
    ];
    let mut flags = Vec::new();
    for (i, (format, url)) in hooks.iter().enumerate() {
        let file = s.path(&format!("hook-{i}.url"));
        std::fs::write(&file, format!("{url}\n")).unwrap();
        flags.push("--notify-webhook-file".to_owned());
        flags.push(format!("{format}={}", file.display()));
    }
    flags
}

/// Team 100001: removals beyond the guard (Dave's Platform Services, Bob's
/// direct AutoCAD) and more AutoCAD than its 4 seats.
const GUARDED_AND_SHORT: &str = r#"version: 1
team: { id: "100001", name: Example Engineering }
products:
  ps: { productName: "Autodesk Flex - Platform Services" }
  autocad: { productId: prod_acad_premium }
policy: { prune: true, maxUnassign: 0 }
users:
  - { email: alice@example.com, products: [ps, autocad] }
  - { email: carol@example.com, products: [autocad] }
  - { email: dave@example.com, products: [autocad] }
  - { email: erin@example.com, products: [autocad] }
  - { email: frank@contractor.example.net, products: [autocad] }
"#;

/// The same team fixed: within its seats, the guard raised.
const FIXED: &str = r#"version: 1
team: { id: "100001", name: Example Engineering }
products:
  ps: { productName: "Autodesk Flex - Platform Services" }
  autocad: { productId: prod_acad_premium }
policy: { prune: true, maxUnassign: 10 }
users:
  - { email: alice@example.com, products: [ps, autocad] }
  - { email: bob@example.com, products: [autocad] }
  - { email: carol@example.com, products: [autocad] }
  - { email: dave@example.com, products: [ps, autocad] }
"#;

/// Team 100003, which Ada does not administer: every pass fails (403).
const FOREIGN: &str = r#"version: 1
team: { id: "100003" }
products:
  ps: { productName: "Autodesk Flex - Platform Services" }
users:
  - { email: gina@example.org, products: [ps] }
"#;

const HOOKS: [&str; 3] = ["json/", "slack/", "teams/"];

impl Inbox {
    /// Every webhook of HOOKS has had each of `events` at least once.
    fn on_every_hook(&self, events: &[&str]) -> bool {
        HOOKS
            .iter()
            .all(|h| events.iter().all(|e| self.count(h, e) >= 1))
    }
}

#[tokio::test]
async fn each_event_reaches_every_webhook_once_in_its_format_and_no_url_is_logged() {
    let s = Served::start().await;
    let (base, inbox) = receiver().await;
    let dir = s.teams_dir();
    declare(&dir, "a.yaml", GUARDED_AND_SHORT);
    declare(&dir, "c.yaml", FOREIGN);
    let mut flags = webhooks(&s, &base);
    flags.extend(
        [
            "--interval",
            "1s",
            "--removal-delay",
            "0s",
            "--reread",
            "1h",
        ]
        .map(String::from),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    // Debug, so the HTTP client's own lines are in the logs too.
    let svc = Service::start(&s, &dir, &flags, "debug");

    eventually(20, "guard, seats and degraded on every webhook", || async {
        inbox.on_every_hook(&["guard_blocked", "seats_short", "team_degraded"])
    })
    .await;
    // Several more passes with the same blockers, and more degraded ones.
    let passes = svc.passes("100001").await;
    eventually(20, "three more passes and a degraded one", || async {
        svc.passes("100001").await >= passes + 3.0
            && svc.team("100003").await["failures"].as_u64() >= Some(6)
    })
    .await;
    for h in HOOKS {
        for e in ["guard_blocked", "seats_short", "team_degraded"] {
            assert_eq!(inbox.count(h, e), 1, "{h} {e}: {:#?}", inbox.posts(h));
        }
    }

    // The generic payload, in full.
    let json_posts = inbox.posts("json/");
    let guard = json_posts
        .iter()
        .find(|b| b["event"] == "guard_blocked")
        .unwrap();
    assert_eq!(guard["formatVersion"], 1);
    assert_eq!(guard["status"], "firing");
    assert_eq!(
        guard["team"],
        json!({ "id": "100001", "name": "Example Engineering" })
    );
    assert_eq!(guard["details"]["blocked"]["removal_guard"], 2, "{guard}");
    let seats = json_posts
        .iter()
        .find(|b| b["event"] == "seats_short")
        .unwrap();
    let autocad = &seats["details"]["products"][0];
    assert_eq!(autocad["productId"], "prod_acad_premium", "{seats}");
    assert_eq!(autocad["total"], 4);
    assert_eq!(autocad["waiting"], 2, "{seats}");
    let degraded = json_posts
        .iter()
        .find(|b| b["event"] == "team_degraded")
        .unwrap();
    assert_eq!(degraded["severity"], "critical");
    assert!(
        degraded["details"]["lastError"]
            .as_str()
            .unwrap()
            .contains("not an administrator of team 100003"),
        "{degraded}"
    );
    // Slack and Teams get what their webhooks accept.
    for b in inbox.posts("slack/") {
        assert!(b["text"].is_string(), "{b}");
        assert_eq!(b["blocks"][0]["text"]["type"], "mrkdwn", "{b}");
    }
    for b in inbox.posts("teams/") {
        assert_eq!(b["type"], "message", "{b}");
        assert_eq!(
            b["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(b["attachments"][0]["content"]["type"], "AdaptiveCard");
    }

    // Fixed: the guard and the seats clear; Ada gets team 100003 back.
    declare(&dir, "a.yaml", FIXED);
    s.admin(
        Method::PUT,
        "/admins/USADMIN00001/teams",
        Some(json!(["100001", "100002", "100003"])),
    )
    .await;
    eventually(30, "cleared and recovered on every webhook", || async {
        inbox.on_every_hook(&["guard_cleared", "seats_available", "team_recovered"])
    })
    .await;
    let passes = svc.passes("100003").await;
    eventually(20, "more passes of both teams", || async {
        svc.passes("100003").await >= passes + 2.0
    })
    .await;
    for h in HOOKS {
        for e in [
            "guard_blocked",
            "seats_short",
            "team_degraded",
            "guard_cleared",
            "seats_available",
            "team_recovered",
        ] {
            assert_eq!(inbox.count(h, e), 1, "{h} {e}: {:#?}", inbox.posts(h));
        }
        assert_eq!(inbox.posts(h).len(), 6, "{h}: {:#?}", inbox.posts(h));
    }

    // The failing webhook was tried three times per event, and said so.
    eventually(20, "the failures logged", || async {
        svc.logs().matches("notification not delivered").count() >= 2
    })
    .await;
    assert!(inbox.posts("fail/").len() >= 3);
    let logs = svc.logs();
    assert!(logs.contains("HTTP 500"), "{logs}");
    assert!(logs.contains("hook-3.url (json)"), "{logs}");
    assert!(logs.contains("hook-4.url (json)"), "{logs}");
    for secret in SECRETS {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
    let (_, metrics) = svc.get("/metrics").await;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("flexsync_notifications_total{result=\"failed\"}")
                && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_lost_login_is_told_once_and_its_return_too() {
    let s = Served::start().await;
    let (base, inbox) = receiver().await;
    let dir = s.teams_dir();
    declare(
        &dir,
        "a.yaml",
        "version: 1\nteam: { id: \"100001\" }\nproducts:\n  ps: { productName: \"Autodesk Flex - Platform Services\" }\nusers:\n  - { email: alice@example.com, products: [ps] }\n",
    );
    let file = s.path("hook.url");
    std::fs::write(&file, format!("{base}/json/{}", SECRETS[0])).unwrap();
    // A long interval: passes come from SIGHUP only, so the team does not
    // degrade while the login is away.
    let svc = Service::start(
        &s,
        &dir,
        &[
            "--notify-webhook-file",
            file.to_str().unwrap(),
            "--interval",
            "1h",
            "--reread",
            "1h",
        ],
        "info",
    );
    svc.converged("100001").await;

    // 16 days later the refresh token has expired (they live 15 days).
    s.advance(16 * 24 * 3600).await;
    svc.hangup();
    eventually(15, "login_lost posted", || async {
        inbox.count("json/", "login_lost") == 1
    })
    .await;
    svc.hangup();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(inbox.count("json/", "login_lost"), 1);
    let lost = &inbox.posts("json/")[0];
    assert!(lost.get("team").is_none(), "{lost}");
    assert_eq!(lost["severity"], "critical");

    // The URL is rotated (a Secret updated in place): no restart needed.
    std::fs::write(&file, format!("{base}/rotated/{}", SECRETS[1])).unwrap();

    s.login_again().await;
    svc.hangup();
    eventually(15, "login_restored posted to the new URL", || async {
        inbox.count("rotated/", "login_restored") == 1
    })
    .await;
    let events = |hook| {
        inbox
            .posts(hook)
            .iter()
            .map(|b| b["event"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(events("json/"), ["login_lost"]);
    assert_eq!(events("rotated/"), ["login_restored"]);
    assert!(!svc.logs().contains(SECRETS[1]));
}

#[test]
fn an_unusable_webhook_stops_the_service_from_starting_without_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hook.url");
    std::fs::write(&file, "http://hooks.example.net/services/T0PLAIN-s3cr3t\n").unwrap();
    let out = assert_cmd::Command::new(served::bin())
        .current_dir(dir.path())
        .args(["run", "--notify-webhook-file"])
        .arg(format!("slack={}", file.display()))
        .arg("teams.yaml")
        .env_remove("RUST_LOG")
        .timeout(Duration::from_secs(20))
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("is not https"), "{err}");
    assert!(err.contains("hook.url"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");

    let out = assert_cmd::Command::new(served::bin())
        .current_dir(dir.path())
        .args(["run", "--notify-webhook-file", "missing.url", "teams.yaml"])
        .timeout(Duration::from_secs(20))
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("missing.url"), "{err}");
}
