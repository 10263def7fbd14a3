//! What `/snapshot` serves for pull-request previews:
//!
//! - each declared team's last read with the service's own acknowledged
//!   writes laid over it, published as each write is acknowledged, so a
//!   preview made right after the service invited and assigned someone does
//!   not show that as still to do ([`Publisher`]);
//! - teams the login administers but no declaration names yet (a pull
//!   request that adds a team), read on demand through the same client and
//!   budget and kept briefly ([`OnDemand`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::consistency::Expectations;
use super::state::Shared;
use crate::api::{Client, Clock, ReadHint};
use crate::apply::Observer;
use crate::model::{Email, ObservedTeam, TeamId, UserId};
use crate::plan::Change;
use crate::report::Outcome;
use crate::snapshot::{OwnWrites, SnapshotTeam};

/// How long a team read on demand is served again: previews of one pull
/// request come in bursts (a push, a rerun), and each read costs the team
/// at least three of its 60 calls a minute.
pub const ON_DEMAND_TTL: Duration = Duration::from_secs(120);
/// A failed read on demand is not tried again sooner than this.
pub const ON_DEMAND_ERROR_TTL: Duration = Duration::from_secs(30);
/// The longest a read on demand may take, waiting for the team's budget
/// included: a preview must not hang on a team whose minute others spent.
pub const ON_DEMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Teams one request may name.
pub const MAX_TEAMS_PER_REQUEST: usize = 50;
/// Undeclared teams remembered at once; beyond, expired ones are forgotten
/// and a new one is refused until some expire.
const MAX_CACHED: usize = 256;
/// The list of administered teams is asked for again at most this often
/// for a team it lacks (admin roles granted since it was read).
const TEAM_LIST_REFRESH: Duration = Duration::from_secs(30);

/// Reads undeclared teams on demand, one read per team at a time, each
/// result kept for [`ON_DEMAND_TTL`] (failures for [`ON_DEMAND_ERROR_TTL`]).
pub struct OnDemand {
    client: Arc<Client>,
    slots: Mutex<HashMap<TeamId, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
    team_list_asked: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Clone)]
struct Cached {
    at: Instant,
    read: Result<Arc<SnapshotTeam>, String>,
}

impl Cached {
    fn fresh(&self) -> bool {
        let ttl = match self.read {
            Ok(_) => ON_DEMAND_TTL,
            Err(_) => ON_DEMAND_ERROR_TTL,
        };
        self.at.elapsed() < ttl
    }
}

impl OnDemand {
    pub fn new(client: Arc<Client>) -> Self {
        OnDemand {
            client,
            slots: Mutex::new(HashMap::new()),
            team_list_asked: tokio::sync::Mutex::new(None),
        }
    }

