//! `flexsync apply` end to end: the binary against a served sandbox.

mod served;

use std::time::{Duration, Instant};

use predicates::prelude::*;
use reqwest::Method;
use serde_json::json;
use served::{Refused, Says, Served, example};

/// A served sandbox, and `yaml` written to team.yaml in its directory.
async fn declaring(yaml: &str) -> (Served, std::path::PathBuf) {
    let s = Served::start().await;
    let path = s.path("team.yaml");
    std::fs::write(&path, yaml).unwrap();
    (s, path)
}

#[tokio::test]
async fn plan_apply_then_plan_again_is_empty_and_the_audit_matches() {
    let s = Served::start().await;
    s.apply(&[])
        .arg(example("full.yaml"))
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Apply complete: 6 done, 0 failed, 0 skipped",
        ));
    s.cmd()
        .args(["plan", "--detailed-exitcode"])
        .arg(example("full.yaml"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("No changes."));

    let lines = s.audit_lines();
    let sent: Vec<String> = lines
        .iter()
        .map(|l| format!("{} {} {}", l["action"], l["user"], l["product"]))
        .collect();
    assert_eq!(
        sent,
        [
            r#""unassign" "bob@example.com" "prod_acad_premium""#,
            r#""invite" "grace@example.com" null"#,
            r#""assign" "frank@contractor.example.net" "prod_acad_premium""#,
            r#""assign" "erin@example.com" "prod_flex_platform""#,
            r#""assign" "frank@contractor.example.net" "prod_flex_platform""#,
            r#""assign" "grace@example.com" "prod_flex_platform""#,
        ]
    );
    for l in &lines {
        assert_eq!(l["result"], "done");
        assert_eq!(l["team"], "100001");
        assert!(l["requestId"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(l["planDigest"].as_str().unwrap().starts_with("sha256:"));
        assert!(l["httpStatus"].as_u64().is_some());
    }
    assert_eq!(s.invitations("100001", "grace@example.com").await, 1);
}

#[tokio::test]
async fn apply_refuses_to_prompt_without_a_terminal_before_touching_anything() {
    let s = Served::start().await;
    s.cmd()
        .arg("apply")
        .arg(example("full.yaml"))
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "refusing to ask for confirmation without a terminal",
        ));
    assert!(s.audit_lines().is_empty());
}

#[tokio::test]
async fn a_saved_plan_applies_exactly_or_is_refused_when_stale() {
    let s = Served::start().await;
    s.cmd()
        .args(["plan", "--out", "current.plan"])
        .arg(example("platform-services.yaml"))
        .assert()
        .success()
        .stderr(predicate::str::contains("Plan saved to current.plan"));
    s.cmd()
        .args(["plan", "--out", "stale.plan"])
        .arg(example("full.yaml"))
        .assert()
        .success();

    // Behind flexsync's back, another admin assigns Erin the product that
    // both plans assign her.
    s.admin(
        Method::POST,
        "/teams/100001/assignments",
        Some(json!({ "userId": "US1000000005", "productId": "prod_flex_platform" })),
    )
    .await;
    s.cmd()
        .args(["apply", "--audit-log", "audit.jsonl", "stale.plan"])
        .refused(&["stale.plan is stale", "Run `flexsync plan` again"]);
    assert!(s.audit_lines().is_empty(), "a stale plan sent something");
    assert_eq!(s.invitations("100001", "grace@example.com").await, 0);

    // A saved plan is already approved: no prompt, no --auto-approve. This
    // one is stale too (Erin's assignment), so plan once more and apply.
    s.cmd()
        .args(["apply", "current.plan"])
        .refused(&["is stale"]);
    s.cmd()
        .args(["plan", "--out", "current.plan"])
        .arg(example("platform-services.yaml"))
        .assert()
        .success();
    s.cmd()
        .args(["apply", "--audit-log", "audit.jsonl", "current.plan"])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 done, 0 failed"));
}

#[tokio::test]
async fn failed_writes_do_not_stop_the_others_and_a_rerun_converges() {
    let s = Served::start().await;
    // Every second write fails (deterministically); reads succeed.
    s.faults(json!({ "error500Share": 0.5, "writesOnly": true }))
        .await;
    s.cmd()
        .args([
            "apply",
            "--auto-approve",
            "--max-attempts",
            "1",
            "--audit-log",
            "audit.jsonl",
        ])
        .arg(example("full.yaml"))
        .assert()
        .code(1)
        .says(&["failed", "request id ", "Run `flexsync apply` again"]);
    let lines = s.audit_lines();
    assert_eq!(
        lines.len(),
        6,
        "every change was attempted or skipped: {lines:#?}"
    );
    let failed = lines.iter().filter(|l| l["result"] == "failed").count();
    let done = lines.iter().filter(|l| l["result"] == "done").count();
    assert!(failed >= 2 && done >= 2, "{lines:#?}");
    for l in lines.iter().filter(|l| l["result"] == "failed") {
        assert_eq!(l["httpStatus"], 500);
        assert!(l["error"].as_str().unwrap().contains("HTTP 500"));
    }

    a_rerun_converges(&s).await;
}

