//! The binary against the sandbox: the embedded `--sandbox` default, and a
//! served sandbox reached through a real `flexsync login`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command as StdCommand, Stdio};

use assert_cmd::Command;
use predicates::prelude::*;

mod served;
use served::{Refused, Says, Served, bin, example, line_with};

/// A command run in `dir`, so the embedded sandbox's .flexsync/ lands there.
fn flexsync(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .env_remove("FLEXSYNC_API_URL")
        .env_remove("FLEXSYNC_ACCESS_TOKEN")
        .env_remove("FLEXSYNC_TOKEN_FILE");
    cmd
}

/// `sandbox serve` owning the embedded sandbox's state file.
const SERVE_THE_STATE: &[&str] = &[
    "sandbox",
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--state",
    ".flexsync/sandbox.json",
];

#[test]
fn the_embedded_sandbox_works_on_a_fresh_checkout() {
    let dir = tempfile::tempdir().unwrap();
    flexsync(dir.path())
        .args(["teams", "--sandbox"])
        .assert()
        .success()
        .stdout(predicate::str::contains("100001  Example Engineering"))
        .stdout(predicate::str::contains("100003").not());
    assert!(dir.path().join(".flexsync/sandbox.json").exists());
    flexsync(dir.path())
        .args(["plan", "--sandbox", "--detailed-exitcode"])
        .arg(example("full.yaml"))
        .assert()
        .code(2)
        .says(&[
            "read took 3 API call(s)",
            "- unassign autocad from bob@example.com",
            "Planned against the local sandbox.",
        ]);
}

