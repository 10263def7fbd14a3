//! The binary as users run it: exit codes, where messages go, and wording.

mod served;

use assert_cmd::Command;
use predicates::prelude::*;
use served::{HANG_GUARD, Refused, Says};

fn flexsync() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("flexsync"));
    cmd.env_remove("NO_COLOR");
    cmd
}

/// `flexsync plan DECLARATION --observed examples/snapshot.json`; callers add
/// the rest.
fn plan(declaration: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = flexsync();
    cmd.arg("plan")
        .arg(declaration)
        .args(["--observed", "examples/snapshot.json"]);
    cmd
}

/// Writes `design.yaml` in `dir`: team 100002 as examples/snapshot.json
/// has it, so that planning it changes nothing.
fn converged(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("design.yaml");
    std::fs::write(
        &path,
        "version: 1\nteam: { id: \"100002\" }\nproducts:\n  ps: { productId: prod_flex_platform }\nusers:\n  - { email: alice@example.com, products: [ps] }\n",
    )
    .unwrap();
    path
}

#[test]
fn every_example_is_valid() {
    for example in [
        "examples/platform-services.yaml",
        "examples/full.yaml",
        "examples/multi-team",
    ] {
        flexsync()
            .args(["validate", example])
            .assert()
            .success()
            .stdout(predicate::str::contains("valid"));
    }
}

#[test]
fn invalid_files_exit_1_and_name_file_line_and_column() {
    let cases = [
        (
            "unknown-field.yaml",
            "unknown-field.yaml:4:31: unknown field `product`",
        ),
        (
            "duplicate-key.yaml",
            "duplicate-key.yaml:5:3: duplicate mapping key: prune",
        ),
        ("wrong-type.yaml", "wrong-type.yaml:3:18:"),
        ("version.yaml", "version.yaml:1:10: unsupported version 2"),
    ];
    for (file, expected) in cases {
        flexsync()
            .args(["validate", &format!("tests/fixtures/invalid/{file}")])
            .assert()
            .code(1)
            .stdout("")
            .stderr(predicate::str::contains(expected));
    }
}

#[test]
fn all_semantic_errors_of_a_file_are_reported_at_once() {
    let out = flexsync()
        .args([
            "validate",
            "--format",
            "json",
            "tests/fixtures/invalid/semantic.yaml",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let found: Vec<(u64, u64, String)> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
                d["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        (4, 7, "has both productId and productName"),
        (7, 46, "unknown product alias `nope`"),
        (
            8,
            14,
            "user ada@example.com is declared twice in this document (first at tests/fixtures/invalid/semantic.yaml:7:14)",
        ),
        (9, 14, "invalid email \"not-an-email\""),
        (10, 52, "product `fusion` is listed twice"),
        (11, 24, "maxUnassign \"200%\" is more than 100%"),
        (11, 42, "invalid email \"owner@@example.com\""),
    ];
    for (line, column, text) in expect {
        assert!(
            found
                .iter()
                .any(|(l, c, m)| *l == line && *c == column && m.contains(text)),
            "missing {line}:{column} {text} in {found:#?}"
        );
    }
    assert_eq!(
        doc["diagnostics"][0]["file"],
        "tests/fixtures/invalid/semantic.yaml"
    );
    assert_eq!(doc["formatVersion"], 1);
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["diagnostics"][0]["severity"], "error");
}

#[test]
fn human_diagnostics_show_the_offending_line() {
    flexsync()
        .args(["validate", "tests/fixtures/invalid/unknown-field.yaml"])
        .refused(&[
            "  - { email: ada@example.com, product: [ps] }",
            "flexsync schema",
        ]);
}

#[test]
fn the_same_person_in_two_files_names_both_places() {
    flexsync()
        .args(["validate", "tests/fixtures/invalid/cross-file"])
        .refused(&[
            "cross-file/b.yaml:8:34: user ada@example.com is declared for team",
            "cross-file/a.yaml:6:14",
        ]);
}

#[test]
fn multi_document_files_declare_several_teams() {
    flexsync()
        .args(["validate", "tests/fixtures/multi-doc.yaml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 team(s), 2 user(s)"));
}

#[test]
fn hostile_files_get_a_clear_error_and_never_a_panic() {
    let cases = [
        ("alias-bomb.yaml", "too complex to be a declaration"),
        ("deep-nesting.yaml", "nested too deeply"),
        (
            "deep-block-nesting.yaml",
            "deep-block-nesting.yaml:5:5: unknown field `g`",
        ),
        ("latin1.yaml", "latin1.yaml:2:33: file is not UTF-8"),
        ("binary.yaml", "binary.yaml:3:1: file contains a NUL byte"),
        ("empty.yaml", "empty.yaml: file holds no YAML document"),
        ("only-comments.yaml", "file holds no YAML document"),
    ];
    for (file, expected) in cases {
        flexsync()
            .args(["validate", &format!("tests/fixtures/hostile/{file}")])
            .timeout(std::time::Duration::from_secs(30))
            .assert()
            .code(1)
            .stderr(predicate::str::contains(expected))
            .stderr(predicate::str::contains("panicked").not());
    }
}

#[test]
fn a_file_beyond_the_cap_is_refused_without_reading_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    // 40 MB of nothing, beyond any real team's declaration.
    sparse(&path, 40 * 1024 * 1024);
    flexsync()
        .args(["validate"])
        .arg(&path)
        .refused(&["file is larger than 32 MiB"]);
}

