//! A sandbox served by the real binary (`flexsync sandbox serve`, with its
//! /_sandbox/ endpoints) and a token from a real `flexsync login`: the
//! setting of the end-to-end tests.
#![allow(dead_code)] // each test crate uses a different part

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};

use serde_json::Value;

pub fn bin() -> PathBuf {
    PathBuf::from(assert_cmd::cargo::cargo_bin!("flexsync"))
}

pub fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// Asserts that stdout says each of `said`: one
/// `.stdout(predicates::str::contains(..))` each, in order.
pub trait Says {
    fn says(self, said: &[&str]) -> Self;
}

impl Says for assert_cmd::assert::Assert {
    #[track_caller] // a failure names the test's line
    fn says(mut self, said: &[&str]) -> Self {
        for s in said {
            self = self.stdout(predicates::str::contains(*s));
        }
        self
    }
}

/// A generous safety net: a hang fails the test instead of the whole run.
/// Nothing asserts how fast a command is.
pub const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs a command that must be refused: exit 1 (within the hang guard),
/// its stderr saying each of `said`.
pub trait Refused {
    fn refused(&mut self, said: &[&str]);
}

impl Refused for assert_cmd::Command {
    #[track_caller] // a failure names the test's line
    fn refused(&mut self, said: &[&str]) {
        let out = self.timeout(HANG_GUARD).assert().code(1);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        for s in said {
            assert!(stderr.contains(s), "stderr lacks {s:?}:\n{stderr}");
        }
    }
}

pub struct Served {
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub api_url: String,
    pub token_file: PathBuf,
    pub http: reqwest::Client,
    child: Child,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads lines until one contains `needle`.
pub fn line_with(reader: &mut impl BufRead, needle: &str) -> String {
    let mut line = String::new();
    for _ in 0..50 {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.contains(needle) {
            return line.trim().to_owned();
        }
    }
    panic!("no line with {needle:?}");
}

/// `flexsync sandbox serve` on `listen` with its state in `state`; returns the
/// process once it serves, and its API URL.
fn serve_sandbox(
    listen: &str,
    state: &std::path::Path,
    seed: Option<&std::path::Path>,
) -> (Child, String) {
    let seed_args = seed.map(|s| vec![OsString::from("--seed"), s.as_os_str().to_owned()]);
    serve_sandbox_with(listen, state, &seed_args.unwrap_or_default())
}

/// The same, with more arguments for `sandbox serve`.
fn serve_sandbox_with(
    listen: &str,
    state: &std::path::Path,
    extra: &[OsString],
) -> (Child, String) {
    let mut cmd = StdCommand::new(bin());
    cmd.args(["sandbox", "serve", "--listen", listen, "--admin-endpoints"])
        .arg("--state")
        .arg(state)
        .args(extra);
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let line = line_with(&mut err, "Sandbox serving");
    let api_url = line.split_whitespace().nth(2).unwrap().to_owned();
    (child, api_url)
}

impl Served {
    pub async fn start() -> Served {
        Self::start_seeded(None).await
    }

    /// A sandbox started from `seed` (YAML, see docs/sandbox.md) instead of
    /// the bundled one.
    pub async fn start_seeded(seed: Option<&str>) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let seed_file = seed.map(|seed| {
            let path = dir.path().join("seed.yaml");
            std::fs::write(&path, seed).unwrap();
            path
        });
        let seed_args = seed_file.map(|f| vec![OsString::from("--seed"), f.into_os_string()]);
        Self::start_with(dir, &seed_args.unwrap_or_default()).await
    }