#[test]
fn a_snapshot_plans_like_the_live_team() {
    let dir = tempfile::tempdir().unwrap();
    let snap = flexsync(dir.path())
        .args([
            "snapshot",
            "--sandbox",
            "--team",
            "100001",
            "--team",
            "100002",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    std::fs::write(dir.path().join("snap.json"), &snap).unwrap();
    let changes = |args: &[&str]| {
        let out = flexsync(dir.path())
            .args(["plan", "--format", "json"])
            .args(args)
            .arg(example("multi-team"))
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        v["teams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["changes"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        changes(&["--sandbox"]),
        changes(&["--observed", "snap.json"])
    );
}

#[test]
fn sandbox_reset_restores_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    flexsync(dir.path())
        .args(["sandbox", "reset"])
        .assert()
        .success()
        .stderr(predicate::str::contains("restored from the seed"));
    let state = std::fs::read_to_string(dir.path().join(".flexsync/sandbox.json")).unwrap();
    assert!(state.contains("Example Engineering"));
}

/// A process the test started, killed when dropped; its stderr stays open
/// (read up to `line`) as long as it runs.
struct Server {
    child: Child,
    _stderr: BufReader<ChildStderr>,
    /// The first line of stderr that said what `started` waited for.
    line: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `flexsync ARGS` in `dir` and waits until its stderr says `needle`.
fn started(dir: &Path, args: &[&str], needle: &str) -> Server {
    let mut child = StdCommand::new(bin())
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let line = line_with(&mut stderr, needle);
    Server {
        child,
        _stderr: stderr,
        line,
    }
}

#[tokio::test]
async fn login_against_a_served_sandbox_then_use_the_saved_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = started(
        dir.path(),
        &["sandbox", "serve", "--listen", "127.0.0.1:0"],
        "Sandbox serving",
    );
    let api_url = server.line.split_whitespace().nth(2).unwrap().to_owned();
    let token_file = dir.path().join("tokens.json");

    let mut login = StdCommand::new(bin())
        .args([
            "login",
            "--no-browser",
            "--callback-url",
            "http://127.0.0.1:0/callback",
        ])
        .args([
            "--api-url",
            &api_url,
            "--client-id",
            "flexsync-sandbox",
            "--token-file",
        ])
        .arg(&token_file)
        .env("FLEXSYNC_CLIENT_SECRET", "flexsync-sandbox-secret")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut login_err = BufReader::new(login.stderr.take().unwrap());
    let url = line_with(&mut login_err, "/authentication/v2/authorize");
    // The sandbox approves at once: play the browser.
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http.get(&url).send().await.unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    http.get(&location).send().await.unwrap();
    assert!(login.wait().unwrap().success());
    let rest: String = login_err.lines().map(|l| l.unwrap() + "\n").collect();
    // Who signed in: the teams the login administers (the sandbox's admin
    // is not an administrator of 100003).
    assert!(
        rest.contains(
            "Signed in; this login administers teams 100001 (Example Engineering), 100002 (Example Manufacturing)."
        ),
        "{rest}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    Command::new(bin())
        .args([
            "teams",
            "--json",
            "--api-url",
            &api_url,
            "--client-id",
            "flexsync-sandbox",
            "--token-file",
        ])
        .arg(&token_file)
        .env("FLEXSYNC_CLIENT_SECRET", "flexsync-sandbox-secret")
        .assert()
        .success()
        .says(&["\"formatVersion\": 1", "\"Example Manufacturing\""]);
}

#[test]
fn live_commands_explain_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    flexsync(dir.path())
        .args(["teams", "--token-file", "none.json"])
        .env_remove("FLEXSYNC_CLIENT_ID")
        .refused(&["set FLEXSYNC_CLIENT_ID"]);
    flexsync(dir.path())
        .args(["teams", "--client-id", "x", "--token-file", "none.json"])
        .refused(&["not logged in: none.json holds no tokens"]);
    flexsync(dir.path())
        .args([
            "teams",
            "--api-url",
            "http://example.com/team-admin/v1",
            "--client-id",
            "x",
        ])
        .refused(&["plain http to a non-loopback host"]);
}

/// `flexsync export --sandbox --team TEAM` in `dir`; callers add the rest.
fn export(dir: &Path, team: &str) -> Command {
    let mut cmd = flexsync(dir);
    cmd.args(["export", "--sandbox", "--team", team]);
    cmd
}

#[test]
fn export_then_plan_shows_no_change() {
    let dir = tempfile::tempdir().unwrap();
    for team in ["100001", "100002"] {
        let yaml = export(dir.path(), team)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let file = dir.path().join(format!("{team}.yaml"));
        std::fs::write(&file, &yaml).unwrap();
        flexsync(dir.path())
            .arg("validate")
            .arg(&file)
            .assert()
            .success();
        flexsync(dir.path())
            .args(["plan", "--sandbox", "--detailed-exitcode"])
            .arg(&file)
            .assert()
            .code(0)
            .stdout(predicate::str::contains("No changes."));
    }
    // Inherited holdings are comments, not declarations.
    let yaml = export(dir.path(), "100001")
        .args(["--products", "prod_acad_premium"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let yaml = String::from_utf8(yaml).unwrap();
    assert!(
        yaml.contains(
            "#   carol@example.com holds autocad-including-specialized-toolsets through a group"
        ),
        "{yaml}"
    );
    assert!(!yaml.contains("email: carol@example.com"), "{yaml}");
    assert!(!yaml.contains("prod_flex_platform"), "{yaml}");
    export(dir.path(), "100001")
        .args(["--products", "Nope"])
        .refused(&["no product pool with id or name \"Nope\""]);
}

#[test]
fn a_team_the_login_cannot_administer_is_an_error_not_no_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("foreign.yaml");
    std::fs::write(
        &file,
        "version: 1\nteam: { id: \"100003\" }\nproducts:\n  ps: { productName: \"Autodesk Flex - Platform Services\" }\nusers:\n  - { email: gina@example.org, products: [ps] }\n",
    )
    .unwrap();
    for cmd in [
        vec!["plan", "--sandbox", "--detailed-exitcode"],
        vec!["apply", "--sandbox", "--auto-approve"],
    ] {
        flexsync(dir.path())
            .args(&cmd)
            .arg(&file)
            .assert()
            .code(1)
            .stdout(predicate::str::contains("No changes").not())
            .stderr(predicate::str::contains(
                "not an administrator of team 100003",
            ));
    }
}

#[test]
fn a_second_process_cannot_clobber_the_embedded_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let full = example("full.yaml").display().to_string();
    let _service = started(
        dir.path(),
        &[
            "run",
            "--sandbox",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "1h",
            &full,
        ],
        "flexsync is running",
    );
    let holder = "in use by another process (pid ";
    flexsync(dir.path())
        .args(["plan", "--sandbox"])
        .arg(example("full.yaml"))
        .refused(&[holder, ": flexsync run --sandbox)", "--api-url"]);
    // Neither serve nor reset may take the state from under it (serve used
    // to be recommended here, and its admin endpoints overwrote the
    // service's changes).
    for args in [SERVE_THE_STATE, &["sandbox", "reset"]] {
        flexsync(dir.path()).args(args).refused(&[
            ".flexsync/sandbox.json is in use",
            ": flexsync run --sandbox)",
        ]);
    }
}

#[test]
fn a_served_state_file_has_one_owner() {
    let dir = tempfile::tempdir().unwrap();
    let server = started(dir.path(), SERVE_THE_STATE, "Sandbox serving");
    let by_serve = ": flexsync sandbox serve)";
    let full = example("full.yaml").display().to_string();
    for args in [
        &["plan", "--sandbox", full.as_str()][..],
        SERVE_THE_STATE,
        &["sandbox", "reset"],
    ] {
        flexsync(dir.path())
            .args(args)
            .refused(&[".flexsync/sandbox.json is in use", by_serve]);
    }
    // The owner is gone: the lock goes with it.
    drop(server);
    flexsync(dir.path())
        .args(["sandbox", "reset"])
        .assert()
        .success();
}

#[tokio::test]
async fn an_api_url_without_the_version_path_gets_a_hint() {
    let s = Served::start().await;
    s.cmd().args(["teams", "--api-url", &s.base]).refused(&[
        "HTTP 404",
        &format!(
            "does not end in /team-admin/v1; try --api-url {}/team-admin/v1",
            s.base
        ),
    ]);
    // The right URL gets no hint (and works).
    s.cmd().arg("teams").assert().success();
}

#[tokio::test]
async fn a_token_file_with_a_live_access_token_reads_without_a_client_id() {
    let s = Served::start().await;
    for cmd in [&["teams"][..], &["snapshot", "--team", "100001"]] {
        s.cmd()
            .env_remove("FLEXSYNC_CLIENT_ID")
            .env_remove("FLEXSYNC_CLIENT_SECRET")
            .args(cmd)
            .assert()
            .success();
    }
    // Once the access token has expired, renewing it needs the app.
    let mut tokens: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&s.token_file).unwrap()).unwrap();
    tokens["expiresAt"] = "2020-01-01T00:00:00Z".into();
    let expired = s.path("expired.json");
    std::fs::write(&expired, tokens.to_string()).unwrap();
    s.cmd()
        .env_remove("FLEXSYNC_CLIENT_ID")
        .env("FLEXSYNC_TOKEN_FILE", &expired)
        .arg("teams")
        .refused(&[
            "has expired or was refused, and renewing it needs the APS app: set FLEXSYNC_CLIENT_ID",
        ]);
}

