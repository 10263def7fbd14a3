//! "Why does (or doesn't) this person hold Flex?": one person's holdings,
//! declaration and planned changes, gathered from a plan and the state it
//! was made from.
//!
//! Pure, like the planner: it reads a [`Plan`] and explains it; it never
//! decides anything the plan did not. Rendered by `render::explain`; the one sentence it words itself (a
//! verdict) uses the plan's own wording of block reasons.

use crate::model::{
    Alias, AssignmentType, Desired, DesiredTeam, DesiredUser, Email, Observed, ObservedTeam,
    ProductId, TeamId, TeamUser,
};
use crate::plan::{BlockReason, Change, Finding, FindingCode, Plan, ProductRef, TeamPlan};

/// One person, in every team looked at.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    pub email: Email,
    pub teams: Vec<TeamExplanation>,
}

/// One person in one team.
#[derive(Clone, Debug, PartialEq)]
pub struct TeamExplanation {
    pub team_id: TeamId,
    pub team_name: String,
    /// Whether the team could be read (else everything below is "unknown").
    pub observed: bool,
    /// Their account on the team, if they have one.
    pub member: Option<TeamUser>,
    pub declared: Option<Declared>,
    pub prune: bool,
    pub protected: bool,
    /// The invitation the plan makes (or blocks) for them.
    pub invite: Option<Step>,
    /// Every product the declaration manages in the team.
    pub products: Vec<ProductExplanation>,
    /// What they hold of products the declaration does not manage.
    pub other_holdings: Vec<(String, AssignmentType)>,
    /// The plan's findings about them, their products or the whole team.
    pub findings: Vec<Finding>,
}

/// Where the declaration names the person.
#[derive(Clone, Debug, PartialEq)]
pub struct Declared {
    /// `file:line:column` of their `users:` entry, else of their first
    /// group membership.
    pub at: String,
    pub has_entry: bool,
    /// Their groups: name and `file:line:column`.
    pub groups: Vec<(String, String)>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub replaces: Vec<Email>,
}

/// What the plan does with one of their changes.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Planned(Change),
    Blocked(Change, BlockReason),
}

impl Step {
    pub fn change(&self) -> &Change {
        match self {
            Step::Planned(c) | Step::Blocked(c, _) => c,
        }
    }
}

/// Who asks for a product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Asker {
    /// Their own `users:` entry, at `file:line:column`.
    Entry(String),
    /// A group: its name and `file:line:column`.
    Group(String, String),
}

/// One managed product, for one person.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductExplanation {
    /// The alias; the pool's id and name when the alias resolved to one.
    pub alias: String,
    pub pool: Option<(ProductId, String)>,
    /// How they hold it now (the API reports the effective type).
    pub holds: Option<AssignmentType>,
    /// Who in the declaration asks for it; empty when nobody does.
    pub asked_by: Vec<Asker>,
    /// The plan's assignment or unassignment of it, if any.
    pub step: Option<Step>,
    /// Why it ends as it does, in words.
    pub verdict: String,
}

/// Explains `email` in every team of `plan` (made from `desired` and
/// `observed`).
pub fn explain(email: &Email, desired: &Desired, observed: &Observed, plan: &Plan) -> Explanation {
    let teams = plan
        .teams
        .iter()
        .filter_map(|tp| {
            let dt = desired.teams.get(&tp.team_id)?;
            Some(explain_team(email, dt, observed.teams.get(&tp.team_id), tp))
        })
        .collect();
    Explanation {
        email: email.clone(),
        teams,
    }
}

fn explain_team(
    email: &Email,
    dt: &DesiredTeam,
    ot: Option<&ObservedTeam>,
    tp: &TeamPlan,
) -> TeamExplanation {
    let member = ot.and_then(|t| t.users.iter().find(|u| &u.email == email).cloned());
    let held: Vec<(&ProductId, AssignmentType)> = match (ot, &member) {
        (Some(t), Some(m)) => t
            .assignments
            .iter()
            .filter(|a| a.user_id == m.id)
            .map(|a| (&a.product_id, a.assignment_type))
            .collect(),
        _ => Vec::new(),
    };
    let user = dt.users.get(email);
    let steps = steps_of(email, tp);
    let invite = steps
        .iter()
        .find(|s| matches!(s.change(), Change::Invite { .. }))
        .cloned();
    let protected = dt.policy.protect.contains(email);
    let about = Person {
        dt,
        tp,
        user,
        held: &held,
        steps: &steps,
        invite: invite.as_ref(),
        observed: ot.is_some(),
        member: member.is_some(),
        protected,
    };
    let products = dt
        .products
        .keys()
        .map(|alias| about.product(alias))
        .collect();
    let wanted: Vec<&str> = user
        .map(|u| u.products.iter().map(|a| a.0.as_str()).collect())
        .unwrap_or_default();
    let findings = tp
        .findings
        .iter()
        .filter(|f| relevant(f, email, &wanted))
        .cloned()
        .collect();
    TeamExplanation {
        team_id: tp.team_id.clone(),
        team_name: tp.team_name.clone(),
        observed: ot.is_some(),
        member,
        declared: user.map(|u| declared(dt, u)),
        prune: dt.policy.prune,
        protected,
        invite,
        products,
        other_holdings: other_holdings(ot, tp, &held),
        findings,
    }
}

