//! The commit a declaration's checkout is at, for audit lines, read from
//! `.git` directly.
//!
//! Running `git` would refuse a checkout owned by another user ("dubious
//! ownership"), which is the normal case under systemd's DynamicUser and a
//! git-sync sidecar; reading the few files that name HEAD does not care who
//! owns them. Handles a plain clone, a worktree (`.git` is a file naming
//! the worktree's git dir, whose `commondir` holds the refs), a detached
//! HEAD and packed refs.

use std::path::{Path, PathBuf};

use crate::input_file::read_text_capped;

/// HEAD and ref files hold one line; `packed-refs` one per ref.
const SMALL: u64 = 64 * 1024;
const PACKED_REFS: u64 = 16 * 1024 * 1024;

/// The commit of the checkout holding `path`, if it is in one.
pub fn head_commit(path: &Path) -> Option<String> {
    let start = std::path::absolute(path).ok()?;
    let start = if start.is_dir() {
        start
    } else {
        start.parent()?.to_owned()
    };
    for dir in start.ancestors() {
        let dotgit = dir.join(".git");
        if dotgit.is_dir() {
            return read_head(&dotgit);
        }
        if dotgit.is_file() {
            let text = read_text_capped(&dotgit, SMALL).ok()?;
            let target = text.trim().strip_prefix("gitdir:")?.trim();
            return read_head(&dir.join(target));
        }
    }
    None
}

fn read_head(gitdir: &Path) -> Option<String> {
    let head = read_text_capped(&gitdir.join("HEAD"), SMALL).ok()?;
    let head = head.trim();
    if is_object_id(head) {
        return Some(head.to_owned());
    }
    let name = head.strip_prefix("ref:")?.trim();
    // A ref name that climbs out of the git dir is not one git writes.
    if name.split('/').any(|part| part == ".." || part.is_empty()) {
        return None;
    }
    let common: PathBuf = match read_text_capped(&gitdir.join("commondir"), SMALL) {
        Ok(c) => gitdir.join(c.trim()),
        Err(_) => gitdir.to_owned(),
    };
    for base in [gitdir, common.as_path()] {
        if let Ok(id) = read_text_capped(&base.join(name), SMALL) {
            let id = id.trim();
            if is_object_id(id) {
                return Some(id.to_owned());
            }
        }
    }
    let packed = read_text_capped(&common.join("packed-refs"), PACKED_REFS).ok()?;
    packed.lines().find_map(|line| {
        let (id, refname) = line.split_once(' ')?;
        (refname.trim() == name && is_object_id(id)).then(|| id.to_owned())
    })
}

/// SHA-1 (40) or SHA-256 (64) hex.
fn is_object_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    #[test]
    fn reads_head_of_clones_worktrees_detached_heads_and_packed_refs() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(repo.join("teams")).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("teams/a.yaml"), "version: 1\n").unwrap();
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "one"]);
        let first = git(&repo, &["rev-parse", "HEAD"]);
        assert_eq!(head_commit(&repo.join("teams/a.yaml")), Some(first.clone()));
        assert_eq!(head_commit(&repo.join("teams")), Some(first.clone()));

        // Packed refs, as after `git gc`.
        git(&repo, &["pack-refs", "--all"]);
        assert!(!repo.join(".git/refs/heads/main").exists());
        assert_eq!(head_commit(&repo), Some(first.clone()));

        // A worktree at another commit, as git-sync checks out.
        std::fs::write(repo.join("teams/a.yaml"), "version: 1\n# two\n").unwrap();
        git(&repo, &["commit", "-q", "-am", "two"]);
        let second = git(&repo, &["rev-parse", "HEAD"]);
        let wt = tmp.path().join("wt");
        git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                wt.to_str().unwrap(),
                &first,
            ],
        );
        assert_eq!(head_commit(&wt.join("teams")), Some(first));
        assert_eq!(head_commit(&repo), Some(second));

        // Not a checkout at all.
        let plain = tmp.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        assert_eq!(head_commit(&plain), None);
    }
}
