//! The vocabulary shared by every other module: identifiers, the desired state
//! (what the YAML declares) and the observed state (what a live team holds).
//!
//! This module is a leaf: it imports no other flexsync module and does no I/O.
//! Collections are `BTreeMap`/`BTreeSet` so every iteration order is stable.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

opaque_id!(
    /// A team id as returned by List Teams (digits in every example, but opaque).
    TeamId
);
/// A user id as returned by List Team Users (e.g. `US1234567890`). Shared
/// (`Arc<str>`) like [`Email`]: a plan copies a member's id into each of
/// their changes, and at 100,000 people allocating and freeing those copies
/// was about a third of planning's time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(pub std::sync::Arc<str>);

impl UserId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for UserId {
    fn from(s: &str) -> Self {
        Self(s.into())
    }
}

impl From<String> for UserId {
    fn from(s: String) -> Self {
        Self(s.into())
    }
}

impl Serialize for UserId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserId {
    /// Straight from the text into the shared string: through `String`
    /// (as serde's `Arc<str>` goes) every id would be copied twice.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Id;
        impl serde::de::Visitor<'_> for Id {
            type Value = UserId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user id (a string)")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<UserId, E> {
                Ok(UserId::from(s))
            }
        }
        deserializer.deserialize_str(Id)
    }
}
opaque_id!(
    /// A product id as returned by List Product Pools (e.g. `prod_8f3a1c9d7b2e`).
    ProductId
);
opaque_id!(
    /// A product alias chosen by the admin in the YAML (e.g. `platform-services`).
    Alias
);

/// An email address in canonical (lower-case) form. Shared (`Arc<str>`):
/// plans copy each person's address into every change, finding and
/// holding, and copying a pointer is what keeps a 100,000-person plan fast.
///
/// Autodesk matches people by email and admins type them with any casing, so
/// flexsync compares emails case-insensitively everywhere by storing them
/// lower-cased once, here.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct Email(std::sync::Arc<str>);

impl Email {
    /// Parses and checks an email typed by an admin.
    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.len() > 254 {
            return Err(EmailError::TooLong);
        }
        if let Some(c) = trimmed
            .chars()
            .find(|c| c.is_whitespace() || c.is_control())
        {
            return Err(EmailError::BadChar(c));
        }
        let Some((local, domain)) = trimmed.rsplit_once('@') else {
            return Err(EmailError::NoAt);
        };
        if local.is_empty() || local.contains('@') {
            return Err(EmailError::BadLocal);
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if !domain.contains('.') || !domain.split('.').all(label_ok) {
            return Err(EmailError::BadDomain);
        }
        Ok(Email::lowercase(trimmed))
    }

    /// Wraps an email reported by the API. The API is the authority on what
    /// exists, so it is only canonicalised, never rejected.
    pub fn from_observed(raw: &str) -> Email {
        Email::lowercase(raw.trim())
    }

