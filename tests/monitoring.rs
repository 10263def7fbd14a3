//! The alerting rules and the Grafana dashboard in deploy/ use only metrics
//! a running service exports, and the dashboard shows every one of them.
//! (promtool checks the PromQL itself: deploy/monitoring/check.sh.)

mod served;
mod service_support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use served::Served;
use service_support::{Service, declare};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo(path)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Words of PromQL that are neither functions (they are followed by `(`)
/// nor metric names, besides the LABEL_LISTS words.
const KEYWORDS: [&str; 20] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    // Aggregations may have their `by (…)` between name and parenthesis.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
];

/// Keywords followed by a list of label names, not of expressions.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names `expr` selects, without a PromQL parser: strings, label
/// matchers, ranges, Grafana variables and label lists are cut out; of the
/// words left, those followed by `(` are functions, some are keywords, the
/// rest are metric names.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Pass 1: blank out what holds no metric names.
    let chars: Vec<char> = expr.chars().collect();
    let mut clean = String::new();
    let mut i = 0;
    // Moves `i` to the `close` that ends what starts at `i`, stepping over
    // quoted strings (a label value may hold `}` or `]`) and escapes.
    let skip_to = |i: &mut usize, close: char| {
        let in_string = matches!(chars[*i], '"' | '\'' | '`');
        *i += 1;
        while *i < chars.len() && chars[*i] != close {
            match chars[*i] {
                '\\' => *i += 1,
                q @ ('"' | '\'' | '`') if !in_string => {
                    *i += 1;
                    while *i < chars.len() && chars[*i] != q {
                        if chars[*i] == '\\' {
                            *i += 1;
                        }
                        *i += 1;
                    }
                }
                _ => {}
            }
            *i += 1;
        }
    };
    while i < chars.len() {
        match chars[i] {
            q @ ('"' | '\'' | '`') => {
                skip_to(&mut i, q);
                clean.push(' ');
            }
            '{' => {
                skip_to(&mut i, '}');
                clean.push(' ');
            }
            '[' => {
                skip_to(&mut i, ']');
                clean.push(' ');
            }
            '$' if chars.get(i + 1) == Some(&'{') => {
                skip_to(&mut i, '}');
                clean.push(' ');
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                clean.push(' ');
                continue;
            }
            c => clean.push(c),
        }
        i += 1;
    }
    // Pass 2: words.
    let chars: Vec<char> = clean.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let next_char = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        (j, chars.get(j).copied())
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || c == '.' {
            // A number or a duration.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
        {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let (j, next) = next_char(i);
        if LABEL_LISTS.contains(&word.as_str()) && next == Some('(') {
            i = j;
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            continue;
        }
        let lower = word.to_ascii_lowercase();
        if next == Some('(')
            || KEYWORDS.contains(&lower.as_str())
            || LABEL_LISTS.contains(&lower.as_str())
        {
            continue;
        }
        names.insert(word);
    }
    names
}

/// Metric names in Grafana's `label_values(METRIC, LABEL)`.
fn variable_names(query: &str) -> BTreeSet<String> {
    match query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .and_then(|q| q.rsplit_once(','))
    {
        Some((selector, _label)) => metric_names(selector),
        None => metric_names(query),
    }
}

/// Every series name a scrape can hold, by family: counters as NAME_total,
/// histograms as NAME_bucket/_sum/_count (from `# TYPE`, so a family with
/// no sample yet counts too).
fn exported(metrics: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut families = Vec::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let series: BTreeSet<String> = match kind {
            "counter" => [format!("{name}_total")].into(),
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{name}{s}"))
                .collect(),
            _ => [name.to_owned()].into(),
        };
        families.push((name.to_owned(), series));
    }
    families
}

/// Every PromQL expression of the rules, the PrometheusRule and the
/// dashboard, with where it comes from.
fn expressions() -> Vec<(String, BTreeSet<String>)> {
    let mut out = Vec::new();
    let rules = yaml("deploy/monitoring/flexsync.rules.yml");
    let operator = yaml("deploy/kubernetes/monitoring/prometheusrule.yaml");
    assert_eq!(
        operator["spec"]["groups"], rules["groups"],
        "the PrometheusRule differs from the rules file: run python3 deploy/monitoring/render.py"
    );
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            out.push((format!("rule {}", rule["alert"]), metric_names(expr)));
        }
    }
    let text = std::fs::read_to_string(repo("deploy/monitoring/grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    fn panels(list: &Value, out: &mut Vec<(String, BTreeSet<String>)>) {
        for p in list.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap();
                out.push((format!("panel {}", p["title"]), metric_names(expr)));
            }
            panels(&p["panels"], out);
        }
    }
    panels(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        let query = match &v["query"] {
            Value::String(q) => q.clone(),
            q => q["query"].as_str().unwrap_or_default().to_owned(),
        };
        if v["type"] == "query" {
            out.push((format!("variable {}", v["name"]), variable_names(&query)));
        }
    }
    out
}

#[test]
fn the_extractor_finds_every_metric_name_and_nothing_else() {
    let names = metric_names(
        r#"sum by (team, le) (rate(flexsync_a_bucket{team=~"$team",x="y{z}"}[$__rate_interval]))
           / on(team) group_left(reason) flexsync_b offset 5m > bool 0.95
           and time() - flexsyn_typo{job="${job}"} > 3 * 3600 unless absent(flexsync_c)"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(
            [
                "flexsync_a_bucket",
                "flexsync_b",
                "flexsyn_typo",
                "flexsync_c"
            ]
            .map(String::from)
        )
    );
    assert_eq!(
        variable_names(r#"label_values(flexsync_d{job=~"$job"}, team)"#),
        BTreeSet::from(["flexsync_d".to_owned()])
    );
}

#[tokio::test]
async fn rules_and_dashboard_use_only_what_the_service_exports_and_show_all_of_it() {
    let s = Served::start().await;
    let dir = s.teams_dir();
    declare(
        &dir,
        "a.yaml",
        "version: 1\nteam: { id: \"100001\" }\nproducts:\n  ps: { productName: \"Autodesk Flex - Platform Services\" }\nusers:\n  - { email: alice@example.com, products: [ps] }\n  - { email: erin@example.com, products: [ps] }\n",
    );
    let svc = Service::start(&s, &dir, &["--interval", "1s"], "info");
    svc.converged("100001").await;
    let (_, metrics) = svc.get("/metrics").await;
    let families = exported(&metrics);
    let series: BTreeSet<&String> = families.iter().flat_map(|(_, s)| s).collect();
    assert!(families.len() >= 15, "{metrics}");

    let expressions = expressions();
    let mut used = BTreeSet::new();
    for (place, names) in &expressions {
        assert!(!names.is_empty(), "{place} selects no metric");
        for name in names {
            assert!(
                series.contains(name),
                "{place} uses {name}, which the service does not export:\n{metrics}"
            );
            used.insert(name.clone());
        }
    }
    let dashboard: BTreeSet<&String> = expressions
        .iter()
        .filter(|(place, _)| !place.starts_with("rule "))
        .flat_map(|(_, n)| n)
        .collect();
    for (family, names) in &families {
        assert!(
            names.iter().any(|n| dashboard.contains(n)),
            "the dashboard shows nothing of {family}"
        );
    }
}
