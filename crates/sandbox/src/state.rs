//! The simulated world: accounts, teams, members, pools, groups and assignments, and the
//! rules that read and change them. No HTTP here; `api.rs` maps outcomes to statuses.
//!
//! Direct assignments are kept as a history (`createdAt` / `removedAt`) rather than a set,
//! so team-wide List Assignments can be answered "as of" a moment in the past: that is
//! how the consistency delay is simulated.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::config::{Precedence, Quirks};
use super::grants::OAuthState;

/// Everything the sandbox persists.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct World {
    /// Autodesk accounts by user id. An account may be on several teams.
    pub accounts: BTreeMap<String, Account>,
    /// Teams by id (List Teams order).
    pub teams: BTreeMap<String, Team>,
    /// Team ids each admin account currently administers (re-checked on every request).
    pub admins: BTreeMap<String, BTreeSet<String>>,
    /// Number used for the next account created by an invitation.
    pub next_user_number: u64,
    /// Codes and tokens, so a restart does not log the client out.
    pub oauth: OAuthState,
    /// Every change made to a team, oldest first (at most [`MAX_CHANGES`]). Saved with
    /// the rest, so a count of writes made survives a restart.
    #[serde(default)]
    pub changes: Vec<ChangeRecord>,
}

/// How many [`ChangeRecord`]s the world keeps; the oldest go first, so a long
/// rehearsal cannot grow the state file without bound.
pub const MAX_CHANGES: usize = 10_000;

/// One change to a team: what `GET /_sandbox/changes` lists, so a test can count the
/// writes a client made from the server's side rather than from the client's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRecord {
    pub at: Timestamp,
    pub team: String,
    pub action: ChangeAction,
    pub user_id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    pub by: ChangeSource,
}

/// What changed: a new member (an invitation), a direct assignment made or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeAction {
    Invite,
    Assign,
    Unassign,
}

/// Who made a change: a Team Admin API call, or `/_sandbox/` acting as another admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeSource {
    Api,
    Admin,
}

/// An Autodesk account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

/// One team.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub name: String,
    /// Email domains of the organisation; anyone else is added as `EXTERNAL_USER`.
    /// Empty: everyone is `USER`.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Members in the order they joined (List Team Users order).
    pub members: Vec<Member>,
    pub pools: Vec<Pool>,
    pub groups: Vec<Group>,
    /// Products every member inherits through the team.
    pub team_products: BTreeSet<String>,
    /// Direct assignments, including removed ones still inside the consistency delay.
    pub direct: Vec<DirectAssignment>,
    /// Invitations sent, by lower-cased email.
    pub invitations: BTreeMap<String, u32>,
}

/// Team membership of an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user_id: String,
    pub role: Role,
    pub status: MemberStatus,
}

/// Team role of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    User,
    ExternalUser,
}

/// Whether the member has accepted (seeded members have).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemberStatus {
    Active,
    Pending,
}

/// Seats of one product held by a team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    pub product_id: String,
    pub product_name: String,
    pub unlimited: bool,
    /// Seats; ignored when `unlimited`.
    pub total_quantity: Option<u32>,
    pub start_date: Timestamp,
    pub end_date: Timestamp,
    /// Unsupported pools are known to the server but hidden from List Product Pools and
    /// List Assignments, and refused by Assign/Unassign (422).
    pub supported: bool,
}

/// A group whose members inherit its products. Groups cannot be seen through the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub name: String,
    pub members: BTreeSet<String>,
    pub products: BTreeSet<String>,
}

/// One direct assignment, present from `created_at` until `removed_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectAssignment {
    pub user_id: String,
    pub product_id: String,
    /// `None` for seeded assignments: present since before anyone looked.
    pub created_at: Option<Timestamp>,
    pub removed_at: Option<Timestamp>,
}

impl DirectAssignment {
    fn live(&self) -> bool {
        self.removed_at.is_none()
    }

    fn visible_at(&self, t: Timestamp) -> bool {
        self.created_at.is_none_or(|c| c <= t) && self.removed_at.is_none_or(|r| r > t)
    }
}

/// Where an effective assignment comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Direct,
    Group,
    Team,
}

/// One row of List Assignments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveAssignment {
    pub user_id: String,
    pub email: String,
    pub team_id: String,
    pub product_id: String,
    pub source: Source,
}

/// A user as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub status: MemberStatus,
}

/// A pool as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolView {
    pub pool: Pool,
    /// `None` when unlimited (or not started, if that quirk is on).
    pub assigned: Option<u32>,
}

