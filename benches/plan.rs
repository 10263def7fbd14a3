//! `cargo bench --bench plan`: parsing and planning large teams, and how
//! they grow. For 10k, 50k and 100k declared users against a live team of
//! the same size (10 % of the declared missing, 10 % extra undeclared),
//! with prune on and off, it prints the median of several runs of the
//! YAML parse (`config::load_str`) and of `plan::compute`, and the ratio
//! to the previous size: doubling the input should not much more than
//! double the time. No assertion: machines differ. `benches/callgrind.sh`
//! counts instructions instead, which do not depend on the machine's load.
//!
//! `PLAN_BENCH_SIZES=10000` picks sizes; `PLAN_BENCH_ONLY=setup|load|plan`
//! runs up to that phase once (for callgrind: the differences between the
//! three counts are the parse and the plan).

use std::hint::black_box;
use std::time::{Duration, Instant};

use flexsync::config;
use flexsync::model::{Observed, ObservedTeam};
use flexsync::plan;

fn observed(users: usize) -> Observed {
    let mut list = Vec::new();
    let mut assignments = Vec::new();
    for i in 0..users + users / 10 {
        if i < users && i % 10 == 0 {
            continue;
        }
        list.push(
            serde_json::json!({ "id": format!("U{i}"), "email": format!("dev{i}@example.com") }),
        );
        assignments.push(serde_json::json!({
            "userId": format!("U{i}"), "productId": "ps", "assignmentType": "DIRECT"
        }));
        if i % 2 == 0 {
            assignments.push(serde_json::json!({
                "userId": format!("U{i}"), "productId": "fu", "assignmentType": "DIRECT"
            }));
        }
    }
    let fu = assignments
        .iter()
        .filter(|a| a["productId"] == "fu")
        .count();
    let team: ObservedTeam = serde_json::from_value(serde_json::json!({
        "id": "100001",
        "name": "Big",
        "users": list,
        "pools": [
            { "productId": "ps", "productName": "Autodesk Flex - Platform Services", "unlimited": true },
            { "productId": "fu", "productName": "Fusion", "totalQuantity": users * 2, "assignedQuantity": fu }
        ],
        "assignments": assignments
    }))
    .expect("a valid observed team");
    let mut o = Observed::default();
    o.teams.insert(team.id.clone(), team);
    o
}

fn desired_yaml(users: usize, prune: bool) -> String {
    let mut y = String::from(
        "version: 1\nteam: { id: \"100001\" }\nproducts:\n  ps: { productId: ps }\n  fu: { productId: fu }\nusers:\n",
    );
    for i in 0..users {
        y.push_str(&format!(
            "  - {{ email: dev{i}@example.com, firstName: Dev, lastName: \"Number {i}\", products: [ps, fu] }}\n"
        ));
    }
    y.push_str(&format!(
        "policy: {{ prune: {prune}, maxUnassign: \"100%\", maxInvite: \"100%\" }}\n"
    ));
    y
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    let now = "2026-11-26T12:00:00Z".parse().expect("a timestamp");
    let sizes: Vec<usize> = std::env::var("PLAN_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 50_000, 100_000]);
    if let Ok(only) = std::env::var("PLAN_BENCH_ONLY") {
        for &users in &sizes {
            let yaml = desired_yaml(users, true);
            let obs = observed(users);
            if only == "setup" {
                black_box((&yaml, &obs));
                continue;
            }
            let loaded = config::load_str("bench.yaml", &yaml);
            if only == "plan" {
                black_box(plan::compute(&loaded.desired, &obs, now));
            }
        }
        return;
    }
    println!(
        "{:>8} {:>6} {:>12} {:>7} {:>12} {:>7}",
        "users", "prune", "parse", "×", "plan", "×"
    );
    for prune in [false, true] {
        let mut last: Option<(usize, Duration, Duration)> = None;
        for &users in &sizes {
            let yaml = desired_yaml(users, prune);
            let obs = observed(users);
            let mut loads = Vec::new();
            let mut loaded = None;
            for _ in 0..3 {
                let started = Instant::now();
                loaded = Some(config::load_str("bench.yaml", &yaml));
                loads.push(started.elapsed());
            }
            let Some(loaded) = loaded.filter(|l| l.is_valid()) else {
                println!("{users:>8} invalid declaration");
                continue;
            };
            let mut plans = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                black_box(plan::compute(&loaded.desired, &obs, now));
                plans.push(started.elapsed());
            }
            let (load, plan) = (median(loads), median(plans));
            let ratio =
                |now: Duration, then: Duration| now.as_secs_f64() / then.as_secs_f64().max(1e-9);
            let (rl, rp) = match last {
                Some((_, l, p)) => (
                    format!("{:.2}", ratio(load, l)),
                    format!("{:.2}", ratio(plan, p)),
                ),
                None => ("".into(), "".into()),
            };
            println!("{users:>8} {prune:>6} {load:>12.2?} {rl:>7} {plan:>12.2?} {rp:>7}");
            last = Some((users, load, plan));
        }
    }
}
