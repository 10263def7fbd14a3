//! Rehearsal: a sandbox started from a snapshot of live teams takes a big
//! change first, and leaves the snapshot as it was.

mod served;

use std::path::Path;

use reqwest::Method;
use serde_json::Value;
use served::{Refused, Served, example};

fn digest(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

/// Live direct assignments of team 100001 as (user id, product id).
async fn direct(s: &Served) -> Vec<(String, String)> {
    let state = s.admin(Method::GET, "/state", None).await;
    let mut out: Vec<(String, String)> = state["world"]["teams"]["100001"]["direct"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["removedAt"].is_null())
        .map(|a| {
            (
                a["userId"].as_str().unwrap().to_owned(),
                a["productId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// `cmd` made `sandbox serve --listen 127.0.0.1:0 --from-snapshot SNAPSHOT
/// --state STATE`.
fn serve_from_snapshot(
    mut cmd: assert_cmd::Command,
    snapshot: &Path,
    state: &Path,
) -> assert_cmd::Command {
    cmd.args(["sandbox", "serve", "--listen", "127.0.0.1:0"])
        .arg("--from-snapshot")
        .arg(snapshot)
        .arg("--state")
        .arg(state);
    cmd
}

#[tokio::test]
async fn a_served_rehearsal_takes_the_change_and_leaves_the_snapshot_alone() {
    let snapshot = example("snapshot.json");
    let before = digest(&snapshot);
    let s = Served::start_from_snapshot(&snapshot).await;
    let full = example("full.yaml");

    // The copy plans exactly like the snapshot itself.
    let plan = |args: &[&str]| {
        let out = s
            .cmd()
            .args(["plan", "--format", "json"])
            .args(args)
            .arg(&full)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["teams"][0]["changes"].clone(),
            v["teams"][0]["blocked"].clone(),
        )
    };
    let observed = plan(&["--observed", snapshot.to_str().unwrap()]);
    assert_eq!(plan(&[]), observed);
    assert_eq!(observed.0.as_array().unwrap().len(), 6, "{:?}", observed.0);

    s.cmd()
        .args(["apply", "--auto-approve"])
        .arg(&full)
        .assert()
        .success();
    s.cmd()
        .args(["plan", "--detailed-exitcode"])
        .arg(&full)
        .assert()
        .code(0);
    // Bob's direct AutoCAD went, Frank got it; Erin and Frank got Platform
    // Services, and so did Grace, who was invited.
    let holds = direct(&s).await;
    let has = |u: &str, p: &str| holds.contains(&(u.to_owned(), p.to_owned()));
    assert!(!has("US1000000002", "prod_acad_premium"), "{holds:?}");
    assert!(has("US1000000006", "prod_acad_premium"), "{holds:?}");
    assert!(has("US1000000005", "prod_flex_platform"), "{holds:?}");
    assert!(has("US1000000006", "prod_flex_platform"), "{holds:?}");
    assert_eq!(s.invitations("100001", "grace@example.com").await, 1);
    assert_eq!(digest(&snapshot), before, "the snapshot file changed");

    // The running rehearsal owns its state: another one on it is refused.
    serve_from_snapshot(s.cmd(), &snapshot, &s.path("state.json"))
        .refused(&["is in use by another process"]);
    drop(s);
}

#[test]
fn a_rehearsal_state_is_never_overwritten_and_reset_starts_it_again() {
    let snapshot = example("snapshot.json");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, "{}").unwrap();
    let bin = || assert_cmd::Command::new(served::bin());
    let mut cmd = bin();
    cmd.current_dir(dir.path());
    serve_from_snapshot(cmd, &snapshot, &state).refused(&["exists: remove it"]);
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "{}");
    bin()
        .current_dir(dir.path())
        .args(["sandbox", "reset", "--from-snapshot"])
        .arg(&snapshot)
        .arg("--state")
        .arg(&state)
        .assert()
        .success()
        .stderr(predicates::str::contains("restored from the snapshot"));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(
        saved["world"]["teams"]["100001"]["name"],
        "Example Engineering"
    );
    assert_eq!(
        saved["world"]["admins"]["USADMIN00001"],
        serde_json::json!(["100001", "100002"])
    );
}

#[test]
fn one_command_rehearses_in_memory_and_leaves_nothing_behind() {
    let snapshot = example("snapshot.json");
    let before = digest(&snapshot);
    let full = example("full.yaml");
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = assert_cmd::Command::new(served::bin());
        cmd.current_dir(dir.path())
            .env_remove("FLEXSYNC_ACCESS_TOKEN")
            .env_remove("RUST_LOG")
            .args(args)
            .arg("--sandbox-from-snapshot")
            .arg(&snapshot)
            .arg(&full);
        cmd.assert()
    };
    run(&["plan", "--detailed-exitcode"])
        .code(2)
        .stderr(predicates::str::contains(
            "Rehearsal: a sandbox copy of 2 team(s)",
        ))
        .stdout(predicates::str::contains(
            "Planned against the local sandbox.",
        ));
    run(&["apply", "--auto-approve"])
        .success()
        .stdout(predicates::str::contains("6 done, 0 failed"));
    // Thrown away: the next command starts from the snapshot again.
    run(&["plan", "--detailed-exitcode"]).code(2);
    // The audit log went where --sandbox puts it, never the real one.
    assert!(dir.path().join(".flexsync/audit.jsonl").exists());
    let left: Vec<_> = std::fs::read_dir(dir.path().join(".flexsync"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["audit.jsonl"], "the embedded sandbox was touched");
    assert_eq!(digest(&snapshot), before, "the snapshot file changed");
}

#[test]
fn a_broken_snapshot_is_named_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("snap.json");
    std::fs::write(&bad, "{\n  \"formatVersion\": 1,\n  \"teams\": [ 3 ]\n}\n").unwrap();
    assert_cmd::Command::new(served::bin())
        .current_dir(dir.path())
        .args(["sandbox", "serve", "--from-snapshot"])
        .arg(&bad)
        .refused(&["snap.json:3:"]);
}
