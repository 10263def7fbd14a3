//! Writing a desired-state document from what a team holds today, to start
//! managing an existing team (like peribolos --dump-full).
//!
//! Direct assignments become declarations; inherited ones become comments,
//! because flexsync cannot manage them. Planning the result against the same
//! team shows no change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::model::{Email, ObservedTeam, ProductId, ProductPool};

/// The YAML text of a declaration of `team`, limited to `products` (all
/// pools when empty, matched by productId or exact productName).
pub fn to_yaml(
    team: &ObservedTeam,
    products: &[String],
    captured_at: jiff::Timestamp,
) -> Result<String, String> {
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

    // Aliases from product names, made unique.
    let mut aliases: BTreeMap<&ProductId, String> = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for pool in &pools {
        let base = slug(&pool.product_name);
        let mut alias = base.clone();
        let mut n = 2;
        while !taken.insert(alias.clone()) {
            alias = format!("{base}-{n}");
            n += 1;
        }
        aliases.insert(&pool.product_id, alias);
    }

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
    if pools.is_empty() {
        let _ = writeln!(y, "products: {{}}");
    } else {
        let _ = writeln!(y, "products:");
    }
    for pool in &pools {
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
    if direct.is_empty() {
        let _ = writeln!(y, "users: []");
    } else {
        let _ = writeln!(y, "users:");
    }
    for (email, held) in &direct {
        let user = team.users.iter().find(|u| &u.email == *email);
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