/// With the faults gone, one more apply of examples/full.yaml makes what is
/// left: planning again finds nothing to do, and Grace was invited once.
async fn a_rerun_converges(s: &Served) {
    s.faults(json!({})).await;
    s.apply(&[]).arg(example("full.yaml")).assert().success();
    s.cmd()
        .args(["plan", "--detailed-exitcode"])
        .arg(example("full.yaml"))
        .assert()
        .code(0);
    assert_eq!(s.invitations("100001", "grace@example.com").await, 1);
}

/// Which of examples/full.yaml's six changes the sandbox shows as made,
/// in the audit log's words.
fn writes_made(s: &Served) -> Vec<String> {
    let snap: serde_json::Value = serde_json::from_str(&s.live_snapshot("100001")).unwrap();
    let team = &snap["teams"][0];
    let id_of = |email: &str| {
        team["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .map(|u| u["id"].as_str().unwrap().to_owned())
    };
    let holds = |email: &str, product: &str| {
        id_of(email).is_some_and(|id| {
            team["assignments"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["userId"] == id.as_str() && a["productId"] == product)
        })
    };
    let mut made = Vec::new();
    let w = |a: &str, u: &str, p: Option<&str>| {
        format!(
            "\"{a}\" \"{u}\" {}",
            p.map(|p| format!("\"{p}\"")).unwrap_or("null".into())
        )
    };
    if !holds("bob@example.com", "prod_acad_premium") {
        made.push(w("unassign", "bob@example.com", Some("prod_acad_premium")));
    }
    if id_of("grace@example.com").is_some() {
        made.push(w("invite", "grace@example.com", None));
    }
    for (u, p) in [
        ("frank@contractor.example.net", "prod_acad_premium"),
        ("erin@example.com", "prod_flex_platform"),
        ("frank@contractor.example.net", "prod_flex_platform"),
        ("grace@example.com", "prod_flex_platform"),
    ] {
        if holds(u, p) {
            made.push(w("assign", u, Some(p)));
        }
    }
    made
}

#[tokio::test]
async fn an_apply_killed_midway_converges_on_the_next_run() {
    let s = Served::start().await;
    // Slow writes, so the kill lands between them.
    s.faults(json!({ "latencyMs": 400, "writesOnly": true }))
        .await;
    let mut child = s.spawn(&[
        "apply",
        "--auto-approve",
        "--audit-log",
        "audit.jsonl",
        example("full.yaml").to_str().unwrap(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.audit_lines().len() < 2 {
        assert!(Instant::now() < deadline, "apply made no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = s.audit_lines().len();
    assert!(before < 6, "the apply finished before the kill");

    // Every write the sandbox made has its intent line, including the one
    // in flight when the process was killed.
    let made = writes_made(&s);
    let intents: Vec<String> = s
        .audit_all()
        .iter()
        .filter(|l| l["result"] == "started")
        .map(|l| format!("{} {} {}", l["action"], l["user"], l["product"]))
        .collect();
    assert!(!made.is_empty());
    for w in &made {
        assert!(
            intents.contains(w),
            "{w} was made without an audit line: {intents:?}"
        );
    }
    // And each outcome line follows its intent.
    let all = s.audit_all();
    for (i, l) in all.iter().enumerate() {
        if l["result"] != "started" && l["result"] != "skipped" {
            assert!(
                all[..i]
                    .iter()
                    .any(|p| p["result"] == "started" && p["writeId"] == l["writeId"]),
                "outcome without intent: {l}"
            );
        }
    }

    // No second invitation (a_rerun_converges counts them), and no
    // assignment lost.
    a_rerun_converges(&s).await;
    let state = s.admin(Method::GET, "/state", None).await;
    assert!(state.to_string().contains("grace@example.com"));
}

#[tokio::test]
async fn the_removal_guard_blocks_unassignments_but_not_assignments() {
    let (s, decl) = declaring(
        r#"version: 1
team: { id: "100001" }
products:
  ps: { productName: "Autodesk Flex - Platform Services" }
users:
  - { email: erin@example.com, products: [ps] }
policy: { prune: true, maxUnassign: 1 }
"#,
    )
    .await;
    s.apply(&[]).arg(&decl).assert().success().says(&[
        "x unassign ps from alice@example.com: removal guard",
        "Apply complete: 1 done",
    ]);
    let lines = s.audit_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["action"], "assign");

    // Raised for one run, and the raise is on the record.
    s.apply(&["--max-unassign", "2"])
        .arg(&decl)
        .assert()
        .success()
        .says(&[
            "Guards overridden for this run: maxUnassign 2",
            "Apply complete: 2 done",
        ]);
    let lines = s.audit_lines();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[1..]
            .iter()
            .all(|l| l["action"] == "unassign" && l["overrides"]["maxUnassign"] == "2")
    );
}

#[tokio::test]
async fn seats_running_out_is_a_blocker_that_names_who_goes_without() {
    let (s, decl) = declaring(
        r#"version: 1
team: { id: "100001" }
products:
  autocad: { productId: prod_acad_premium }
groups:
  cad:
    products: [autocad]
    members: [alice@example.com, dave@example.com, erin@example.com, frank@contractor.example.net]
"#,
    )
    .await;
    s.cmd()
        .args(["plan"])
        .arg(&decl)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "blocker: AutoCAD - including specialized toolsets has 4 seat(s) and 4 would be in use; 2 more needed: not assigned to erin@example.com, frank@contractor.example.net",
        ));
}

#[tokio::test]
async fn saved_plans_come_alone_and_must_be_saved_plans() {
    let s = Served::start().await;
    s.cmd()
        .args(["plan", "--out", "review.plan"])
        .arg(example("platform-services.yaml"))
        .assert()
        .success();
    s.cmd()
        .args(["apply", "review.plan"])
        .arg(example("full.yaml"))
        .refused(&["review.plan is a saved plan: give it alone"]);
    std::fs::write(s.path("empty.plan"), "{}").unwrap();
    s.cmd()
        .args(["apply", "empty.plan"])
        .refused(&["it has no `flexsyncSavedPlan` field"]);
    let text = std::fs::read_to_string(s.path("review.plan")).unwrap();
    std::fs::write(
        s.path("v9.plan"),
        text.replace("\"flexsyncSavedPlan\": 2", "\"flexsyncSavedPlan\": 9"),
    )
    .unwrap();
    s.cmd()
        .args(["apply", "v9.plan"])
        .refused(&["saved-plan format 9 is not supported"]);
}

#[tokio::test]
async fn a_typo_is_blocked_and_allow_renames_confirms_it_for_one_run_on_the_record() {
    let (s, decl) = declaring(
        r#"version: 1
team: { id: "100001" }
products:
  autocad: { productId: prod_acad_premium }
users:
  - { email: alice@example.com, products: [autocad] }
  - { email: bob@exmaple.com, products: [autocad] }
policy: { prune: true, maxUnassign: 5 }
"#,
    )
    .await;
    s.apply(&[])
        .arg(&decl)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "x unassign autocad from bob@example.com: probable typo: looks like bob@exmaple.com",
        ))
        .stdout(
            predicate::str::contains("Nothing to apply")
                .or(predicate::str::contains("Plan: no invite")),
        );
    assert!(s.audit_lines().is_empty());
    assert_eq!(s.invitations("100001", "bob@exmaple.com").await, 0);

    s.apply(&["--allow-renames"])
        .arg(&decl)
        .assert()
        .success()
        .says(&[
            "probable typos accepted as renames",
            "Apply complete: 3 done",
        ]);
    let lines = s.audit_lines();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["overrides"]["allowRenames"] == true));
}

