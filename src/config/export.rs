//! Writing a desired-state document from what a team holds today, to start
//! managing an existing team (like peribolos --dump-full).
//!
//! Direct assignments become declarations; inherited ones become comments,
//! because flexsync cannot manage them. Planning the result against the same
//! team shows no change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::model::{Email, ObservedTeam, ProductId, ProductPool, TeamUser};

/// The YAML text of a declaration of `team`, limited to `products` (all
/// pools when empty, matched by productId or exact productName).
pub fn to_yaml(
    team: &ObservedTeam,
    products: &[String],
    captured_at: jiff::Timestamp,
) -> Result<String, String> {
    let pools = selected_pools(team, products)?;
    let aliases = aliases(&pools);
    let (direct, inherited) = holdings(team, &aliases);
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# Exported by flexsync from team {} ({}) at {captured_at}.",
        team.id, team.name
    );
    let _ = writeln!(
        y,
        "# Review it, then commit it. `flexsync schema` describes every field."
    );
    let _ = writeln!(y, "version: 1");
    let _ = writeln!(
        y,
        "team: {{ id: {}, name: {} }}",
        quote(&team.id.0),
        quote(&team.name)
    );
    write_products(&pools, &aliases, &mut y);
    write_users(team, &direct, &mut y);
    if !inherited.is_empty() {
        let _ = writeln!(
            y,
            "# Inherited (through a group or the team), so not managed by flexsync:"
        );
        for line in &inherited {
            let _ = writeln!(y, "#   {}", line.replace('\n', " "));
        }
    }
    let _ = writeln!(
        y,
        "# Nothing is removed until you set `policy: {{ prune: true }}`."
    );
    Ok(y)
}

/// The pools named by `products` (by id or exact name; all when empty),
/// sorted by id, each once.
fn selected_pools<'a>(
    team: &'a ObservedTeam,
    products: &[String],
) -> Result<Vec<&'a ProductPool>, String> {
    let mut pools: Vec<&ProductPool> = Vec::new();
    for wanted in products {
        let found: Vec<&ProductPool> = team
            .pools
            .iter()
            .filter(|p| p.product_id.0 == *wanted || p.product_name == *wanted)
            .collect();
        if found.is_empty() {
            let known: Vec<String> = team
                .pools
                .iter()
                .map(|p| format!("{} ({})", p.product_id, p.product_name))
                .collect();
            return Err(format!(
                "team {} has no product pool with id or name {wanted:?}; its pools: {}",
                team.id,
                known.join(", ")
            ));
        }
        pools.extend(found);
    }
    if products.is_empty() {
        pools = team.pools.iter().collect();
    }
    pools.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    pools.dedup_by(|a, b| a.product_id == b.product_id);
    Ok(pools)
}

/// An alias for each pool from its product name, made unique.
fn aliases<'a>(pools: &[&'a ProductPool]) -> BTreeMap<&'a ProductId, String> {
    let mut aliases = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for pool in pools {
        let base = slug(&pool.product_name);
        let mut alias = base.clone();
        let mut n = 2;
        while !taken.insert(alias.clone()) {
            alias = format!("{base}-{n}");
            n += 1;
        }
        aliases.insert(&pool.product_id, alias);
    }
    aliases
}

/// Each person's direct holdings of the exported pools (declared), and the
/// inherited ones as sentences (commented).
fn holdings<'a>(
    team: &'a ObservedTeam,
    aliases: &'a BTreeMap<&ProductId, String>,
) -> (BTreeMap<&'a Email, BTreeSet<&'a str>>, Vec<String>) {
    let by_id: BTreeMap<_, _> = team.users.iter().map(|u| (&u.id, u)).collect();
    let mut direct: BTreeMap<&Email, BTreeSet<&str>> = BTreeMap::new();
    let mut inherited: Vec<String> = Vec::new();
    for a in &team.assignments {
        let (Some(alias), Some(user)) = (aliases.get(&a.product_id), by_id.get(&a.user_id)) else {
            continue;
        };
        if a.assignment_type.is_direct() {
            direct.entry(&user.email).or_default().insert(alias);
        } else {
            inherited.push(format!(
                "{} holds {alias} {}",
                user.email, a.assignment_type
            ));
        }
    }
    inherited.sort();
    (direct, inherited)
}

fn write_products(pools: &[&ProductPool], aliases: &BTreeMap<&ProductId, String>, y: &mut String) {
    if pools.is_empty() {
        let _ = writeln!(y, "products: {{}}");
        return;
    }
    let _ = writeln!(y, "products:");
    for pool in pools {
        let alias = aliases
            .get(&pool.product_id)
            .map(String::as_str)
            .unwrap_or("");
        let _ = writeln!(
            y,
            "  {alias}: {{ productId: {} }}  # {}",
            quote(&pool.product_id.0),
            pool.product_name.replace('\n', " ")
        );
    }
}