/// Where and how the declaration names the person.
fn declared(dt: &DesiredTeam, u: &DesiredUser) -> Declared {
    Declared {
        at: dt.provenance.locate(u.origin.at),
        has_entry: u.origin.has_entry,
        groups: u
            .origin
            .groups
            .iter()
            .filter_map(|g| dt.provenance.groups.get(*g as usize))
            .map(|g| (g.name.clone(), dt.provenance.locate(g.at)))
            .collect(),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        replaces: u.replaces.iter().cloned().collect(),
    }
}

/// The plan's changes about the person, executable then blocked.
fn steps_of(email: &Email, tp: &TeamPlan) -> Vec<Step> {
    tp.changes
        .iter()
        .filter(|c| c.email() == email)
        .cloned()
        .map(Step::Planned)
        .chain(
            tp.blocked
                .iter()
                .filter(|b| b.change.email() == email)
                .map(|b| Step::Blocked(b.change.clone(), b.reason.clone())),
        )
        .collect()
}

/// Products the person holds that the declaration does not manage.
fn other_holdings(
    ot: Option<&ObservedTeam>,
    tp: &TeamPlan,
    held: &[(&ProductId, AssignmentType)],
) -> Vec<(String, AssignmentType)> {
    let Some(t) = ot else {
        return Vec::new();
    };
    held.iter()
        .filter(|(id, _)| !tp.managed.iter().any(|p| &p.id == *id))
        .map(|(id, how)| {
            let name = t
                .pools
                .iter()
                .find(|p| &p.product_id == *id)
                .map_or_else(|| id.0.clone(), |p| p.product_name.clone());
            (name, *how)
        })
        .collect()
}

/// One person in one team, as each managed product's explanation needs.
struct Person<'a> {
    dt: &'a DesiredTeam,
    tp: &'a TeamPlan,
    user: Option<&'a DesiredUser>,
    held: &'a [(&'a ProductId, AssignmentType)],
    steps: &'a [Step],
    invite: Option<&'a Step>,
    observed: bool,
    member: bool,
    protected: bool,
}

impl Person<'_> {
    fn product(&self, alias: &Alias) -> ProductExplanation {
        let pool: Option<&ProductRef> = self.tp.managed.iter().find(|p| &p.alias == alias);
        let now = pool.and_then(|p| {
            self.held
                .iter()
                .find(|(id, _)| **id == p.id)
                .map(|(_, how)| *how)
        });
        let step = self
            .steps
            .iter()
            .find(|s| s.change().product().is_some_and(|p| &p.alias == alias))
            .cloned();
        let verdict = verdict(Facts {
            observed: self.observed,
            holds: now,
            declared: self.user.is_some_and(|u| u.products.contains(alias)),
            step: step.as_ref(),
            member: self.member,
            invite: self.invite,
            prune: self.dt.policy.prune,
            protected: self.protected,
            resolved: pool.is_some(),
        });
        ProductExplanation {
            alias: alias.0.clone(),
            pool: pool.map(|p| (p.id.clone(), p.name.clone())),
            holds: now,
            asked_by: self.asked_by(alias),
            step,
            verdict,
        }
    }

    /// Who asks for `alias`: the person's own entry, and each group.
    fn asked_by(&self, alias: &Alias) -> Vec<Asker> {
        let (Some(u), dt) = (self.user, self.dt) else {
            return Vec::new();
        };
        let mut by = Vec::new();
        if let Some(i) = u.products.iter().position(|a| a == alias) {
            if u.origin.entry_lists(i) {
                by.push(Asker::Entry(dt.provenance.locate(u.origin.at)));
            }
            for g in u.origin.groups.iter() {
                if let Some(g) = dt.provenance.groups.get(*g as usize)
                    && g.products.contains(alias)
                {
                    by.push(Asker::Group(g.name.clone(), dt.provenance.locate(g.at)));
                }
            }
        }
        by
    }
}