/// Why a write was refused. `api.rs` turns these into Problem Details.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("product {0} is not one of this team's product pools")]
    UnknownProduct(String),
    #[error("product {0} is not supported by the Team Admin API")]
    UnsupportedProduct(String),
    #[error("user {0} is not a member of this team")]
    UserNotOnTeam(String),
    #[error("the pool of product {0} has not started yet")]
    PoolNotStarted(String),
    #[error("the pool of product {0} has expired")]
    PoolExpired(String),
    #[error("no free seats left in the pool of product {0}")]
    NoSeats(String),
    #[error("user {user} has no assignment of product {product}")]
    NothingToRemove { user: String, product: String },
    #[error(
        "user {user} holds product {product} only through a group or the team; inherited assignments cannot be removed"
    )]
    OnlyInherited { user: String, product: String },
}

/// Result of a convergent write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Existed,
}

impl World {
    /// Team ids `account` currently administers.
    pub fn administered(&self, account: &str) -> impl Iterator<Item = &String> {
        self.admins
            .get(account)
            .into_iter()
            .flatten()
            .filter(|t| self.teams.contains_key(*t))
    }

    /// Whether `account` may act on `team` (false for unknown teams too).
    pub fn administers(&self, account: &str, team: &str) -> bool {
        self.teams.contains_key(team) && self.admins.get(account).is_some_and(|t| t.contains(team))
    }

    /// Finds an admin account by id or (case-insensitive) email.
    pub fn find_admin(&self, who: &str) -> Option<String> {
        self.admins.keys().find_map(|id| {
            let account = self.accounts.get(id)?;
            (id == who || account.email.eq_ignore_ascii_case(who)).then(|| id.clone())
        })
    }

    fn user_view(&self, member: &Member) -> Option<UserView> {
        let account = self.accounts.get(&member.user_id)?;
        Some(UserView {
            id: member.user_id.clone(),
            email: account.email.clone(),
            first_name: account.first_name.clone(),
            last_name: account.last_name.clone(),
            role: member.role,
            status: member.status,
        })
    }

    /// Members of a team, in List Team Users order, optionally filtered by email.
    pub fn users(&self, team_id: &str, email: Option<&str>, ignore_case: bool) -> Vec<UserView> {
        let Some(team) = self.teams.get(team_id) else {
            return Vec::new();
        };
        team.members
            .iter()
            .filter_map(|m| self.user_view(m))
            .filter(|u| match email {
                None => true,
                Some(e) if ignore_case => u.email.eq_ignore_ascii_case(e),
                Some(e) => u.email == e,
            })
            .collect()
    }

    /// One member of a team.
    pub fn user(&self, team_id: &str, user_id: &str) -> Option<UserView> {
        let team = self.teams.get(team_id)?;
        let member = team.members.iter().find(|m| m.user_id == user_id)?;
        self.user_view(member)
    }

    /// Add Team User: converges on email (case-insensitive). An invitation is recorded
    /// (counted, and a change made `by`) only when someone actually joins the team.
    pub fn add_user(
        &mut self,
        team_id: &str,
        email: &str,
        first_name: &str,
        last_name: &str,
        now: Timestamp,
        by: ChangeSource,
    ) -> Option<(UserView, Outcome)> {
        let existing_member = {
            let team = self.teams.get(team_id)?;
            team.members.iter().find(|m| {
                self.accounts
                    .get(&m.user_id)
                    .is_some_and(|a| a.email.eq_ignore_ascii_case(email))
            })
        };
        if let Some(member) = existing_member {
            return Some((self.user_view(member)?, Outcome::Existed));
        }
        // An existing Autodesk account keeps its own name; the request's name only
        // builds the invitation of a brand-new account.
        let (user_id, status) = match self
            .accounts
            .iter()
            .find(|(_, a)| a.email.eq_ignore_ascii_case(email))
        {
            Some((id, _)) => (id.clone(), MemberStatus::Active),
            None => {
                let id = self.mint_user_id();
                self.accounts.insert(
                    id.clone(),
                    Account {
                        email: email.to_owned(),
                        first_name: first_name.to_owned(),
                        last_name: last_name.to_owned(),
                    },
                );
                (id, MemberStatus::Pending)
            }
        };
        let team = self.teams.get_mut(team_id)?;
        let role = role_for(&team.domains, email);
        team.members.push(Member {
            user_id: user_id.clone(),
            role,
            status,
        });
        *team
            .invitations
            .entry(email.to_ascii_lowercase())
            .or_default() += 1;
        let member = team.members.last()?.clone();
        let view = self.user_view(&member)?;
        self.record_change(now, team_id, ChangeAction::Invite, &view.id, None, by);
        Some((view, Outcome::Created))
    }

    fn mint_user_id(&mut self) -> String {
        loop {
            self.next_user_number += 1;
            let id = format!("US9{:09}", self.next_user_number);
            if !self.accounts.contains_key(&id) {
                return id;
            }
        }
    }

