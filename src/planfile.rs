//! The saved plan (`flexsync plan --out FILE`, `flexsync apply FILE`).
//!
//! It holds the executable changes, each with a fingerprint of the observed
//! facts it was decided on, the tool version, the desired-state digest, and
//! any one-run guard override. Applying it re-reads the teams and refuses it
//! when a fingerprint no longer matches.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Alias, Email, Observed, ProductId, TeamId, UserId};
use crate::plan::{self, Change, Plan, ProductRef, TeamPlan};

/// Bumped when an older flexsync could misread the file.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedPlan {
    pub flexsync_saved_plan: u32,
    pub tool_version: String,
    pub created_at: jiff::Timestamp,
    /// sha256 of the declaration files the plan was made from.
    pub desired_digest: String,
    /// `sandbox`, or the API URL.
    pub target: String,
    /// The `--max-unassign` override in force when planning, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unassign_override: Option<String>,
    pub teams: Vec<SavedTeam>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedTeam {
    pub id: String,
    pub name: String,
    pub changes: Vec<SavedChange>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedChange {
    pub action: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<SavedProduct>,
    /// Fingerprint of the observed facts this change depends on.
    pub depends_on: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedProduct {
    pub alias: String,
    pub id: String,
    pub name: String,
}

/// Why a saved plan cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("{file}: not a flexsync saved plan: {detail}")]
    Invalid { file: String, detail: String },
    #[error(
        "{file} was made by flexsync {made_by}; this is {running}. Plan again with this version"
    )]
    Version {
        file: String,
        made_by: String,
        running: String,
    },
    #[error(
        "{file} is stale: {count} change(s) were decided on facts that have changed since (first: {first}). Run `flexsync plan` again"
    )]
    Stale {
        file: String,
        count: usize,
        first: String,
    },
    #[error("{file} was made against {saved}, not {now}")]
    Target {
        file: String,
        saved: String,
        now: String,
    },
}

impl SavedPlan {
    /// Records a plan's executable changes with their fingerprints.
    pub fn new(
        plan: &Plan,
        observed: &Observed,
        desired_digest: String,
        target: String,
        max_unassign_override: Option<String>,
        created_at: jiff::Timestamp,
    ) -> Self {
        let teams = plan
            .teams
            .iter()
            .filter(|t| !t.changes.is_empty())
            .map(|t| SavedTeam {
                id: t.team_id.0.clone(),
                name: t.team_name.clone(),
                changes: t
                    .changes
                    .iter()
                    .map(|c| save_change(c, observed.teams.get(&t.team_id)))
                    .collect(),
            })
            .collect();
        SavedPlan {
            flexsync_saved_plan: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at,
            desired_digest,
            target,
            max_unassign_override,
            teams,
        }
    }

    /// A digest of the plan itself, quoted in every audit line.
    pub fn digest(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        format!("sha256:{:x}", Sha256::digest(&bytes))
    }

    pub fn parse(file: &str, text: &str) -> Result<SavedPlan, PlanFileError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| PlanFileError::Invalid {
                file: file.to_owned(),
                detail: format!("not JSON: {e}"),
            })?;
        if value.get("flexsyncSavedPlan").is_none() {
            return Err(PlanFileError::Invalid {
                file: file.to_owned(),
                detail: "it has no `flexsyncSavedPlan` field; save plans with `flexsync plan --out FILE`".into(),
            });
        }
        let saved: SavedPlan =
            serde_json::from_value(value).map_err(|e| PlanFileError::Invalid {
                file: file.to_owned(),
                detail: e.to_string(),
            })?;
        if saved.flexsync_saved_plan != FORMAT_VERSION {
            return Err(PlanFileError::Invalid {
                file: file.to_owned(),
                detail: format!(
                    "saved-plan format {} is not supported (this flexsync writes and reads format {FORMAT_VERSION}); plan again",
                    saved.flexsync_saved_plan
                ),
            });
        }
        if saved.tool_version != env!("CARGO_PKG_VERSION") {
            return Err(PlanFileError::Version {
                file: file.to_owned(),
                made_by: saved.tool_version,
                running: env!("CARGO_PKG_VERSION").to_owned(),
            });
        }
        Ok(saved)
    }

    /// The plan to execute, after checking every change against the state
    /// observed now. Stale → nothing is returned, so nothing is applied.
    pub fn to_plan(&self, file: &str, observed: &Observed) -> Result<Plan, PlanFileError> {
        let mut stale = Vec::new();
        let mut teams = Vec::new();
        for t in &self.teams {
            let id = TeamId(t.id.clone());
            let live = observed.teams.get(&id);
            let mut changes = Vec::new();
            for saved in &t.changes {
                let change = load_change(saved).map_err(|detail| PlanFileError::Invalid {
                    file: file.to_owned(),
                    detail,
                })?;
                let now = live.map(|team| plan::fingerprint(&change, team));
                if now.as_deref() != Some(saved.depends_on.as_str()) {
                    stale.push(format!("{} {} in team {}", saved.action, saved.email, t.id));
                }
                changes.push(change);
            }
            teams.push(TeamPlan {
                team_id: id,
                team_name: t.name.clone(),
                changes,
                blocked: Vec::new(),
                findings: Vec::new(),
                seats: Vec::new(),
                before: Vec::new(),
                after: Vec::new(),
            });
        }
        if let Some(first) = stale.first() {
            return Err(PlanFileError::Stale {
                file: file.to_owned(),
                count: stale.len(),
                first: first.clone(),
            });
        }
        Ok(Plan { teams })
    }
}

fn save_change(c: &Change, team: Option<&crate::model::ObservedTeam>) -> SavedChange {
    let (user_id, first_name, last_name) = match c {
        Change::Invite {
            first_name,
            last_name,
            ..
        } => (None, first_name.clone(), last_name.clone()),
        Change::Assign { user_id, .. } => (user_id.as_ref().map(|u| u.0.clone()), None, None),
        Change::Unassign { user_id, .. } => (Some(user_id.0.clone()), None, None),
    };
    SavedChange {
        action: c.verb().to_owned(),
        email: c.email().to_string(),
        user_id,
        first_name,
        last_name,
        product: c.product().map(|p| SavedProduct {
            alias: p.alias.0.clone(),
            id: p.id.0.clone(),
            name: p.name.clone(),
        }),
        depends_on: team.map(|t| plan::fingerprint(c, t)).unwrap_or_default(),
    }
}

fn load_change(s: &SavedChange) -> Result<Change, String> {
    let email = Email::parse(&s.email).map_err(|e| format!("{}: {e}", s.email))?;
    let product = || {
        s.product
            .as_ref()
            .map(|p| ProductRef {
                alias: Alias(p.alias.clone()),
                id: ProductId(p.id.clone()),
                name: p.name.clone(),
            })
            .ok_or_else(|| format!("{} {} has no product", s.action, s.email))
    };
    match s.action.as_str() {
        "invite" => Ok(Change::Invite {
            email,
            first_name: s.first_name.clone(),
            last_name: s.last_name.clone(),
        }),
        "assign" => Ok(Change::Assign {
            email,
            user_id: s.user_id.clone().map(UserId),
            product: product()?,
        }),
        "unassign" => Ok(Change::Unassign {
            email,
            user_id: UserId(
                s.user_id
                    .clone()
                    .ok_or_else(|| format!("unassign {} has no userId", s.email))?,
            ),
            product: product()?,
        }),
        other => Err(format!("unknown action {other:?}")),
    }
}