fn write_users(team: &ObservedTeam, direct: &BTreeMap<&Email, BTreeSet<&str>>, y: &mut String) {
    if direct.is_empty() {
        let _ = writeln!(y, "users: []");
        return;
    }
    let _ = writeln!(y, "users:");
    // Names from the first account with the address (one lookup each, not
    // a scan of the team per person).
    let mut by_email: BTreeMap<&Email, &TeamUser> = BTreeMap::new();
    for u in &team.users {
        by_email.entry(&u.email).or_insert(u);
    }
    for (email, held) in direct {
        let user = by_email.get(email);
        let mut fields = vec![format!("email: {}", quote(email.as_str()))];
        if let Some(first) = user.and_then(|u| u.first_name.as_deref()) {
            fields.push(format!("firstName: {}", quote(first)));
        }
        if let Some(last) = user.and_then(|u| u.last_name.as_deref()) {
            fields.push(format!("lastName: {}", quote(last)));
        }
        let list: Vec<&str> = held.iter().copied().collect();
        fields.push(format!("products: [{}]", list.join(", ")));
        let _ = writeln!(y, "  - {{ {} }}", fields.join(", "));
    }
}

/// `Autodesk Flex - Platform Services` → `autodesk-flex-platform-services`.
fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_owned();
    if s.is_empty() {
        "product".to_owned()
    } else {
        s
    }
}

/// A YAML scalar: plain when obviously safe, else a JSON string (which YAML
/// reads as a double-quoted scalar).
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "null" | "on" | "off" | "y" | "n"
        );
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team() -> ObservedTeam {
        serde_json::from_value(serde_json::json!({
            "id": "100001",
            "name": "Acme",
            "users": [
                { "id": "U2", "email": "bo@example.com" },
                { "id": "U1", "email": "ada@example.com", "firstName": "Ada", "lastName": "O'Brien: #1" },
                { "id": "U3", "email": "cy@example.com" }
            ],
            "pools": [
                { "productId": "p2", "productName": "Fusion" },
                { "productId": "p1", "productName": "Fusion" },
                { "productId": "p3", "productName": "Other" }
            ],
            "assignments": [
                { "userId": "U2", "productId": "p2", "assignmentType": "DIRECT" },
                { "userId": "U1", "productId": "p1", "assignmentType": "DIRECT" },
                { "userId": "U1", "productId": "p2", "assignmentType": "DIRECT" },
                { "userId": "U3", "productId": "p1", "assignmentType": "GROUP" },
                { "userId": "U3", "productId": "p3", "assignmentType": "DIRECT" }
            ]
        }))
        .unwrap()
    }

    #[test]
    fn a_team_becomes_a_declaration_of_its_direct_holdings() {
        let at = "2026-11-26T12:00:00Z".parse().unwrap();
        let y = to_yaml(&team(), &["Fusion".to_owned()], at).unwrap();
        let body: Vec<&str> = y.lines().filter(|l| !l.starts_with("# Exported")).collect();
        assert_eq!(
            body,
            [
                "# Review it, then commit it. `flexsync schema` describes every field.",
                "version: 1",
                "team: { id: \"100001\", name: Acme }",
                "products:",
                "  fusion: { productId: p1 }  # Fusion",
                "  fusion-2: { productId: p2 }  # Fusion",
                "users:",
                "  - { email: ada@example.com, firstName: Ada, lastName: \"O'Brien: #1\", products: [fusion, fusion-2] }",
                "  - { email: bo@example.com, products: [fusion-2] }",
                "# Inherited (through a group or the team), so not managed by flexsync:",
                "#   cy@example.com holds fusion through a group",
                "# Nothing is removed until you set `policy: { prune: true }`.",
            ]
        );
        let err = to_yaml(&team(), &["Maya".to_owned()], at).unwrap_err();
        assert!(
            err.contains("no product pool with id or name \"Maya\""),
            "{err}"
        );
        assert!(err.contains("p3 (Other)"), "{err}");
    }

    #[test]
    fn slugs_and_quotes() {
        assert_eq!(
            slug("Autodesk Flex - Platform Services"),
            "autodesk-flex-platform-services"
        );
        assert_eq!(slug("  ***  "), "product");
        assert_eq!(quote("ada@example.com"), "ada@example.com");
        assert_eq!(quote("100001"), "\"100001\"");
        assert_eq!(quote("yes"), "\"yes\"");
        assert_eq!(quote("O'Brien: #1"), "\"O'Brien: #1\"");
    }
}
