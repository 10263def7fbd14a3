//! The saved plan (`flexsync plan --out FILE`, `flexsync apply FILE`).
//!
//! It holds the executable changes, each with a fingerprint of the observed
//! facts it was decided on, and what apply needs to re-check them without
//! the declaration: each team's effective policy (prune, protect, the
//! guards' limits and their bases at plan time) and managed products. A
//! digest over the whole file (SHA-256, or HMAC-SHA256 with a key) seals it.
//!
//! Applying it checks, in order: the digest ([`SavedPlan::verify`]: an
//! edited file is *tampered*); the plan against its own recorded policy
//! (an unassignment of a protected person, more removals or invitations
//! than the recorded limits allow, a product the team does not manage:
//! *tampered*); then, after reading the teams, every change against the
//! live team ([`SavedPlan::to_plan`]): ids must be the email's account
//! (*tampered*), team names, pools and guard limits must still hold and
//! every fingerprint must match (*stale*). Nothing is applied unless all
//! of it holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{
    Alias, DesiredTeam, Email, Limit, Observed, ObservedTeam, ProductId, TeamId, UserId,
};
use crate::plan::{self, Change, Facts, Overrides, Plan, ProductRef, TeamPlan};

/// Bumped when an older flexsync could misread the file.
pub const FORMAT_VERSION: u32 = 2;

/// The largest saved plan read: about 2.5 times a plan that invites and
/// assigns 100,000 people.
pub const MAX_FILE_BYTES: u64 = 128 * 1024 * 1024;

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
    /// The one-run guard overrides in force when planning.
    #[serde(default, skip_serializing_if = "SavedOverrides::is_empty")]
    pub overrides: SavedOverrides,
    pub teams: Vec<SavedTeam>,
    /// `sha256:HEX` or `hmac-sha256:HEX` over the file with this field
    /// empty. Written last; checked first.
    #[serde(default)]
    pub digest: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unassign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_invite: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_renames: bool,
}

impl SavedOverrides {
    fn is_empty(&self) -> bool {
        *self == SavedOverrides::default()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedTeam {
    pub id: String,
    /// The live name when planned; apply refuses a team called otherwise.
    pub name: String,
    pub policy: SavedPolicy,
    /// The managed products by alias.
    pub products: BTreeMap<String, SavedPool>,
    pub changes: Vec<SavedChange>,
}

/// The team's policy as the plan applied it (overrides included), and the
/// bases the guards measured against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedPolicy {
    pub prune: bool,
    pub protect: Vec<String>,
    pub max_unassign: String,
    pub max_invite: String,
    /// Direct assignments of managed products when planned.
    pub direct_holdings: usize,
    /// Members of the team when planned.
    pub members: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPool {
    pub id: String,
    pub name: String,
}

/// A saved change's write. An unknown action is a parse error, not a
/// change that falls through to some default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SavedAction {
    Invite,
    Assign,
    Unassign,
}

impl SavedAction {
    /// The word the file format uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SavedAction::Invite => "invite",
            SavedAction::Assign => "assign",
            SavedAction::Unassign => "unassign",
        }
    }
}

impl std::fmt::Display for SavedAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `{:<8}` and the like pad what is written here.
        f.pad(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedChange {
    pub action: SavedAction,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// The product's alias (see the team's `products`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Fingerprint of the observed facts this change depends on.
    pub depends_on: String,
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
        "{file} is refused as tampered: {}. Nothing was applied; make a new plan with `flexsync plan --out`",
        what.join("; ")
    )]
    Tampered { file: String, what: Vec<String> },
    #[error(
        "{file} is stale: {} change(s) were decided on facts that have changed since (first: {}). Nothing was applied. Run `flexsync plan` again",
        what.len(), what.first().map(String::as_str).unwrap_or("")
    )]
    Stale { file: String, what: Vec<String> },
    #[error("{file} was made against {saved}, not {now}")]
    Target {
        file: String,
        saved: String,
        now: String,
    },
}

/// The secret an HMAC digest is keyed with (`--plan-key FILE`).
pub struct PlanKey(Vec<u8>);