#[test]
fn one_file_may_declare_a_hundred_thousand_people() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    let mut text = String::from(
        "version: 1\nteam: { id: \"100001\" }\nproducts:\n  ps: { productId: ps }\nusers:\n",
    );
    for i in 0..100_000 {
        text.push_str(&format!(
            "  - {{ email: dev{i}@example.com, firstName: Dev, lastName: \"Number {i}\", products: [ps] }}\n"
        ));
    }
    assert!(text.len() > 8 * 1024 * 1024);
    std::fs::write(&path, text).unwrap();
    flexsync()
        .args(["validate"])
        .arg(&path)
        .assert()
        .success()
        .stdout(predicate::str::contains("1 team(s), 100000 user(s)"));
}

#[test]
fn a_missing_path_is_an_error_not_a_crash() {
    flexsync()
        .args(["validate", "no/such/dir"])
        .refused(&["no/such/dir: cannot read"]);
}

#[test]
fn plan_exit_codes_follow_terraform() {
    plan("examples/platform-services.yaml")
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "+ invite   ada@example.com (Ada Lovelace)",
        ));
    plan("examples/platform-services.yaml")
        .arg("--detailed-exitcode")
        .assert()
        .code(2);
    let dir = tempfile::tempdir().unwrap();
    plan(converged(dir.path()))
        .arg("--detailed-exitcode")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("No changes"));
    plan("tests/fixtures/invalid/version.yaml")
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "the declaration is invalid: 1 error(s)",
        ));
}

