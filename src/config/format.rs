//! The desired-state file format, version 1, exactly as admins write it.
//!
//! These types are the single source of truth for both parsing (serde) and the
//! JSON Schema editors use (schemars): a doc comment here is the description
//! an editor shows. Positions are kept (`Spanned`) wherever a later semantic
//! check needs to point at a value.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A flexsync desired-state document: which accounts of one Autodesk team hold
/// which products. A file may hold several documents separated by `---`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "flexsync desired state")]
pub struct Document {
    /// Format version of this document. Only `1` exists.
    #[schemars(with = "u32", range(min = 1, max = 1))]
    pub version: Spanned<u32>,
    /// The Autodesk team this document manages.
    #[schemars(with = "TeamRef")]
    pub team: Spanned<TeamRef>,
    /// Product aliases: a short name of your choice for each product pool
    /// flexsync manages in this team. Only these products are ever assigned
    /// or pruned.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ProductDecl>")]
    pub products: BTreeMap<String, Spanned<ProductDecl>>,
    /// Named groups of people who all hold the same products, so long lists
    /// are written once. Groups exist only in this file; they are not
    /// Autodesk groups.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, GroupDecl>")]
    pub groups: BTreeMap<String, Spanned<GroupDecl>>,
    /// People who must be on the team, with the products each must hold.
    // Not `Spanned`: a person's place is their `email`'s, and a span
    // around each entry cost 1,500 instructions a person.
    #[serde(default)]
    pub users: Vec<UserDecl>,
    /// Safety policy for this team. At most one document per team may set it.
    #[serde(default)]
    #[schemars(with = "Option<PolicyDecl>")]
    pub policy: Option<Spanned<PolicyDecl>>,
    /// Pause this team: plans show what would change, but nothing is applied
    /// (by `flexsync apply` or the service) until this is removed. Set in any
    /// one document of the team, it pauses the whole team.
    #[serde(default)]
    pub suspend: bool,
}

/// Identifies the team.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TeamRef {
    /// The team id from List Teams (`flexsync teams`), e.g. "100001". Quote it.
    #[schemars(with = "String", length(min = 1))]
    pub id: Spanned<String>,
    /// The team's display name. When set, flexsync refuses to change a team
    /// whose live name differs: a guard against a copy-pasted wrong id.
    #[serde(default)]
    pub name: Option<String>,
}

/// Which product pool an alias means: give exactly one of `productId` or
/// `productName`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct ProductDecl {
    /// The pool's productId from List Product Pools, e.g. "prod_8f3a1c9d7b2e".
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub product_id: Option<String>,
    /// The pool's exact productName, e.g. "Autodesk Flex - Platform Services".
    /// It must match exactly one pool of the team.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub product_name: Option<String>,
}

/// A named list of people who all hold the same products.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupDecl {
    /// What the group is for; shown to reviewers only.
    #[serde(default)]
    pub description: Option<String>,
    /// Product aliases every member must hold.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub products: Vec<Spanned<String>>,
    /// Members' email addresses (compared case-insensitively). Names for
    /// invitations can be given in `users`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub members: Vec<Spanned<String>>,
}

/// One person.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserDecl {
    /// The person's Autodesk account email (compared case-insensitively).
    #[schemars(with = "String", length(min = 3))]
    pub email: Spanned<String>,
    /// Used only when inviting someone who has no Autodesk account yet.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Used only when inviting someone who has no Autodesk account yet.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Product aliases this person must hold (in addition to their groups').
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub products: Vec<Spanned<String>>,
    /// The address this person had before (a rename, or a corrected typo).
    /// Unassigning an address and inviting a look-alike in one run is
    /// blocked as a probable typo; this says the change is meant.
    #[serde(default)]
    #[schemars(with = "Option<String>", length(min = 3))]
    pub replaces: Option<Spanned<String>>,
}

/// Safety policy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyDecl {
    /// Remove DIRECT assignments of this team's managed products from people
    /// not declared for them. Off by default: flexsync then only adds.
    #[serde(default)]
    pub prune: bool,
    /// Emails that are never unassigned, whatever the declaration says.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub protect: Vec<Spanned<String>>,
    /// Removal guard: the most unassignments one run may make in this team,
    /// as a count (e.g. 5) or a percentage (e.g. "10%") of the team's direct
    /// assignments of managed products today. Above it, every unassignment
    /// of the team is blocked (invites and assignments still go ahead).
    /// Default "25%".
    #[serde(default)]
    #[schemars(with = "Option<LimitDecl>")]
    pub max_unassign: Option<Spanned<LimitDecl>>,
    /// Invitation guard: the most people one run may invite to this team, as
    /// a count (e.g. 20) or a percentage (e.g. "10%") of the team's members
    /// today. Above it, every invitation of the team (and the assignments
    /// waiting for it) is blocked. Default 50.
    #[serde(default)]
    #[schemars(with = "Option<LimitDecl>")]
    pub max_invite: Option<Spanned<LimitDecl>>,
    /// Allow pruning a managed product that nobody is declared for, i.e.
    /// removing every direct holder. Off by default, so an emptied list is a
    /// blocker instead of a wipe-out.
    #[serde(default)]
    pub allow_empty: bool,
}

/// A count, or a percentage string such as "10%".
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "a whole number (e.g. 5) or a percentage string (e.g. \"10%\")"
)]
pub enum LimitDecl {
    /// At most this many changes per run.
    Count(u32),
    /// At most this share of what the team has today, e.g. "10%".
    Percent(#[schemars(regex(pattern = r"^(100|[1-9]?[0-9])%$"))] String),
}

/// The JSON Schema (draft 2020-12) of a desired-state document.
pub fn schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    generator.into_root_schema_for::<Document>().to_value()
}