/// `flexsync plan --sandbox --out NAME` of examples/full.yaml in `dir`.
fn save_plan(dir: &Path, name: &str, extra: &[&str]) {
    flexsync(dir)
        .env_remove("FLEXSYNC_PLAN_KEY_FILE")
        .args(["plan", "--sandbox", "--out", name])
        .args(extra)
        .arg(example("full.yaml"))
        .assert()
        .success();
}

#[test]
fn show_renders_a_saved_plan_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    save_plan(dir.path(), "r.plan", &[]);
    // No sandbox, no credentials: the API URL points nowhere.
    let show = |args: &[&str]| {
        let mut cmd = flexsync(dir.path());
        cmd.env("FLEXSYNC_API_URL", "http://127.0.0.1:9/team-admin/v1")
            .env_remove("FLEXSYNC_PLAN_KEY_FILE")
            .arg("show")
            .args(args);
        cmd
    };
    show(&["r.plan"])
        .assert()
        .success()
        .says(&[
            "Saved plan r.plan",
            "against:     the local sandbox (apply it with --sandbox)",
            "by flexsync ",
            " ago)",
            "seal:        intact: a plain SHA-256",
            "policy:   prune on; protected: dave@example.com; maxUnassign 50% (2 of 4 direct assignments when planned)",
            "- unassign autocad from bob@example.com",
            "+ invite   grace@example.com (Grace Hopper)",
            "Plan: 1 invite, 4 assignments, 1 unassignment.",
            "applies nothing if any fingerprint no longer matches",
        ]);
    show(&["r.plan", "--format", "markdown"])
        .assert()
        .success()
        .says(&[
            "### flexsync saved plan `r.plan`: 1 invite, 4 assignments, 1 unassignment",
            "| ➖ | unassign | bob@example.com | `autocad` (AutoCAD - including specialized toolsets) |",
            "| Seal | ✅ intact",
        ]);
    let out = show(&["r.plan", "--format", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["target"], "sandbox");
    assert_eq!(v["seal"]["status"], "intact");
    assert_eq!(v["seal"]["kind"], "sha256");
    assert_eq!(v["summary"]["assign"], 4);
    assert_eq!(v["teams"][0]["policy"]["maxUnassign"], "50%");
    assert_eq!(v["teams"][0]["changes"][0]["action"], "unassign");
    assert_eq!(v["teams"][0]["changes"][0]["userId"], "US1000000002");
    assert!(v["ageSeconds"].as_i64().unwrap() >= 0);
    assert!(
        v["teams"][0]["changes"][0]["dependsOn"]
            .as_str()
            .is_some_and(|d| d.len() == 24)
    );

    // An edited file is shown, with why apply refuses it, and exits 1.
    let text = std::fs::read_to_string(dir.path().join("r.plan")).unwrap();
    std::fs::write(
        dir.path().join("edited.plan"),
        text.replace("bob@example.com", "carol@example.com"),
    )
    .unwrap();
    show(&["edited.plan"]).assert().code(1).says(&[
        "unassign autocad from carol@example.com",
        "BROKEN: apply refuses this file as tampered: its content does not match its digest",
    ]);
    // Named as a declaration, it is recognised.
    flexsync(dir.path())
        .args(["plan", "r.plan", "--observed"])
        .arg(example("snapshot.json"))
        .refused(&[
            "r.plan is a saved plan, not a declaration: look at it with `flexsync show r.plan`",
        ]);
}

