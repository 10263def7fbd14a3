//! Semantic checks: parsed documents become one validated [`Desired`].
//!
//! Every problem is collected (not just the first) and names the place it
//! comes from. A team may be spread over several documents and files; its
//! parts are merged here, and anything declared twice is an error naming both
//! places.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::rc::Rc;

use serde_saphyr::Spanned;

use super::format::{Document, GroupDecl, LimitDecl, PolicyDecl, ProductDecl, UserDecl};
use super::load::ParsedDocument;
use crate::diagnostic::Diagnostic;
use crate::model::{
    Alias, AliasSet, DeclaredGroup, Desired, DesiredTeam, DesiredUser, Email, Limit, Origin,
    Policy, ProductId, ProductSelector, Provenance, SourcePlace, TeamId,
};

/// A file's name, shared by every place in it (a large file has hundreds
/// of thousands).
type FileName = Rc<str>;

/// A position in a file.
#[derive(Clone, Debug)]
struct Place {
    file: FileName,
    line: u64,
    column: u64,
}

impl Place {
    fn of<T>(file: &FileName, s: &Spanned<T>) -> Place {
        Place {
            file: Rc::clone(file),
            line: s.referenced.line(),
            column: s.referenced.column(),
        }
    }

    /// A person's place, as kept in their [`Origin`].
    fn at(file: &FileName, at: SourcePlace) -> Place {
        Place {
            file: Rc::clone(file),
            line: at.line.into(),
            column: at.column.into(),
        }
    }