impl PlanKey {
    /// Shorter keys are guessable; 16 bytes is HMAC's usual floor.
    pub const MIN_BYTES: usize = 16;
    pub const MAX_BYTES: usize = 4096;

    /// A key from a file's content (surrounding whitespace ignored).
    pub fn new(bytes: &[u8]) -> Result<PlanKey, String> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < Self::MIN_BYTES {
            return Err(format!(
                "a plan key needs at least {} bytes (e.g. `head -c 32 /dev/urandom | base64`)",
                Self::MIN_BYTES
            ));
        }
        if trimmed.len() > Self::MAX_BYTES {
            return Err(format!("a plan key has at most {} bytes", Self::MAX_BYTES));
        }
        Ok(PlanKey(trimmed.to_vec()))
    }
}

impl std::fmt::Debug for PlanKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanKey(<redacted>)")
    }
}

impl SavedPlan {
    /// Records a plan's executable changes with their fingerprints and the
    /// policy each team was planned with. Sealed with a plain digest; call
    /// [`SavedPlan::seal`] to key it.
    pub fn new<'a>(
        plan: &Plan,
        observed: &Observed,
        desired: impl Fn(&TeamId) -> Option<&'a DesiredTeam>,
        desired_digest: String,
        target: String,
        overrides: &Overrides,
        created_at: jiff::Timestamp,
    ) -> Self {
        let teams = plan
            .teams
            .iter()
            .filter(|t| !t.changes.is_empty())
            .filter_map(|t| {
                let live = observed.teams.get(&t.team_id)?;
                let declared = desired(&t.team_id)?;
                Some(save_team(t, live, declared, overrides))
            })
            .collect();
        let mut saved = SavedPlan {
            flexsync_saved_plan: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at,
            desired_digest,
            target,
            overrides: SavedOverrides {
                max_unassign: overrides.max_unassign.map(|m| m.to_string()),
                max_invite: overrides.max_invite.map(|m| m.to_string()),
                allow_renames: overrides.allow_renames,
            },
            teams,
            digest: String::new(),
        };
        saved.seal(None);
        saved
    }

    /// Sets the digest: HMAC-SHA256 with `key`, else plain SHA-256.
    pub fn seal(&mut self, key: Option<&PlanKey>) {
        self.digest = self.compute_digest(key);
    }

    fn compute_digest(&self, key: Option<&PlanKey>) -> String {
        let body = SavedPlan {
            digest: String::new(),
            ..self.clone()
        };
        // Serialising a struct is canonical (fixed field order, sorted
        // maps), so parsing and re-serialising gives the bytes that were
        // sealed, whatever whitespace the file has.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        match key.and_then(|k| Hmac::<Sha256>::new_from_slice(&k.0).ok()) {
            Some(mut mac) => {
                mac.update(&bytes);
                format!("hmac-sha256:{}", hex(&mac.finalize().into_bytes()))
            }
            None => format!("sha256:{}", hex(&Sha256::digest(&bytes))),
        }
    }

    /// The one-run overrides recorded in the file.
    pub fn overrides(&self) -> Result<Overrides, String> {
        let limit = |v: &Option<String>| v.as_deref().map(Limit::parse).transpose();
        Ok(Overrides {
            max_unassign: limit(&self.overrides.max_unassign)?,
            max_invite: limit(&self.overrides.max_invite)?,
            allow_renames: self.overrides.allow_renames,
        })
    }

    /// Quoted in every audit line and printed when saved, so a pipeline can
    /// pin it with `apply --expect-digest`.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn parse(file: &str, text: &str) -> Result<SavedPlan, PlanFileError> {
        let invalid = |detail: String| PlanFileError::Invalid {
            file: file.to_owned(),
            detail,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let Some(version) = value.get("flexsyncSavedPlan") else {
            return Err(invalid(
                "it has no `flexsyncSavedPlan` field; save plans with `flexsync plan --out FILE`"
                    .into(),
            ));
        };
        if version.as_u64() != Some(u64::from(FORMAT_VERSION)) {
            return Err(invalid(format!(
                "saved-plan format {version} is not supported (this flexsync writes and reads format {FORMAT_VERSION}); plan again"
            )));
        }
        // Parsed again from the text, not from `value`, so the error carries
        // the line and column of the offending field.
        let saved: SavedPlan = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if saved.tool_version != env!("CARGO_PKG_VERSION") {
            return Err(PlanFileError::Version {
                file: file.to_owned(),
                made_by: saved.tool_version,
                running: env!("CARGO_PKG_VERSION").to_owned(),
            });
        }
        Ok(saved)
    }

    /// Checks the seal and the plan against its own recorded policy, before
    /// anything is read from the API. `expect` pins the digest a reviewer
    /// saw (`--expect-digest`).
    pub fn verify(
        &self,
        file: &str,
        key: Option<&PlanKey>,
        expect: Option<&str>,
    ) -> Result<(), PlanFileError> {
        let mut what = Vec::new();
        match (self.is_keyed(), key) {
            (true, None) => what.push(
                "it is sealed with a plan key (hmac-sha256) and no --plan-key was given to check it"
                    .to_owned(),
            ),
            (false, Some(_)) => what.push(
                "a plan key is configured but the file carries an unkeyed digest: it was not sealed with the key"
                    .to_owned(),
            ),
            _ => {
                if !constant_time_eq(self.compute_digest(key).as_bytes(), self.digest.as_bytes()) {
                    what.push(
                        "its content does not match its digest (it was edited after it was saved)"
                            .to_owned(),
                    );
                }
            }
        }
        if let Some(expected) = expect
            && expected.trim() != self.digest
        {
            what.push(format!(
                "its digest is {}, not the expected {}",
                self.digest,
                expected.trim()
            ));
        }
        what.extend(self.policy_problems());
        if what.is_empty() {
            Ok(())
        } else {
            Err(PlanFileError::Tampered {
                file: file.to_owned(),
                what,
            })
        }
    }

    /// Whether the digest is keyed (HMAC-SHA256 with a plan key).
    pub fn is_keyed(&self) -> bool {
        self.digest.starts_with("hmac-sha256:")
    }

    /// What the plan's own recorded policy forbids in it (part of
    /// [`SavedPlan::verify`]; needs neither key nor API).
    pub fn policy_problems(&self) -> Vec<String> {
        let mut what = Vec::new();
        for team in &self.teams {
            self_consistency(team, &mut what);
        }
        what
    }

    /// The plan to execute, after checking every change against the teams
    /// as observed now. Any problem → nothing is returned, so nothing is
    /// applied.
    pub fn to_plan(&self, file: &str, observed: &Observed) -> Result<Plan, PlanFileError> {
        let mut tampered = Vec::new();
        let mut stale = Vec::new();
        let mut teams = Vec::new();
        for t in &self.teams {
            let id = TeamId(t.id.clone());
            let Some(live) = observed.teams.get(&id) else {
                stale.push(format!("team {id} could not be read"));
                continue;
            };
            let changes = match load_changes(t) {
                Ok(c) => c,
                Err(detail) => {
                    return Err(PlanFileError::Invalid {
                        file: file.to_owned(),
                        detail,
                    });
                }
            };
            check_live(t, &changes, live, &mut tampered, &mut stale);
            teams.push(TeamPlan {
                team_id: id,
                team_name: t.name.clone(),
                managed: Vec::new(),
                changes,
                blocked: Vec::new(),
                findings: Vec::new(),
                seats: Vec::new(),
            });
        }
        if !tampered.is_empty() {
            return Err(PlanFileError::Tampered {
                file: file.to_owned(),
                what: tampered,
            });
        }
        if !stale.is_empty() {
            return Err(PlanFileError::Stale {
                file: file.to_owned(),
                what: stale,
            });
        }
        Ok(Plan { teams })
    }
}

