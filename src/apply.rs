//! Carries out a plan's changes. Decides nothing: it sends exactly the
//! executable changes it is given, in their order, and reports each outcome.
//! Blocked changes are not in its input, so they can never be sent.
//!
//! Teams run in parallel (their rate budgets are independent); within a team
//! changes run one by one, as fast as the team's budget allows. One failure
//! does not stop the others; an assignment whose invite failed is skipped.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::api::{Assigned, Client, Unassigned};
use crate::model::{Email, TeamId, UserId};
use crate::plan::{Change, Plan, TeamPlan};
use crate::report::{ApplyReport, ChangeResult, Outcome, TeamReport};

/// Hears about every write, e.g. to draw progress or append audit lines.
pub trait Observer: Send + Sync {
    /// Before a write is sent. An error means the write must not be sent
    /// (the audit log could not record it); it is reported as skipped.
    fn starting(&self, _team: &TeamId, _change: &Change) -> Result<(), String> {
        Ok(())
    }
    /// After a change was attempted or skipped.
    fn finished(&self, team: &TeamId, change: &Change, outcome: &Outcome);
}

/// Two observers heard in turn (e.g. the audit log and a progress bar).
pub struct Both<A, B>(pub A, pub B);

impl<A: Observer, B: Observer> Observer for Both<A, B> {
    fn starting(&self, team: &TeamId, change: &Change) -> Result<(), String> {
        self.0.starting(team, change)?;
        self.1.starting(team, change)
    }
    fn finished(&self, team: &TeamId, change: &Change, outcome: &Outcome) {
        self.0.finished(team, change, outcome);
        self.1.finished(team, change, outcome);
    }
}

/// Stops an apply between writes: on shutdown, or (in the service) when the
/// declaration the plan came from changed. A write that has started always
/// finishes; a write waiting for the rate budget is abandoned.
#[derive(Clone, Debug)]
pub struct Halt {
    /// Cancelled by either cause.
    token: CancellationToken,
    shutdown: CancellationToken,
}

impl Halt {
    pub fn on_shutdown(shutdown: &CancellationToken) -> Self {
        Halt {
            token: shutdown.clone(),
            shutdown: shutdown.clone(),
        }
    }

    /// Halts on shutdown, or when the returned token is cancelled.
    pub fn or_superseded(shutdown: &CancellationToken) -> (Self, CancellationToken) {
        let superseded = shutdown.child_token();
        let halt = Halt {
            token: superseded.clone(),
            shutdown: shutdown.clone(),
        };
        (halt, superseded)
    }

    pub fn is_halted(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Halted because the declaration changed, not for shutdown.
    pub fn superseded(&self) -> bool {
        self.token.is_cancelled() && !self.shutdown.is_cancelled()
    }

    fn reason(&self) -> &'static str {
        if self.shutdown.is_cancelled() {
            "shutting down before this write"
        } else {
            "the declaration changed before this write; the next pass plans again"
        }
    }
}

/// Executes every team's changes. Once halted, no new write starts; the
/// one in flight finishes and the rest are reported as skipped.
pub async fn execute(
    client: Arc<Client>,
    plan: &Plan,
    observer: Arc<dyn Observer>,
    halt: Halt,
) -> ApplyReport {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, team) in plan.teams.iter().enumerate() {
        if team.changes.is_empty() {
            continue;
        }
        let client = client.clone();
        let observer = observer.clone();
        let halt = halt.clone();
        let team = team.clone();
        tasks.spawn(async move {
            (
                index,
                execute_team(&client, &team, observer.as_ref(), &halt).await,
            )
        });
    }
    let mut reports = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(r) => reports.push(r),
            // A panicking task is a bug; report its team's changes as
            // skipped rather than losing them from the report.
            Err(e) => tracing::error!(error = %e, "an apply task failed"),
        }
    }
    reports.sort_by_key(|(i, _)| *i);
    let mut report = ApplyReport {
        teams: reports.into_iter().map(|(_, r)| r).collect(),
    };
    for team in &plan.teams {
        let present = report.teams.iter().any(|t| t.team_id == team.team_id);
        if !team.changes.is_empty() && !present {
            report.teams.push(TeamReport {
                team_id: team.team_id.clone(),
                team_name: team.team_name.clone(),
                results: team
                    .changes
                    .iter()
                    .map(|c| ChangeResult {
                        change: c.clone(),
                        outcome: Outcome::Skipped {
                            reason: "internal error while applying this team".into(),
                        },
                    })
                    .collect(),
            });
        }
    }
    report
}

