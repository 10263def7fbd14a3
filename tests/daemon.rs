//! `flexsync run` as a child process against a served sandbox.

mod served;
mod service_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use served::Served;
use service_support::{Service, eventually};

const TEAM_A: &str = r#"version: 1
team: { id: "100001", name: Example Engineering }
products:
  ps: { productName: "Autodesk Flex - Platform Services" }
users:
  - { email: alice@example.com, products: [ps] }
  - { email: erin@example.com, products: [ps] }
"#;

/// Team 100001 with one invalid email: no valid declaration at all.
const INVALID_A: &str = "version: 1\nteam: { id: \"100001\" }\nusers: [ {email: nope} ]\n";

/// TEAM_A plus Frank (US1000000006).
fn team_a_with_frank() -> String {
    format!("{TEAM_A}  - {{ email: frank@contractor.example.net, products: [ps] }}\n")
}

/// The service with a 1 s interval (drift repaired within the tests'
/// patience), logging at info.
fn start(s: &Served, path: &Path, extra: &[&str]) -> Service {
    start_logging(s, path, extra, "info")
}

/// The same, logging at `level` (RUST_LOG).
fn start_logging(s: &Served, path: &Path, extra: &[&str], level: &str) -> Service {
    let mut args = vec!["--interval", "1s"];
    args.extend_from_slice(extra);
    Service::start(s, path, &args, level)
}

async fn holds(s: &Served, user_id: &str, product: &str) -> bool {
    let state = s.admin(Method::GET, "/state", None).await;
    // Direct assignments of team 100001; removed ones keep a `removedAt`.
    state["world"]["teams"]["100001"]["direct"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| a["userId"] == user_id && a["productId"] == product && a["removedAt"].is_null())
}

/// Erin (US1000000005) gets Platform Services, within 10 s.
async fn erin_assigned(s: &Served) {
    eventually(10, "erin assigned", || {
        holds(s, "US1000000005", "prod_flex_platform")
    })
    .await;
}

/// Another admin removes Erin's Flex assignment behind the service's back;
/// the service's next pass gives it back.
async fn drift_is_repaired(s: &Served) {
    s.admin(
        Method::DELETE,
        "/teams/100001/assignments?userId=US1000000005&productId=prod_flex_platform",
        None,
    )
    .await;
    eventually(10, "drift repaired", || {
        holds(s, "US1000000005", "prod_flex_platform")
    })
    .await;
}

/// The sandbox's team-wide List Assignments shows writes only `seconds`
/// after they were made.
async fn lagging_list(s: &Served, seconds: u64) {
    s.admin(
        Method::PUT,
        "/settings",
        Some(json!({ "consistencyDelaySeconds": seconds })),
    )
    .await;
}

/// A served sandbox, and its teams/ directory declaring TEAM_A in a.yaml.
async fn served_team_a() -> (Served, PathBuf) {
    let s = Served::start().await;
    let dir = s.teams_dir();
    declare(&dir, "a.yaml", TEAM_A);
    (s, dir)
}