fn save_team(
    t: &TeamPlan,
    live: &ObservedTeam,
    declared: &DesiredTeam,
    overrides: &Overrides,
) -> SavedTeam {
    let facts = Facts::new(live);
    let products: BTreeMap<String, SavedPool> = t
        .managed
        .iter()
        .map(|p| {
            (
                p.alias.0.clone(),
                SavedPool {
                    id: p.id.0.clone(),
                    name: p.name.clone(),
                },
            )
        })
        .collect();
    let policy = &declared.policy;
    SavedTeam {
        id: t.team_id.0.clone(),
        name: t.team_name.clone(),
        policy: SavedPolicy {
            prune: policy.prune,
            protect: policy.protect.iter().map(Email::to_string).collect(),
            max_unassign: overrides
                .max_unassign
                .unwrap_or(policy.max_unassign)
                .to_string(),
            max_invite: overrides
                .max_invite
                .unwrap_or(policy.max_invite)
                .to_string(),
            direct_holdings: direct_holdings(&products, live),
            members: live.users.len(),
        },
        products,
        changes: t.changes.iter().map(|c| save_change(c, &facts)).collect(),
    }
}

/// Direct assignments of the managed products: the removal guard's base.
fn direct_holdings(products: &BTreeMap<String, SavedPool>, live: &ObservedTeam) -> usize {
    let ids: std::collections::BTreeSet<&str> = products.values().map(|p| p.id.as_str()).collect();
    live.assignments
        .iter()
        .filter(|a| a.assignment_type.is_direct() && ids.contains(a.product_id.0.as_str()))
        .count()
}

