#!/usr/bin/env bash
# CI checks of the alerting rules and the Grafana dashboard (run by
# deploy/check.sh). promtool comes from Debian's `prometheus` package,
# installed when missing; where it cannot be, a structural check stands in.
# That the rules and the dashboard use only metrics the service exports is
# checked against a running service by tests/monitoring.rs (cargo test).
set -euo pipefail
cd "$(dirname "$0")/../.."

rules=deploy/monitoring/flexsync.rules.yml
tests=deploy/monitoring/flexsync.rules.test.yml
dashboard=deploy/monitoring/grafana-dashboard.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== monitoring: PrometheusRule generated from $rules"
python3 deploy/monitoring/render.py --check || fail "run python3 deploy/monitoring/render.py"

echo "== monitoring: the rendered kustomization"
python3 deploy/render_kustomize.py deploy/kubernetes/monitoring -o "$tmp/monitoring.yaml"
# The PrometheusRule's spec as it reaches the cluster is a rules file itself;
# dashboard expressions become recording rules, so promtool parses them too.
python3 - "$tmp/monitoring.yaml" "$dashboard" "$tmp" <<'PY' || fail "monitoring manifests or dashboard"
import json, re, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(d["kind"] for d in docs)
assert kinds == ["PrometheusRule", "ServiceMonitor"], kinds
for d in docs:
    assert d["apiVersion"] == "monitoring.coreos.com/v1", d["apiVersion"]
    assert d["metadata"]["labels"]["app.kubernetes.io/name"] == "flexsync"
    if d["kind"] == "PrometheusRule":
        yaml.safe_dump(d["spec"], open(f"{sys.argv[3]}/prometheusrule-spec.yml", "w"))
    else:
        ep = d["spec"]["endpoints"]
        assert d["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "flexsync"}
        assert [e["port"] for e in ep] == ["metrics"] and ep[0]["path"] == "/metrics", ep
# The base's Service must have the port the ServiceMonitor names.
svc = yaml.safe_load(open("deploy/kubernetes/base/service.yaml"))
assert any(p["name"] == "metrics" for p in svc["spec"]["ports"]), "Service has no port named metrics"

dash = json.load(open(sys.argv[2]))
exprs, ids = [], set()
def walk(panels):
    for p in panels:
        assert p["id"] not in ids, f"panel id {p['id']} twice"
        ids.add(p["id"])
        if p["type"] != "row":
            assert p.get("datasource", {}).get("uid") == "${datasource}", p["title"]
            assert p.get("targets"), f"panel {p['title']!r} has no query"
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
        walk(p.get("panels", []))
walk(dash["panels"])
names = {v["name"] for v in dash["templating"]["list"]}
assert {"datasource", "job", "team"} <= names, names
def concrete(e):
    # Grafana's variables replaced by what they stand for.
    return (e.replace("$__rate_interval", "5m").replace("${datasource}", "")
             .replace("$job", ".*").replace("$team", ".*"))
assert not any("$" in concrete(e) for _, e in exprs), [e for _, e in exprs if "$" in concrete(e)]
rules = [{"record": f"dashboard:panel_{i}", "expr": concrete(e)} for i, (_, e) in enumerate(exprs)]
for v in dash["templating"]["list"]:
    q = v.get("query")
    q = q.get("query") if isinstance(q, dict) else None
    m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q or "")
    if m:
        rules.append({"record": f"dashboard:variable_{v['name']}", "expr": concrete(m.group(1))})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]},
               open(f"{sys.argv[3]}/dashboard-exprs.yml", "w"))
print(f"  ok: {len(docs)} manifests, {len(exprs)} dashboard queries in {len(ids)} panels")
PY

if ! command -v promtool >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null || true
fi
if command -v promtool >/dev/null; then
  echo "== monitoring: promtool ($(promtool --version 2>&1 | head -1))"
  promtool check rules "$rules" "$tmp/prometheusrule-spec.yml" "$tmp/dashboard-exprs.yml" || fail "promtool check rules"
  (cd deploy/monitoring && promtool test rules "$(basename "$tests")") || fail "promtool test rules $tests"
else
  echo "== monitoring: promtool cannot be installed; checking the rules' structure only"
  python3 - "$rules" <<'PY' || fail "$rules structure"
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for g in doc["groups"]:
    assert set(g) <= {"name", "interval", "rules"}, g.keys()
    for r in g["rules"]:
        assert set(r) <= {"alert", "record", "expr", "for", "labels", "annotations"}, r.keys()
        e = r["expr"]
        assert e.count("(") == e.count(")") and e.count("{") == e.count("}") and e.count("[") == e.count("]"), e
        assert r["labels"]["severity"] in ("critical", "warning"), r
        assert r["annotations"]["summary"], r
print("  ok (structure only)")
PY
fi
echo "monitoring checks passed"