#[tokio::test]
async fn closed_output_pipes_neither_panic_nor_stop_an_apply() {
    let s = Served::start().await;
    // `flexsync apply … 2>&1 | head -0`: whoever reads the output is gone.
    let mut child = s
        .command()
        .args(["apply", "--auto-approve", "--audit-log", "audit.jsonl"])
        .arg(example("full.yaml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "every change was made, so exit 0");
    let lines = s.audit_lines();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(lines.iter().all(|l| l["result"] == "done"));
    let intents = s.audit_all().len() - lines.len();
    assert_eq!(intents, 6);
}

#[tokio::test]
async fn a_team_that_cannot_be_read_fails_alone() {
    let s = Served::start().await;
    // Ada loses her admin role on Manufacturing (100002) only.
    s.admin(
        Method::PUT,
        "/admins/USADMIN00001/teams",
        Some(json!(["100001"])),
    )
    .await;
    let dir = example("multi-team");
    s.cmd()
        .args(["plan", "--detailed-exitcode"])
        .arg(&dir)
        .assert()
        .code(1)
        .says(&["Team 100001", "+ assign", "team 100002 could not be read"])
        .stderr(predicate::str::contains(
            "error: team 100002 could not be read",
        ));
    s.apply(&[])
        .arg(&dir)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("0 failed"))
        .stderr(predicate::str::contains("team 100002 could not be read"));
    let lines = s.audit_lines();
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .all(|l| l["team"] == "100001" && l["result"] == "done")
    );
}