    /// `s` lower-cased. Nearly every address already is, and is ASCII: that
    /// one is copied once, not lower-cased into a `String` and copied again
    /// (a declaration or snapshot of 100,000 people has 100,000 of them).
    fn lowercase(s: &str) -> Email {
        if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
            Email(s.into())
        } else {
            Email(s.to_lowercase().into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for Email {
    fn from(s: String) -> Self {
        Email::from_observed(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> Self {
        e.0.to_string()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not a usable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email is empty")]
    Empty,
    #[error("email is longer than 254 characters")]
    TooLong,
    #[error("email contains {0:?}, which is not allowed in an address")]
    BadChar(char),
    #[error("email has no '@'")]
    NoAt,
    #[error("the part before '@' is empty or contains another '@'")]
    BadLocal,
    #[error("the domain after '@' is not a valid domain name (e.g. example.com)")]
    BadDomain,
}

// ---------------------------------------------------------------------------
// Desired state
// ---------------------------------------------------------------------------

/// Everything the YAML files declare, merged and validated, keyed by team.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    pub teams: BTreeMap<TeamId, DesiredTeam>,
}

/// One team's declaration.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredTeam {
    pub id: TeamId,
    /// Display name, when declared: checked against the live team so a file
    /// pointed at the wrong team id changes nothing.
    pub name: Option<String>,
    /// The products flexsync manages in this team, by alias. Only these are
    /// ever assigned or (with prune) unassigned.
    pub products: BTreeMap<Alias, ProductSelector>,
    pub users: BTreeMap<Email, DesiredUser>,
    pub policy: Policy,
    /// Paused: every change is reported but blocked.
    pub suspended: bool,
    /// Where the team is declared (`file` or `file#doc`), for messages.
    pub sources: Vec<String>,
    /// Where things were declared, for `flexsync explain`.
    pub provenance: Provenance,
}

/// A position in a declaration file: an index into the team's
/// [`Provenance::files`], line and column. Twelve bytes, kept per person.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourcePlace {
    pub file: u32,
    pub line: u32,
    pub column: u32,
}

/// Where a team's declaration was said: its files and groups. It explains
/// and never decides, so it is equal to every other provenance: moving a
/// line or renaming a group that grants the same products is not a change
/// of the declaration (the service compares declarations to decide that).
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    /// File names, indexed by [`SourcePlace::file`].
    pub files: Vec<String>,
    /// Every `groups:` entry of the team's documents, in the order read;
    /// indexed by [`Origin::groups`].
    pub groups: Vec<DeclaredGroup>,
}

impl PartialEq for Provenance {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Provenance {
    /// `file:line:column`.
    pub fn locate(&self, at: SourcePlace) -> String {
        let file = self.files.get(at.file as usize).map_or("?", String::as_str);
        format!("{file}:{}:{}", at.line, at.column)
    }
}

/// A named group of a declaration.
#[derive(Clone, Debug, Default)]
pub struct DeclaredGroup {
    pub name: String,
    pub products: AliasSet,
    pub at: SourcePlace,
}

/// Where a person is declared, and through which groups: small, since a
/// declaration may hold 100,000 people. Explains, never decides, so equal
/// to every other origin (see [`Provenance`]).
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// Their `users:` entry, else their first group membership.
    pub at: SourcePlace,
    /// Their groups, as indices into [`Provenance::groups`].
    pub groups: Box<[u32]>,
    /// Bit `i` set: their `users:` entry lists the `i`-th of their
    /// (sorted) products. Products past the 64th count as listed there
    /// when no group grants them.
    pub entry_products: u64,
    /// Whether they have a `users:` entry.
    pub has_entry: bool,
}

impl PartialEq for Origin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Origin {}

impl Origin {
    /// Whether their `users:` entry lists the `index`-th of their products.
    pub fn entry_lists(&self, index: usize) -> bool {
        match 1u64.checked_shl(index as u32) {
            Some(bit) if index < 64 => self.entry_products & bit != 0,
            _ => self.has_entry,
        }
    }
}

/// How a product alias finds its pool in List Product Pools.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProductSelector {
    Id(ProductId),
    /// Exact product name.
    Name(String),
}

impl fmt::Display for ProductSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProductSelector::Id(id) => write!(f, "productId {id}"),
            ProductSelector::Name(n) => write!(f, "productName {n:?}"),
        }
    }
}

/// A person who must hold some products.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredUser {
    pub email: Email,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub products: AliasSet,
    /// Addresses this person used to have (`replaces:`): a declared rename,
    /// so unassigning the old address and inviting the new one is meant,
    /// not a typo.
    pub replaces: BTreeSet<Email>,
    /// Where they are declared (for `flexsync explain`).
    pub origin: Origin,
}

/// A person's product aliases: sorted, without duplicates, and shared. A
/// declaration of 100,000 people holds 100,000 of these, usually one of a
/// handful of lists ("ps, fu"): `config` hands everyone with the same list
/// one copy, so the lists take no memory to speak of and stay in the cache
/// while the planner reads every person's. (A sorted slice rather than a
/// `BTreeSet`, whose smallest node costs half a kilobyte.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AliasSet(std::sync::Arc<[Alias]>);

