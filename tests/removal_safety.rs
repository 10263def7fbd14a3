//! Issue 9: nothing unassigns a declared developer, nor invites a stranger,
//! unless someone meant it. The planner's side: typos, guards measured
//! against today's team, the invitation guard, new domains and the
//! service's removal delay, shown in every plan format.

use std::collections::BTreeSet;

use flexsync::config;
use flexsync::model::{Email, Limit, Observed, ObservedTeam};
use flexsync::plan::{self, BlockReason, Change, FindingCode, Options, Overrides, TeamPlan};
use flexsync::render::{self, Context, Source};
use serde_json::json;

fn now() -> jiff::Timestamp {
    "2026-11-26T12:00:00Z".parse().unwrap()
}

fn dev(i: usize) -> String {
    format!("dev{i:03}@mock.example")
}

/// A team of `n` developers who all hold Platform Services directly.
fn team(n: usize) -> ObservedTeam {
    serde_json::from_value(json!({
        "id": "100001",
        "name": "Mock",
        "users": (0..n).map(|i| json!({ "id": format!("U{i}"), "email": dev(i) })).collect::<Vec<_>>(),
        "pools": [{ "productId": "ps", "productName": "Autodesk Flex - Platform Services", "unlimited": true }],
        "assignments": (0..n).map(|i| json!({
            "userId": format!("U{i}"), "productId": "ps", "assignmentType": "DIRECT"
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// A declaration of `emails`, each holding Platform Services, with prune on.
fn declaration(emails: &[String], extra: &str) -> String {
    let mut y = String::from(
        "version: 1\nteam: { id: \"100001\", name: Mock }\nproducts:\n  ps: { productId: ps }\nusers:\n",
    );
    for e in emails {
        y.push_str(&format!("  - {{ email: {e}, products: [ps] }}\n"));
    }
    y.push_str(extra);
    y
}

fn plan_with(yaml: &str, observed: ObservedTeam, opts: &Options) -> TeamPlan {
    let loaded = config::load_str("team.yaml", yaml);
    assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
    let mut obs = Observed::default();
    obs.teams.insert(observed.id.clone(), observed);
    plan::compute_with(&loaded.desired, &obs, opts)
        .teams
        .remove(0)
}

fn plan_of(yaml: &str, observed: ObservedTeam) -> TeamPlan {
    plan_with(yaml, observed, &Options::at(now()))
}

fn count(t: &TeamPlan, f: impl Fn(&Change) -> bool) -> usize {
    t.changes.iter().filter(|c| f(c)).count()
}

fn unassigns(t: &TeamPlan) -> usize {
    count(t, |c| matches!(c, Change::Unassign { .. }))
}

fn invites(t: &TeamPlan) -> usize {
    count(t, |c| matches!(c, Change::Invite { .. }))
}

fn codes(t: &TeamPlan) -> BTreeSet<&'static str> {
    t.findings.iter().map(|f| f.code.as_str()).collect()
}

const PRUNE: &str = "policy: { prune: true }\n";

#[test]
fn a_batch_of_typos_unassigns_nobody_and_invites_no_stranger() {
    let mut emails: Vec<String> = (0..109).map(dev).collect();
    for e in emails.iter_mut().take(25) {
        *e = e.replace("@mock.example", "@mock.exmaple");
    }
    let t = plan_of(&declaration(&emails, PRUNE), team(109));
    assert_eq!((unassigns(&t), invites(&t)), (0, 0), "{:#?}", t.changes);
    let typos = t
        .blocked
        .iter()
        .filter(|b| matches!(b.reason, BlockReason::ProbableTypo { .. }))
        .count();
    // 25 unassignments, 25 invitations and the 25 assignments waiting for
    // them.
    assert_eq!(typos, 75);
    let b = t
        .blocked
        .iter()
        .find(|b| b.change.email().as_str() == "dev000@mock.exmaple")
        .unwrap();
    assert_eq!(
        b.reason,
        BlockReason::ProbableTypo {
            looks_like: Email::parse("dev000@mock.example").unwrap()
        }
    );
    assert!(codes(&t).contains("probable_typo"));
    assert!(t.has_blockers());
}

#[test]
fn a_single_typo_is_blocked_until_a_rename_is_declared_or_allowed() {
    let mut emails: Vec<String> = (0..5).map(dev).collect();
    emails[2] = "dev002@mock.exmaple".into();
    let t = plan_of(&declaration(&emails, PRUNE), team(5));
    assert!(t.changes.is_empty(), "{:#?}", t.changes);
    assert!(codes(&t).contains("probable_typo"));

    // Declared in the file: the rename goes ahead, and says so.
    let renamed = declaration(&emails, PRUNE).replace(
        "dev002@mock.exmaple, products: [ps]",
        "dev002@mock.exmaple, replaces: dev002@mock.example, products: [ps]",
    );
    let t = plan_of(&renamed, team(5));
    assert_eq!((unassigns(&t), invites(&t)), (1, 1), "{:#?}", t.changes);
    assert!(codes(&t).contains("declared_rename"));
    assert!(!t.has_blockers());

    // Or allowed for one run.
    let opts = Options {
        overrides: Overrides {
            allow_renames: true,
            ..Default::default()
        },
        ..Options::at(now())
    };
    let t = plan_with(&declaration(&emails, PRUNE), team(5), &opts);
    assert_eq!((unassigns(&t), invites(&t)), (1, 1));
}

#[test]
fn without_prune_a_typo_still_invites_nobody() {
    let mut emails: Vec<String> = (0..5).map(dev).collect();
    emails[0] = "dev000@mock.exmaple".into();
    let t = plan_of(&declaration(&emails, ""), team(5));
    assert_eq!((unassigns(&t), invites(&t)), (0, 0));
    let f = t
        .findings
        .iter()
        .find(|f| f.code == FindingCode::ProbableTypo)
        .unwrap();
    assert!(f.message.contains("prune is off"), "{}", f.message);
}

#[test]
fn a_typo_in_the_local_part_is_caught_too() {
    let mut emails: Vec<String> = (0..5).map(dev).collect();
    emails[1] = "dve001@mock.example".into();
    let t = plan_of(&declaration(&emails, PRUNE), team(5));
    assert_eq!((unassigns(&t), invites(&t)), (0, 0));
}

#[test]
fn the_removal_guard_counts_todays_holders_not_what_the_run_adds() {
    // 28 of 109 removed: more than 25% of today's 109 (27).
    let mut emails: Vec<String> = (28..109).map(dev).collect();
    let t = plan_of(&declaration(&emails, PRUNE), team(109));
    assert_eq!(unassigns(&t), 0);
    let guard = t
        .blocked
        .iter()
        .find_map(|b| match &b.reason {
            BlockReason::RemovalGuard { limit, holders, .. } => Some((*limit, *holders)),
            _ => None,
        })
        .unwrap();
    assert_eq!(guard, (27, 109));

    // Adding 40 newcomers does not raise the limit.
    emails.extend((0..40).map(|i| format!("new{i}@mock.example")));
    let opts = Options {
        overrides: Overrides {
            max_invite: Some(Limit::Count(40)),
            ..Default::default()
        },
        ..Options::at(now())
    };
    let t = plan_with(&declaration(&emails, PRUNE), team(109), &opts);
    assert_eq!((unassigns(&t), invites(&t)), (0, 40));

    // 27 removals pass.
    let emails: Vec<String> = (27..109).map(dev).collect();
    let t = plan_of(&declaration(&emails, PRUNE), team(109));
    assert_eq!(unassigns(&t), 27);
}

#[test]
fn mass_invitations_are_blocked_with_their_assignments() {
    let mut emails: Vec<String> = (0..3).map(dev).collect();
    emails.extend((0..60).map(|i| format!("new{i:02}@mock.example")));
    // dev002 is a member without the product: that assignment still goes
    // ahead.
    let mut observed = team(3);
    observed.assignments.pop();
    let t = plan_of(&declaration(&emails, ""), observed.clone());
    assert_eq!(invites(&t), 0);
    assert_eq!(actions_of(&t), ["assign dev002@mock.example"]);
    assert!(t.blocked.iter().all(|b| matches!(
        b.reason,
        BlockReason::InviteGuard {
            wanted: 60,
            limit: 50,
            members: 3,
            ..
        }
    )));
    assert_eq!(t.blocked.len(), 120);
    assert!(codes(&t).contains("invite_guard"));

    // A percentage of today's members, from the file.
    let t = plan_of(
        &declaration(&emails, "policy: { maxInvite: \"100%\" }\n"),
        observed,
    );
    assert!(
        t.blocked
            .iter()
            .all(|b| matches!(b.reason, BlockReason::InviteGuard { limit: 3, .. }))
    );
}

fn actions_of(t: &TeamPlan) -> Vec<String> {
    t.changes
        .iter()
        .map(|c| format!("{} {}", c.verb(), c.email()))
        .collect()
}

#[test]
fn a_two_hundred_thousand_user_declaration_invites_nobody_by_default() {
    // Built in memory: this is about the planner, not the YAML parser.
    let loaded = config::load_str("team.yaml", &declaration(&[dev(0)], ""));
    let mut desired = loaded.desired;
    let t = desired.teams.values_mut().next().unwrap();
    let ps = t.products.keys().next().unwrap().clone();
    for i in 0..200_000 {
        let email = Email::parse(&format!("u{i}@mock.example")).unwrap();
        t.users.insert(
            email.clone(),
            flexsync::model::DesiredUser {
                email,
                first_name: None,
                last_name: None,
                products: [ps.clone()].into(),
                replaces: BTreeSet::new(),
                origin: Default::default(),
            },
        );
    }
    let mut obs = Observed::default();
    obs.teams.insert("100001".into(), team(3));
    let t = plan::compute(&desired, &obs, now()).teams.remove(0);
    assert_eq!(invites(&t), 0);
    assert_eq!(t.blocked.len(), 400_000);
}

#[test]
fn invitations_to_a_domain_no_member_has_are_flagged() {
    let mut emails: Vec<String> = (0..3).map(dev).collect();
    emails.push("ada@elsewhere.example".into());
    emails.push("bob@mock.example".into());
    let t = plan_of(&declaration(&emails, ""), team(3));
    assert_eq!(invites(&t), 2);
    let flagged: Vec<&str> = t
        .findings
        .iter()
        .filter(|f| f.code == FindingCode::NewDomain)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert!(
        flagged[0].contains("elsewhere.example") && flagged[0].contains("ada@elsewhere.example")
    );
    assert!(!flagged[0].contains("bob@"));
}

#[test]
fn the_removal_delay_holds_unassignments_and_nothing_else() {
    let mut emails: Vec<String> = (1..5).map(dev).collect();
    emails.push("new@mock.example".into());
    let until = "2026-11-26T12:01:00Z".parse().unwrap();
    let opts = Options {
        hold_removals_until: Some(until),
        ..Options::at(now())
    };
    let t = plan_with(&declaration(&emails, PRUNE), team(5), &opts);
    assert_eq!((unassigns(&t), invites(&t)), (0, 1));
    assert_eq!(
        t.blocked.iter().map(|b| &b.reason).collect::<Vec<_>>(),
        [&BlockReason::RemovalDelay { until }]
    );
    assert!(codes(&t).contains("removal_delay"));
    // Once the delay is over, the removal goes ahead.
    let later = Options {
        hold_removals_until: Some(until),
        ..Options::at(until)
    };
    let t = plan_with(&declaration(&emails, PRUNE), team(5), &later);
    assert_eq!(unassigns(&t), 1);
}

#[test]
fn every_guard_shows_in_text_markdown_and_json() {
    let mut emails: Vec<String> = (0..4).map(dev).collect();
    emails[0] = "dev000@mock.exmaple".into();
    emails.push("ada@elsewhere.example".into());
    let yaml = declaration(&emails, "policy: { prune: true, maxInvite: 1 }\n");
    let delayed = Options {
        hold_removals_until: Some("2026-11-26T12:01:00Z".parse().unwrap()),
        overrides: Overrides {
            max_invite: Some(Limit::Count(1)),
            ..Default::default()
        },
        ..Options::at(now())
    };
    let loaded = config::load_str("team.yaml", &yaml);
    let mut obs = Observed::default();
    obs.teams.insert("100001".into(), team(5));
    let typo_plan = plan::compute(&loaded.desired, &obs, now());
    let held_plan = plan::compute_with(&loaded.desired, &obs, &delayed);
    let ctx = Context {
        source: Source::Sandbox,
        read_calls: Default::default(),
        calls_per_minute: 55,
        now: now(),
        overrides: delayed.overrides,
        team_ages: Default::default(),
    };
    for (p, expect) in [
        (
            &typo_plan,
            ["probable typo", "looks like dev000@mock.example"].as_slice(),
        ),
        (
            &held_plan,
            ["removal delay", "elsewhere.example"].as_slice(),
        ),
    ] {
        let mut text = Vec::new();
        render::text::render(p, &ctx, false, &mut text).unwrap();
        let mut md = Vec::new();
        render::markdown::render(p, &ctx, &mut md).unwrap();
        let mut js = Vec::new();
        render::json::render(p, &ctx, &mut js).unwrap();
        for out in [&text, &md, &js] {
            let out = String::from_utf8_lossy(out);
            for e in expect {
                assert!(out.contains(e), "{e:?} missing from:\n{out}");
            }
        }
        let js: serde_json::Value = serde_json::from_slice(&js).unwrap();
        let reasons: BTreeSet<&str> = js["teams"][0]["blocked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["reason"].as_str().unwrap())
            .collect();
        assert!(!reasons.is_empty());
    }
    // The typo plan's JSON names the reason code; the held one's too.
    let mut js = Vec::new();
    render::json::render(&typo_plan, &ctx, &mut js).unwrap();
    assert!(String::from_utf8_lossy(&js).contains("\"reason\": \"probable_typo\""));
    let mut js = Vec::new();
    render::json::render(&held_plan, &ctx, &mut js).unwrap();
    let js = String::from_utf8_lossy(&js);
    assert!(js.contains("\"reason\": \"removal_delay\""), "{js}");
    assert!(js.contains("\"code\": \"new_domain\""), "{js}");
    // Markdown says "blocked" in words.
    let mut md = Vec::new();
    render::markdown::render(&held_plan, &ctx, &mut md).unwrap();
    assert!(String::from_utf8_lossy(&md).contains("— **blocked**"));
}

#[test]
fn an_assignment_listed_twice_is_unassigned_once() {
    // dev001 is no longer declared; the snapshot repeats their assignment.
    let mut observed = team(3);
    observed.assignments.push(observed.assignments[1].clone());
    let yaml = declaration(
        &[dev(0), dev(2)],
        "policy: { prune: true, maxUnassign: 5 }\n",
    );
    let t = plan_of(&yaml, observed);
    assert_eq!(unassigns(&t), 1, "{:#?}", t.changes);
    assert!(t.blocked.is_empty(), "{:#?}", t.blocked);
}
