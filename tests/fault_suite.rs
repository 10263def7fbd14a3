//! The fault suite (issue 10): the binary against a served sandbox under
//! every fault we promise to survive, each followed by one rerun without
//! faults, and measured from the sandbox's own records, never from
//! flexsync's report.
//!
//! The scenarios run side by side (each with its own sandbox, token file,
//! budget directory and audit log): most of their time is waiting — for
//! latency, backoff, or the next UTC minute after a 429 — so running them in
//! turn would only add those waits up. The table is printed at the end
//! (`cargo test --test fault_suite -- --nocapture`), then every count is
//! asserted to be zero.
//!
//! What is measured, per scenario:
//! - **needed**: the changes `plan --format json` lists before the fault.
//! - **made**: the changes `/_sandbox/changes` records as made through the
//!   API (an invitation, an assignment made or removed); **Δ** counts the
//!   writes made but not needed plus those needed but not made.
//! - **dup inv**: invitations beyond the first per email
//!   (`/_sandbox/invitations`).
//! - **unint unasg**: removals of an assignment the declaration declares, or
//!   of a protected person.
//! - **self 429**: 429s the sandbox's limiters sent (`/_sandbox/stats`);
//!   the storm's forced 429s are counted apart. **over 55**: calls beyond
//!   flexsync's share of a team's busiest minute (60 less the reserve of 5).
//!   The concurrent scenarios switch the sandbox's rate headers off, so only
//!   the budget shared between processes can keep these at zero.
//! - **audit**: made writes with a `done` outcome line, over writes made;
//!   **audit Δ** adds made writes lacking one (except a write in flight when
//!   its process was killed: it has its intent line) and outcome lines that
//!   claim a change the sandbox did not make. **no intent**: made writes
//!   without an intent line.
//! - **panics**: flexsync processes that exited 101 or said "panicked".
//! - **spent refresh**: refresh tokens the sandbox refused because they were
//!   already spent (or unknown): a lockout, or a narrow escape from one.
//! - **failed runs**: runs that had to succeed and did not (the rerun
//!   always; the fault run when the fault leaves nothing to fail).
//! - **conv**: `plan --detailed-exitcode` exits 0 after the one rerun.

mod served;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use served::{Served, example};

/// Calls per team and minute flexsync may take: the limit, 60, minus the
/// default `--rate-reserve`, 5, left to the people and tools sharing it.
const BUDGET: u64 = 55;

/// Longest any one flexsync process may take. A 429 makes flexsync wait for
/// the next UTC minute, and a run may need the window after that too.
const RUN_DEADLINE: Duration = Duration::from_secs(150);

const ENGINEERING: &str = "100001";
const MANUFACTURING: &str = "100002";
const PS: &str = "prod_flex_platform";
const ACAD: &str = "prod_acad_premium";
const FUSION: &str = "prod_fusion";

/// Members of Manufacturing that get Platform Services (member001 has it).
const PS_MEMBERS: std::ops::RangeInclusive<u32> = 1..=20;
/// People without an account, invited into Manufacturing.
const NEW_HIRES: u32 = 4;
/// Given Platform Services behind flexsync's back: 30 and 31 are pruned,
/// 32 is protected.
const DRIFTED: [u32; 3] = [30, 31, 32];
const PROTECTED_MEMBER: u32 = 32;

fn member(n: u32) -> String {
    format!("member{n:03}.100002@example.com")
}

fn member_id(n: u32) -> String {
    format!("US100002{n:05}")
}

fn new_hire(n: u32) -> String {
    format!("newhire{n:02}@example.com")
}

/// Manufacturing's declaration: 2 unassignments, 4 invitations and 24
/// assignments; with examples/full.yaml's 6 for Engineering, 36 writes on
/// two teams applied in parallel, enough for faults to land mid-apply.
fn manufacturing_yaml() -> String {
    let mut users = String::from("  - { email: alice@example.com, products: [ps] }\n");
    for n in PS_MEMBERS {
        let products = match n {
            2 | 3 => "[ps, fusion]",
            _ => "[ps]",
        };
        users.push_str(&format!(
            "  - {{ email: {}, products: {products} }}\n",
            member(n)
        ));
    }
    for n in 1..=NEW_HIRES {
        users.push_str(&format!(
            "  - {{ email: {}, firstName: New, lastName: Hire{n}, products: [ps] }}\n",
            new_hire(n)
        ));
    }
    format!(
        r#"version: 1
team: {{ id: "{MANUFACTURING}", name: Example Manufacturing }}
products:
  ps: {{ productName: "Autodesk Flex - Platform Services" }}
  fusion: {{ productId: {FUSION} }}
users:
{users}policy:
  prune: true
  protect: [{}]
  maxUnassign: 5
"#,
        member(PROTECTED_MEMBER)
    )
}

