//! The committed JSON Schema is the one the code generates.

#[test]
fn committed_schema_is_current() {
    let generated =
        serde_json::to_string_pretty(&flexsync::config::format::schema()).unwrap() + "\n";
    let committed = std::fs::read_to_string("schemas/flexsync.schema.json").unwrap();
    assert!(
        generated == committed,
        "schemas/flexsync.schema.json is stale: run `cargo run -- schema > schemas/flexsync.schema.json`"
    );
}

#[test]
fn the_schema_describes_every_field() {
    let schema = flexsync::config::format::schema();
    let mut missing = Vec::new();
    walk(&schema, "#", &mut missing);
    assert!(
        missing.is_empty(),
        "properties without a description: {missing:?}"
    );
}

fn walk(v: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
    if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
        for (name, prop) in props {
            if prop.get("description").is_none() {
                missing.push(format!("{path}/{name}"));
            }
        }
    }
    if let Some(obj) = v.as_object() {
        for (k, child) in obj {
            walk(child, &format!("{path}/{k}"), missing);
        }
    }
}