fn declare(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    // Write-then-rename, as editors do.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

#[tokio::test]
async fn converges_then_follows_edits_and_repairs_drift() {
    let (s, dir) = served_team_a().await;
    let svc = start(&s, &dir, &[]);

    erin_assigned(&s).await;
    eventually(10, "team converged", || async {
        svc.team("100001").await["state"] == "converged"
    })
    .await;
    let (code, _) = svc.get("/readyz").await;
    assert_eq!(code, 200);

    // An edit: Frank (US1000000006) is added.
    declare(&dir, "a.yaml", &team_a_with_frank());
    eventually(5, "frank assigned after the edit", || {
        holds(&s, "US1000000006", "prod_flex_platform")
    })
    .await;

    // Drift: another admin removes Erin's assignment; the next pass restores it.
    drift_is_repaired(&s).await;

    // Every write is in the audit log, with its request id.
    let audit = std::fs::read_to_string(s.path("audit.jsonl")).unwrap();
    let lines: Vec<Value> = s.audit_lines();
    assert!(lines.len() >= 3, "{audit}");
    assert!(
        lines
            .iter()
            .all(|l| l["command"] == "run" && l["requestId"].is_string())
    );
    let erin = lines
        .iter()
        .filter(|l| l["user"] == "erin@example.com")
        .count();
    assert_eq!(erin, 2, "one assignment, one repair: {audit}");
}

#[tokio::test]
async fn an_invalid_edit_changes_nothing_and_is_reported_until_fixed() {
    let (s, dir) = served_team_a().await;
    let file = dir.join("a.yaml");
    let svc = start(&s, &file, &[]);
    svc.converged("100001").await;

    // Broken YAML that would otherwise add Frank.
    declare(
        &dir,
        "a.yaml",
        &format!("{TEAM_A}  - {{ email: frank@contractor.example.net, products: [ps, nope] }}\n"),
    );
    eventually(5, "error on /status", || async {
        let st = svc.status().await;
        st["declaration"]["valid"] == false
    })
    .await;
    let st = svc.status().await;
    let err = &st["declaration"]["errors"][0];
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("unknown product alias `nope`"),
        "{st}"
    );
    assert_eq!(err["line"], 8);
    assert!(
        st["declaration"]["loaded"] == true,
        "the last good declaration stays in force"
    );
    let (_, metrics) = svc.get("/metrics").await;
    assert!(
        metrics.contains("flexsync_config_load_errors_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("flexsync_config_valid 0"));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !holds(&s, "US1000000006", "prod_flex_platform").await,
        "an invalid declaration was applied"
    );
    assert!(
        svc.logs()
            .contains("invalid declaration; keeping the last good one")
    );

    // Fixed: picked up, applied.
    declare(&dir, "a.yaml", &team_a_with_frank());
    eventually(5, "frank assigned after the fix", || {
        holds(&s, "US1000000006", "prod_flex_platform")
    })
    .await;
    let status = svc.status().await;
    assert_eq!(status["declaration"]["valid"], true);
    assert_eq!(
        status["formatVersion"], 1,
        "scripts check the shape they read"
    );
}

#[tokio::test]
async fn a_configmap_data_swap_is_seen() {
    let s = Served::start().await;
    // The layout the kubelet writes: files are symlinks through `..data`,
    // which is swapped atomically to a new timestamped directory.
    let mount = s.path("config");
    std::fs::create_dir_all(mount.join("..2026_11_26_10_00_00.1")).unwrap();
    std::fs::write(mount.join("..2026_11_26_10_00_00.1/team.yaml"), TEAM_A).unwrap();
    std::os::unix::fs::symlink("..2026_11_26_10_00_00.1", mount.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/team.yaml", mount.join("team.yaml")).unwrap();
    let svc = start(&s, &mount.join("team.yaml"), &["--reread", "1h"]);
    svc.converged("100001").await;

    std::fs::create_dir_all(mount.join("..2026_11_26_10_05_00.2")).unwrap();
    std::fs::write(
        mount.join("..2026_11_26_10_05_00.2/team.yaml"),
        team_a_with_frank(),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_26_10_05_00.2", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    eventually(5, "the swap is applied", || {
        holds(&s, "US1000000006", "prod_flex_platform")
    })
    .await;
}

#[tokio::test]
async fn one_failing_team_does_not_hold_up_another() {
    let (s, dir) = served_team_a().await;
    // 100003 exists, but this login does not administer it: 403 every time.
    declare(
        &dir,
        "c.yaml",
        "version: 1\nteam: { id: \"100003\" }\nproducts:\n  ps: { productName: \"Autodesk Flex - Platform Services\" }\nusers:\n  - { email: gina@example.org, products: [ps] }\n",
    );
    let svc = start(&s, &dir, &[]);
    erin_assigned(&s).await;
    eventually(10, "100003 failing", || async {
        let t = svc.team("100003").await;
        t["state"] == "failing" || t["state"] == "degraded"
    })
    .await;
    let t = svc.team("100003").await;
    assert!(
        t["lastError"]
            .as_str()
            .unwrap()
            .contains("not an administrator of team 100003"),
        "{t}"
    );
    // The pod stays ready (it can serve /status); the failure is listed.
    let (code, body) = svc.get("/readyz").await;
    assert_eq!(code, 200);
    assert!(body.contains("team 100003 is"), "{body}");
    eventually(10, "100001 converged", || async {
        svc.team("100001").await["state"] == "converged"
    })
    .await;
}

#[tokio::test]
async fn dry_run_and_suspend_apply_nothing() {
    let (s, dir) = served_team_a().await;
    let svc = start(&s, &dir, &["--dry-run"]);
    eventually(10, "drift reported", || async {
        svc.team("100001").await["state"] == "drift"
    })
    .await;
    let (_, metrics) = svc.get("/metrics").await;
    assert!(
        metrics.contains("flexsync_drift_changes{team=\"100001\"} 1"),
        "{metrics}"
    );
    assert!(!holds(&s, "US1000000005", "prod_flex_platform").await);
    drop(svc);

    declare(&dir, "a.yaml", &format!("{TEAM_A}suspend: true\n"));
    let svc = start(&s, &dir, &[]);
    eventually(10, "suspended", || async {
        svc.team("100001").await["state"] == "suspended"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!holds(&s, "US1000000005", "prod_flex_platform").await);
    assert!(
        !s.path("audit.jsonl").exists()
            || std::fs::read_to_string(s.path("audit.jsonl"))
                .unwrap()
                .is_empty()
    );
}

#[tokio::test]
async fn metrics_parse_as_openmetrics_and_snapshots_need_the_token() {
    let (s, dir) = served_team_a().await;
    let flags = snapshot_flags(&s);
    let svc = start(&s, &dir, &[&flags[0], &flags[1]]);
    svc.converged("100001").await;

    let (_, text) = svc.get("/metrics").await;
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample value in {line}");
        assert!(
            name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()),
            "bad sample name in {line}"
        );
    }
    for family in [
        "flexsync_reconciles_total{team=\"100001\",result=\"success\"}",
        "flexsync_reconcile_duration_seconds_count{team=\"100001\"}",
        "flexsync_actions_total{team=\"100001\",kind=\"assign\",result=\"done\"} 1",
        "flexsync_drift_changes{team=\"100001\"} 0",
        "flexsync_api_requests_total{team=\"100001\",operation=\"assign\",status=\"201\"} 1",
        "flexsync_rate_budget_remaining{team=\"100001\"}",
        "flexsync_last_success_timestamp_seconds{team=\"100001\"}",
        "flexsync_config_load_errors_total 0",
    ] {
        assert!(text.contains(family), "missing {family} in\n{text}");
    }

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/snapshot", svc.base);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let (code, body) = svc.snapshot("/snapshot").await;
    assert_eq!(code, 200);
    // The published snapshot plans like the live team.
    plans_nothing_against(&s, &body, &dir.join("a.yaml"));
    assert_eq!(svc.snapshot("/snapshot/100001").await.0, 200);
}