/// What the declarations declare and whom they protect: written out by
/// hand, so the check does not lean on flexsync's reading of them.
struct Declared {
    /// (team, email, product id)
    pairs: BTreeSet<(String, String, String)>,
    /// (team, email)
    protected: BTreeSet<(String, String)>,
}

fn declared() -> Declared {
    let mut pairs = BTreeSet::new();
    let mut add = |team: &str, email: &str, product: &str| {
        pairs.insert((team.to_owned(), email.to_owned(), product.to_owned()));
    };
    // examples/full.yaml
    for email in ["alice@example.com", "erin@example.com", "grace@example.com"] {
        add(ENGINEERING, email, PS);
    }
    add(ENGINEERING, "frank@contractor.example.net", PS);
    for email in [
        "alice@example.com",
        "carol@example.com",
        "frank@contractor.example.net",
    ] {
        add(ENGINEERING, email, ACAD);
    }
    add(MANUFACTURING, "alice@example.com", PS);
    for n in PS_MEMBERS {
        add(MANUFACTURING, &member(n), PS);
    }
    add(MANUFACTURING, &member(2), FUSION);
    add(MANUFACTURING, &member(3), FUSION);
    for n in 1..=NEW_HIRES {
        add(MANUFACTURING, &new_hire(n), PS);
    }
    let protected = BTreeSet::from([
        (ENGINEERING.to_owned(), "dave@example.com".to_owned()),
        (MANUFACTURING.to_owned(), member(PROTECTED_MEMBER)),
    ]);
    Declared { pairs, protected }
}

/// A write, as plans, audit lines and the sandbox's change log name it:
/// team, action, email, product id ("" for an invitation).
type Key = (String, String, String, String);

fn counts<'a>(keys: impl IntoIterator<Item = &'a Key>) -> BTreeMap<&'a Key, usize> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k).or_default() += 1;
    }
    m
}

// ---------- processes ----------

/// A flexsync process whose output is drained as it comes, so it never
/// blocks on a full pipe and we can watch its log.
struct Proc {
    what: String,
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// How a flexsync process ended.
struct Finished {
    what: String,
    /// `None`: killed by a signal (by us).
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn panicked(&self) -> bool {
        self.code == Some(101) || self.stderr.contains("panicked")
    }