#[test]
fn plan_formats() {
    plan("examples/multi-team")
        .args(["--format", "markdown"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "### flexsync plan: 1 invite, 5 assignments",
        ));
    let out = plan("examples/multi-team")
        .args(["--format", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["formatVersion"], 1);
    assert_eq!(json["teams"][1]["id"], "100002");
    assert_eq!(json["teams"][0]["changes"][0]["action"], "invite");
    assert_eq!(json["teams"][1]["changes"][0]["action"], "assign");
    assert_eq!(json["teams"][1]["cost"]["applyCalls"], 2);
    assert_eq!(json["source"]["kind"], "snapshot");
}

#[test]
fn one_plan_in_two_formats() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("plan.json");
    plan("examples/multi-team")
        .args(["--format", "markdown", "--json-out"])
        .arg(&json)
        .assert()
        .success()
        .stdout(predicate::str::starts_with("### flexsync plan"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["summary"]["assign"], 5);
}

/// `--detailed-exitcode` and the JSON's `status` tell CI plainly whether a
/// pull request is blocked: 3 and "blocked" win over 2 and "changes".
#[test]
fn a_blocker_is_exit_code_3_and_status_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("plan.json");
    let plan = |files: &[&str], detailed: bool| {
        let mut cmd = flexsync();
        cmd.arg("plan")
            .args(files)
            .args(["--observed", "examples/snapshot.json"])
            .args(["--format", "markdown", "--json-out"])
            .arg(&json);
        if detailed {
            cmd.arg("--detailed-exitcode");
        }
        let code = cmd.output().unwrap().status.code();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        (code, v)
    };

    // Blockers, and changes that could still be made: blocked wins.
    let (code, v) = plan(&["tests/fixtures/blocked.yaml"], true);
    assert_eq!(code, Some(3));
    assert_eq!(v["status"], "blocked");
    assert_eq!(v["teams"][0]["status"], "blocked");
    assert!(v["summary"]["blockers"].as_u64().unwrap() > 0, "{v}");
    assert!(v["summary"]["assign"].as_u64().unwrap() > 0, "{v}");
    // Without the flag, a plan that was made exits 0 as before.
    assert_eq!(plan(&["tests/fixtures/blocked.yaml"], false).0, Some(0));

    // One team blocked, another only changing: the pull request is blocked,
    // and each team says which it is.
    let (code, v) = plan(
        &[
            "tests/fixtures/blocked.yaml",
            "examples/multi-team/manufacturing.yaml",
        ],
        true,
    );
    assert_eq!(code, Some(3));
    assert_eq!(v["status"], "blocked");
    assert_eq!(v["teams"][0]["status"], "blocked");
    assert_eq!(v["teams"][1]["id"], "100002");
    assert_eq!(v["teams"][1]["status"], "changes");

    let (code, v) = plan(&["examples/platform-services.yaml"], true);
    assert_eq!(code, Some(2));
    assert_eq!(v["status"], "changes");
    assert_eq!(v["summary"]["blockers"], 0);

    let converged = converged(dir.path());
    let (code, v) = plan(&[converged.to_str().unwrap()], true);
    assert_eq!(code, Some(0));
    assert_eq!(v["status"], "in_sync");
    assert_eq!(v["teams"][0]["status"], "in_sync");
}

#[test]
fn text_output_is_plain_when_piped() {
    plan("examples/full.yaml")
        .assert()
        .success()
        .stdout(predicate::str::contains("\u{1b}[").not());
}

#[test]
fn a_broken_snapshot_names_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.json");
    std::fs::write(
        &snap,
        "{\n  \"formatVersion\": 1,\n  \"teams\": [ { \"id\": 5 } ]\n}\n",
    )
    .unwrap();
    flexsync()
        .args(["plan", "examples/platform-services.yaml", "--observed"])
        .arg(&snap)
        .refused(&["snap.json:3:22: invalid type: integer `5`"]);
}

#[test]
fn schema_prints_draft_2020_12() {
    flexsync()
        .arg("schema")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "https://json-schema.org/draft/2020-12/schema",
        ));
}

#[test]
fn help_documents_every_flag() {
    let out = flexsync()
        .args(["plan", "--help"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(out).unwrap();
    for flag in ["--observed", "--format", "--detailed-exitcode"] {
        assert!(help.contains(flag), "{flag} missing from help");
    }
    // The exit-code contract CI relies on, in words (clap rewraps lines).
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("3 when the plan has a blocker"),
        "exit code 3 missing from help: {help}"
    );
}

#[test]
fn usage_errors_exit_1_not_the_changes_code() {
    for args in [
        &["--format", "xml", "--detailed-exitcode"][..],
        &["--rate-reserve", "100"],
        &["--max-unassign", "200%"],
    ] {
        plan("examples/full.yaml").args(args).assert().code(1);
    }
    flexsync().arg("frobnicate").assert().code(1);
    flexsync().arg("--help").assert().code(0);
    flexsync().arg("--version").assert().code(0);
}

#[test]
fn a_file_named_twice_is_read_once() {
    flexsync()
        .args([
            "validate",
            "examples/multi-team",
            "examples/multi-team/engineering.yaml",
            "./examples/multi-team/engineering.yaml",
        ])
        .assert()
        .success();
}

#[test]
fn max_unassign_errors_speak_the_users_language() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.yaml");
    std::fs::write(
        &file,
        "version: 1\nteam: { id: \"1\" }\npolicy: { maxUnassign: -3 }\n",
    )
    .unwrap();
    flexsync()
        .arg("validate")
        .arg(&file)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "a whole number (e.g. 5) or a percentage string",
        ))
        .stderr(predicate::str::contains("untagged").not());
}