#[tokio::test]
async fn sigterm_stops_cleanly() {
    let (s, dir) = served_team_a().await;
    let mut svc = start(&s, &dir, &[]);
    svc.converged("100001").await;
    let status = svc.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(svc.logs().contains("stopped"));
    // Nothing half-written: the token store and the audit log parse.
    let tokens: Value = serde_json::from_slice(&std::fs::read(&s.token_file).unwrap()).unwrap();
    assert!(tokens["refreshToken"].is_string());
    for line in std::fs::read_to_string(s.path("audit.jsonl"))
        .unwrap()
        .lines()
    {
        let _: Value = serde_json::from_str(line).unwrap();
    }
    let _ = json!({});
}

#[tokio::test]
async fn a_lagging_list_never_makes_the_service_repeat_a_write() {
    let (s, dir) = served_team_a().await;
    // Team-wide List Assignments shows writes only after 30 s.
    lagging_list(&s, 30).await;
    let svc = start(&s, &dir, &[]);
    erin_assigned(&s).await;
    // Several 1 s passes while the list still lags.
    eventually(10, "three more passes", || async {
        let (_, m) = svc.get("/metrics").await;
        m.lines()
            .find(|l| {
                l.starts_with("flexsync_reconciles_total{team=\"100001\",result=\"success\"}")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .is_some_and(|n| n >= 4.0)
    })
    .await;
    let audit = std::fs::read_to_string(s.path("audit.jsonl")).unwrap();
    let writes = s.audit_lines();
    assert_eq!(writes.len(), 1, "the same write was sent again: {audit}");
    assert_eq!(svc.team("100001").await["state"], "converged");
}

#[tokio::test]
async fn a_git_sync_style_directory_swap_is_seen() {
    let s = Served::start().await;
    // git-sync checks each commit out into a new directory and swaps the
    // `current` symlink to it.
    let root = s.path("git");
    check_out(&root, "rev1", TEAM_A);
    let svc = start(&s, &root.join("current"), &["--reread", "1h"]);
    svc.converged("100001").await;

    check_out(&root, "rev2", &team_a_with_frank());
    eventually(5, "the new checkout is applied", || {
        holds(&s, "US1000000006", "prod_flex_platform")
    })
    .await;
}

/// git-sync's way: `rev` is checked out into `root/rev/a.yaml` holding
/// `yaml`, and the `root/current` symlink swapped to it atomically.
fn check_out(root: &Path, rev: &str, yaml: &str) {
    std::fs::create_dir_all(root.join(rev)).unwrap();
    std::fs::write(root.join(rev).join("a.yaml"), yaml).unwrap();
    std::os::unix::fs::symlink(rev, root.join("current.tmp")).unwrap();
    std::fs::rename(root.join("current.tmp"), root.join("current")).unwrap();
}

/// The service settles edits for 300 ms and holds removals for 4 s; it does
/// not re-read on a timer.
const HOLDING_REMOVALS: &[&str] = &[
    "--settle",
    "300ms",
    "--removal-delay",
    "4s",
    "--reread",
    "1h",
];

/// Within 3 s, the service holds team 100001's removals back.
async fn removals_held(svc: &Service, what: &str) {
    eventually(3, what, || async {
        svc.team("100001").await["removalsHeldUntil"].is_string()
    })
    .await;
}

/// Team 100001 with prune on; the policy comes first, so cutting the file
/// short drops people, never the policy.
fn pruned_team(people: &[&str]) -> String {
    let mut y = String::from(
        "version: 1\nteam: { id: \"100001\", name: Example Engineering }\npolicy: { prune: true, maxUnassign: 10 }\nproducts:\n  ps: { productName: \"Autodesk Flex - Platform Services\" }\nusers:\n",
    );
    for p in people {
        y.push_str(&format!("  - {{ email: {p}, products: [ps] }}\n"));
    }
    y
}

const EVERYONE: [&str; 5] = [
    "alice@example.com",
    "carol@example.com",
    "erin@example.com",
    "dave@example.com",
    "frank@contractor.example.net",
];

/// Who holds Platform Services directly, by user id.
async fn ps_holders(s: &Served) -> Vec<String> {
    let state = s.admin(Method::GET, "/state", None).await;
    let mut out: Vec<String> = state["world"]["teams"]["100001"]["direct"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["productId"] == "prod_flex_platform" && a["removedAt"].is_null())
        .map(|a| a["userId"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn unassigned(s: &Served) -> Vec<String> {
    s.audit_lines()
        .iter()
        .filter(|l| l["action"] == "unassign" && l["result"] == "done")
        .map(|l| l["user"].as_str().unwrap().to_owned())
        .collect()
}

const ALL_FIVE: [&str; 5] = [
    "US1000000001",
    "US1000000003",
    "US1000000004",
    "US1000000005",
    "US1000000006",
];

#[tokio::test]
async fn a_half_written_file_never_unassigns_anyone_the_final_file_declares() {
    let s = Served::start().await;
    let dir = s.teams_dir();
    let file = declare(&dir, "a.yaml", &pruned_team(&EVERYONE));
    let svc = start(&s, &dir, HOLDING_REMOVALS);
    svc.converged("100001").await;
    assert_eq!(ps_holders(&s).await, ALL_FIVE);

    // The file is rewritten in place in two parts, with a pause longer than
    // the settle window: the first part (which declares only three of the
    // five) parses and is adopted; its removals must wait.
    let full = pruned_team(&EVERYONE);
    let cut = full
        .lines()
        .take(full.lines().count() - 2)
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&file)
            .unwrap();
        f.write_all(cut.as_bytes()).unwrap();
        f.flush().unwrap();
        // The partial declaration is adopted, and its removals are held.
        removals_held(&svc, "the partial file's removals are held").await;
        f.write_all(&full.as_bytes()[cut.len()..]).unwrap();
    }
    // Well past the removal delay, nobody the final file declares lost it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(unassigned(&s).is_empty(), "{:?}", unassigned(&s));
    assert_eq!(ps_holders(&s).await, ALL_FIVE);

    // A removal someone means still happens, once the delay is over.
    declare(&dir, "a.yaml", &pruned_team(&EVERYONE[..4]));
    removals_held(&svc, "the removal is held").await;
    assert!(unassigned(&s).is_empty());
    eventually(15, "frank unassigned after the delay", || async {
        unassigned(&s) == ["frank@contractor.example.net"]
    })
    .await;
    let (_, metrics) = svc.get("/metrics").await;
    assert!(
        metrics.contains(
            "flexsync_blocked_changes_by_reason{team=\"100001\",reason=\"removal_delay\"}"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_edit_reverted_within_the_delay_removes_nobody() {
    let s = Served::start().await;
    // Once through an editor's save (write, rename), once through a
    // git-sync checkout swap.
    let root = s.path("git");
    check_out(&root, "rev1", &pruned_team(&EVERYONE));
    let svc = start(&s, &root.join("current"), HOLDING_REMOVALS);
    svc.converged("100001").await;

    check_out(&root, "rev2", &pruned_team(&EVERYONE[..2]));
    removals_held(&svc, "the removals are held").await;
    check_out(&root, "rev3", &pruned_team(&EVERYONE));
    // An editor's save of the same kind of mistake, reverted too.
    tokio::time::sleep(Duration::from_millis(800)).await;
    declare(&root.join("rev3"), "a.yaml", &pruned_team(&EVERYONE[1..]));
    tokio::time::sleep(Duration::from_millis(800)).await;
    declare(&root.join("rev3"), "a.yaml", &pruned_team(&EVERYONE));

    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(unassigned(&s).is_empty(), "{:?}", unassigned(&s));
    assert_eq!(ps_holders(&s).await, ALL_FIVE);
}

#[tokio::test]
async fn a_pass_stops_before_its_next_write_when_the_declaration_changes() {
    let s = Served::start().await;
    let dir = s.teams_dir();
    declare(&dir, "a.yaml", &pruned_team(&EVERYONE));
    let svc = start(
        &s,
        &dir,
        &[
            "--settle",
            "200ms",
            "--removal-delay",
            "0s",
            "--reread",
            "1h",
        ],
    );
    svc.converged("100001").await;
    // Every write now takes 1.5 s; the next declaration removes three people.
    s.faults(json!({ "latencyMs": 1500, "writesOnly": true }))
        .await;
    declare(&dir, "a.yaml", &pruned_team(&EVERYONE[..2]));
    eventually(5, "the pass is under way", || async {
        svc.logs().matches("declaration loaded").count() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The edit is reverted while the first unassignment is in flight.
    declare(&dir, "a.yaml", &pruned_team(&EVERYONE));
    eventually(10, "the stale pass stopped", || async {
        svc.logs().contains("pass stopped: the declaration changed")
    })
    .await;
    eventually(20, "everyone holds the product again", || async {
        ps_holders(&s).await == ALL_FIVE && svc.team("100001").await["state"] == "converged"
    })
    .await;
    let removed = unassigned(&s);
    assert!(
        removed.len() <= 1,
        "the stale pass went on removing: {removed:?}\n{}",
        svc.logs()
    );
    assert!(
        svc.logs().contains("stopping it before its next write"),
        "{}",
        svc.logs()
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_fifo_in_the_declaration_directory_is_reported_and_never_blocks_the_service() {
    let (s, dir) = served_team_a().await;
    let mut svc = start(&s, &dir, &[]);
    svc.converged("100001").await;

    // A FIFO named like a declaration used to hang the reload for good.
    let fifo = dir.join("pipe.yaml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    eventually(10, "the FIFO reported on /status", || async {
        let st = svc.status().await;
        st["declaration"]["valid"] == false
            && st["declaration"]["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("FIFO (named pipe), not a regular file"))
    })
    .await;
    // Passes go on under the last good declaration: drift is still repaired.
    drift_is_repaired(&s).await;
    // And SIGTERM still stops it.
    let status = svc.terminate();
    assert!(status.success(), "exit status {status:?}");
}

/// Starts the service on `name` (as given on its command line, relative to
/// its working directory), edits the declaration through `edit`, and checks
/// that the edit reaches a write long before any re-read would.
async fn an_edit_is_seen_through(name: &str, setup: impl FnOnce(&Path), edit: impl FnOnce(&Path)) {
    let s = Served::start().await;
    setup(s.dir.path());
    let svc = start(&s, Path::new(name), &["--reread", "1h"]);
    svc.converged("100001").await;
    edit(s.dir.path());
    eventually(10, "the edit applied without a re-read", || {
        holds(&s, "US1000000006", "prod_flex_platform")
    })
    .await;
}

fn teams_dir(root: &Path) {
    std::fs::create_dir(root.join("teams")).unwrap();
    declare(&root.join("teams"), "a.yaml", TEAM_A);
}

fn add_frank(root: &Path) {
    declare(&root.join("teams"), "a.yaml", &team_a_with_frank());
}

#[tokio::test]
async fn a_relative_directory_is_watched() {
    an_edit_is_seen_through("teams", teams_dir, add_frank).await;
}

#[tokio::test]
async fn a_dot_slash_directory_is_watched() {
    an_edit_is_seen_through("./teams/", teams_dir, add_frank).await;
}

#[tokio::test]
async fn a_relative_file_is_watched() {
    an_edit_is_seen_through("teams/a.yaml", teams_dir, add_frank).await;
}

#[tokio::test]
async fn a_symlinked_directory_is_watched() {
    an_edit_is_seen_through(
        "link",
        |root| {
            teams_dir(root);
            std::os::unix::fs::symlink("teams", root.join("link")).unwrap();
        },
        add_frank,
    )
    .await;
}

#[tokio::test]
async fn an_edit_in_place_is_watched() {
    an_edit_is_seen_through("teams", teams_dir, |root| {
        // Not a rename: the file is rewritten where it is.
        std::fs::write(root.join("teams/a.yaml"), team_a_with_frank()).unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_invalid_declaration_at_start_is_served_reported_and_picked_up_once_fixed() {
    let s = Served::start().await;
    let dir = s.teams_dir();
    declare(&dir, "a.yaml", INVALID_A);
    let svc = start(&s, &dir, &["--reread", "1h"]);
    eventually(10, "the problem is on /readyz", || async {
        let (code, body) = svc.get("/readyz").await;
        code == 200 && body.contains("no valid declaration")
    })
    .await;
    eventually(10, "the errors are on /status", || async {
        svc.status().await["declaration"]["errors"][0].is_object()
    })
    .await;
    let st = svc.status().await;
    assert_eq!(st["declaration"]["loaded"], false);
    assert!(
        st["declaration"]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("invalid email"),
        "{st}"
    );
    let (_, metrics) = svc.get("/metrics").await;
    assert!(
        metrics.contains("flexsync_declaration_loaded 0"),
        "{metrics}"
    );
    let (code, _) = svc.get("/healthz").await;
    assert_eq!(code, 200);

    declare(&dir, "a.yaml", TEAM_A);
    svc.converged("100001").await;
    let (_, metrics) = svc.get("/metrics").await;
    assert!(
        metrics.contains("flexsync_declaration_loaded 1"),
        "{metrics}"
    );
    assert!(
        svc.logs().contains("the declaration is valid again"),
        "{}",
        svc.logs()
    );
}

#[tokio::test]
async fn under_the_journal_error_lines_carry_their_priority() {
    use std::os::unix::fs::MetadataExt;
    let s = Served::start().await;
    let dir = s.teams_dir();
    declare(&dir, "a.yaml", INVALID_A);
    // Stand in for the journal's stream: systemd names it in JOURNAL_STREAM.
    let log = s.path("journal.log");
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let mut child = service_support::command(&s, &dir, &[])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    eventually(10, "an error line", || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("invalid declaration")
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let error = text
        .lines()
        .find(|l| l.contains("invalid declaration"))
        .unwrap();
    assert!(error.starts_with("<3>"), "{text}");
    let info = text
        .lines()
        .find(|l| l.contains("flexsync is running"))
        .unwrap();
    assert!(info.starts_with("<6>"), "{text}");
    assert!(!text.contains('\u{1b}'), "no colour codes in the journal");
}

#[tokio::test]
async fn a_lost_login_is_reported_once_and_a_new_one_is_picked_up_without_a_restart() {
    let (s, dir) = served_team_a().await;
    let svc = start(&s, &dir, &["--reread", "1h"]);
    svc.converged("100001").await;

    // 16 days later the refresh token has expired (they live 15 days).
    s.advance(16 * 24 * 3600).await;
    eventually(10, "the lost login on /metrics", || async {
        svc.get("/metrics")
            .await
            .1
            .lines()
            .any(|l| l == "flexsync_login_valid 0")
    })
    .await;
    let (code, body) = svc.get("/readyz").await;
    assert_eq!(code, 200);
    assert!(body.contains("login lost"), "{body}\n{}", svc.logs());

    // Someone signs in again elsewhere and installs the login.
    s.login_again().await;
    eventually(15, "the service works again", || async {
        svc.get("/metrics")
            .await
            .1
            .lines()
            .any(|l| l == "flexsync_login_valid 1")
    })
    .await;
    // Drift after the recovery is repaired: the service is really back.
    drift_is_repaired(&s).await;
    let logs = svc.logs();
    assert_eq!(logs.matches("the login is lost").count(), 1, "{logs}");
    assert!(logs.contains("the login works again"), "{logs}");
}

const SNAPSHOT_TOKEN: &str = "a-long-enough-snapshot-token";

/// A snapshot token file in the sandbox's directory, as a flag pair.
fn snapshot_flags(s: &Served) -> [String; 2] {
    let file = s.path("snap-token");
    std::fs::write(&file, format!("{SNAPSHOT_TOKEN}\n")).unwrap();
    [
        "--snapshot-token-file".into(),
        file.to_str().unwrap().to_owned(),
    ]
}

/// Planning `declaration` against `snapshot` (JSON text, saved as
/// snap.json) finds nothing to do.
fn plans_nothing_against(s: &Served, snapshot: &str, declaration: &Path) {
    std::fs::write(s.path("snap.json"), snapshot).unwrap();
    s.cmd()
        .args(["plan", "--detailed-exitcode", "--observed", "snap.json"])
        .arg(declaration)
        .assert()
        .code(0);
}

impl Service {
    /// GET `path` with the snapshot token: status and body.
    async fn snapshot(&self, path: &str) -> (u16, String) {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = http
            .get(format!("{}{path}", self.base))
            .bearer_auth(SNAPSHOT_TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

#[tokio::test]
async fn a_snapshot_shows_the_services_own_writes_while_the_list_lags() {
    let (s, dir) = served_team_a().await;
    // Team-wide List Assignments shows writes only after 60 s: without the
    // overlay, a preview would show Erin's assignment as still to do.
    lagging_list(&s, 60).await;
    let flags = snapshot_flags(&s);
    let svc = start(&s, &dir, &[&flags[0], &flags[1]]);
    erin_assigned(&s).await;
    let erin_held = |snap: &Value| {
        snap["teams"][0]["assignments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["userId"] == "US1000000005" && a["productId"] == "prod_flex_platform")
    };
    eventually(5, "the write in the snapshot", || async {
        let (code, body) = svc.snapshot("/snapshot").await;
        assert_eq!(code, 200, "{body}");
        erin_held(&serde_json::from_str(&body).unwrap())
    })
    .await;
    let snap: Value = serde_json::from_str(&svc.snapshot("/snapshot").await.1).unwrap();
    assert_eq!(snap["formatVersion"], 2);
    let team = &snap["teams"][0];
    assert_eq!(team["id"], "100001");
    assert!(team["observedAt"].is_string(), "{team}");
    assert_eq!(team["ownWrites"]["count"], 1, "{team}");
    assert!(team["ownWrites"]["lastAt"].is_string(), "{team}");
    // What Autodesk lists still lags: a read of its own lacks Erin, so the
    // service's snapshot has her from its write's answer.
    let live: Value = serde_json::from_str(&s.live_snapshot("100001")).unwrap();
    assert!(!erin_held(&live), "the list did not lag: {live}");
    // The preview plans nothing left to do.
    plans_nothing_against(&s, &snap.to_string(), &dir.join("a.yaml"));
}

#[tokio::test]
async fn a_pull_request_adding_a_team_gets_it_read_on_demand_and_the_unreadable_ones_say_why() {
    let (s, dir) = served_team_a().await;
    let flags = snapshot_flags(&s);
    let svc = start(&s, &dir, &[&flags[0], &flags[1]]);
    svc.converged("100001").await;

    // The pull request declares 100001 (on main), 100002 (administered, not
    // declared yet), 100003 (not administered) and 999999 (no such team).
    let (code, body) = svc
        .snapshot("/snapshot?teams=100001,100002,100003,999999")
        .await;
    assert_eq!(code, 200, "{body}");
    let snap: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = snap["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["100001", "100002"], "{body}");
    let read_on_demand = &snap["teams"][1];
    assert!(read_on_demand["observedAt"].is_string());
    assert_eq!(read_on_demand["users"].as_array().unwrap().len(), 141);
    let missing = snap["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 2, "{body}");
    for m in missing {
        assert!(
            m["reason"]
                .as_str()
                .unwrap()
                .contains("does not administer team"),
            "{m}"
        );
    }

    // Read once, then served from the cache for a while.
    let (code, one) = svc.snapshot("/snapshot/100002").await;
    assert_eq!(code, 200, "{one}");
    let one: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one["teams"][0]["observedAt"], read_on_demand["observedAt"]);
    let (_, metrics) = svc.get("/metrics").await;
    assert!(
        metrics.contains(
            "flexsync_api_requests_total{team=\"100002\",operation=\"list_pools\",status=\"200\"} 1\n"
        ),
        "{metrics}"
    );
    // Without ?teams=, the declared teams only.
    let (_, all) = svc.snapshot("/snapshot").await;
    let all: Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all["teams"].as_array().unwrap().len(), 1);
    // Bad ids are refused, not read.
    assert_eq!(svc.snapshot("/snapshot?teams=1,..%2Fx").await.0, 400);

    // The preview plans the new team and blocks only the unreadable one.
    std::fs::write(s.path("snap.json"), &body).unwrap();
    let pr = s.path("pr");
    std::fs::create_dir(&pr).unwrap();
    declare(&pr, "a.yaml", TEAM_A);
    declare(
        &pr,
        "manufacturing.yaml",
        &std::fs::read_to_string(served::example("multi-team/manufacturing.yaml")).unwrap(),
    );
    declare(
        &pr,
        "c.yaml",
        "version: 1\nteam: { id: \"100003\" }\nproducts:\n  ps: { productName: \"Autodesk Flex - Platform Services\" }\nusers:\n  - { email: gina@example.org, products: [ps] }\n",
    );
    let out = s
        .cmd()
        .args(["plan", "--observed", "snap.json"])
        .arg(&pr)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("blocker: team 100003 could not be read, so nothing is planned for it: the snapshot says: the service's login does not administer team 100003"),
        "{text}"
    );
    let manufacturing = text
        .split("Team ")
        .find(|t| t.starts_with("100002"))
        .unwrap();
    assert!(!manufacturing.contains("blocker"), "{manufacturing}");
    assert!(manufacturing.contains("observed "), "{manufacturing}");
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert, key) PEM.
fn self_signed() -> (String, String) {
    let c =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

/// Replaces `path` by rename, as cert-manager, certbot and editors do.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A client that trusts only `cert`.
fn trusting(cert: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(cert.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

#[tokio::test]
async fn tls_serves_the_endpoints_keeps_the_token_and_follows_a_renewed_certificate() {
    let (s, dir) = served_team_a().await;
    let flags = snapshot_flags(&s);
    let (cert_a, key_a) = self_signed();
    let (cert_file, key_file) = (s.path("tls.crt"), s.path("tls.key"));
    std::fs::write(&cert_file, &cert_a).unwrap();
    std::fs::write(&key_file, &key_a).unwrap();
    let svc = start_logging(
        &s,
        &dir,
        &[
            &flags[0],
            &flags[1],
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
        "debug",
    );
    let https = svc.base.replace("http://", "https://");
    let a = trusting(&cert_a);
    eventually(10, "converged, over https", || async {
        let Ok(r) = a.get(format!("{https}/status")).send().await else {
            return false;
        };
        let st: Value = r.json().await.unwrap();
        st["teams"][0]["state"] == "converged"
    })
    .await;
    // Plain HTTP is not served on the TLS port.
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let answer = plain.get(format!("{}/healthz", svc.base)).send().await;
    assert!(answer.is_err(), "{answer:?}");

    // The bearer token is still required.
    let url = format!("{https}/snapshot");
    assert_eq!(a.get(&url).send().await.unwrap().status(), 401);
    let snap = a
        .get(&url)
        .bearer_auth(SNAPSHOT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(snap.status(), 200);
    let body = snap.text().await.unwrap();
    assert!(body.contains("bob@example.com"), "{body}");

    // A renewed certificate (new key) is served from the next connection.
    let (cert_b, key_b) = self_signed();
    replace(&key_file, &key_b);
    replace(&cert_file, &cert_b);
    let b = trusting(&cert_b);
    eventually(5, "the new certificate served", || async {
        b.get(format!("{https}/healthz")).send().await.is_ok()
    })
    .await;
    assert!(
        trusting(&cert_a)
            .get(format!("{https}/healthz"))
            .send()
            .await
            .is_err(),
        "the old certificate is still served"
    );

    // A broken renewal is refused and the last good pair kept.
    replace(&cert_file, "not a certificate\n");
    let r = trusting(&cert_b)
        .get(format!("{https}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually(5, "the bad pair logged", || async {
        svc.logs()
            .contains("the changed TLS certificate or key cannot be used")
    })
    .await;

    // Neither the snapshot's content nor the token is ever logged.
    let logs = svc.logs();
    assert!(logs.contains("TLS certificate reloaded"), "{logs}");
    for secret in [SNAPSHOT_TOKEN, "bob@example.com", "carol@example.com"] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
}

#[test]
fn tls_needs_both_files_and_a_usable_pair() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let (_, other_key) = self_signed();
    std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), key).unwrap();
    std::fs::write(dir.path().join("other.key"), other_key).unwrap();
    let run = |args: &[&str]| {
        assert_cmd::Command::new(served::bin())
            .current_dir(dir.path())
            .env("FLEXSYNC_ACCESS_TOKEN", "t")
            .args([
                "run",
                "--api-url",
                "http://127.0.0.1:9",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(args)
            .arg("teams")
            .timeout(Duration::from_secs(20))
            .assert()
            .code(1)
            .get_output()
            .stderr
            .clone()
    };
    let err = String::from_utf8(run(&["--tls-cert", "tls.crt"])).unwrap();
    assert!(err.contains("--tls-key"), "{err}");
    let err = String::from_utf8(run(&["--tls-cert", "tls.crt", "--tls-key", "other.key"])).unwrap();
    assert!(err.contains("cannot be served"), "{err}");
    let err = String::from_utf8(run(&["--tls-cert", "tls.key", "--tls-key", "tls.key"])).unwrap();
    assert!(err.contains("holds no PEM certificate"), "{err}");
}