    /// Supported pools as List Product Pools shows them.
    pub fn pools(&self, team_id: &str, now: Timestamp, quirks: &Quirks) -> Vec<PoolView> {
        let Some(team) = self.teams.get(team_id) else {
            return Vec::new();
        };
        team.pools
            .iter()
            .filter(|p| p.supported)
            .map(|p| {
                let hidden =
                    p.unlimited || (quirks.unstarted_pool_assigned_null && now < p.start_date);
                PoolView {
                    pool: p.clone(),
                    assigned: (!hidden).then(|| self.seats_used(team, &p.product_id, quirks)),
                }
            })
            .collect()
    }

    fn seats_used(&self, team: &Team, product: &str, quirks: &Quirks) -> u32 {
        let holders = team
            .members
            .iter()
            .filter(|m| {
                self.sources(team, &m.user_id, product, None)
                    .iter()
                    .any(|s| quirks.inherited_use_seats || *s == Source::Direct)
            })
            .count();
        u32::try_from(holders).unwrap_or(u32::MAX)
    }

    /// Every source through which `user` holds `product`, live (`as_of: None`) or as it
    /// looked at `as_of`.
    fn sources(
        &self,
        team: &Team,
        user: &str,
        product: &str,
        as_of: Option<Timestamp>,
    ) -> Vec<Source> {
        let mut out = Vec::new();
        if team.direct.iter().any(|d| {
            d.user_id == user
                && d.product_id == product
                && as_of.map_or(d.live(), |t| d.visible_at(t))
        }) {
            out.push(Source::Direct);
        }
        if team
            .groups
            .iter()
            .any(|g| g.members.contains(user) && g.products.contains(product))
        {
            out.push(Source::Group);
        }
        if team.team_products.contains(product) {
            out.push(Source::Team);
        }
        out
    }

    /// List Assignments: one row per (user, product) with the effective source.
    /// `as_of: Some(t)` answers as the team looked at `t` (the consistency delay).
    pub fn assignments(
        &self,
        team_id: &str,
        user_filter: Option<&str>,
        product_filter: Option<&str>,
        as_of: Option<Timestamp>,
        precedence: Precedence,
    ) -> Vec<EffectiveAssignment> {
        let Some(team) = self.teams.get(team_id) else {
            return Vec::new();
        };
        let mut rows = Vec::new();
        for member in &team.members {
            if user_filter.is_some_and(|u| u != member.user_id) {
                continue;
            }
            let Some(account) = self.accounts.get(&member.user_id) else {
                continue;
            };
            for pool in team.pools.iter().filter(|p| p.supported) {
                if product_filter.is_some_and(|p| p != pool.product_id) {
                    continue;
                }
                let sources = self.sources(team, &member.user_id, &pool.product_id, as_of);
                if let Some(source) = effective(&sources, precedence) {
                    rows.push(EffectiveAssignment {
                        user_id: member.user_id.clone(),
                        email: account.email.clone(),
                        team_id: team_id.to_owned(),
                        product_id: pool.product_id.clone(),
                        source,
                    });
                }
            }
        }
        rows
    }

    fn row(
        &self,
        team_id: &str,
        user: &str,
        product: &str,
        precedence: Precedence,
    ) -> Option<EffectiveAssignment> {
        self.assignments(team_id, Some(user), Some(product), None, precedence)
            .into_iter()
            .next()
    }