#[test]
fn a_large_declaration_within_the_size_cap_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    let mut text = String::from(
        "version: 1\nteam: { id: \"100001\" }\nproducts:\n  ps: { productId: ps }\n  fu: { productId: fu }\nusers:\n",
    );
    for i in 0..50_000 {
        text.push_str(&format!(
            "  - {{ email: dev{i}@example.com, products: [ps, fu] }}\n"
        ));
    }
    assert!(text.len() < 4 * 1024 * 1024);
    std::fs::write(&path, text).unwrap();
    flexsync()
        .arg("validate")
        .arg(&path)
        .assert()
        .success()
        .stdout(predicate::str::contains("50000 user(s)"));
}

const GOOD: &str = "version: 1\nteam: { id: \"100001\" }\nusers:\n  - { email: ada@example.com }\n";

#[cfg(unix)]
fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[cfg(unix)]
#[test]
fn a_fifo_named_yaml_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.yaml"), GOOD).unwrap();
    let fifo = dir.path().join("pipe.yaml");
    mkfifo(&fifo);
    // In a directory: named with its kind, and the good file is still read.
    flexsync()
        .arg("validate")
        .arg(dir.path())
        .refused(&["pipe.yaml", "FIFO (named pipe), not a regular file"]);
    // Named explicitly, and through a symlink.
    let link = dir.path().join("link.yml");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    for path in [&fifo, &link] {
        flexsync()
            .arg("validate")
            .arg(path)
            .refused(&["FIFO (named pipe), not a regular file"]);
    }
}

#[cfg(unix)]
#[test]
fn a_socket_named_yaml_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.yaml"), GOOD).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("sock.yaml")).unwrap();
    flexsync()
        .arg("validate")
        .arg(dir.path())
        .refused(&["sock.yaml", "socket, not a regular file"]);
}

#[cfg(unix)]
#[test]
fn a_device_named_yaml_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // /dev/zero never ends; /dev/tty could block.
    let link = dir.path().join("zero.yaml");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    flexsync()
        .arg("validate")
        .arg(dir.path())
        .refused(&["character device, not a regular file"]);
}

#[cfg(unix)]
#[test]
fn symlink_loops_end_in_a_diagnostic_naming_the_link() {
    use std::os::unix::fs::symlink;
    // `ln -s . x`, then two and three of them side by side and nested: each
    // used to multiply the walk (7 s to minutes).
    for links in [&["x"][..], &["x", "y"], &["x", "y", "sub/z"]] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/team.yaml"), GOOD).unwrap();
        for link in links {
            symlink(".", dir.path().join(link)).unwrap();
        }
        let assert = flexsync()
            .args(["validate", "--format", "json"])
            .arg(dir.path())
            .timeout(HANG_GUARD)
            .assert()
            .code(1);
        let doc: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
        let messages: Vec<(String, String)> = doc["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["file"].as_str().unwrap().to_owned(),
                    d["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for link in links {
            let path = dir.path().join(link).display().to_string();
            assert!(
                messages
                    .iter()
                    .any(|(f, m)| *f == path && m.contains("symlink loop")),
                "{link}: {messages:?}"
            );
        }
        // The loops are the only problem: the team itself was read once.
        assert_eq!(messages.len(), links.len(), "{messages:?}");
    }
}

#[cfg(unix)]
#[test]
fn symlinks_to_directories_and_files_are_followed() {
    use std::os::unix::fs::symlink;
    // A ConfigMap-like layout: files are links into a hidden data directory,
    // and a directory linked twice is read once.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("..2026_01_01");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("team.yaml"), GOOD).unwrap();
    symlink("..2026_01_01", dir.path().join("..data")).unwrap();
    symlink("..data/team.yaml", dir.path().join("team.yaml")).unwrap();
    let other = tempfile::tempdir().unwrap();
    std::fs::write(
        other.path().join("other.yaml"),
        "version: 1\nteam: { id: \"100002\" }\nusers: []\n",
    )
    .unwrap();
    symlink(other.path(), dir.path().join("a")).unwrap();
    symlink(other.path(), dir.path().join("b")).unwrap();
    flexsync()
        .arg("validate")
        .arg(dir.path())
        .timeout(HANG_GUARD)
        .assert()
        .success()
        .stdout(predicate::str::contains("2 file(s) valid: 2 team(s)"));
}

