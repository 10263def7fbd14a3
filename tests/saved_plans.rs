//! Issue 9: a saved plan cannot be forged into something else. Each attack
//! edits a real saved plan the way someone with write access to the file
//! could (including recomputing the plain digest with flexsync's own code)
//! and checks that apply refuses it before any write.

mod served;

use flexsync::model::{Email, UserId};
use flexsync::plan::{self, Change, Facts, ProductRef};
use flexsync::planfile::{SavedAction, SavedChange, SavedPlan};
use flexsync::snapshot::Snapshot;
use predicates::prelude::*;
use served::{Refused, Served, example};

/// Plans examples/full.yaml into `name`, with any extra arguments.
fn save(s: &Served, name: &str, extra: &[&str]) -> SavedPlan {
    s.cmd()
        .args(["plan", "--out", name])
        .args(extra)
        .arg(example("full.yaml"))
        .assert()
        .success();
    let text = std::fs::read_to_string(s.path(name)).unwrap();
    SavedPlan::parse(name, &text).unwrap()
}

fn write(s: &Served, name: &str, plan: &SavedPlan) {
    std::fs::write(s.path(name), serde_json::to_string_pretty(plan).unwrap()).unwrap();
}

/// The live team 100001, as an attacker with read access sees it.
fn live(s: &Served) -> flexsync::model::ObservedTeam {
    let snap = Snapshot::parse("snap.json", &s.live_snapshot("100001")).unwrap();
    snap.observed().teams.into_values().next().unwrap()
}

/// An unassignment with a correctly computed fingerprint.
fn forged_unassign(
    team: &flexsync::model::ObservedTeam,
    email: &str,
    user: &str,
    alias: &str,
) -> SavedChange {
    let (id, name) = match alias {
        "platform-services" => ("prod_flex_platform", "Autodesk Flex - Platform Services"),
        _ => (
            "prod_acad_premium",
            "AutoCAD - including specialized toolsets",
        ),
    };
    let change = Change::Unassign {
        email: Email::parse(email).unwrap(),
        user_id: UserId(user.into()),
        product: std::sync::Arc::new(ProductRef {
            alias: flexsync::model::Alias(alias.into()),
            id: flexsync::model::ProductId(id.into()),
            name: name.into(),
        }),
    };
    SavedChange {
        action: SavedAction::Unassign,
        email: email.into(),
        user_id: Some(user.into()),
        first_name: None,
        last_name: None,
        product: Some(alias.into()),
        depends_on: plan::fingerprint(&change, &Facts::new(team)),
    }
}

/// Puts unassignments with correctly computed fingerprints (against the
/// live team 100001, read once) at the head of the first team's changes:
/// `(email, user id, product alias)`, each inserted before the ones so far.
fn forge(s: &Served, p: &mut SavedPlan, unassigns: &[(&str, &str, &str)]) {
    let team = live(s);
    for (email, user, alias) in unassigns {
        p.teams[0]
            .changes
            .insert(0, forged_unassign(&team, email, user, alias));
    }
}

fn refused(s: &Served, args: &[&str], file: &str, why: &str) {
    s.cmd()
        .args(["apply", "--audit-log", "audit.jsonl"])
        .args(args)
        .arg(file)
        .refused(&[&format!("{file} is refused as tampered"), why]);
    assert!(s.audit_lines().is_empty(), "a refused plan sent something");
}

#[tokio::test]
async fn an_edited_plan_is_refused_as_tampered() {
    let s = Served::start().await;
    let mut p = save(&s, "t1.plan", &[]);
    forge(
        &s,
        &mut p,
        &[("alice@example.com", "US1000000001", "platform-services")],
    );
    // Not resealed: the digest gives it away.
    write(&s, "edited.plan", &p);
    refused(&s, &[], "edited.plan", "does not match its digest");

    // Resealed with the plain digest, as anyone can: pinning the reviewed
    // digest still refuses it.
    let reviewed = save(&s, "t1.plan", &[]).digest().to_owned();
    p.seal(None);
    write(&s, "resealed.plan", &p);
    refused(
        &s,
        &["--expect-digest", &reviewed],
        "resealed.plan",
        "not the expected",
    );
}

