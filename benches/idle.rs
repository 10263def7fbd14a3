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

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use served::Served;

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
    let mut child = service_support::command(&s, &decl, &["--dry-run", "--interval", "1h"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut err = child.stderr.take().unwrap();
    // Drain stderr so the service never blocks on it.
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while matches!(err.read(&mut buf), Ok(n) if n > 0) {}
    });
    // The first pass reads the whole team; idle starts after it. Its
    // dry-run log lines are at info level, which RUST_LOG=warn hides, so
    // the state file of the sandbox is polled instead: wait for calls to
    // stop, then a little more.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = cpu_seconds(pid);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = cpu_seconds(pid);
        if now - last < 0.01 || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let before = cpu_seconds(pid);
    tokio::time::sleep(idle).await;
    let after = cpu_seconds(pid);
    let (rss, peak) = memory_mb(pid);
    let _ = child.kill();
    let _ = child.wait();
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