    /// The team as read on demand (or recently), or why it cannot be read.
    /// Concurrent requests for one team share one read.
    pub async fn read(&self, id: &TeamId) -> Result<Arc<SnapshotTeam>, String> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if !slots.contains_key(id) && slots.len() >= MAX_CACHED {
                // Forget what nobody is reading and has expired.
                slots.retain(|_, slot| {
                    Arc::strong_count(slot) > 1
                        || slot
                            .try_lock()
                            .map(|c| c.as_ref().is_some_and(Cached::fresh))
                            .unwrap_or(true)
                });
                if slots.len() >= MAX_CACHED {
                    return Err(format!(
                        "the service is already keeping {MAX_CACHED} teams read on demand;                          try again in {} s",
                        ON_DEMAND_TTL.as_secs()
                    ));
                }
            }
            slots.entry(id.clone()).or_default().clone()
        };
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| c.fresh()) {
            return c.read.clone();
        }
        let read = match tokio::time::timeout(ON_DEMAND_TIMEOUT, self.fetch(id)).await {
            Ok(read) => read,
            Err(_) => Err(format!(
                "reading team {id} took longer than {} s (its 60 calls a minute may be spent                  by others); try again in a minute",
                ON_DEMAND_TIMEOUT.as_secs()
            )),
        };
        if let Err(why) = &read {
            tracing::warn!(team = %id, error = %why, "snapshot: cannot read an undeclared team on demand");
        }
        *cached = Some(Cached {
            at: Instant::now(),
            read: read.clone(),
        });
        read
    }

    async fn fetch(&self, id: &TeamId) -> Result<Arc<SnapshotTeam>, String> {
        self.administered(id).await?;
        let (team, stats) = self
            .client
            .fetch_observed(id, &ReadHint::default())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(team = %id, calls = stats.calls, "snapshot: read an undeclared team on demand");
        Ok(Arc::new(SnapshotTeam::read(
            team,
            Some(self.client.clock().now()),
        )))
    }

    /// Whether the login administers `id`. The client's list of teams is
    /// cached between passes; a team it lacks may have been granted since,
    /// so the list is asked for again (at most every 30 s) before saying no.
    async fn administered(&self, id: &TeamId) -> Result<(), String> {
        let teams = self.client.teams().await.map_err(|e| e.to_string())?;
        if teams.contains_key(id) {
            return Ok(());
        }
        {
            let mut asked = self.team_list_asked.lock().await;
            if asked.is_none_or(|at| at.elapsed() >= TEAM_LIST_REFRESH) {
                *asked = Some(Instant::now());
                self.client.forget_teams().await;
            }
        }
        let teams = self.client.teams().await.map_err(|e| e.to_string())?;
        if teams.contains_key(id) {
            Ok(())
        } else {
            Err(format!(
                "the service's login does not administer team {id}, or it does not exist                  (a primary, secondary or SSO admin of the team must be the one logged in)"
            ))
        }
    }
}

/// `raw` (what Autodesk said at `observed_at`) with `facts` laid over it,
/// as the consistency overlay does before planning. Facts the read already
/// shows, or older than `window`, are not counted: only what changes the
/// view is reported as the service's own writes.
pub fn view(
    raw: &ObservedTeam,
    facts: &Expectations,
    observed_at: Timestamp,
    now: Timestamp,
    window: Duration,
) -> SnapshotTeam {
    let mut team = raw.clone();
    let mut facts = facts.clone();
    facts.overlay(&mut team, now, window);
    let own_writes = facts.latest().map(|last_at| OwnWrites {
        count: facts.len(),
        last_at,
    });
    SnapshotTeam {
        own_writes,
        ..SnapshotTeam::read(team, Some(observed_at))
    }
}

/// Publishes a team's view for `/snapshot` at the start of a pass and again
/// after every write the apply gets acknowledged.
pub struct Publisher {
    team: TeamId,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    window: Duration,
    observed_at: Timestamp,
    state: Mutex<Published>,
}

struct Published {
    raw: ObservedTeam,
    facts: Expectations,
    /// Ids of people this apply invited, for their assignments' facts.
    invited: HashMap<Email, UserId>,
}

impl Publisher {
    /// Publishes `raw` with `facts` (the pass's expectations after its
    /// overlay) laid over it.
    pub fn start(
        shared: Arc<Shared>,
        clock: Arc<dyn Clock>,
        window: Duration,
        raw: ObservedTeam,
        facts: Expectations,
        observed_at: Timestamp,
    ) -> Self {
        let publisher = Publisher {
            team: raw.id.clone(),
            shared,
            clock,
            window,
            observed_at,
            state: Mutex::new(Published {
                raw,
                facts,
                invited: HashMap::new(),
            }),
        };
        let state = publisher.state.lock().unwrap_or_else(|p| p.into_inner());
        publisher.publish(&state);
        drop(state);
        publisher
    }

    fn publish(&self, state: &Published) {
        let team = Arc::new(view(
            &state.raw,
            &state.facts,
            self.observed_at,
            self.clock.now(),
            self.window,
        ));
        self.shared
            .update_team(&self.team, |t| t.observed = Some(team));
    }
}