/// A sparse file: as large as `len` for every size check, nothing on disk.
fn sparse(path: &std::path::Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

#[test]
fn an_oversized_snapshot_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.json");
    sparse(&snap, 1024 * 1024 * 1024);
    flexsync()
        .args(["plan", "examples/full.yaml", "--observed"])
        .arg(&snap)
        .refused(&["snap.json is larger than 64 MiB, the limit for snapshots"]);
}

#[cfg(unix)]
#[test]
fn secret_files_are_capped_and_never_block() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.secret");
    sparse(&big, 1024 * 1024 * 1024);
    let fifo = dir.path().join("fifo.secret");
    mkfifo(&fifo);
    for (file, expected) in [
        (&big, "larger than 64 KiB"),
        (&fifo, "FIFO (named pipe), not a regular file"),
    ] {
        flexsync()
            .args(["teams", "--client-id", "x", "--token-file"])
            .arg(dir.path().join("token.json"))
            .arg("--client-secret-file")
            .arg(file)
            .env_remove("FLEXSYNC_ACCESS_TOKEN")
            .refused(&["cannot read --client-secret-file", expected]);
        flexsync()
            .args([
                "run",
                "examples/full.yaml",
                "--sandbox",
                "--snapshot-token-file",
            ])
            .arg(file)
            .current_dir(dir.path())
            .refused(&["cannot read --snapshot-token-file", expected]);
    }
}

#[test]
fn service_durations_have_an_upper_bound() {
    for flag in ["--interval", "--reread", "--consistency-window"] {
        flexsync()
            .args(["run", "examples/full.yaml", "--sandbox", flag, "1000d"])
            .refused(&[
                &format!("invalid value '1000d' for '{flag} <DURATION>'"),
                "longer than 24h, the longest flexsync accepts",
            ]);
    }
}

#[test]
fn an_empty_variable_is_named_not_its_flag() {
    for (var, args) in [
        ("FLEXSYNC_TOKEN_FILE", &["teams"][..]),
        ("FLEXSYNC_API_URL", &["teams"]),
        ("FLEXSYNC_CLIENT_ID", &["teams"]),
    ] {
        flexsync()
            .env(var, "")
            .env_remove("FLEXSYNC_ACCESS_TOKEN")
            .args(args)
            .refused(&[&format!("{var} is set but empty")]);
    }
    // Commands that do not connect ignore it.
    flexsync()
        .env("FLEXSYNC_TOKEN_FILE", "")
        .args(["validate", "examples/full.yaml"])
        .assert()
        .success();
}