    fn summary(&self) -> String {
        let ended = match self.code {
            Some(c) => format!("{} exit {c}", self.what),
            None => format!("{} killed", self.what),
        };
        // What the fault did to it, from its own log: evidence the
        // scenario exercised what it names.
        let seen: Vec<String> = [
            ("request failed", "transport errors"),
            ("server error; retrying", "5xx retried"),
            ("HTTP 429", "429s"),
            ("rate budget spent", "budget waits"),
            ("access token refreshed", "refreshed tokens"),
            (
                "using the tokens another flexsync process saved",
                "took another's tokens",
            ),
        ]
        .iter()
        .filter_map(|(needle, label)| {
            let n = self.stderr.matches(needle).count();
            (n > 0).then(|| format!("{n} {label}"))
        })
        .collect();
        if seen.is_empty() {
            ended
        } else {
            format!("{ended} ({})", seen.join(", "))
        }
    }
}

fn drain(mut from: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let sink = Arc::new(Mutex::new(Vec::new()));
    let to = sink.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            to.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    sink
}

impl Drop for Proc {
    /// A scenario that fails half-way leaves no process behind (a no-op
    /// for one already reaped).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn(s: &Served, what: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = s.command();
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        Proc {
            what: what.to_owned(),
            child,
            stdout,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits for the process to end by itself (polling, so the runtime's
    /// threads stay free for the other scenarios).
    async fn wait(mut self) -> Finished {
        let deadline = Instant::now() + RUN_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return self.finished(status.code());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not finish within {RUN_DEADLINE:?}: {}",
                    self.what,
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `kill -9`.
    fn kill(mut self) -> Finished {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        self.finished(status.code())
    }

    /// `kill -TERM`, then waits for the process to stop.
    async fn terminate(self) -> Finished {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM {}", self.what);
        self.wait().await
    }

    fn finished(&mut self, code: Option<i32>) -> Finished {
        // The drain threads end with the pipes; give them a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Arc::strong_count(&self.stderr) > 1 || Arc::strong_count(&self.stdout) > 1 {
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let text =
            |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
        Finished {
            what: self.what.clone(),
            code,
            stdout: text(&self.stdout),
            stderr: text(&self.stderr),
        }
    }
}

/// Polls `check` every 25 ms until it holds; panics at the deadline.
async fn until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------- one scenario ----------

/// One scenario's sandbox, declaration and record of what ran.
struct Scenario {
    s: Served,
    decl: PathBuf,
    planned: Vec<Key>,
    /// Every flexsync process that ran, for panics.
    runs: Vec<Finished>,
    /// Runs that had to succeed and did not, and why.
    failures: Vec<String>,
    /// How many audit lines there were when each `kill -9` of a flexsync
    /// process landed (each may leave a write per team in flight: an intent
    /// line without an outcome).
    kill_marks: Vec<usize>,
    /// `/_sandbox/stats` of sandbox processes that were killed (a restart
    /// starts the counters afresh).
    earlier_stats: Vec<Value>,
    notes: Vec<String>,
    started: Instant,
}

const AUDIT: &str = "audit.jsonl";

impl Scenario {
    /// A served sandbox with drift on Manufacturing, the declarations, and
    /// the plan for them (what is needed).
    async fn prepare() -> Scenario {
        let started = Instant::now();
        let s = Served::start().await;
        for n in DRIFTED {
            s.admin(
                Method::POST,
                &format!("/teams/{MANUFACTURING}/assignments"),
                Some(json!({ "userId": member_id(n), "productId": PS })),
            )
            .await;
        }
        let decl = s.path("teams");
        std::fs::create_dir(&decl).unwrap();
        std::fs::copy(example("full.yaml"), decl.join("engineering.yaml")).unwrap();
        std::fs::write(decl.join("manufacturing.yaml"), manufacturing_yaml()).unwrap();
        let mut sc = Scenario {
            s,
            decl,
            planned: Vec::new(),
            runs: Vec::new(),
            failures: Vec::new(),
            kill_marks: Vec::new(),
            earlier_stats: Vec::new(),
            notes: Vec::new(),
            started,
        };
        let decl = sc.decl_arg();
        let plan = sc
            .run("plan", &["plan", "--format", "json", &decl], true)
            .await
            .stdout
            .clone();
        let v: Value = serde_json::from_str(&plan).unwrap();
        for team in v["teams"].as_array().unwrap() {
            for c in team["changes"].as_array().unwrap() {
                sc.planned.push((
                    team["id"].as_str().unwrap().to_owned(),
                    c["action"].as_str().unwrap().to_owned(),
                    c["email"].as_str().unwrap().to_lowercase(),
                    c["product"]["id"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
        // 36 today; enough that faults land mid-apply.
        assert!(sc.planned.len() >= 30, "too few changes to test: {v:#}");
        sc
    }

    fn decl_arg(&self) -> String {
        self.decl.to_str().unwrap().to_owned()
    }

    fn apply_args(&self) -> Vec<String> {
        ["apply", "--auto-approve", "--audit-log", AUDIT]
            .iter()
            .map(|a| a.to_string())
            .chain([self.decl_arg()])
            .collect()
    }

    fn spawn(&self, what: &str, args: &[String]) -> Proc {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::spawn(&self.s, what, &args, &[])
    }

    fn spawn_apply(&self, what: &str, extra: &[&str]) -> Proc {
        let mut args = self.apply_args();
        let decl = args.pop().unwrap();
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push(decl);
        self.spawn(what, &args)
    }

    /// Records a fault-phase process in the notes, then as [`Self::record`].
    fn fault_run(&mut self, f: Finished, must_succeed: bool) {
        self.notes.push(f.summary());
        self.record(f, must_succeed);
    }

    /// Records a finished process; `must_succeed` ones count when they fail.
    fn record(&mut self, f: Finished, must_succeed: bool) -> &Finished {
        if must_succeed && f.code != Some(0) {
            self.failures.push(format!(
                "{}: {}",
                f.summary(),
                f.stderr.lines().last().unwrap_or("")
            ));
        }
        self.runs.push(f);
        self.runs.last().unwrap()
    }

    async fn run(&mut self, what: &str, args: &[&str], must_succeed: bool) -> &Finished {
        let f = Proc::spawn(&self.s, what, args, &[]).wait().await;
        self.record(f, must_succeed)
    }

    async fn faults(&self, faults: Value) {
        self.s.faults(faults).await;
    }

    /// Outcome lines in the audit log so far.
    fn outcomes(&self) -> usize {
        self.s.audit_lines().len()
    }

    async fn stats(&self) -> Value {
        self.s.admin(Method::GET, "/stats", None).await
    }

    /// The rerun without faults, the convergence check, and the measures.
    async fn finish(mut self, name: &'static str) -> Row {
        self.faults(json!({})).await;
        self.s
            .admin(Method::PUT, "/settings", Some(json!({ "quirks": {} })))
            .await;
        let apply: Vec<String> = self.apply_args();
        let apply: Vec<&str> = apply.iter().map(String::as_str).collect();
        let f = Proc::spawn(&self.s, "rerun", &apply, &[]).wait().await;
        self.fault_run(f, true);
        let decl = self.decl_arg();
        let converged = self
            .run("plan", &["plan", "--detailed-exitcode", &decl], false)
            .await
            .code
            == Some(0);
        self.measure(name, converged).await
    }

    async fn measure(self, name: &'static str, converged: bool) -> Row {
        let s = &self.s;
        let changes = s.admin(Method::GET, "/changes", None).await;
        let made: Vec<Key> = changes
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["by"] == "api")
            .map(|c| {
                (
                    c["team"].as_str().unwrap().to_owned(),
                    c["action"].as_str().unwrap().to_owned(),
                    c["email"].as_str().unwrap().to_owned(),
                    c["productId"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let made_n = counts(&made);
        let planned_n = counts(&self.planned);
        let write_delta: usize = made_n
            .keys()
            .chain(planned_n.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|k| {
                let (m, p) = (
                    made_n.get(k).copied().unwrap_or(0),
                    planned_n.get(k).copied().unwrap_or(0),
                );
                m.abs_diff(p)
            })
            .sum();

        let invitations = s.admin(Method::GET, "/invitations", None).await;
        let dup_invites: u64 = invitations
            .as_object()
            .unwrap()
            .values()
            .flat_map(|emails| emails.as_object().unwrap().values())
            .map(|n| n.as_u64().unwrap().saturating_sub(1))
            .sum();

        let Declared { pairs, protected } = declared();
        let unintended = made
            .iter()
            .filter(|(team, action, email, product)| {
                action == "unassign"
                    && (pairs.contains(&(team.clone(), email.clone(), product.clone()))
                        || protected.contains(&(team.clone(), email.clone())))
            })
            .count();

        let mut all_stats = self.earlier_stats.clone();
        all_stats.push(self.stats().await);
        let sum = |field: &str| -> u64 {
            all_stats
                .iter()
                .map(|st| match &st[field] {
                    Value::Object(m) => m.values().filter_map(Value::as_u64).sum(),
                    v => v.as_u64().unwrap_or(0),
                })
                .sum()
        };
        let self_429 = sum("rateLimited") + sum("rateLimitedListTeams");
        let busiest = all_stats
            .iter()
            .filter_map(|st| st["busiestWindow"].as_object())
            .flat_map(|m| m.values().filter_map(Value::as_u64))
            .max()
            .unwrap_or(0);
        let over_budget = busiest.saturating_sub(BUDGET);
        let spent_refresh = sum("refreshRefused");

        // The audit log against the writes made.
        let lines = s.audit_all();
        let key_of = |l: &Value| -> Key {
            (
                l["team"].as_str().unwrap().to_owned(),
                l["action"].as_str().unwrap().to_owned(),
                l["user"].as_str().unwrap().to_owned(),
                l["product"].as_str().unwrap_or("").to_owned(),
            )
        };
        let intents: Vec<Key> = lines
            .iter()
            .filter(|l| l["result"] == "started")
            .map(key_of)
            .collect();
        let done: Vec<Key> = lines
            .iter()
            .filter(|l| l["result"] == "done")
            .map(key_of)
            .collect();
        // Outcome lines whose answer says the write changed something.
        let claims: Vec<Key> = lines
            .iter()
            .filter(|l| {
                l["result"] == "done"
                    && matches!(
                        l["note"].as_str(),
                        Some("invited" | "assigned" | "unassigned")
                    )
            })
            .map(key_of)
            .collect();
        let finished_ids: BTreeSet<&str> = lines
            .iter()
            .filter(|l| l["result"] != "started")
            .filter_map(|l| l["writeId"].as_str())
            .collect();
        // The writes a killed process had in flight: within a team writes
        // go one at a time, so at most its last intent line per team, and
        // only if no outcome line follows it.
        let mut in_flight: Vec<Key> = Vec::new();
        for &mark in &self.kill_marks {
            let mut last_per_team: BTreeMap<&str, &Value> = BTreeMap::new();
            for l in lines[..mark].iter().filter(|l| l["result"] == "started") {
                last_per_team.insert(l["team"].as_str().unwrap(), l);
            }
            in_flight.extend(
                last_per_team
                    .values()
                    .filter(|l| !finished_ids.contains(l["writeId"].as_str().unwrap_or("")))
                    .map(|l| key_of(l)),
            );
        }
        let (intents_n, done_n, claims_n) = (counts(&intents), counts(&done), counts(&claims));
        let get = |m: &BTreeMap<&Key, usize>, k: &Key| m.get(k).copied().unwrap_or(0);
        let mut no_intent = 0;
        let mut lacking: BTreeMap<&Key, usize> = BTreeMap::new();
        for (k, &m) in &made_n {
            no_intent += m.saturating_sub(get(&intents_n, k));
            lacking.insert(k, m.saturating_sub(get(&done_n, k)));
        }
        let without_outcome: usize = lacking.values().sum();
        let mut excused = 0;
        for k in &in_flight {
            if let Some(n) = lacking.get_mut(k).filter(|n| **n > 0) {
                *n -= 1;
                excused += 1;
            }
        }
        let false_claims: usize = claims_n
            .iter()
            .map(|(k, &c)| c.saturating_sub(get(&made_n, k)))
            .sum();
        let audit_delta = without_outcome - excused + false_claims;

        let panics = self.runs.iter().filter(|r| r.panicked()).count();
        let mut notes = self.notes;
        // Writes sent that found the change already made (by a racing
        // process, or before a lost answer): evidence of overlap.
        let no_ops = lines
            .iter()
            .filter(|l| {
                matches!(
                    l["note"].as_str(),
                    Some("already a member" | "already assigned" | "was not assigned")
                )
            })
            .count();
        if no_ops > 0 {
            notes.push(format!("{no_ops} write(s) found done already"));
        }
        notes.push(format!(
            "busiest minute: {busiest} calls; wall time {:.1}s",
            self.started.elapsed().as_secs_f64()
        ));
        if !self.kill_marks.is_empty() {
            notes.push(format!(
                "{} write(s) in flight at the kill, {excused} of them made (intent line only)",
                in_flight.len()
            ));
        }
        let mut failed = self.failures;
        for r in self.runs.iter().filter(|r| r.panicked()) {
            failed.push(format!("PANIC in {}: {}", r.what, r.stderr));
        }
        Row {
            name,
            needed: self.planned.len(),
            made: made.len(),
            write_delta,
            dup_invites,
            unintended,
            self_429,
            over_budget,
            audited: made.len() - without_outcome + excused,
            audit_delta,
            no_intent,
            panics,
            spent_refresh,
            failed_runs: failed,
            converged,
            notes,
            error: None,
        }
    }
}

// ---------- the table ----------

struct Row {
    name: &'static str,
    needed: usize,
    made: usize,
    write_delta: usize,
    dup_invites: u64,
    unintended: usize,
    self_429: u64,
    over_budget: u64,
    audited: usize,
    audit_delta: usize,
    no_intent: usize,
    panics: usize,
    spent_refresh: u64,
    failed_runs: Vec<String>,
    converged: bool,
    notes: Vec<String>,
    /// The scenario itself broke (a harness assertion, a deadline).
    error: Option<String>,
}

impl Row {
    fn broken(name: &'static str, error: String) -> Row {
        Row {
            name,
            needed: 0,
            made: 0,
            write_delta: 0,
            dup_invites: 0,
            unintended: 0,
            self_429: 0,
            over_budget: 0,
            audited: 0,
            audit_delta: 0,
            no_intent: 0,
            panics: 0,
            spent_refresh: 0,
            failed_runs: Vec::new(),
            converged: false,
            notes: Vec::new(),
            error: Some(error),
        }
    }

    fn clean(&self) -> bool {
        self.error.is_none()
            && self.write_delta == 0
            && self.needed == self.made
            && self.dup_invites == 0
            && self.unintended == 0
            && self.self_429 == 0
            && self.over_budget == 0
            && self.audit_delta == 0
            && self.audited == self.made
            && self.no_intent == 0
            && self.panics == 0
            && self.spent_refresh == 0
            && self.failed_runs.is_empty()
            && self.converged
    }
}

fn table(rows: &[Row]) -> String {
    let header = [
        "scenario",
        "needed",
        "made",
        "Δ",
        "dup inv",
        "unint unasg",
        "self 429",
        "over 55",
        "audit",
        "audit Δ",
        "no intent",
        "panics",
        "spent refresh",
        "failed runs",
        "conv",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            if let Some(e) = &r.error {
                let mut v = vec![r.name.to_owned(), format!("BROKEN: {e}")];
                v.resize(header.len(), String::new());
                return v;
            }
            vec![
                r.name.to_owned(),
                r.needed.to_string(),
                r.made.to_string(),
                r.write_delta.to_string(),
                r.dup_invites.to_string(),
                r.unintended.to_string(),
                r.self_429.to_string(),
                r.over_budget.to_string(),
                format!("{}/{}", r.audited, r.made),
                r.audit_delta.to_string(),
                r.no_intent.to_string(),
                r.panics.to_string(),
                r.spent_refresh.to_string(),
                r.failed_runs.len().to_string(),
                if r.converged { "yes" } else { "NO" }.to_owned(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .filter(|c| !c[1].starts_with("BROKEN"))
                .map(|c| c[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap()
        })
        .collect();
    let line = |c: &[String]| -> String {
        if c[1].starts_with("BROKEN") {
            return format!("{:<w$}  {}", c[0], c[1], w = widths[0]);
        }
        c.iter()
            .enumerate()
            .map(|(i, v)| {
                if i == 0 {
                    format!("{v:<w$}", w = widths[i])
                } else {
                    format!("{v:>w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = String::new();
    out.push_str(&line(&header.map(String::from)));
    out.push('\n');
    out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
    out.push('\n');
    for c in &cells {
        out.push_str(&line(c));
        out.push('\n');
    }
    for r in rows {
        for n in r.notes.iter().chain(&r.failed_runs) {
            out.push_str(&format!("  {}: {n}\n", r.name));
        }
    }
    out
}

// ---------- the scenarios ----------

/// 500s and 503s on writes, one retry each: some writes fail, the rerun
/// makes them.
async fn server_errors() -> Row {
    let mut sc = Scenario::prepare().await;
    sc.faults(json!({ "error500Share": 0.3, "error503Share": 0.3, "writesOnly": true }))
        .await;
    let f = sc
        .spawn_apply("apply", &["--max-attempts", "2"])
        .wait()
        .await;
    sc.fault_run(f, false);
    sc.finish("injected 5xx").await
}

/// Connections closed without an answer, reads and writes alike: some
/// before the request is handled, some after (the write is made, the answer
/// lost, so the retry finds it done).
async fn dropped_connections() -> Row {
    applied_under(json!({ "dropShare": 0.15, "dropAfterShare": 0.15 }))
        .await
        .finish("dropped connections")
        .await
}

/// A prepared scenario in which one apply ran under `faults` and had to
/// succeed (its fault run recorded).
async fn applied_under(faults: Value) -> Scenario {
    let mut sc = Scenario::prepare().await;
    sc.faults(faults).await;
    let f = sc.spawn_apply("apply", &[]).wait().await;
    sc.fault_run(f, true);
    sc
}

/// Every request slow, the token endpoint's too.
async fn latency() -> Row {
    applied_under(json!({ "latencyMs": 150, "includeOauth": true }))
        .await
        .finish("latency 150 ms")
        .await
}

/// Another integration drains the buckets: the next two writes (the teams
/// write in parallel) are refused; flexsync waits for the next window and
/// makes no 429 itself.
async fn storm_429() -> Row {
    let mut sc = applied_under(json!({ "forced429": 2, "writesOnly": true })).await;
    let forced = sc.stats().await["forced429"].as_u64().unwrap();
    sc.notes.push(format!("{forced} forced 429(s) sent"));
    assert_eq!(forced, 2, "the storm did not reach flexsync");
    sc.finish("429 storm").await
}

/// The sandbox is killed mid-apply and served again from its state file on
/// the same port: the apply waits (retries) or fails cleanly.
async fn sandbox_restart() -> Row {
    let mut sc = Scenario::prepare().await;
    sc.faults(json!({ "latencyMs": 100, "writesOnly": true }))
        .await;
    let apply = sc.spawn_apply("apply", &[]);
    until(60, "10 writes before the restart", || async {
        sc.outcomes() >= 10
    })
    .await;
    // The counters die with the process: read them just before.
    let stats = sc.stats().await;
    sc.earlier_stats.push(stats);
    sc.s.kill_sandbox();
    let at_kill = sc.outcomes();
    sc.s.restart_sandbox();
    let f = apply.wait().await;
    sc.notes
        .push(format!("sandbox killed after {at_kill} outcome line(s)"));
    sc.fault_run(f, false);
    sc.finish("sandbox restart").await
}

/// `kill -9` of the apply between (or during) writes.
async fn killed_apply() -> Row {
    let mut sc = Scenario::prepare().await;
    sc.faults(json!({ "latencyMs": 100, "writesOnly": true }))
        .await;
    let apply = sc.spawn_apply("apply", &[]);
    // Mid-write: its intent line is out, its answer (100 ms off) is not.
    until(60, "10 writes, then one in flight", || async {
        let all = sc.s.audit_all();
        let outcomes = all.iter().filter(|l| l["result"] != "started").count();
        outcomes >= 10 && all.last().is_some_and(|l| l["result"] == "started")
    })
    .await;
    let f = apply.kill();
    sc.kill_marks.push(sc.s.audit_all().len());
    let at_kill = sc.outcomes();
    assert!(
        at_kill < sc.planned.len(),
        "the apply finished before the kill"
    );
    sc.notes
        .push(format!("killed after {at_kill} outcome line(s)"));
    sc.fault_run(f, false);
    sc.finish("kill -9 mid-apply").await
}

/// Switches the sandbox's `X-RateLimit-*` headers off: with them, each
/// process learns the others' spending from every answer, and only sharing
/// the count keeps several processes from a 429 without them.
async fn no_rate_headers(sc: &Scenario) {
    sc.s.admin(
        Method::PUT,
        "/settings",
        Some(json!({ "quirks": { "rateLimitHeaders": false } })),
    )
    .await;
}

/// Two applies of the same declaration at once, on one token file: they
/// share the budget (up to 68 calls on Manufacturing, more than one window
/// holds), learning nothing from rate headers.
async fn two_appliers() -> Row {
    let mut sc = Scenario::prepare().await;
    no_rate_headers(&sc).await;
    let a = sc.spawn_apply("apply A", &[]);
    let b = sc.spawn_apply("apply B", &[]);
    let (a, b) = (a.wait().await, b.wait().await);
    sc.fault_run(a, true);
    sc.fault_run(b, true);
    sc.finish("two appliers at once").await
}

/// `flexsync run` starts on the declaration while someone applies it by
/// hand, without rate headers (see [`no_rate_headers`]).
async fn service_beside_apply() -> Row {
    let mut sc = Scenario::prepare().await;
    no_rate_headers(&sc).await;
    let decl = sc.decl_arg();
    let service = Proc::spawn(
        &sc.s,
        "run",
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "10m",
            "--removal-delay",
            "0s",
            "--audit-log",
            AUDIT,
            &decl,
        ],
        &[("RUST_LOG", "info")],
    );
    let apply = sc.spawn_apply("apply", &[]);
    let mut addr = String::new();
    until(20, "the service listens", || {
        let text = service.stderr();
        if let Some(i) = text.find("addr=") {
            addr = text[i + 5..].split_whitespace().next().unwrap().to_owned();
        }
        let found = !addr.is_empty();
        async move { found }
    })
    .await;
    let f = apply.wait().await;
    sc.fault_run(f, true);
    // Its first pass over both teams is over (it may have waited for the
    // budget the apply spent).
    let status = format!("http://{addr}/status");
    let http = sc.s.http.clone();
    let states = Arc::new(Mutex::new(Vec::<String>::new()));
    until(120, "the service's first pass", || {
        let (http, status, states) = (http.clone(), status.clone(), states.clone());
        async move {
            let Ok(r) = http.get(&status).send().await else {
                return false;
            };
            let v: Value = r.json().await.unwrap_or(Value::Null);
            let now: Vec<String> = v["teams"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| format!("{} {}", t["id"].as_str().unwrap_or("?"), t["state"]))
                .collect();
            let done = now.len() == 2 && !now.iter().any(|t| t.contains("pending"));
            *states.lock().unwrap() = now;
            done
        }
    })
    .await;
    let states = states.lock().unwrap().join(", ");
    if states.contains("failing") || states.contains("degraded") {
        sc.failures
            .push(format!("the service's first pass: {states}"));
    }
    sc.notes.push(format!("service's first pass: {states}"));
    let f = service.terminate().await;
    sc.fault_run(f, true);
    sc.finish("service beside apply").await
}

/// `flexsync apply … | head -0`: nobody reads stdout or stderr.
async fn closed_pipes() -> Row {
    let mut sc = Scenario::prepare().await;
    let args = sc.apply_args();
    let mut child =
        sc.s.command()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let deadline = Instant::now() + RUN_DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("apply with closed pipes hung");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    sc.record(
        Finished {
            what: "apply (closed pipes)".into(),
            code: status.code(),
            stdout: String::new(),
            stderr: String::new(),
        },
        true,
    );
    sc.finish("closed output pipes").await
}

/// The access token expires (the sandbox's clock moves past it); two
/// processes on one token file both need new tokens at once: one refreshes,
/// the other adopts what it saved, and neither presents a spent refresh
/// token.
async fn token_rotated_by_another_process() -> Row {
    let mut sc = Scenario::prepare().await;
    let before = std::fs::read(&sc.s.token_file).unwrap();
    // 61 minutes: past the access token's hour, and whole minutes, so the
    // sandbox's rate windows stay aligned with flexsync's.
    sc.s.advance(3660).await;
    // Slow answers until the first refresh is through, so the second
    // process has surely sent the expired token too by then.
    sc.faults(json!({ "latencyMs": 1000, "includeOauth": true }))
        .await;
    let decl = sc.decl_arg();
    let apply = sc.spawn_apply("apply", &[]);
    let plan = sc.spawn("plan", &["plan".into(), decl]);
    until(60, "a refresh", || async {
        sc.stats().await["refreshed"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    sc.faults(json!({})).await;
    let (apply, plan) = (apply.wait().await, plan.wait().await);
    // Each needed new tokens: one refreshed, the other took what it saved.
    for p in [&apply, &plan] {
        assert!(
            p.stderr.contains("access token refreshed")
                || p.stderr
                    .contains("using the tokens another flexsync process saved"),
            "{} never renewed its tokens: {}",
            p.what,
            p.stderr
        );
    }
    sc.fault_run(apply, true);
    sc.fault_run(plan, true);
    let refreshed = sc.stats().await["refreshed"].as_u64().unwrap();
    sc.notes.push(format!("{refreshed} refresh(es) granted"));
    assert_ne!(std::fs::read(&sc.s.token_file).unwrap(), before);
    sc.finish("token rotated by another").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn every_fault_leaves_a_converged_team_and_a_true_record() {
    let started = Instant::now();
    type Scen = std::pin::Pin<Box<dyn std::future::Future<Output = Row> + Send>>;
    let scenarios: Vec<(&'static str, Scen)> = vec![
        ("injected 5xx", Box::pin(server_errors())),
        ("dropped connections", Box::pin(dropped_connections())),
        ("latency 150 ms", Box::pin(latency())),
        ("429 storm", Box::pin(storm_429())),
        ("sandbox restart", Box::pin(sandbox_restart())),
        ("kill -9 mid-apply", Box::pin(killed_apply())),
        ("two appliers at once", Box::pin(two_appliers())),
        ("service beside apply", Box::pin(service_beside_apply())),
        ("closed output pipes", Box::pin(closed_pipes())),
        (
            "token rotated by another",
            Box::pin(token_rotated_by_another_process()),
        ),
    ];
    let handles: Vec<_> = scenarios
        .into_iter()
        .map(|(name, f)| (name, tokio::spawn(f)))
        .collect();
    let mut rows = Vec::new();
    for (name, h) in handles {
        rows.push(match h.await {
            Ok(row) => row,
            Err(e) => {
                let msg = match e.try_into_panic() {
                    Ok(p) => p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                Row::broken(name, msg)
            }
        });
    }
    println!(
        "\nfault suite: {} scenario(s) in {:.1}s\n{}",
        rows.len(),
        started.elapsed().as_secs_f64(),
        table(&rows)
    );
    let dirty: Vec<&str> = rows.iter().filter(|r| !r.clean()).map(|r| r.name).collect();
    assert!(
        dirty.is_empty(),
        "not all zero: {dirty:?}\n{}",
        table(&rows)
    );
}
