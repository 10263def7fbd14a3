//! `cargo bench --bench idle`: what `flexsync run` costs while nothing
//! happens. For teams of several sizes it starts a served sandbox and the
//! service (release build), waits for the first pass, then measures CPU
//! time and memory over an idle minute (`IDLE_SECONDS` to change it) from
//! /proc. Prints a table; asserts nothing (machines differ), but names the
//! targets: under 0.1 % of a core, under 20 MB RSS at 5,000 declared users.
//!
//! Sizes: `IDLE_SIZES=65,5000` (default 65,5000,10000).

#[path = "../tests/served/mod.rs"]
mod served;
#[path = "../tests/service_support/mod.rs"]
mod service_support;

use std::process::Command;
use std::time::{Duration, Instant};

use served::Served;
use service_support::Service;

fn seed(users: u32) -> String {
    format!(
        r#"admins:
  - {{ id: USADMIN00001, email: ada.admin@example.com, firstName: Ada, lastName: Admin, administers: ["100001"] }}
teams:
  - id: "100001"
    name: Idle
    generatedUsers: {users}
    pools:
      - {{ productId: ps, productName: "Autodesk Flex - Platform Services", unlimited: true, startDate: 2025-01-01T00:00:00Z, endDate: 2099-12-31T23:59:59Z }}
"#
    )
}

fn declaration(users: u32) -> String {
    let mut y = String::from(
        "version: 1\nteam: { id: \"100001\", name: Idle }\nproducts:\n  ps: { productId: ps }\nusers:\n",
    );
    for n in 1..=users {
        y.push_str(&format!(
            "  - {{ email: member{n:03}.100001@example.com, products: [ps] }}\n"
        ));
    }
    y
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line.
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// VmRSS and VmHWM of `pid`, in MB.
fn memory_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

async fn measure(users: u32, idle: Duration) -> (f64, f64, f64) {
    let s = Served::start_seeded(Some(&seed(users))).await;
    let decl = s.path("team.yaml");
    std::fs::write(&decl, declaration(users)).unwrap();
    // Info lines of the command only (the listening address, which the
    // harness reads); the passes' own lines stay quiet.
    let service = Service::start(
        &s,
        &decl,
        &["--dry-run", "--interval", "1h"],
        "warn,flexsync::cli=info",
    );
    let pid = service.child.id();
    // Idle starts once the first pass has succeeded. A large team's first
    // read takes more than one minute of the team's budget (100 users a
    // page), so waiting for the CPU to go quiet is not enough.
    let deadline = Instant::now() + Duration::from_secs(600);
    while !service.team("100001").await["lastSuccess"].is_string() {
        assert!(
            Instant::now() < deadline,
            "the first pass did not end: {}",
            service.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let before = cpu_seconds(pid);
    tokio::time::sleep(idle).await;
    let after = cpu_seconds(pid);
    let (rss, peak) = memory_mb(pid);
    ((after - before) / idle.as_secs_f64() * 100.0, rss, peak)
}

#[tokio::main]
async fn main() {
    let idle = Duration::from_secs(
        std::env::var("IDLE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let sizes: Vec<u32> = std::env::var("IDLE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![65, 5000, 10_000]);
    println!(
        "idle `flexsync run` over {} s after its first pass (targets: < 0.1 % of a core; < 20 MB RSS at 5,000 users)",
        idle.as_secs()
    );
    println!(
        "{:>8}  {:>12}  {:>9}  {:>9}",
        "users", "CPU % core", "RSS MB", "peak MB"
    );
    for users in sizes {
        let (cpu, rss, peak) = measure(users, idle).await;
        println!("{users:>8}  {cpu:>12.3}  {rss:>9.1}  {peak:>9.1}");
    }
}