#[test]
fn connection_flags_are_offered_only_where_they_connect() {
    let help = |args: &[&str]| {
        let out = flexsync().args(args).arg("--help").output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for cmd in [
        &["plan"][..],
        &["apply"],
        &["run"],
        &["login"],
        &["teams"],
        &["export"],
        &["snapshot"],
    ] {
        let h = help(cmd);
        assert!(
            h.contains("--api-url") && h.contains("--token-file"),
            "{cmd:?}"
        );
    }
    for cmd in [
        &["validate"][..],
        &["schema"],
        &["show"],
        &["completions"],
        &["man"],
        &["sandbox", "serve"],
        &["sandbox", "reset"],
    ] {
        let h = help(cmd);
        assert!(
            !h.contains("--api-url") && !h.contains("--token-file"),
            "{cmd:?}"
        );
    }
    // Before the subcommand, clap points at where the flag belongs.
    flexsync()
        .args(["--api-url", "https://x.example/team-admin/v1", "teams"])
        .refused(&["'teams --api-url' exists"]);
}

#[test]
fn the_main_commands_show_an_example_in_their_help() {
    for (cmd, example) in [
        ("plan", "flexsync plan teams/ --out review.plan"),
        ("apply", "flexsync apply review.plan"),
        ("run", "flexsync run teams/ --interval 10m"),
        ("validate", "flexsync validate teams/"),
        ("explain", "flexsync explain ada@example.com teams/"),
        ("show", "flexsync show review.plan"),
    ] {
        for flag in ["-h", "--help"] {
            flexsync()
                .args([cmd, flag])
                .assert()
                .success()
                .says(&["Examples:", example]);
        }
    }
}

#[test]
fn completions_and_man_pages_come_from_the_same_definitions() {
    for (shell, marker) in [
        ("bash", "_flexsync()"),
        ("zsh", "#compdef flexsync"),
        ("fish", "complete -c flexsync"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = flexsync().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {marker}");
        // Subcommands and their own flags are completed.
        for word in ["explain", "show", "--observed"] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
    }
    flexsync().args(["completions", "tcsh"]).assert().code(1);
    flexsync()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(".ie"))
        .says(&[".TH flexsync 1", "explain"]);
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    flexsync()
        .args(["man", "--dir"])
        .arg(&pages)
        .assert()
        .success();
    for page in [
        "flexsync.1",
        "flexsync-plan.1",
        "flexsync-explain.1",
        "flexsync-show.1",
    ] {
        let text = std::fs::read_to_string(pages.join(page)).unwrap();
        assert!(text.contains(".SH SYNOPSIS"), "{page}");
    }
    let plan = std::fs::read_to_string(pages.join("flexsync-plan.1")).unwrap();
    assert!(
        plan.contains("Examples:"),
        "the plan page lacks its examples"
    );
}

/// `flexsync explain EMAIL DECLARATION --observed examples/snapshot.json`.
fn explain(
    email: &str,
    declaration: &std::path::Path,
    extra: &[&str],
) -> assert_cmd::assert::Assert {
    flexsync()
        .args(["explain", email])
        .arg(declaration)
        .args(["--observed", "examples/snapshot.json"])
        .args(extra)
        .assert()
}

fn explain_json(email: &str, declaration: &std::path::Path) -> serde_json::Value {
    let out = explain(email, declaration, &["--format", "json"])
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

/// The product `alias` of the first team in an explanation.
fn product<'a>(v: &'a serde_json::Value, alias: &str) -> &'a serde_json::Value {
    v["teams"][0]["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["alias"] == alias)
        .unwrap()
}

#[test]
fn explain_says_why_someone_holds_or_does_not_hold_each_product() {
    let full = std::path::Path::new("examples/full.yaml");
    // A direct holder, declared through two groups.
    explain("Alice@Example.com", full, &[])
        .success()
        .says(&[
            "alice@example.com in team 100001 \"Example Engineering\"",
            "member:    yes (US1000000001, Alice Anders, USER)",
            "declared:  yes, at examples/full.yaml:21:9 (group member); groups: aps-developers, autocad-users",
            "asked by:  group aps-developers (examples/full.yaml:18:5)",
            "so:        holds it directly, as declared: nothing to do",
            "also holds (not managed): Autodesk Docs (through the team)",
            "Planned against snapshot examples/snapshot.json",
        ]);
    let alice = explain_json("alice@example.com", full);
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["source"]["kind"], "snapshot");
    assert_eq!(product(&alice, "platform-services")["holds"], "direct");
    assert_eq!(
        product(&alice, "autocad")["declaredBy"][0],
        serde_json::json!({ "kind": "group", "group": "autocad-users", "at": "examples/full.yaml:25:5" })
    );
    assert!(product(&alice, "autocad")["plan"].is_null());

    // Held through a group: nothing to assign.
    explain("carol@example.com", full, &[]).success().says(&[
        "holds:     yes, through a group",
        "so:        holds it through a group, as declared: nothing to do",
    ]);
    assert_eq!(
        product(&explain_json("carol@example.com", full), "autocad")["holds"],
        "group"
    );

    // To be invited, through a users entry and a group.
    explain("grace@example.com", full, &[])
        .success()
        .says(&[
            "member:    no",
            "declared:  yes, at examples/full.yaml:33:14 (users entry); groups: aps-developers; replaces grace@example.org",
            "plan:      + invite grace@example.com (Grace Hopper)",
            "plan:      + assign platform-services to grace@example.com",
            "will be assigned right after their invitation, in the same apply",
        ]);
    let grace = explain_json("grace@example.com", full);
    assert_eq!(grace["teams"][0]["invite"]["status"], "planned");
    assert!(grace["teams"][0]["member"].is_null());

    // Undeclared and pruned; and someone nobody knows.
    explain("bob@example.com", full, &[]).success().says(&[
        "- unassign autocad from bob@example.com",
        "will be unassigned: not declared for it and policy.prune is on",
    ]);
    explain("nobody@example.com", full, &[]).success().says(&[
        "neither a member nor declared: flexsync does nothing for them here",
        "does not hold it and is not declared for it: nothing to do",
    ]);
}

