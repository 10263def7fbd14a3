//! Each team's call budget, shared by the flexsync processes of one machine.
//!
//! Autodesk counts 60 calls per team and UTC minute, whoever makes them. Two
//! processes that each count only their own calls (`run` beside `apply`, or
//! a rerun in the same minute) would together overspend and eat the reserve
//! left for others. So each decision of [`Budget`](super::budget::Budget)
//! starts from, and ends by writing, a small file per API and team in a
//! directory the processes share, under an exclusive lock held only for that
//! read and write.
//!
//! List Teams' bucket (per APS client id) is shared the same way, keyed by
//! API only: two apps on one machine would only be more careful than needed.
//!
//! What is not shared: processes on other machines, or using another
//! directory. For those, and for every other app and admin of the team, the
//! server's rate headers and 429s remain the correction.
//!
//! The file is advisory: a missing, corrupt or foreign one starts the count
//! afresh, and when the directory cannot be used at all the client counts in
//! its own process (with one warning).

use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::budget::WindowCount;
use super::files;

/// Bumped when an older flexsync could misread the file.
const FORMAT_VERSION: u32 = 1;

/// Holders keep the lock for one small read and write; waiting longer than
/// this means a stuck process, and counting alone beats hanging.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// A window file is under 200 bytes.
const MAX_FILE: u64 = 64 * 1024;

/// The window files of one API in one directory.
#[derive(Debug)]
pub struct SharedBudgets {
    dir: PathBuf,
    api_url: String,
    /// A broken directory is reported once per process, not once per call.
    warned: AtomicBool,
}

/// The file's content. The API and team are repeated for people reading
/// the directory, and to tell a foreign file from ours.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WindowFile {
    format_version: u32,
    api_url: String,
    team: String,
    window: i64,
    used: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    throttled_until: Option<Timestamp>,
}

impl SharedBudgets {
    pub fn new(dir: PathBuf, api_url: &str) -> Self {
        SharedBudgets {
            dir,
            api_url: api_url.to_owned(),
            warned: AtomicBool::new(false),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One file per API and bucket, so the sandbox and Autodesk (or two
    /// sandboxes) never share a count.
    pub fn path(&self, bucket: &str) -> PathBuf {
        let digest = Sha256::digest(format!("{}\n{bucket}", self.api_url));
        let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{name}.json"))
    }

    /// Under the bucket's lock: reads the count the processes share, lets
    /// `decide` update it, writes the result back. `decide` is not called
    /// when the file cannot be opened or locked. Blocking.
    pub fn update(
        &self,
        bucket: &str,
        decide: impl FnOnce(Option<WindowCount>) -> WindowCount,
    ) -> io::Result<()> {
        files::create_private_dir(&self.dir)?;
        let path = self.path(bucket);
        // Rewritten in place, never renamed, so the file itself carries the
        // lock.
        let mut file = files::open_private(&path)?;
        files::lock_within(&file, LOCK_WAIT)?;
        let mut bytes = Vec::new();
        (&file).take(MAX_FILE).read_to_end(&mut bytes)?;
        let seen = self.parse(bucket, &path, &bytes);
        let count = decide(seen);
        let out = serde_json::to_vec(&WindowFile {
            format_version: FORMAT_VERSION,
            api_url: self.api_url.clone(),
            team: bucket.to_owned(),
            window: count.window,
            used: count.used,
            throttled_until: count.throttled_until,
        })
        .map_err(io::Error::other)?;
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(&out)
    }

    fn parse(&self, bucket: &str, path: &Path, bytes: &[u8]) -> Option<WindowCount> {
        if bytes.is_empty() {
            return None;
        }
        match serde_json::from_slice::<WindowFile>(bytes) {
            Ok(f)
                if f.format_version == FORMAT_VERSION
                    && f.api_url == self.api_url
                    && f.team == bucket =>
            {
                Some(WindowCount {
                    window: f.window,
                    used: f.used,
                    throttled_until: f.throttled_until,
                })
            }
            // A crash in mid-write, or a stranger's file: a fresh count
            // costs at most a 429, which the client waits out.
            _ => {
                tracing::warn!(
                    file = %path.display(),
                    "unreadable rate-budget file; starting its count afresh"
                );
                None
            }
        }
    }

    /// Reports that the shared count could not be used (the client then
    /// counts alone): a warning the first time, debug afterwards.
    pub fn report(&self, error: &io::Error) {
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(dir = %self.dir.display(), %error, "shared rate budget unusable");
        } else {
            tracing::warn!(
                dir = %self.dir.display(),
                %error,
                "cannot share the rate budget with other flexsync processes; counting this process's calls only"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(used: u32) -> WindowCount {
        WindowCount {
            window: 29_500_000,
            used,
            throttled_until: None,
        }
    }

    #[test]
    fn the_count_survives_between_updates_and_is_kept_per_api_and_team() {
        let dir = tempfile::tempdir().unwrap();
        let real = SharedBudgets::new(dir.path().join("b"), "https://api.example/v1/");
        real.update("100001", |seen| {
            assert_eq!(seen, None);
            count(7)
        })
        .unwrap();
        real.update("100001", |seen| {
            assert_eq!(seen, Some(count(7)));
            count(8)
        })
        .unwrap();
        real.update("100002", |seen| {
            assert_eq!(seen, None);
            count(1)
        })
        .unwrap();
        let sandbox = SharedBudgets::new(dir.path().join("b"), "http://127.0.0.1:8787/v1/");
        sandbox
            .update("100001", |seen| {
                assert_eq!(seen, None);
                count(1)
            })
            .unwrap();
    }

    #[test]
    fn a_corrupt_file_starts_afresh_and_is_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let shared = SharedBudgets::new(dir.path().to_path_buf(), "https://api.example/v1/");
        std::fs::write(shared.path("1"), b"{\"formatVersion\": 1, \"used\": ").unwrap();
        shared
            .update("1", |seen| {
                assert_eq!(seen, None);
                count(3)
            })
            .unwrap();
        shared
            .update("1", |seen| {
                assert_eq!(seen, Some(count(3)));
                count(4)
            })
            .unwrap();
    }
}