impl AliasSet {
    pub fn contains(&self, alias: &Alias) -> bool {
        self.0.binary_search(alias).is_ok()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Alias> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl FromIterator<Alias> for AliasSet {
    fn from_iter<I: IntoIterator<Item = Alias>>(iter: I) -> Self {
        let mut v: Vec<Alias> = iter.into_iter().collect();
        v.sort();
        v.dedup();
        AliasSet(v.into())
    }
}

impl Extend<Alias> for AliasSet {
    /// The union; the list is copied only when something is new.
    fn extend<I: IntoIterator<Item = Alias>>(&mut self, iter: I) {
        let new: Vec<Alias> = iter.into_iter().filter(|a| !self.contains(a)).collect();
        if !new.is_empty() {
            *self = self.0.iter().cloned().chain(new).collect();
        }
    }
}

impl<'a> IntoIterator for &'a AliasSet {
    type Item = &'a Alias;
    type IntoIter = std::slice::Iter<'a, Alias>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<const N: usize> From<[Alias; N]> for AliasSet {
    fn from(a: [Alias; N]) -> Self {
        a.into_iter().collect()
    }
}

/// Per-team safety policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Remove DIRECT assignments of managed products from users not declared
    /// for them.
    pub prune: bool,
    /// Never unassigned, whatever the declaration says.
    pub protect: BTreeSet<Email>,
    /// The most unassignments one run may make before all of the team's
    /// unassignments are blocked; a percentage is of today's direct
    /// assignments of managed products.
    pub max_unassign: Limit,
    /// The most invitations one run may send before all of the team's
    /// invitations are blocked; a percentage is of today's members.
    pub max_invite: Limit,
    /// Allows pruning a managed product that has no declared holder at all.
    pub allow_empty: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            prune: false,
            protect: BTreeSet::new(),
            max_unassign: Limit::DEFAULT_MAX_UNASSIGN,
            max_invite: Limit::DEFAULT_MAX_INVITE,
            allow_empty: false,
        }
    }
}

/// A guard's size limit (`maxUnassign`, `maxInvite`): an absolute count, or a
/// percentage of what the team has today.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Count(u32),
    Percent(u32),
}

impl Limit {
    /// peribolos defaults to 25% and User Sync to 200 users; a quarter of the
    /// current holders lets ordinary clean-ups through and stops a wipe-out.
    pub const DEFAULT_MAX_UNASSIGN: Limit = Limit::Percent(25);
    /// Onboarding a project's developers passes; pasting a whole directory
    /// (or a generated list) does not without someone saying so.
    pub const DEFAULT_MAX_INVITE: Limit = Limit::Count(50);

    /// How many changes are allowed when the team has `base` today (direct
    /// assignments of managed products for removals, members for invites).
    /// Percentages round down, but a non-zero one never below 1, so a small
    /// team can still change one person; "0%" allows none.
    pub fn limit(self, base: usize) -> usize {
        match self {
            Limit::Count(n) => n as usize,
            Limit::Percent(0) => 0,
            Limit::Percent(p) => (base.saturating_mul(p as usize) / 100).max(1),
        }
    }

    /// Parses `40` or `"60%"` (0–100%), as the file and the flags write it.
    pub fn parse(s: &str) -> Result<Limit, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let digits = p.trim();
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!("{s:?} is not a whole percentage, like 10%"));
            }
            return match digits.parse::<u32>() {
                Ok(p) if p <= 100 => Ok(Limit::Percent(p)),
                _ => Err(format!("{s:?} is more than 100%")),
            };
        }
        t.parse::<u32>()
            .map(Limit::Count)
            .map_err(|_| format!("{s:?} is neither a count (e.g. 40) nor a percentage (e.g. 60%)"))
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Count(n) => write!(f, "{n}"),
            Limit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

// ---------------------------------------------------------------------------
// Observed state
// ---------------------------------------------------------------------------

/// The live state of every team of interest.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub teams: BTreeMap<TeamId, ObservedTeam>,
}

/// What one live team holds, as read from the Team Admin API (or a snapshot).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObservedTeam {
    pub id: TeamId,
    pub name: String,
    #[serde(default)]
    pub users: Vec<TeamUser>,
    #[serde(default)]
    pub pools: Vec<ProductPool>,
    #[serde(default)]
    pub assignments: Vec<Assignment>,
}

/// A member of a team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamUser {
    pub id: UserId,
    pub email: Email,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// `USER` or `EXTERNAL_USER` per the API; other values are kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The seats a team holds for one product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductPool {
    pub product_id: ProductId,
    pub product_name: String,
    /// `None` when unlimited.
    #[serde(default)]
    pub total_quantity: Option<u64>,
    /// `None` when unlimited, and possibly for a pool not started yet: never
    /// read as 0.
    #[serde(default)]
    pub assigned_quantity: Option<u64>,
    #[serde(default)]
    pub unlimited: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<jiff::Timestamp>,
}