fn save_change(c: &Change, facts: &Facts<'_>) -> SavedChange {
    let (user_id, first_name, last_name) = match c {
        Change::Invite {
            first_name,
            last_name,
            ..
        } => (None, first_name.clone(), last_name.clone()),
        Change::Assign { user_id, .. } => (user_id.as_ref().map(ToString::to_string), None, None),
        Change::Unassign { user_id, .. } => (Some(user_id.to_string()), None, None),
    };
    SavedChange {
        action: match c {
            Change::Invite { .. } => SavedAction::Invite,
            Change::Assign { .. } => SavedAction::Assign,
            Change::Unassign { .. } => SavedAction::Unassign,
        },
        email: c.email().to_string(),
        user_id,
        first_name,
        last_name,
        product: c.product().map(|p| p.alias.0.clone()),
        depends_on: plan::fingerprint(c, facts),
    }
}

/// What a saved team's own policy forbids, found without the API.
fn self_consistency(t: &SavedTeam, what: &mut Vec<String>) {
    let team = &t.id;
    let mut unassigns = 0usize;
    let mut invites = 0usize;
    let invited: std::collections::BTreeSet<&str> = t
        .changes
        .iter()
        .filter(|c| c.action == SavedAction::Invite)
        .map(|c| c.email.as_str())
        .collect();
    for c in &t.changes {
        let label = format!("{} {} in team {team}", c.action, c.email);
        if let Some(alias) = &c.product
            && !t.products.contains_key(alias)
        {
            what.push(format!(
                "{label}: product `{alias}` is not one of the plan's products"
            ));
        }
        match c.action {
            SavedAction::Unassign => {
                unassigns += 1;
                if !t.policy.prune {
                    what.push(format!("{label}: the plan's policy has prune off"));
                }
                if t.policy
                    .protect
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(&c.email))
                {
                    what.push(format!(
                        "{label}: {} is protected by the plan's policy",
                        c.email
                    ));
                }
            }
            SavedAction::Invite => invites += 1,
            SavedAction::Assign if c.user_id.is_none() && !invited.contains(c.email.as_str()) => {
                what.push(format!("{label}: no user id and no invitation in the plan"));
            }
            _ => {}
        }
    }
    for (kind, count, limit, base, field) in [
        (
            "unassignments",
            unassigns,
            &t.policy.max_unassign,
            t.policy.direct_holdings,
            "maxUnassign",
        ),
        (
            "invitations",
            invites,
            &t.policy.max_invite,
            t.policy.members,
            "maxInvite",
        ),
    ] {
        match Limit::parse(limit) {
            Ok(l) if count > l.limit(base) => what.push(format!(
                "team {team}: {count} {kind} exceed the plan's own {field} {l} ({} of {base})",
                l.limit(base)
            )),
            Ok(_) => {}
            Err(e) => what.push(format!("team {team}: {field} {e}")),
        }
    }
}