#[test]
fn explain_names_what_blocks_an_assignment() {
    // Two more AutoCAD users than the pool has seats for: Frank, last in
    // email order, gets none. He has platform-services from his own entry.
    let dir = tempfile::tempdir().unwrap();
    let seats = dir.path().join("seats.yaml");
    let text = std::fs::read_to_string("examples/full.yaml").unwrap().replace(
        "members: [alice@example.com, carol@example.com, frank@contractor.example.net]",
        "members: [alice@example.com, carol@example.com, frank@contractor.example.net, erin@example.com, dave@example.com]",
    );
    std::fs::write(&seats, text).unwrap();
    explain("frank@contractor.example.net", &seats, &[])
        .success()
        .says(&[
            "plan:      x assign autocad to frank@contractor.example.net (blocked)",
            "so:        the assign is blocked: no free seat (pool has 4)",
            "blocker: AutoCAD - including specialized toolsets has 4 seat(s)",
        ]);
    let frank = explain_json("frank@contractor.example.net", &seats);
    let autocad = product(&frank, "autocad");
    assert_eq!(autocad["plan"]["status"], "blocked");
    assert_eq!(autocad["plan"]["reason"], "no_seat");
    assert_eq!(autocad["declaredBy"][0]["kind"], "group");
    let ps = product(&frank, "platform-services");
    assert_eq!(ps["plan"]["status"], "planned");
    assert_eq!(ps["declaredBy"][0]["kind"], "entry");
    assert_eq!(ps["declaredBy"].as_array().unwrap().len(), 1);
    // A suspended team blocks everything, and says so.
    let suspended = dir.path().join("suspended.yaml");
    let text = std::fs::read_to_string("examples/full.yaml").unwrap();
    std::fs::write(&suspended, format!("{text}suspend: true\n")).unwrap();
    explain("erin@example.com", &suspended, &[])
        .success()
        .stdout(predicate::str::contains("the team is suspended"));
}

#[test]
fn explain_refuses_what_it_cannot_answer() {
    explain(
        "not-an-address",
        std::path::Path::new("examples/full.yaml"),
        &[],
    )
    .code(1)
    .stderr(predicate::str::contains("is not an email address"));
    explain(
        "alice@example.com",
        std::path::Path::new("examples/full.yaml"),
        &["--team", "999"],
    )
    .code(1)
    .stderr(predicate::str::contains(
        "team 999 is not in the declaration (its teams: 100001)",
    ));
}

#[test]
fn run_check_reports_the_setup_without_serving_or_creating_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, "s3cret").unwrap();
    let run_check = |decl: &str, token_file: &std::path::Path| {
        let mut cmd = flexsync();
        cmd.args(["run", decl, "--check", "--listen", "127.0.0.1:9464"])
            .args(["--client-id", "app", "--client-secret-file"])
            .arg(&secret)
            .arg("--token-file")
            .arg(token_file)
            .arg("--audit-log")
            .arg(state.join("audit.jsonl"))
            .env_remove("FLEXSYNC_ACCESS_TOKEN")
            .timeout(HANG_GUARD);
        cmd
    };
    run_check("examples/full.yaml", &state.join("token.json"))
        .assert()
        .success()
        .says(&[
            "declaration: 1 file(s), 1 team(s)",
            "listen: 127.0.0.1:9464\n",
            "endpoints: /healthz /readyz /metrics /status\n",
            "(absent: install one with",
        ]);
    // Neither the token, nor the audit log, nor the probe was left behind.
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);

    run_check(
        "tests/fixtures/invalid/semantic.yaml",
        &state.join("token.json"),
    )
    .assert()
    .code(1)
    .stdout("");
    run_check("examples/full.yaml", &dir.path().join("a/b/c/token.json"))
        .assert()
        .success();
    assert!(!dir.path().join("a").exists());
    flexsync()
        .args(["run", "examples/full.yaml", "--check", "--intervall", "5m"])
        .refused(&["unexpected argument '--intervall'"]);
}