/// What a verdict is drawn from.
struct Facts<'a> {
    observed: bool,
    holds: Option<AssignmentType>,
    declared: bool,
    step: Option<&'a Step>,
    member: bool,
    invite: Option<&'a Step>,
    prune: bool,
    protected: bool,
    resolved: bool,
}

/// The sentence that ends a product's explanation. It restates what the
/// plan did and why; the plan's rows come first.
fn verdict(f: Facts<'_>) -> String {
    let how = |t: AssignmentType| match t {
        AssignmentType::Direct => "directly".to_owned(),
        t => t.describe().to_owned(),
    };
    if !f.observed {
        return "unknown: the team could not be read (see the findings)".to_owned();
    }
    match f.step {
        Some(Step::Blocked(c, reason)) => {
            return format!(
                "the {} is blocked: {}; it is not sent until that changes",
                c.verb(),
                reason
            );
        }
        Some(Step::Planned(Change::Unassign { .. })) => {
            let keeps = match f.holds {
                Some(t) if !t.is_direct() => {
                    format!(" (Autodesk reports it held {}, which stays)", how(t))
                }
                _ => String::new(),
            };
            return format!(
                "will be unassigned: not declared for it and policy.prune is on{keeps}"
            );
        }
        Some(Step::Planned(_)) if !f.member => {
            return "will be assigned right after their invitation, in the same apply".to_owned();
        }
        Some(Step::Planned(_)) => return "will be assigned (direct)".to_owned(),
        None => {}
    }
    match (f.holds, f.declared) {
        (_, true) if !f.resolved => {
            "cannot be planned: the alias matches no single pool of the team (see the findings)"
                .to_owned()
        }
        (Some(t), true) => format!("holds it {}, as declared: nothing to do", how(t)),
        (None, true) => match f.invite {
            Some(Step::Blocked(_, reason)) => {
                format!("not assigned: their invitation is blocked ({})", reason)
            }
            _ => "declared, but nothing is planned (see the findings)".to_owned(),
        },
        (Some(t), false) if !t.is_direct() => format!(
            "keeps it: held {}, which flexsync never removes (only direct assignments are)",
            how(t)
        ),
        (Some(_), false) if f.protected => {
            "keeps it: protected by policy (never unassigned)".to_owned()
        }
        (Some(_), false) if !f.prune => {
            "keeps it: not declared for it, but policy.prune is off".to_owned()
        }
        (Some(_), false) => "keeps it for now (see the findings)".to_owned(),
        (None, false) => "does not hold it and is not declared for it: nothing to do".to_owned(),
    }
}

/// Findings that name the person, a product they are declared for, or
/// stop the whole team.
fn relevant(f: &Finding, email: &Email, wanted: &[&str]) -> bool {
    match f.code {
        FindingCode::TeamNotObserved | FindingCode::TeamNameMismatch | FindingCode::Suspended => {
            true
        }
        FindingCode::AliasMatchesNoPool
        | FindingCode::AliasMatchesSeveralPools
        | FindingCode::UnresolvedAlias => {
            wanted.iter().any(|a| f.message.contains(&format!("`{a}`")))
        }
        _ => mentions(&f.message, email.as_str()),
    }
}

/// Whether `text` names `email` as a whole address (`ada@x.org` is not
/// named by `nada@x.org`).
fn mentions(text: &str, email: &str) -> bool {
    let part_of_address =
        |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '@');
    text.match_indices(email).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        // A full stop ends a sentence unless the address goes on after it.
        let mut after = text[at + email.len()..].chars();
        let continues = match after.next() {
            Some('.') => after.next().is_some_and(char::is_alphanumeric),
            Some(c) => part_of_address(c),
            None => false,
        };
        !before.is_some_and(part_of_address) && !continues
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_named_only_whole() {
        assert!(mentions("kept by ada@x.org.", "ada@x.org"));
        assert!(mentions("ada@x.org keeps ps", "ada@x.org"));
        assert!(mentions("holders: bo@x.org, ada@x.org", "ada@x.org"));
        assert!(!mentions("nada@x.org keeps ps", "ada@x.org"));
        assert!(!mentions("ada@x.org.uk keeps ps", "ada@x.org"));
    }
}