/// Each change against the live team: ids must be the email's account
/// (else tampered); the name, pools and guard limits must still hold and
/// every fingerprint match (else stale).
fn check_live(
    t: &SavedTeam,
    changes: &[Change],
    live: &ObservedTeam,
    tampered: &mut Vec<String>,
    stale: &mut Vec<String>,
) {
    let team = &t.id;
    if live.name != t.name {
        stale.push(format!(
            "team {team} is called {:?} now, not {:?} as when planned",
            live.name, t.name
        ));
    }
    let facts = Facts::new(live);
    for (saved, change) in t.changes.iter().zip(changes) {
        let label = format!("{} {} in team {team}", saved.action, saved.email);
        let claimed = match change {
            Change::Assign {
                user_id: Some(u), ..
            }
            | Change::Unassign { user_id: u, .. } => Some(u),
            _ => None,
        };
        if let Some(claimed) = claimed {
            match facts.user_of(change.email()) {
                Some(actual) if actual == claimed => {}
                Some(actual) => tampered.push(format!(
                    "{label}: user id {claimed} is not {}'s account on the team (that is {actual})",
                    change.email()
                )),
                None => stale.push(format!("{label}: {} is not on the team", change.email())),
            }
        }
        if let Some(p) = change.product() {
            match facts.pool(&p.id) {
                Some(pool) if pool.product_name == p.name => {}
                _ => stale.push(format!(
                    "{label}: the team has no pool {} ({})",
                    p.name, p.id
                )),
            }
        }
        if plan::fingerprint(change, &facts) != saved.depends_on {
            stale.push(label);
        }
    }
    let holdings = direct_holdings(&t.products, live);
    let unassigns = changes
        .iter()
        .filter(|c| matches!(c, Change::Unassign { .. }))
        .count();
    if let Ok(limit) = Limit::parse(&t.policy.max_unassign)
        && unassigns > limit.limit(holdings)
    {
        stale.push(format!(
            "team {team}: {unassigns} unassignments now exceed maxUnassign {limit} ({} of today's {holdings})",
            limit.limit(holdings)
        ));
    }
    let invites = changes
        .iter()
        .filter(|c| matches!(c, Change::Invite { .. }))
        .count();
    if let Ok(limit) = Limit::parse(&t.policy.max_invite)
        && invites > limit.limit(live.users.len())
    {
        stale.push(format!(
            "team {team}: {invites} invitations now exceed maxInvite {limit} ({} of today's {} members)",
            limit.limit(live.users.len()),
            live.users.len()
        ));
    }
}

fn load_changes(t: &SavedTeam) -> Result<Vec<Change>, String> {
    t.changes.iter().map(|c| load_change(t, c)).collect()
}

fn load_change(t: &SavedTeam, s: &SavedChange) -> Result<Change, String> {
    let email = Email::parse(&s.email).map_err(|e| format!("{}: {e}", s.email))?;
    let product = || -> Result<ProductRef, String> {
        let alias = s
            .product
            .as_ref()
            .ok_or_else(|| format!("{} {} has no product", s.action, s.email))?;
        let pool = t
            .products
            .get(alias)
            .ok_or_else(|| format!("{} {}: unknown product `{alias}`", s.action, s.email))?;
        Ok(ProductRef {
            alias: Alias(alias.clone()),
            id: ProductId(pool.id.clone()),
            name: pool.name.clone(),
        })
    };
    match s.action {
        SavedAction::Invite => Ok(Change::Invite {
            email,
            first_name: s.first_name.clone(),
            last_name: s.last_name.clone(),
        }),
        SavedAction::Assign => Ok(Change::Assign {
            email,
            user_id: s.user_id.clone().map(UserId::from),
            product: Arc::new(product()?),
        }),
        SavedAction::Unassign => Ok(Change::Unassign {
            email,
            user_id: UserId::from(
                s.user_id
                    .clone()
                    .ok_or_else(|| format!("unassign {} has no userId", s.email))?,
            ),
            product: Arc::new(product()?),
        }),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
