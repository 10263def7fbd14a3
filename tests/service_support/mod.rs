//! `flexsync run` as a child process against a served sandbox (the harness
//! of tests/daemon.rs, shared by the tests of what the service tells the
//! outside: notifications, metrics for alerts and dashboards).
#![allow(dead_code)] // each test crate uses a different part

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::served::{self, Served};

pub struct Service {
    pub child: Child,
    pub base: String,
    logs: Arc<Mutex<String>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `flexsync run` on `path` against the served sandbox, listening on a free
/// loopback port, with `extra` flags; stdio is the caller's to set.
pub fn command(s: &Served, path: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(served::bin());
    cmd.current_dir(s.dir.path())
        .args([
            "run",
            "--api-url",
            &s.api_url,
            "--client-id",
            "flexsync-sandbox",
            "--token-file",
        ])
        .arg(&s.token_file)
        .env("FLEXSYNC_CLIENT_SECRET", "flexsync-sandbox-secret")
        .env_remove("FLEXSYNC_ACCESS_TOKEN")
        .args(["--listen", "127.0.0.1:0", "--audit-log", "audit.jsonl"])
        .args(extra)
        .arg(path);
    cmd
}

impl Service {
    /// `flexsync run` on `path` with `extra` flags, logging at `log_level`.
    pub fn start(s: &Served, path: &Path, extra: &[&str], log_level: &str) -> Service {
        let mut cmd = command(s, path, extra);
        cmd.env("RUST_LOG", log_level)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let sink = logs.clone();
        // Drain stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let text = logs.lock().unwrap().clone();
            if let Some(i) = text.find("addr=") {
                let rest = &text[i + 5..];
                break rest.split_whitespace().next().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "service did not start: {text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        Service {
            child,
            base: format!("http://{addr}"),
            logs,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn status(&self) -> Value {
        serde_json::from_str(&self.get("/status").await.1).unwrap()
    }

    pub async fn team(&self, id: &str) -> Value {
        let s = self.status().await;
        s["teams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Waits until team `id` is converged.
    pub async fn converged(&self, id: &str) {
        eventually(15, &format!("team {id} converged"), || async {
            self.team(id).await["state"] == "converged"
        })
        .await;
    }

    /// Successful passes of `team` so far.
    pub async fn passes(&self, team: &str) -> f64 {
        let (_, m) = self.get("/metrics").await;
        let prefix = format!("flexsync_reconciles_total{{team=\"{team}\",result=\"success\"}}");
        m.lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// SIGTERM, then its exit status (which must come within 10 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGHUP: re-read and run every team now.
    pub fn hangup(&self) {
        self.signal("-HUP");
    }

    /// `kill SIGNAL PID` (`-TERM`, `-HUP`), which must succeed.
    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success(),
            "kill {signal} {pid}"
        );
    }
}

/// Polls `check` until it holds or `secs` pass.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Writes a declaration the way editors do (write, rename).
pub fn declare(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}