    /// A sandbox started from a snapshot of live teams (`--from-snapshot`).
    pub async fn start_from_snapshot(snapshot: &Path) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let args = [
            OsString::from("--from-snapshot"),
            snapshot.as_os_str().to_owned(),
        ];
        Self::start_with(dir, &args).await
    }

    /// Serves a sandbox with its state in `dir`, `sandbox serve` given `args`,
    /// and logs in to it.
    async fn start_with(dir: tempfile::TempDir, args: &[OsString]) -> Served {
        let (child, api_url) =
            serve_sandbox_with("127.0.0.1:0", &dir.path().join("state.json"), args);
        let base = api_url.trim_end_matches("/team-admin/v1").to_owned();
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let served = Served {
            token_file: dir.path().join("token.json"),
            dir,
            base,
            api_url,
            http,
            child,
        };
        served.login().await;
        served
    }

    /// Kills the sandbox at once (SIGKILL), as a crash would; its state file
    /// holds every change it answered.
    pub fn kill_sandbox(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Serves the sandbox again on the same port and state file.
    pub fn restart_sandbox(&mut self) {
        let listen = self.base.trim_start_matches("http://").to_owned();
        let (child, api_url) = serve_sandbox(&listen, &self.dir.path().join("state.json"), None);
        assert_eq!(api_url, self.api_url);
        self.child = child;
    }

    /// Connection settings go in the environment: the flags belong to each
    /// connecting subcommand, which callers add after this.
    fn std_cmd(&self) -> StdCommand {
        let mut cmd = StdCommand::new(bin());
        cmd.current_dir(self.dir.path())
            .env("FLEXSYNC_API_URL", &self.api_url)
            .env("FLEXSYNC_CLIENT_ID", "flexsync-sandbox")
            .env("FLEXSYNC_TOKEN_FILE", &self.token_file)
            .env("FLEXSYNC_CLIENT_SECRET", "flexsync-sandbox-secret")
            .env_remove("FLEXSYNC_ACCESS_TOKEN")
            .env_remove("RUST_LOG");
        cmd
    }

    /// The same as a plain `std::process::Command`, for custom stdio.
    #[allow(dead_code)]
    pub fn command(&self) -> StdCommand {
        self.std_cmd()
    }

    /// `flexsync` pointed at this sandbox, run in its directory.
    pub fn cmd(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.std_cmd())
    }

    /// `flexsync apply --auto-approve --audit-log audit.jsonl`, then
    /// `extra` (flags, and the declaration or saved plan).
    pub fn apply(&self, extra: &[&str]) -> assert_cmd::Command {
        let mut cmd = self.cmd();
        cmd.args(["apply", "--auto-approve", "--audit-log", "audit.jsonl"])
            .args(extra);
        cmd
    }

    /// The same, as a child process to kill.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.std_cmd()
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    async fn login(&self) {
        self.login_into(&self.token_file).await;
    }

    /// Signs in through the sandbox's OAuth pages, saving into `token_file`.
    pub async fn login_into(&self, token_file: &Path) {
        let mut login = StdCommand::new(bin())
            .current_dir(self.dir.path())
            .args([
                "login",
                "--no-browser",
                "--callback-url",
                "http://127.0.0.1:0/callback",
                "--api-url",
                &self.api_url,
                "--client-id",
                "flexsync-sandbox",
                "--token-file",
            ])
            .arg(token_file)
            .env("FLEXSYNC_CLIENT_SECRET", "flexsync-sandbox-secret")
            .env_remove("FLEXSYNC_ACCESS_TOKEN")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(login.stderr.take().unwrap());
        let url = line_with(&mut err, "/authentication/v2/authorize");
        let resp = self.http.get(&url).send().await.unwrap();
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        self.http.get(&location).send().await.unwrap();
        assert!(login.wait().unwrap().success());
    }

    /// Someone signs in again elsewhere (into `fresh-token.json`) and
    /// installs that login with `flexsync login --from-file`.
    pub async fn login_again(&self) {
        let fresh = self.path("fresh-token.json");
        self.login_into(&fresh).await;
        self.cmd()
            .args(["login", "--from-file"])
            .arg(&fresh)
            .assert()
            .success();
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/_sandbox{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    pub async fn faults(&self, faults: Value) {
        self.admin(reqwest::Method::PUT, "/faults", Some(faults))
            .await;
    }

    pub async fn invitations(&self, team: &str, email: &str) -> u64 {
        let v = self.admin(reqwest::Method::GET, "/invitations", None).await;
        v[team][email].as_u64().unwrap_or(0)
    }

    /// Every line of the audit log, intents included.
    pub fn audit_all(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The audit log's outcome lines: one per change attempted or skipped.
    pub fn audit_lines(&self) -> Vec<Value> {
        self.audit_all()
            .into_iter()
            .filter(|l| l["result"] != "started")
            .collect()
    }

    /// `flexsync snapshot --team TEAM`, which must succeed: the team as
    /// the API lists it now, as JSON text.
    pub fn live_snapshot(&self, team: &str) -> String {
        let out = self
            .cmd()
            .args(["snapshot", "--team", team])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "snapshot --team {team}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A new, empty `teams/` directory for declarations.
    pub fn teams_dir(&self) -> PathBuf {
        let dir = self.path("teams");
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    /// Moves the sandbox's clock forward (tokens expire, windows pass).
    pub async fn advance(&self, seconds: i64) {
        self.admin(
            reqwest::Method::POST,
            "/clock",
            Some(serde_json::json!({ "advanceSeconds": seconds })),
        )
        .await;
    }
}
