//! State file, restart, seed files and their error messages.

mod sandbox_support;

use flexsync_sandbox::{Sandbox, SandboxError, Seed};
use reqwest::StatusCode;
use sandbox_support::{call, config, start_sandbox};
use serde_json::json;

const ENG: &str = "100001";

#[tokio::test]
async fn a_restart_continues_from_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sub").join("sandbox.json");
    let seed = Seed::bundled().unwrap();

    let (cfg, clock) = config(|_| {});
    let ts = start_sandbox(Sandbox::open(&state, &seed, cfg).unwrap(), clock).await;
    assert!(state.exists(), "created from the seed on first use");
    let t = ts.login().await;
    let (status, zoe) = call(ts.post(
        &format!("/teams/{ENG}/users"),
        &t.access,
        json!({"email": "zoe@example.com"}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(ts.post(
        &format!("/teams/{ENG}/assignments"),
        &t.access,
        json!({"userId": zoe["id"], "productId": "prod_flex_platform"}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    ts.stop().await;

    let (cfg, clock) = config(|_| {});
    let ts = start_sandbox(Sandbox::open(&state, &seed, cfg).unwrap(), clock).await;
    // The old tokens still work: a restart does not log the client out.
    assert_eq!(call(ts.get("/teams", &t.access)).await.0, StatusCode::OK);
    let fresh = ts.refreshed(&t.refresh).await;
    let (status, again) = call(ts.post(
        &format!("/teams/{ENG}/users"),
        &fresh.access,
        json!({"email": "ZOE@example.com"}),
    ))
    .await;
    assert_eq!((status, &again["id"]), (StatusCode::OK, &zoe["id"]));
    assert_eq!(ts.sandbox.invitations(ENG, "zoe@example.com"), 1);
    let (status, _) = call(ts.post(
        &format!("/teams/{ENG}/assignments"),
        &fresh.access,
        json!({"userId": zoe["id"], "productId": "prod_flex_platform"}),
    ))
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the assignment survived the restart"
    );
    ts.stop().await;

    // Reset goes back to the seed.
    Sandbox::reset(&state, &seed).unwrap();
    let (cfg, _) = config(|_| {});
    let sb = Sandbox::open(&state, &seed, cfg).unwrap();
    assert_eq!(sb.invitations(ENG, "zoe@example.com"), 0);
    let mut leftovers: Vec<_> = std::fs::read_dir(state.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    leftovers.sort();
    assert_eq!(
        leftovers,
        ["sandbox.json", "sandbox.json.lock"],
        "no temp files left behind"
    );
}

#[test]
fn a_broken_state_file_is_an_error_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sandbox.json");
    std::fs::write(
        &state,
        "{\n  \"format\": \"flexsync-sandbox-state\",\n  \"version\": 1,\n  \"world\": 7\n}\n",
    )
    .unwrap();
    let (cfg, _) = config(|_| {});
    let err = Sandbox::open(&state, &Seed::bundled().unwrap(), cfg).unwrap_err();
    assert!(
        matches!(err, SandboxError::StateSyntax { line: 4, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:4:", state.display())),
        "{text}"
    );
}

#[test]
fn a_seed_file_with_a_typo_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.yaml");
    std::fs::write(
        &path,
        "admins:\n  - id: A\n    email: a@example.com\n    firstName: A\n    lastName: B\n    administers: []\nteams:\n  - id: \"1\"\n    name: T\n    pools:\n      - productId: p\n        productNam: x\n",
    )
    .unwrap();
    let err = Seed::from_file(&path).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:12:", path.display())), "{err}");
    assert!(err.contains("productNam"), "{err}");
}

#[test]
fn a_custom_seed_with_generated_users() {
    let yaml = r#"
admins:
  - { id: A1, email: a@example.com, firstName: A, lastName: One, administers: ["7"] }
teams:
  - id: "7"
    name: Seven
    generatedUsers: 3
    pools:
      - { productId: p1, productName: P, totalQuantity: 1, startDate: 2025-01-01T00:00:00Z, endDate: 2099-01-01T00:00:00Z }
    assignments:
      - { userId: US700002, productId: p1 }
"#;
    let seed = Seed::parse(yaml, "inline").unwrap();
    let (cfg, _) = config(|_| {});
    let state = Sandbox::new(&seed, cfg).state_json();
    let members = state["teams"]["7"]["members"].as_array().unwrap();
    let ids: Vec<&str> = members
        .iter()
        .map(|m| m["userId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["US700001", "US700002", "US700003"]);
    let err = Seed::parse(&yaml.replace("US700002", "US999"), "inline")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown user US999"), "{err}");
}

#[test]
fn one_sandbox_owns_a_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sandbox.json");
    let seed = Seed::bundled().unwrap();
    let (cfg, _) = config(|_| {});
    let owner = Sandbox::open(&state, &seed, cfg).unwrap();
    let (cfg, _) = config(|_| {});
    let err = Sandbox::open(&state, &seed, cfg).unwrap_err();
    assert!(matches!(err, SandboxError::Locked { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{} is in use by another process (pid {}",
            state.display(),
            std::process::id()
        )),
        "{text}"
    );
    assert!(matches!(
        Sandbox::reset(&state, &seed),
        Err(SandboxError::Locked { .. })
    ));
    // Released with the last handle.
    drop(owner);
    Sandbox::reset(&state, &seed).unwrap();
}

#[test]
fn an_oversized_state_or_seed_file_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sandbox.json");
    std::fs::File::create(&state)
        .unwrap()
        .set_len(1024 * 1024 * 1024)
        .unwrap();
    let (cfg, _) = config(|_| {});
    let err = Sandbox::open(&state, &Seed::bundled().unwrap(), cfg)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot read the sandbox state: it is larger than 64 MiB"),
        "{err}"
    );
    let seed = dir.path().join("seed.yaml");
    std::fs::File::create(&seed)
        .unwrap()
        .set_len(1024 * 1024 * 1024)
        .unwrap();
    let err = Seed::from_file(&seed).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}: cannot read the seed: it is larger than 4 MiB",
            seed.display()
        )),
        "{err}"
    );
}

#[test]
fn seeds_are_parsed_under_budgets_and_generated_users_are_bounded() {
    let team = |id: &str, generated: u32| {
        format!(
            "  - {{ id: \"{id}\", name: T{id}, generatedUsers: {generated}, pools: [{{ productId: p, productName: P, unlimited: true, startDate: 2025-01-01T00:00:00Z, endDate: 2099-01-01T00:00:00Z }}] }}\n"
        )
    };
    let admins = "admins:\n  - { id: A1, email: a@example.com, firstName: A, lastName: One, administers: [\"7\"] }\nteams:\n";
    let err = Seed::parse(&format!("{admins}{}", team("7", 4_000_000_000)), "s.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("team 7 asks for generatedUsers: 4000000000; the sandbox makes at most 10000"),
        "{err}"
    );
    // Within the per-team bound, but too many altogether.
    let many: String = (1..=3).map(|n| team(&n.to_string(), 10_000)).collect();
    let err = Seed::parse(&format!("{admins}{many}"), "s.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("with team 3 the seed has more than 20000"),
        "{err}"
    );
    // The largest team allowed is built.
    let seed = Seed::parse(&format!("{}{}", admins, team("7", 10_000)), "s.yaml").unwrap();
    let (cfg, _) = config(|_| {});
    let state = Sandbox::new(&seed, cfg).state_json();
    assert_eq!(
        state["teams"]["7"]["members"].as_array().unwrap().len(),
        10_000
    );
    // Parsed under budgets tighter than the YAML library's defaults: a
    // thousand anchors is more than any seed needs.
    let domains: Vec<String> = (0..1_001).map(|i| format!("&d{i} d{i}.example")).collect();
    let yaml = format!(
        "{admins}  - {{ id: \"7\", name: T, domains: [{}] }}\n",
        domains.join(", ")
    );
    let err = Seed::parse(&yaml, "anchors.yaml").unwrap_err().to_string();
    assert!(err.starts_with("anchors.yaml:"), "{err}");
    assert!(err.contains("budget"), "{err}");
}