impl Observer for Publisher {
    fn finished(&self, team: &TeamId, change: &Change, outcome: &Outcome) {
        let Outcome::Done { user_id, .. } = outcome else {
            return;
        };
        if team != &self.team {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let (Change::Invite { email, .. }, Some(id)) = (change, user_id) {
            state.invited.insert(email.clone(), id.clone());
        }
        let invited = state.invited.get(change.email()).cloned();
        state
            .facts
            .record(change, outcome, invited.as_ref(), self.clock.now());
        self.publish(&state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Alias, AssignmentType, ProductId};
    use crate::plan::ProductRef;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    struct Fixed(Timestamp);
    impl Clock for Fixed {
        fn now(&self) -> Timestamp {
            self.0
        }
        fn sleep(
            &self,
            _: Duration,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
            Box::pin(async {})
        }
    }

    use crate::daemon::consistency::tests::team as one_member_team;

    fn done(user_id: Option<&str>) -> Outcome {
        Outcome::Done {
            status: 201,
            request_id: "r".into(),
            note: "created",
            user_id: user_id.map(|u| UserId(u.into())),
        }
    }

    fn published(shared: &Shared) -> Arc<SnapshotTeam> {
        shared.teams()[&TeamId("1".into())]
            .observed
            .clone()
            .unwrap()
    }

    #[test]
    fn each_acknowledged_write_shows_at_once_and_the_read_stays_dated() {
        let shared = Arc::new(Shared::default());
        let read_at = t("2026-11-26T10:00:00Z");
        let publisher = Publisher::start(
            shared.clone(),
            Arc::new(Fixed(t("2026-11-26T10:00:05Z"))),
            Duration::from_secs(900),
            one_member_team(),
            Expectations::default(),
            read_at,
        );
        let first = published(&shared);
        assert_eq!(first.observed_at, Some(read_at));
        assert_eq!(first.own_writes, None);

        let product = Arc::new(ProductRef {
            alias: Alias("ps".into()),
            id: ProductId("P".into()),
            name: "PS".into(),
        });
        let grace = Email::from_observed("grace@x.io");
        let invite = Change::Invite {
            email: grace.clone(),
            first_name: None,
            last_name: None,
        };
        let assign = Change::Assign {
            email: grace.clone(),
            user_id: None,
            product: product.clone(),
        };
        let team = TeamId("1".into());
        // A failed write changes nothing.
        publisher.finished(
            &team,
            &invite,
            &Outcome::Failed {
                status: Some(500),
                request_id: None,
                message: "no".into(),
            },
        );
        assert_eq!(published(&shared).users.len(), 1);

        publisher.finished(&team, &invite, &done(Some("U9")));
        let after_invite = published(&shared);
        assert!(after_invite.users.iter().any(|u| u.email == grace));
        assert_eq!(after_invite.own_writes.map(|w| w.count), Some(1));

        // The invited person's assignment is known by the id the invite gave.
        publisher.finished(&team, &assign, &done(None));
        let after_assign = published(&shared);
        assert!(
            after_assign
                .assignments
                .iter()
                .any(|a| a.user_id == UserId("U9".into())
                    && a.product_id == ProductId("P".into())
                    && a.assignment_type == AssignmentType::Direct)
        );
        assert_eq!(
            after_assign.own_writes,
            Some(OwnWrites {
                count: 2,
                last_at: t("2026-11-26T10:00:05Z")
            })
        );
        assert_eq!(after_assign.observed_at, Some(read_at));
    }

    #[test]
    fn facts_the_read_already_shows_are_not_counted_as_own_writes() {
        let mut facts = Expectations::default();
        let change = Change::Invite {
            email: Email::from_observed("a@x.io"),
            first_name: None,
            last_name: None,
        };
        facts.record(&change, &done(Some("U1")), None, t("2026-11-26T09:59:00Z"));
        let v = view(
            &one_member_team(),
            &facts,
            t("2026-11-26T10:00:00Z"),
            t("2026-11-26T10:00:00Z"),
            Duration::from_secs(900),
        );
        assert_eq!(v.own_writes, None);
        assert_eq!(v.users.len(), 1);
    }
}