    fn checked_pool<'t>(team: &'t Team, product: &str) -> Result<&'t Pool, Refusal> {
        let pool = team
            .pools
            .iter()
            .find(|p| p.product_id == product)
            .ok_or_else(|| Refusal::UnknownProduct(product.to_owned()))?;
        if !pool.supported {
            return Err(Refusal::UnsupportedProduct(product.to_owned()));
        }
        Ok(pool)
    }

    /// Assign Product: converges (an existing direct assignment is returned unchanged);
    /// a new one is recorded as a change made `by`.
    pub fn assign(
        &mut self,
        team_id: &str,
        user: &str,
        product: &str,
        now: Timestamp,
        quirks: &Quirks,
        by: ChangeSource,
    ) -> Result<(EffectiveAssignment, Outcome), Refusal> {
        let team = self
            .teams
            .get(team_id)
            .ok_or_else(|| Refusal::UnknownProduct(product.to_owned()))?;
        let pool = Self::checked_pool(team, product)?;
        if !team.members.iter().any(|m| m.user_id == user) {
            return Err(Refusal::UserNotOnTeam(user.to_owned()));
        }
        let sources = self.sources(team, user, product, None);
        if sources.contains(&Source::Direct) {
            let row = self
                .row(team_id, user, product, quirks.precedence)
                .ok_or_else(|| Refusal::UserNotOnTeam(user.to_owned()))?;
            return Ok((row, Outcome::Existed));
        }
        if now < pool.start_date {
            return Err(Refusal::PoolNotStarted(product.to_owned()));
        }
        if now >= pool.end_date {
            return Err(Refusal::PoolExpired(product.to_owned()));
        }
        // A user already holding the product by inheritance occupies a seat already
        // (when inherited holders use seats), so a direct one on top needs no new seat.
        let already_seated = quirks.inherited_use_seats && !sources.is_empty();
        if !pool.unlimited && !already_seated {
            let total = pool.total_quantity.unwrap_or(0);
            if self.seats_used(team, product, quirks) >= total {
                return Err(Refusal::NoSeats(product.to_owned()));
            }
        }
        if let Some(team) = self.teams.get_mut(team_id) {
            team.direct.push(DirectAssignment {
                user_id: user.to_owned(),
                product_id: product.to_owned(),
                created_at: Some(now),
                removed_at: None,
            });
        }
        let row = self
            .row(team_id, user, product, quirks.precedence)
            .ok_or_else(|| Refusal::UserNotOnTeam(user.to_owned()))?;
        self.record_change(now, team_id, ChangeAction::Assign, user, Some(product), by);
        Ok((row, Outcome::Created))
    }

    /// Unassign Product: removes the direct assignment and keeps inherited ones,
    /// recording the removal as a change made `by`. Returns the removed assignment.
    pub fn unassign(
        &mut self,
        team_id: &str,
        user: &str,
        product: &str,
        now: Timestamp,
        by: ChangeSource,
    ) -> Result<EffectiveAssignment, Refusal> {
        let nothing = || Refusal::NothingToRemove {
            user: user.to_owned(),
            product: product.to_owned(),
        };
        let team = self.teams.get(team_id).ok_or_else(nothing)?;
        match Self::checked_pool(team, product) {
            Err(Refusal::UnknownProduct(_)) => return Err(nothing()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let sources = self.sources(team, user, product, None);
        if !sources.contains(&Source::Direct) {
            return Err(if sources.is_empty() {
                nothing()
            } else {
                Refusal::OnlyInherited {
                    user: user.to_owned(),
                    product: product.to_owned(),
                }
            });
        }
        let email = self
            .accounts
            .get(user)
            .map(|a| a.email.clone())
            .unwrap_or_default();
        let team = self.teams.get_mut(team_id).ok_or_else(nothing)?;
        for d in team
            .direct
            .iter_mut()
            .filter(|d| d.user_id == user && d.product_id == product && d.live())
        {
            d.removed_at = Some(now);
        }
        self.record_change(
            now,
            team_id,
            ChangeAction::Unassign,
            user,
            Some(product),
            by,
        );
        Ok(EffectiveAssignment {
            user_id: user.to_owned(),
            email,
            team_id: team_id.to_owned(),
            product_id: product.to_owned(),
            source: Source::Direct,
        })
    }

    /// Forgets removed assignments that no delayed view can show any more.
    pub fn prune_history(&mut self, horizon: Timestamp) {
        for team in self.teams.values_mut() {
            team.direct
                .retain(|d| d.removed_at.is_none_or(|r| r > horizon));
        }
    }

    /// Records a change that just happened (the caller knows it did: `Created`, or a
    /// removal), naming the user by id and email.
    fn record_change(
        &mut self,
        at: Timestamp,
        team: &str,
        action: ChangeAction,
        user_id: &str,
        product_id: Option<&str>,
        by: ChangeSource,
    ) {
        let email = self
            .accounts
            .get(user_id)
            .map(|a| a.email.to_ascii_lowercase())
            .unwrap_or_default();
        if self.changes.len() >= MAX_CHANGES {
            let excess = self.changes.len() + 1 - MAX_CHANGES;
            self.changes.drain(..excess);
        }
        self.changes.push(ChangeRecord {
            at,
            team: team.to_owned(),
            action,
            user_id: user_id.to_owned(),
            email,
            product_id: product_id.map(str::to_owned),
            by,
        });
    }

    /// Invitations sent per team and lower-cased email.
    pub fn invitations(&self) -> BTreeMap<String, BTreeMap<String, u32>> {
        self.teams
            .iter()
            .map(|(id, t)| (id.clone(), t.invitations.clone()))
            .collect()
    }
}

/// The team decides the role: people outside its email domains join as external users.
pub fn role_for(domains: &[String], email: &str) -> Role {
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    if domains.is_empty() || domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
        Role::User
    } else {
        Role::ExternalUser
    }
}

fn effective(sources: &[Source], precedence: Precedence) -> Option<Source> {
    let order = match precedence {
        Precedence::DirectFirst => [Source::Direct, Source::Group, Source::Team],
        Precedence::InheritedFirst => [Source::Group, Source::Team, Source::Direct],
    };
    order.into_iter().find(|s| sources.contains(s))
}