    fn error(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(&self.file, self.line, self.column, message)
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A team's declaration while its documents are being merged.
#[derive(Default)]
struct TeamParts {
    name: Option<(String, Place)>,
    products: BTreeMap<Alias, (ProductSelector, Place)>,
    /// Each person's place is their `origin.at`.
    users: BTreeMap<Email, DesiredUser>,
    /// References to product aliases not (yet) declared, checked once every
    /// alias of the team is known.
    references: Vec<(Alias, Place)>,
    policy: Option<(Policy, Place)>,
    /// `replaces:` entries (old address, new address, where), checked once
    /// every person of the team is known.
    replaced: Vec<(Email, Email, Place)>,
    suspended: bool,
    sources: BTreeSet<String>,
    provenance: Provenance,
    /// Every distinct product list so far: people with equal lists share
    /// one (see [`AliasSet`]).
    alias_sets: HashSet<AliasSet>,
}

impl TeamParts {
    /// `set`, or the equal list someone already holds.
    fn shared(&mut self, set: AliasSet) -> AliasSet {
        if let Some(shared) = self.alias_sets.get(&set) {
            return shared.clone();
        }
        self.alias_sets.insert(set.clone());
        set
    }

    /// `file`'s index in the team's provenance (a team has few files).
    fn file_index(&mut self, file: &str) -> u32 {
        let files = &mut self.provenance.files;
        let at = files.iter().position(|f| f == file).unwrap_or_else(|| {
            files.push(file.to_owned());
            files.len() - 1
        });
        u32::try_from(at).unwrap_or(u32::MAX)
    }
}

/// Where `s` is, as kept per person (see [`SourcePlace`]).
fn source_place<T>(file: u32, s: &Spanned<T>) -> SourcePlace {
    let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    SourcePlace {
        file,
        line: narrow(s.referenced.line()),
        column: narrow(s.referenced.column()),
    }
}

/// Checks and merges all documents. The result is only meaningful when no
/// diagnostic is an error.
pub fn build(documents: Vec<ParsedDocument>) -> (Desired, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut teams: BTreeMap<TeamId, TeamParts> = BTreeMap::new();
    for doc in documents {
        check_document(doc, &mut teams, &mut diags);
    }
    let mut desired = Desired::default();
    for (id, parts) in teams {
        for (alias, place) in &parts.references {
            if !parts.products.contains_key(alias) {
                let known: Vec<&str> = parts.products.keys().map(|a| a.0.as_str()).collect();
                let help = if known.is_empty() {
                    "declare it under `products:`".to_owned()
                } else {
                    format!("declared aliases: {}", known.join(", "))
                };
                diags.push(
                    place
                        .error(format!("unknown product alias `{alias}` for team {id}"))
                        .with_help(help),
                );
            }
        }
        let mut replaced_by: BTreeMap<&Email, (&Email, &Place)> = BTreeMap::new();
        for (old, new, place) in &parts.replaced {
            if parts.users.contains_key(old) {
                diags.push(
                    place
                        .error(format!(
                            "{new} replaces {old}, but {old} is still declared for team {id}"
                        ))
                        .with_help("remove the old entry, or drop `replaces:`"),
                );
            } else if let Some((other, at)) = replaced_by.insert(old, (new, place)) {
                diags.push(place.error(format!(
                    "{old} is replaced by {new} here and by {other} at {at}"
                )));
            }
        }
        desired.teams.insert(
            id.clone(),
            DesiredTeam {
                id,
                name: parts.name.map(|(n, _)| n),
                products: parts
                    .products
                    .into_iter()
                    .map(|(a, (s, _))| (a, s))
                    .collect(),
                users: parts.users,
                policy: parts.policy.map(|(p, _)| p).unwrap_or_default(),
                suspended: parts.suspended,
                sources: parts.sources.into_iter().collect(),
                provenance: parts.provenance,
            },
        );
    }
    diags.sort();
    (desired, diags)
}

fn check_document(
    doc: ParsedDocument,
    teams: &mut BTreeMap<TeamId, TeamParts>,
    diags: &mut Vec<Diagnostic>,
) {
    let file: FileName = doc.file.as_str().into();
    let file = &file;
    let mut d = doc.document;
    if !version_supported(file, &d, diags) {
        // A different version may mean anything; checking further would only
        // add noise.
        return;
    }
    let Some(team_id) = team_id(file, &d, diags) else {
        return;
    };
    let parts = teams.entry(team_id.clone()).or_default();
    let file_index = parts.file_index(file);
    parts.suspended |= d.suspend;
    parts.sources.insert(if doc.index > 1 {
        format!("{file}#{}", doc.index)
    } else {
        file.to_string()
    });
    merge_name(file, &d, &team_id, parts, diags);
    merge_products(file, &d, &team_id, parts, diags);
    // People declared by this document: `users` entries first, then group
    // members (who may also have a `users` entry for names and products).
    let users = std::mem::take(&mut d.users);
    let mut people = listed_users(file, file_index, users, parts, diags);
    let groups = std::mem::take(&mut d.groups);
    add_group_members(file, file_index, groups, &mut people, parts, diags);
    if parts.users.is_empty() {
        // The team's first people: nobody to be declared twice with.
        parts.users = people;
    } else {
        for (email, user) in people {
            match parts.users.entry(email) {
                Entry::Occupied(first) => {
                    let here = Place::at(file, user.origin.at);
                    let first = parts.provenance.locate(first.get().origin.at);
                    let email = &user.email;
                    diags.push(here.error(format!(
                        "user {email} is declared for team {team_id} twice: here and at {first}"
                    )));
                }
                Entry::Vacant(slot) => {
                    slot.insert(user);
                }
            }
        }
    }
    merge_policy(file, &d, &team_id, parts, diags);
}

/// The people a document declares; each one's place is their `origin.at`.
type People = BTreeMap<Email, DesiredUser>;

/// Only version 1 exists.
fn version_supported(file: &FileName, d: &Document, diags: &mut Vec<Diagnostic>) -> bool {
    if d.version.value == 1 {
        return true;
    }
    diags.push(
        Place::of(file, &d.version)
            .error(format!(
                "unsupported version {}: this flexsync reads version 1",
                d.version.value
            ))
            .with_help("write `version: 1`, or upgrade flexsync"),
    );
    false
}

/// The document's team id, if it is one (non-empty, no spaces).
fn team_id(file: &FileName, d: &Document, diags: &mut Vec<Diagnostic>) -> Option<TeamId> {
    let raw_id = d.team.value.id.value.trim();
    if raw_id.is_empty() || raw_id.chars().any(char::is_whitespace) {
        diags.push(
            Place::of(file, &d.team.value.id).error(
                "team id must be a non-empty id without spaces, as listed by `flexsync teams`",
            ),
        );
        return None;
    }
    Some(TeamId(raw_id.to_owned()))
}

/// The team's name, which every document naming it must agree on.
fn merge_name(
    file: &FileName,
    d: &Document,
    team_id: &TeamId,
    parts: &mut TeamParts,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(name) = &d.team.value.name else {
        return;
    };
    let team_place = Place::of(file, &d.team);
    match &parts.name {
        Some((other, at)) if other != name => diags.push(team_place.error(format!(
            "team {team_id} is named {name:?} here but {other:?} at {at}"
        ))),
        Some(_) => {}
        None => parts.name = Some((name.clone(), team_place)),
    }
}

/// The document's product aliases, which must mean the same pool wherever
/// the team declares them.
fn merge_products(
    file: &FileName,
    d: &Document,
    team_id: &TeamId,
    parts: &mut TeamParts,
    diags: &mut Vec<Diagnostic>,
) {
    for (alias, decl) in &d.products {
        let place = Place::of(file, decl);
        let Some(selector) = product_selector(alias, &decl.value, &place, diags) else {
            continue;
        };
        let alias = Alias(alias.clone());
        match parts.products.get(&alias) {
            Some((other, at)) if *other != selector => diags.push(place.error(format!(
                "product alias `{alias}` of team {team_id} means {selector} here but {other} at {at}"
            ))),
            Some(_) => {}
            None => {
                parts.products.insert(alias, (selector, place));
            }
        }
    }
}

/// The document's `users:` entries, each once, with their `replaces:`.
fn listed_users(
    file: &FileName,
    file_index: u32,
    users: Vec<UserDecl>,
    parts: &mut TeamParts,
    diags: &mut Vec<Diagnostic>,
) -> People {
    let mut people = People::new();
    for user in users {
        let email_place = || Place::of(file, &user.email);
        let Some(email) = parse_email(&user.email.value, email_place, diags) else {
            continue;
        };
        let slot = match people.entry(email) {
            Entry::Occupied(first) => {
                let (email, at) = (first.key(), Place::at(file, first.get().origin.at));
                diags.push(email_place().error(format!(
                    "user {email} is declared twice in this document (first at {at})"
                )));
                continue;
            }
            Entry::Vacant(slot) => slot,
        };
        let email = slot.key();
        let products = product_refs(file, user.products, parts, diags);
        let mut replaces = BTreeSet::new();
        if let Some(old) = &user.replaces {
            let place = || Place::of(file, old);
            match parse_email(&old.value, place, diags) {
                Some(old) if old == *email => diags.push(
                    place()
                        .error(format!("{email} cannot replace itself"))
                        .with_help("`replaces:` names the address this person had before"),
                ),
                Some(old) => {
                    parts.replaced.push((old.clone(), email.clone(), place()));
                    replaces.insert(old);
                }
                None => {}
            }
        }
        let user = DesiredUser {
            email: email.clone(),
            first_name: non_empty_owned(user.first_name),
            last_name: non_empty_owned(user.last_name),
            products,
            replaces,
            origin: Origin {
                at: source_place(file_index, &user.email),
                groups: Box::default(),
                entry_products: u64::MAX,
                has_entry: true,
            },
        };
        slot.insert(user);
    }
    people
}

/// Group members join `people` (or gain the group's products), and each
/// person remembers the groups and which products their own entry lists.
fn add_group_members(
    file: &FileName,
    file_index: u32,
    groups: BTreeMap<String, Spanned<GroupDecl>>,
    people: &mut People,
    parts: &mut TeamParts,
    diags: &mut Vec<Diagnostic>,
) {
    // The products of people with a `users:` entry, as the entry lists
    // them, kept only for those whom a group gives more.
    let mut listed: BTreeMap<Email, AliasSet> = BTreeMap::new();
    for (group_name, group) in groups {
        let at = source_place(file_index, &group);
        let group = group.value;
        let products = product_refs(file, group.products, parts, diags);
        let group_index = u32::try_from(parts.provenance.groups.len()).unwrap_or(u32::MAX);
        parts.provenance.groups.push(DeclaredGroup {
            name: group_name.clone(),
            products: products.clone(),
            at,
        });
        let mut seen: BTreeMap<Email, Place> = BTreeMap::new();
        for member in &group.members {
            let place = Place::of(file, member);
            let Some(email) = parse_email(&member.value, || place.clone(), diags) else {
                continue;
            };
            if let Some(first) = seen.get(&email) {
                diags.push(place.error(format!(
                    "{email} is listed twice in group `{group_name}` (first at {first})"
                )));
                continue;
            }
            seen.insert(email.clone(), place);
            let at = source_place(file_index, member);
            let user = people.entry(email.clone()).or_insert_with(|| DesiredUser {
                email: email.clone(),
                first_name: None,
                last_name: None,
                products: AliasSet::default(),
                replaces: BTreeSet::new(),
                origin: Origin {
                    at,
                    ..Origin::default()
                },
            });
            if user.origin.has_entry && !listed.contains_key(&email) {
                listed.insert(email, user.products.clone());
            }
            let mut groups = std::mem::take(&mut user.origin.groups).into_vec();
            groups.push(group_index);
            user.origin.groups = groups.into_boxed_slice();
            user.products.extend(products.iter().cloned());
            user.products = parts.shared(std::mem::take(&mut user.products));
        }
    }
    for (email, own) in &listed {
        if let Some(user) = people.get_mut(email) {
            user.origin.entry_products = user
                .products
                .iter()
                .take(64)
                .enumerate()
                .filter(|(_, a)| own.contains(a))
                .fold(0, |mask, (i, _)| mask | 1 << i);
        }
    }
}

/// The team's policy, which one document at most may set.
fn merge_policy(
    file: &FileName,
    d: &Document,
    team_id: &TeamId,
    parts: &mut TeamParts,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(policy) = &d.policy else {
        return;
    };
    let place = Place::of(file, policy);
    let checked = check_policy(file, &policy.value, diags);
    match &parts.policy {
        Some((_, first)) => diags.push(
            place
                .error(format!(
                    "the policy of team {team_id} is already set at {first}"
                ))
                .with_help("set a team's policy in one document only"),
        ),
        None => parts.policy = Some((checked, place)),
    }
}

fn product_selector(
    alias: &str,
    decl: &ProductDecl,
    place: &Place,
    diags: &mut Vec<Diagnostic>,
) -> Option<ProductSelector> {
    if alias.trim().is_empty() || alias.chars().any(char::is_whitespace) {
        diags.push(place.error(format!(
            "product alias {alias:?} must be a non-empty name without spaces"
        )));
        return None;
    }
    match (non_empty(&decl.product_id), non_empty(&decl.product_name)) {
        (Some(id), None) => Some(ProductSelector::Id(ProductId(id))),
        (None, Some(name)) => Some(ProductSelector::Name(name)),
        (Some(_), Some(_)) => {
            diags.push(
                place
                    .error(format!(
                        "product alias `{alias}` has both productId and productName"
                    ))
                    .with_help("keep one: productId is exact, productName must match one pool"),
            );
            None
        }
        (None, None) => {
            diags.push(place.error(format!(
                "product alias `{alias}` needs a non-empty productId or productName"
            )));
            None
        }
    }
}

/// The aliases in `refs`, each once. A reference to an alias the team has
/// not declared (yet) is kept with its place, to be checked once every
/// document of the team is read.
fn product_refs(
    file: &FileName,
    refs: Vec<Spanned<String>>,
    parts: &mut TeamParts,
    diags: &mut Vec<Diagnostic>,
) -> AliasSet {
    let mut out: Vec<Alias> = Vec::with_capacity(refs.len());
    for r in refs {
        let alias = Alias(trimmed(r.value));
        let Err(at) = out.binary_search(&alias) else {
            let place = Place {
                file: Rc::clone(file),
                line: r.referenced.line(),
                column: r.referenced.column(),
            };
            diags.push(place.error(format!("product `{alias}` is listed twice")));
            continue;
        };
        if !parts.products.contains_key(&alias) {
            let place = Place {
                file: Rc::clone(file),
                line: r.referenced.line(),
                column: r.referenced.column(),
            };
            parts.references.push((alias.clone(), place));
        }
        out.insert(at, alias);
    }
    parts.shared(out.into_iter().collect())
}

fn check_policy(file: &FileName, p: &PolicyDecl, diags: &mut Vec<Diagnostic>) -> Policy {
    let mut protect = BTreeSet::new();
    for e in &p.protect {
        if let Some(email) = parse_email(&e.value, || Place::of(file, e), diags) {
            protect.insert(email);
        }
    }
    Policy {
        prune: p.prune,
        protect,
        max_unassign: check_limit(
            file,
            "maxUnassign",
            &p.max_unassign,
            Limit::DEFAULT_MAX_UNASSIGN,
            diags,
        ),
        max_invite: check_limit(
            file,
            "maxInvite",
            &p.max_invite,
            Limit::DEFAULT_MAX_INVITE,
            diags,
        ),
        allow_empty: p.allow_empty,
    }
}

fn check_limit(
    file: &FileName,
    field: &str,
    decl: &Option<Spanned<LimitDecl>>,
    default: Limit,
    diags: &mut Vec<Diagnostic>,
) -> Limit {
    let Some(m) = decl else {
        return default;
    };
    match &m.value {
        LimitDecl::Count(n) => Limit::Count(*n),
        LimitDecl::Percent(s) => match parse_percent(s) {
            Some(p) => Limit::Percent(p),
            None => {
                let why = match s.trim().strip_suffix('%').map(|d| d.trim().parse::<u64>()) {
                    Some(Ok(_)) => "is more than 100%",
                    Some(Err(_)) => "is not a whole percentage",
                    None => "is neither a count nor a percentage",
                };
                diags.push(
                    Place::of(file, m)
                        .error(format!("{field} {s:?} {why}"))
                        .with_help(
                            "write a whole number (e.g. 5) or a percentage from 0% to 100% (e.g. \"10%\")",
                        ),
                );
                default
            }
        },
    }
}

fn parse_percent(s: &str) -> Option<u32> {
    let digits = s.trim().strip_suffix('%')?.trim();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|p| *p <= 100)
}

/// `place` is only worked out for an invalid address.
fn parse_email(
    raw: &str,
    place: impl FnOnce() -> Place,
    diags: &mut Vec<Diagnostic>,
) -> Option<Email> {
    match Email::parse(raw) {
        Ok(e) => Some(e),
        Err(why) => {
            diags.push(place().error(format!("invalid email {raw:?}: {why}")));
            None
        }
    }
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// [`non_empty`] of a string the caller gives up.
fn non_empty_owned(s: Option<String>) -> Option<String> {
    s.map(trimmed).filter(|s| !s.is_empty())
}

/// `s` without surrounding whitespace, copied only when it has some.
fn trimmed(s: String) -> String {
    if s.trim().len() == s.len() {
        s
    } else {
        s.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINS: &str = "version: 1
team: { id: \"1\" }
products:
  a: { productId: pa }
  b: { productId: pb }
  c: { productId: pc }
groups:
  g1: { products: [a], members: [ada@x.org, bo@x.org] }
  g2: { products: [a, b], members: [ada@x.org] }
users:
  - { email: ada@x.org, products: [a, c] }
  - { email: cy@x.org, products: [b] }
";

    fn user<'a>(d: &'a crate::model::Desired, email: &str) -> &'a DesiredUser {
        &d.teams.values().next().unwrap().users[&Email::parse(email).unwrap()]
    }

    /// Two documents of one team that disagree on everything they may
    /// not: each conflict is an error at the place of the second.
    const CONFLICTS: &str = "version: 1
team: { id: \"1\", name: Alpha }
products:
  a: { productId: pa }
groups:
  g: { products: [a], members: [bo@x.org, bo@x.org] }
users:
  - { email: ada@x.org, products: [a], replaces: ada@x.org }
policy: { prune: false }
---
version: 1
team: { id: \"1\", name: Beta }
products:
  a: { productId: pz }
users:
  - { email: ada@x.org, products: [a] }
policy: { prune: true }
---
version: 1
team: { id: \"two words\" }
---
version: 2
team: { id: \"3\" }
";

    #[test]
    fn every_conflict_is_an_error_at_its_place() {
        let loaded = crate::config::load_str("t.yaml", CONFLICTS);
        let got: Vec<String> = loaded
            .diagnostics
            .iter()
            .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
            .collect();
        let expect = [
            "6:43 bo@x.org is listed twice in group `g` (first at t.yaml:6:33)",
            "8:50 ada@x.org cannot replace itself",
            "12:7 team 1 is named \"Beta\" here but \"Alpha\" at t.yaml:2:7",
            "14:6 product alias `a` of team 1 means productId pz here but productId pa at t.yaml:4:6",
            "16:14 user ada@x.org is declared for team 1 twice: here and at t.yaml:8:14",
            "17:9 the policy of team 1 is already set at t.yaml:9:9",
            "20:13 team id must be a non-empty id without spaces, as listed by `flexsync teams`",
            "22:10 unsupported version 2: this flexsync reads version 1",
        ];
        for e in expect {
            assert!(got.iter().any(|g| g == e), "missing {e:?} in {got:#?}");
        }
        assert_eq!(got.len(), expect.len(), "{got:#?}");
    }

    #[test]
    fn each_person_keeps_where_and_through_which_groups_they_are_declared() {
        let loaded = crate::config::load_str("t.yaml", ORIGINS);
        assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
        let d = &loaded.desired;
        let team = d.teams.values().next().unwrap();
        let prov = &team.provenance;
        let groups: Vec<&str> = prov.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(groups, ["g1", "g2"]);
        // Ada: her entry (line 11) lists a and c; b comes from g2 only.
        let ada = user(d, "ada@x.org");
        assert_eq!(prov.locate(ada.origin.at), "t.yaml:11:14");
        assert_eq!(&*ada.origin.groups, &[0, 1]);
        let listed: Vec<(&str, bool)> = ada
            .products
            .iter()
            .enumerate()
            .map(|(i, a)| (a.0.as_str(), ada.origin.entry_lists(i)))
            .collect();
        assert_eq!(listed, [("a", true), ("b", false), ("c", true)]);
        // Bo: a group member only, placed at his membership.
        let bo = user(d, "bo@x.org");
        assert!(!bo.origin.has_entry);
        assert_eq!(prov.locate(bo.origin.at), "t.yaml:8:45");
        assert!(!bo.origin.entry_lists(0));
        // Cy: an entry only.
        let cy = user(d, "cy@x.org");
        assert!(cy.origin.groups.is_empty() && cy.origin.entry_lists(0));
    }

    #[test]
    fn where_something_is_declared_does_not_change_the_declaration() {
        // The service compares declarations to decide whether a team's
        // changed (and its removal delay restarts): lines moving is not.
        let moved = format!("# a comment\n\n{ORIGINS}");
        let a = crate::config::load_str("t.yaml", ORIGINS).desired;
        let b = crate::config::load_str("t.yaml", &moved).desired;
        assert_ne!(
            user(&a, "ada@x.org").origin.at,
            user(&b, "ada@x.org").origin.at
        );
        assert_eq!(a, b);
    }

    #[test]
    fn a_group_adds_its_products_to_its_members_only_though_equal_lists_are_shared() {
        // Ada and Bo list the same products, so they hold one shared list;
        // the group that gives Bo `b` must not give it to Ada.
        let yaml = "version: 1
team: { id: \"1\" }
products:
  a: { productId: pa }
  b: { productId: pb }
groups:
  g: { products: [b], members: [bo@x.org] }
users:
  - { email: ada@x.org, products: [a] }
  - { email: bo@x.org, products: [a] }
  - { email: cy@x.org, products: [a, b] }
";
        let loaded = crate::config::load_str("t.yaml", yaml);
        assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
        let products = |email: &str| -> Vec<String> {
            let d = &loaded.desired;
            user(d, email)
                .products
                .iter()
                .map(|a| a.0.clone())
                .collect()
        };
        assert_eq!(products("ada@x.org"), ["a"]);
        assert_eq!(products("bo@x.org"), ["a", "b"]);
        assert_eq!(products("cy@x.org"), ["a", "b"]);
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("10%"), Some(10));
        assert_eq!(parse_percent(" 100 % "), Some(100));
        assert_eq!(parse_percent("101%"), None);
        assert_eq!(parse_percent("10"), None);
        assert_eq!(parse_percent("-1%"), None);
        assert_eq!(parse_percent("1.5%"), None);
    }
}