impl ProductPool {
    /// Whether seats of this pool can be assigned at `now`.
    pub fn activity(&self, now: jiff::Timestamp) -> PoolActivity {
        match (self.start_date, self.end_date) {
            (Some(start), _) if now < start => PoolActivity::NotStarted(start),
            (_, Some(end)) if now > end => PoolActivity::Expired(end),
            _ => PoolActivity::Active,
        }
    }
}

/// See [`ProductPool::activity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolActivity {
    Active,
    NotStarted(jiff::Timestamp),
    Expired(jiff::Timestamp),
}

/// One user holding one product. The API reports each (user, product) pair
/// once, with the *effective* assignment type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Assignment {
    pub user_id: UserId,
    pub product_id: ProductId,
    pub assignment_type: AssignmentType,
}

/// DIRECT assignments are the only ones flexsync can create or remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssignmentType {
    Direct,
    /// Inherited through a group.
    Group,
    /// Inherited through the team itself.
    Team,
    /// An inherited kind this version does not know; treated as inherited.
    #[serde(other)]
    Inherited,
}

impl AssignmentType {
    pub fn is_direct(self) -> bool {
        self == AssignmentType::Direct
    }
}

impl AssignmentType {
    /// How someone holds a product, in words.
    pub fn describe(self) -> &'static str {
        match self {
            AssignmentType::Direct => "direct",
            AssignmentType::Group => "through a group",
            AssignmentType::Team => "through the team",
            AssignmentType::Inherited => "inherited",
        }
    }
}

impl fmt::Display for AssignmentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_compare_case_insensitively() {
        assert_eq!(
            Email::parse("Ada@Example.COM").unwrap(),
            Email::parse("ada@example.com").unwrap()
        );
        assert_eq!(
            Email::from_observed("ADA@example.com").as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn bad_emails_are_rejected_with_a_reason() {
        assert_eq!(Email::parse("ada.example.com"), Err(EmailError::NoAt));
        assert_eq!(Email::parse("ada@localhost"), Err(EmailError::BadDomain));
        assert_eq!(Email::parse("@example.com"), Err(EmailError::BadLocal));
        assert_eq!(
            Email::parse("a da@example.com"),
            Err(EmailError::BadChar(' '))
        );
        assert_eq!(Email::parse(""), Err(EmailError::Empty));
        assert!(Email::parse("ada+flex@sub.example.co.uk").is_ok());
        assert_eq!(Email::parse("ada@example."), Err(EmailError::BadDomain));
        assert_eq!(Email::parse("ada@-x.example"), Err(EmailError::BadDomain));
    }

    #[test]
    fn addresses_beyond_ascii_are_lower_cased_too() {
        assert_eq!(
            Email::parse("Åsa@bücher.example").unwrap().as_str(),
            "åsa@bücher.example"
        );
        assert_eq!(
            Email::from_observed(" Åsa@EXAMPLE.com ").as_str(),
            "åsa@example.com"
        );
    }

    #[test]
    fn guard_limits() {
        assert_eq!(Limit::Percent(10).limit(120), 12);
        assert_eq!(Limit::Percent(10).limit(3), 1);
        assert_eq!(Limit::Count(0).limit(100), 0);
        assert_eq!(Limit::DEFAULT_MAX_UNASSIGN.limit(8), 2);
        assert_eq!(Limit::Percent(0).limit(100), 0);
        assert_eq!(Limit::Percent(100).limit(usize::MAX), usize::MAX / 100);
    }

    #[test]
    fn limits_parse_as_written() {
        assert_eq!(Limit::parse("40"), Ok(Limit::Count(40)));
        assert_eq!(Limit::parse(" 60 % "), Ok(Limit::Percent(60)));
        assert!(Limit::parse("101%").unwrap_err().contains("more than 100%"));
        assert!(
            Limit::parse("1.5%")
                .unwrap_err()
                .contains("whole percentage")
        );
        assert!(Limit::parse("-1%").is_err());
        assert!(Limit::parse("lots").unwrap_err().contains("neither"));
    }
}