#[test]
fn show_verifies_a_keyed_seal_only_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plan.key"),
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("other.key"),
        "fedcba9876543210fedcba9876543210",
    )
    .unwrap();
    save_plan(dir.path(), "k.plan", &["--plan-key", "plan.key"]);
    let show = |args: &[&str]| {
        let mut cmd = flexsync(dir.path());
        cmd.env_remove("FLEXSYNC_PLAN_KEY_FILE")
            .args(["show", "k.plan"])
            .args(args);
        cmd
    };
    show(&[])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "seal:        not verified: sealed with a plan key (HMAC-SHA256); give --plan-key",
        ));
    show(&["--plan-key", "plan.key"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "seal:        intact: verified with the plan key",
        ));
    show(&["--plan-key", "other.key"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("BROKEN"));
    show(&["--plan-key", "plan.key", "--expect-digest", "sha256:00"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("not the expected sha256:00"));
}

#[test]
fn explain_reads_one_team_at_its_lowest_cost() {
    let dir = tempfile::tempdir().unwrap();
    flexsync(dir.path())
        .args(["explain", "erin@example.com", "--sandbox"])
        .arg(example("full.yaml"))
        .assert()
        .success()
        .says(&[
            "erin@example.com in team 100001 \"Example Engineering\"",
            "read took 3 API call(s)",
            "plan:      + assign platform-services to erin@example.com",
            "Planned against the local sandbox.",
        ]);
}
