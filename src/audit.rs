//! The audit log: JSON lines, only ever appended.
//!
//! Every write gets two lines sharing a `writeId`: an intent line
//! (`"result": "started"`) written and flushed before the request is sent —
//! a write whose intent cannot be recorded is not sent — and an outcome line
//! after the answer. A process killed mid-write leaves an intent without an
//! outcome, never a write without a line. A change not attempted gets one
//! outcome line (`skipped`). Each line says who changed what in which team,
//! the result with HTTP status and request id (for Autodesk support), the
//! plan it came from, the git commit of the declaration, and any one-run
//! guard override. Lines carry `formatVersion` (2; version 1 lines had no
//! intent lines and no version).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::api::Clock;
use crate::apply::Observer;
use crate::model::TeamId;
use crate::plan::{Change, Overrides};
use crate::report::Outcome;

/// Context repeated on every line of one run.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    /// `apply` or `run`.
    pub command: &'static str,
    pub plan_digest: String,
    pub git_commit: Option<String>,
    /// One-run guard overrides in force.
    pub overrides: Overrides,
}

/// Bumped when a consumer's parser would break.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    format_version: u32,
    time: String,
    /// The same on a write's intent and outcome lines.
    write_id: String,
    command: &'a str,
    team: &'a str,
    action: &'a str,
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product: Option<&'a str>,
    result: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    plan_digest: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    git_commit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    overrides: Option<LineOverrides>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LineOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_unassign: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_invite: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    allow_renames: bool,
}

/// An append-only audit file.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (creating) `path` for appending. Existing lines are never
    /// rewritten: the file is opened in append mode only.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // It is often flexsync's state directory, which also holds the
            // token file: private, like the token store makes it.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir)?;
        }
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        Ok(AuditLog {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the intent line of a write about to be sent.
    pub fn intent(
        &self,
        run: &RunInfo,
        now: jiff::Timestamp,
        team: &TeamId,
        change: &Change,
    ) -> std::io::Result<()> {
        self.append(run, now, team, change, None)
    }

    /// Appends the outcome line of a write (or of a change not attempted).
    pub fn record(
        &self,
        run: &RunInfo,
        now: jiff::Timestamp,
        team: &TeamId,
        change: &Change,
        outcome: &Outcome,
    ) -> std::io::Result<()> {
        self.append(run, now, team, change, Some(outcome))
    }

    /// One line, written with a single `write` so concurrent writers (teams
    /// in parallel) never interleave within one, and flushed to the kernel
    /// before returning, so it survives the process being killed.
    fn append(
        &self,
        run: &RunInfo,
        now: jiff::Timestamp,
        team: &TeamId,
        change: &Change,
        outcome: Option<&Outcome>,
    ) -> std::io::Result<()> {
        let user_id = match change {
            Change::Assign { user_id, .. } => user_id.as_ref().map(|u| u.as_str()),
            Change::Unassign { user_id, .. } => Some(user_id.as_str()),
            Change::Invite { .. } => None,
        };
        let (result, note, http_status, request_id, error) = match outcome {
            None => ("started", None, None, None, None),
            Some(Outcome::Done {
                status,
                request_id,
                note,
                user_id: _,
            }) => (
                "done",
                Some(*note),
                Some(*status),
                Some(request_id.as_str()),
                None,
            ),
            Some(Outcome::Failed {
                status,
                request_id,
                message,
            }) => (
                "failed",
                None,
                *status,
                request_id.as_deref(),
                Some(message.as_str()),
            ),
            Some(Outcome::Skipped { reason }) => {
                ("skipped", None, None, None, Some(reason.as_str()))
            }
        };
        let invited_id = match outcome {
            Some(Outcome::Done {
                user_id: Some(u), ..
            }) => Some(u.as_str()),
            _ => None,
        };
        let line = Line {
            format_version: FORMAT_VERSION,
            time: now.to_string(),
            write_id: write_id(run, team, change),
            command: run.command,
            team: &team.0,
            action: change.verb(),
            user: change.email().as_str(),
            user_id: user_id.or(invited_id),
            product: change.product().map(|p| p.id.0.as_str()),
            result,
            note,
            http_status,
            request_id,
            error,
            plan_digest: &run.plan_digest,
            git_commit: run.git_commit.as_deref(),
            overrides: (!run.overrides.is_empty()).then(|| LineOverrides {
                max_unassign: run.overrides.max_unassign.map(|m| m.to_string()),
                max_invite: run.overrides.max_invite.map(|m| m.to_string()),
                allow_renames: run.overrides.allow_renames,
            }),
        };
        let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&bytes)?;
        file.flush()
    }
}

/// Ties a write's intent and outcome lines: the plan, the team and the
/// change (a plan holds each change once per team).
fn write_id(run: &RunInfo, team: &TeamId, change: &Change) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [
        run.plan_digest.as_str(),
        &team.0,
        change.verb(),
        change.email().as_str(),
        change.product().map(|p| p.id.0.as_str()).unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let hex: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex
}

/// An apply observer that appends every write to the audit log.
pub struct AuditTrail {
    pub log: Arc<AuditLog>,
    pub run: RunInfo,
    pub clock: Arc<dyn Clock>,
}

impl Observer for AuditTrail {
    fn starting(&self, team: &TeamId, change: &Change) -> Result<(), String> {
        self.log
            .intent(&self.run, self.clock.now(), team, change)
            .map_err(|e| {
                tracing::error!(path = %self.log.path.display(), error = %e, "cannot append to the audit log; the write is not sent");
                format!(
                    "not sent: the audit log {} cannot be written: {e}",
                    self.log.path.display()
                )
            })
    }

    fn finished(&self, team: &TeamId, change: &Change, outcome: &Outcome) {
        if let Err(e) = self
            .log
            .record(&self.run, self.clock.now(), team, change, outcome)
        {
            tracing::error!(path = %self.log.path.display(), error = %e, "cannot append to the audit log");
        }
    }
}
