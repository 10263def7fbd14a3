//! Pull-request previews from a service's snapshot (format 2): each team's
//! age in the plan, and teams the snapshot could not see as blockers that
//! say why, without failing the others.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::{Value, json};

fn flexsync() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("flexsync"));
    cmd.env("NO_COLOR", "1");
    cmd
}

/// examples/snapshot.json as a service writes it: 100001 read five minutes
/// ago with two of the service's writes laid over it, 100002 missing.
fn service_snapshot(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string("examples/snapshot.json").unwrap();
    let mut snap: Value = serde_json::from_str(&text).unwrap();
    let now = jiff::Timestamp::now();
    let ago = |secs: i64| (now - jiff::SignedDuration::from_secs(secs)).to_string();
    snap["formatVersion"] = json!(2);
    snap["capturedAt"] = json!(ago(300));
    let teams = snap["teams"].as_array_mut().unwrap();
    teams.retain(|t| t["id"] == "100001");
    teams[0]["observedAt"] = json!(ago(300));
    teams[0]["ownWrites"] = json!({ "count": 2, "lastAt": ago(60) });
    snap["missing"] = json!([{
        "id": "100002",
        "reason": "you are not an administrator of team 100002, or it does not exist (HTTP 403)"
    }]);
    let path = dir.join("snapshot.json");
    std::fs::write(&path, serde_json::to_string_pretty(&snap).unwrap()).unwrap();
    path
}

#[test]
fn a_missing_team_is_a_blocker_quoting_why_and_the_others_are_planned() {
    let dir = tempfile::tempdir().unwrap();
    let snap = service_snapshot(dir.path());
    let out = flexsync()
        .args(["plan", "examples/multi-team", "--observed"])
        .arg(&snap)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "team 100002 could not be read, so nothing is planned for it: the snapshot says: you are not an administrator of team 100002",
        ))
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    // 100002's blocker quotes the snapshot's reason ...
    assert!(
        text.contains("blocker: team 100002 could not be read, so nothing is planned for it: the snapshot says: you are not an administrator"),
        "{text}"
    );
    // ... and 100001 is planned, with its own age and the service's writes.
    assert!(text.contains("+ assign   platform-services to"), "{text}");
    assert!(
        text.contains("observed 5 min ago (")
            && text.contains(
                "plus 2 fact(s) from the service's own acknowledged writes (the latest 60 s ago)"
            ),
        "{text}"
    );
}

#[test]
fn the_markdown_header_gives_each_teams_age() {
    let dir = tempfile::tempdir().unwrap();
    let snap = service_snapshot(dir.path());
    let out = flexsync()
        .args([
            "plan",
            "examples/platform-services.yaml",
            "--format",
            "markdown",
            "--observed",
        ])
        .arg(&snap)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let md = String::from_utf8(out).unwrap();
    let header = md
        .lines()
        .find(|l| l.starts_with("_observed "))
        .unwrap_or_else(|| panic!("no age line in\n{md}"));
    assert!(header.contains("5 min ago"), "{header}");
    assert!(header.contains("apply takes"), "{header}");
}

#[test]
fn a_format_1_snapshot_still_plans() {
    flexsync()
        .args([
            "plan",
            "examples/platform-services.yaml",
            "--observed",
            "examples/snapshot.json",
        ])
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains(
                "Planned against snapshot examples/snapshot.json, captured 2026-11-26T09:00:00Z",
            )
            .and(predicate::str::contains("observed ").not()),
        );
}

#[test]
fn validate_team_ids_prints_what_to_ask_the_service_for() {
    flexsync()
        .args(["validate", "--team-ids", "examples/multi-team"])
        .assert()
        .code(0)
        .stdout("100001,100002\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "version: 1\nteam: {}\n").unwrap();
    flexsync()
        .args(["validate", "--team-ids"])
        .arg(dir.path())
        .assert()
        .code(1)
        .stdout("");
}