#[tokio::test]
async fn unassigning_a_protected_person_is_refused_even_when_resealed() {
    let s = Served::start().await;
    let mut p = save(&s, "t1.plan", &[]);
    forge(
        &s,
        &mut p,
        &[("dave@example.com", "US1000000004", "platform-services")],
    );
    p.seal(None);
    write(&s, "forged.plan", &p);
    refused(
        &s,
        &[],
        "forged.plan",
        "dave@example.com is protected by the plan's policy",
    );
}

#[tokio::test]
async fn another_team_or_another_persons_id_is_refused() {
    let s = Served::start().await;
    let p = save(&s, "t1.plan", &[]);

    // Bob's unassignment pointed at Alice's account.
    let mut q = p.clone();
    let c = q.teams[0]
        .changes
        .iter_mut()
        .find(|c| c.action == SavedAction::Unassign)
        .unwrap();
    c.user_id = Some("US1000000001".into());
    q.seal(None);
    write(&s, "someone-else.plan", &q);
    refused(
        &s,
        &[],
        "someone-else.plan",
        "user id US1000000001 is not bob@example.com's account",
    );

    // The whole plan pointed at another team the login administers.
    let mut q = p.clone();
    q.teams[0].id = "100002".into();
    q.seal(None);
    write(&s, "other-team.plan", &q);
    s.cmd()
        .args(["apply", "--audit-log", "audit.jsonl", "other-team.plan"])
        .refused(&["is called \"Example Manufacturing\" now"]);
    assert!(s.audit_lines().is_empty());
    assert_eq!(s.invitations("100002", "grace@example.com").await, 0);
}

#[tokio::test]
async fn more_removals_than_the_recorded_guard_allows_are_refused() {
    let s = Served::start().await;
    let mut p = save(&s, "t1.plan", &[]);
    // maxUnassign 50% of 4 direct assignments is 2; the plan has one.
    forge(
        &s,
        &mut p,
        &[
            ("alice@example.com", "US1000000001", "platform-services"),
            ("alice@example.com", "US1000000001", "autocad"),
        ],
    );
    p.seal(None);
    write(&s, "many.plan", &p);
    refused(
        &s,
        &[],
        "many.plan",
        "exceed the plan's own maxUnassign 50%",
    );
}

#[tokio::test]
async fn with_a_plan_key_only_key_holders_make_plans_apply_accepts() {
    let s = Served::start().await;
    std::fs::write(
        s.path("plan.key"),
        "an example key of more than sixteen bytes\n",
    )
    .unwrap();
    let key = s.path("plan.key");
    let key = key.to_str().unwrap();
    let mut p = save(&s, "signed.plan", &["--plan-key", key]);
    assert!(p.digest().starts_with("hmac-sha256:"));

    // A resealed plain digest is not the key's seal.
    forge(
        &s,
        &mut p,
        &[("alice@example.com", "US1000000001", "platform-services")],
    );
    p.seal(None);
    write(&s, "forged.plan", &p);
    refused(&s, &["--plan-key", key], "forged.plan", "unkeyed digest");

    // Without the key, the signed plan cannot be checked, so it is refused.
    refused(&s, &[], "signed.plan", "no --plan-key was given");

    // With it, the untouched plan applies.
    s.cmd()
        .args([
            "apply",
            "--audit-log",
            "audit.jsonl",
            "--plan-key",
            key,
            "signed.plan",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("6 done, 0 failed"));
    let lines = s.audit_lines();
    assert!(lines.iter().all(|l| {
        l["planDigest"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    }));
}

#[tokio::test]
async fn an_unknown_action_is_an_error_naming_it_not_a_default() {
    let s = Served::start().await;
    save(&s, "t1.plan", &[]);
    let text = std::fs::read_to_string(s.path("t1.plan")).unwrap();
    assert!(text.contains("\"action\": \"assign\""), "{text}");
    // Refused when the file is read, before any check or rendering can
    // take the odd word for some other action.
    let edited = text.replacen("\"action\": \"assign\"", "\"action\": \"remove\"", 1);
    std::fs::write(s.path("odd.plan"), edited).unwrap();
    s.cmd()
        .args(["apply", "--audit-log", "audit.jsonl", "odd.plan"])
        .refused(&["odd.plan", "unknown variant `remove`", "at line"]);
    assert!(
        s.audit_lines().is_empty(),
        "an unreadable plan sent something"
    );
}