async fn execute_team(
    client: &Client,
    team: &TeamPlan,
    observer: &dyn Observer,
    halt: &Halt,
) -> TeamReport {
    let id = &team.team_id;
    // Ids of people invited in this run, for their assignments.
    let mut invited: BTreeMap<Email, UserId> = BTreeMap::new();
    let mut failed_invites: BTreeMap<Email, String> = BTreeMap::new();
    let mut results = Vec::new();
    for change in &team.changes {
        // Waiting for the budget happens here, where it can be abandoned,
        // not inside the call, where the write would go out regardless.
        let outcome = if !client.ready_for(id, &halt.token).await {
            Outcome::Skipped {
                reason: halt.reason().into(),
            }
        } else {
            match observer.starting(id, change) {
                Ok(()) => run_one(client, id, change, &invited, &failed_invites).await,
                Err(reason) => Outcome::Skipped { reason },
            }
        };
        match (change, &outcome) {
            (
                Change::Invite { email, .. },
                Outcome::Done {
                    user_id: Some(uid), ..
                },
            ) => {
                invited.insert(email.clone(), uid.clone());
            }
            (Change::Invite { email, .. }, Outcome::Failed { message, .. }) => {
                failed_invites.insert(email.clone(), message.clone());
            }
            _ => {}
        }
        log_outcome(id, change, &outcome);
        observer.finished(id, change, &outcome);
        results.push(ChangeResult {
            change: change.clone(),
            outcome,
        });
    }
    TeamReport {
        team_id: id.clone(),
        team_name: team.team_name.clone(),
        results,
    }
}

async fn run_one(
    client: &Client,
    team: &TeamId,
    change: &Change,
    invited: &BTreeMap<Email, UserId>,
    failed_invites: &BTreeMap<Email, String>,
) -> Outcome {
    match change {
        Change::Invite {
            email,
            first_name,
            last_name,
        } => match client
            .add_user(team, email, first_name.as_deref(), last_name.as_deref())
            .await
        {
            Ok((user, receipt)) => Outcome::Done {
                note: if receipt.status == 201 {
                    "invited"
                } else {
                    "already a member"
                },
                status: receipt.status,
                request_id: receipt.request_id,
                user_id: Some(user.id),
            },
            Err(e) => failed(&e),
        },
        Change::Assign {
            email,
            user_id,
            product,
        } => {
            let uid = match user_id.as_ref().or_else(|| invited.get(email)) {
                Some(uid) => uid,
                None => {
                    return Outcome::Skipped {
                        reason: match failed_invites.get(email) {
                            Some(why) => format!("the invite failed: {why}"),
                            None => "the person's user id is unknown (no invite ran)".into(),
                        },
                    };
                }
            };
            match client.assign(team, uid, &product.id).await {
                Ok((how, receipt)) => Outcome::Done {
                    note: match how {
                        Assigned::Created => "assigned",
                        Assigned::AlreadyThere => "already assigned",
                    },
                    status: receipt.status,
                    request_id: receipt.request_id,
                    user_id: None,
                },
                Err(e) => failed(&e),
            }
        }
        Change::Unassign {
            user_id, product, ..
        } => match client.unassign(team, user_id, &product.id).await {
            Ok((how, receipt)) => Outcome::Done {
                note: match how {
                    Unassigned::Removed => "unassigned",
                    Unassigned::WasNotAssigned => "was not assigned",
                    Unassigned::OnlyInheritedRemains => "only an inherited assignment remains",
                },
                status: receipt.status,
                request_id: receipt.request_id,
                user_id: None,
            },
            Err(e) => failed(&e),
        },
    }
}

fn failed(e: &crate::api::ApiError) -> Outcome {
    Outcome::Failed {
        status: e.status(),
        request_id: e.request_id().map(str::to_owned),
        message: e.to_string(),
    }
}

/// One log line per write, a sentence with what an admin needs to ask
/// support as fields.
fn log_outcome(team: &TeamId, change: &Change, outcome: &Outcome) {
    let action = change.verb();
    let user = change.email().as_str();
    let product = change.product().map(|p| p.alias.0.as_str());
    let what = match change {
        Change::Invite { email, .. } => format!("invite {email}"),
        Change::Assign { email, product, .. } => format!("assign {} to {email}", product.alias),
        Change::Unassign { email, product, .. } => {
            format!("unassign {} from {email}", product.alias)
        }
    };
    match outcome {
        Outcome::Done {
            status,
            request_id,
            note,
            ..
        } => {
            tracing::info!(%team, action, user, product, status, request_id = %request_id, "{what}: {note}")
        }
        Outcome::Failed {
            status,
            request_id,
            message,
        } => {
            tracing::warn!(%team, action, user, product, status, request_id = request_id.as_deref(), "{what} failed: {message}")
        }
        Outcome::Skipped { reason } => {
            tracing::warn!(%team, action, user, product, "{what} skipped: {reason}")
        }
    }
}
