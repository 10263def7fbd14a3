//! `cargo bench`: how long planning a large team takes, and that it stays
//! linear-ish. Prints timings; no assertion on speed (machines differ).

use std::hint::black_box;
use std::time::Instant;

use flexsync::config;
use flexsync::model::{Observed, ObservedTeam};
use flexsync::plan;

fn observed(users: usize) -> Observed {
    let mut team = serde_json::json!({
        "id": "100001",
        "name": "Big",
        "users": [],
        "pools": [
            { "productId": "ps", "productName": "Autodesk Flex - Platform Services", "unlimited": true },
            { "productId": "fu", "productName": "Fusion", "totalQuantity": users, "assignedQuantity": users / 2 }
        ],
        "assignments": []
    });
    for i in 0..users {
        team["users"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "id": format!("U{i}"), "email": format!("dev{i}@example.com")
            }));
        if i % 2 == 0 {
            team["assignments"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                    "userId": format!("U{i}"), "productId": "fu", "assignmentType": "DIRECT"
                }));
        }
    }
    let team: ObservedTeam = serde_json::from_value(team).unwrap();
    let mut o = Observed::default();
    o.teams.insert(team.id.clone(), team);
    o
}

fn desired_yaml(users: usize) -> String {
    let mut y = String::from(
        "version: 1\nteam: { id: \"100001\" }\nproducts:\n  ps: { productId: ps }\n  fu: { productId: fu }\nusers:\n",
    );
    for i in 0..users {
        y.push_str(&format!(
            "  - {{ email: dev{i}@example.com, products: [ps, fu] }}\n"
        ));
    }
    y.push_str("policy: { prune: true, maxUnassign: \"100%\" }\n");
    y
}

fn main() {
    let now = "2026-11-26T12:00:00Z".parse().unwrap();
    for users in [1_000, 10_000, 50_000] {
        let yaml = desired_yaml(users);
        let started = Instant::now();
        let loaded = config::load_str("bench.yaml", &yaml);
        let load = started.elapsed();
        assert!(loaded.is_valid());
        let obs = observed(users);
        let started = Instant::now();
        let runs = 5;
        for _ in 0..runs {
            black_box(plan::compute(&loaded.desired, &obs, now));
        }
        let per_plan = started.elapsed() / runs;
        println!("{users:>6} users: load {load:>10.2?}, plan {per_plan:>10.2?}");
    }
}
