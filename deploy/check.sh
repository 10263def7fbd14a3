#!/usr/bin/env bash
# CI checks of the deployment files in deploy/ (systemd unit, Kubernetes
# manifests). Offline apart from installing systemd (Debian) when missing and
# kubernetes-validate (PyPI). Run from anywhere: bash deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE=1.34.1
# Oldest version with native sidecars (the git-sync overlay) on by default,
# and the newest whose schemas this kubernetes-validate ships.
K8S_VERSIONS=(1.29.0 1.34.0)
# systemd-analyze security exposure, x10: the unit scores 1.1; fail above 1.5.
EXPOSURE_THRESHOLD=15
KUSTOMIZATIONS=(deploy/kubernetes deploy/kubernetes/base deploy/kubernetes/git-sync deploy/kubernetes/previews deploy/kubernetes/previews-ingress)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== deploy: systemd unit"
unit=deploy/systemd/flexsync.service
if ! command -v systemd-analyze >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
fi
# verify insists that ExecStart's binary exists: check a copy pointed at
# /bin/true instead of putting anything in /usr/local/bin.
grep -q '^ExecStart=/usr/local/bin/flexsync run ' "$unit" || fail "$unit: ExecStart must run /usr/local/bin/flexsync run"
sed 's#^ExecStart=/usr/local/bin/flexsync #ExecStart=/bin/true #' "$unit" >"$tmp/flexsync.service"
echo "systemd-analyze verify $unit"
# verify exits 0 on unknown keys and unparsable values (it only logs them and
# ignores the line), so any output at all fails the check.
if ! out=$(systemd-analyze verify --man=no "$tmp/flexsync.service" 2>&1) || [ -n "$out" ]; then
  printf '%s\n' "$out" >&2
  fail "systemd-analyze verify $unit"
fi
echo "systemd-analyze security --offline=yes --threshold=$EXPOSURE_THRESHOLD $unit"
if ! out=$(systemd-analyze security --offline=yes --threshold="$EXPOSURE_THRESHOLD" "$tmp/flexsync.service" 2>&1); then
  printf '%s\n' "$out" | grep -E '✗|Overall' >&2 || printf '%s\n' "$out" >&2
  fail "$unit: exposure above $EXPOSURE_THRESHOLD/10 (a hardening directive was lost?)"
fi
printf '%s\n' "$out" | grep 'Overall exposure'

echo "== deploy: Kubernetes manifests"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "kubernetes-validate==$KUBERNETES_VALIDATE"
# kubectl/kustomize come from no Debian or PyPI package; render_kustomize.py
# does the same offline. Where kubectl exists, its output must be identical.
have_kubectl=no
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then have_kubectl=yes; fi
for dir in "${KUSTOMIZATIONS[@]}"; do
  out="$tmp/$(echo "$dir" | tr / _).yaml"
  echo "render $dir"
  python3 deploy/render_kustomize.py "$dir" -o "$out"
  if [ "$have_kubectl" = yes ]; then
    echo "  same as kubectl kustomize $dir"
    kubectl kustomize "$dir" >"$out.kubectl" || fail "kubectl kustomize $dir"
    python3 - "$out" "$out.kubectl" <<'EOF' || fail "render_kustomize.py and kubectl kustomize disagree on $dir"
import sys, yaml
def load(p):
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(p)) if d}
a, b = load(sys.argv[1]), load(sys.argv[2])
for k in sorted(set(a) | set(b)):
    if a.get(k) != b.get(k):
        print("  differs:", *k, file=sys.stderr)
sys.exit(a != b)
EOF
  fi
  for v in "${K8S_VERSIONS[@]}"; do
    echo "  kubernetes-validate --strict -k $v"
    python3 -m kubernetes_validate --strict --quiet -k "$v" "$out" || fail "$dir against Kubernetes $v"
  done
  # Invariants the schema cannot see.
  python3 - "$out" schemas/flexsync.schema.json <<'EOF' || fail "$dir: invariants"
import json, sys, yaml, jsonschema
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
schema = json.load(open(sys.argv[2]))
ok = True
def check(cond, msg):
    global ok
    print(("  ok:   " if cond else "  FAIL: ") + msg, file=sys.stdout if cond else sys.stderr)
    ok &= bool(cond)
dep = [d for d in docs if d["kind"] == "Deployment"]
check(len(dep) == 1, "one Deployment")
spec = dep[0]["spec"]
check(spec.get("replicas") == 1 and spec.get("strategy", {}).get("type") == "Recreate",
      "replicas: 1 and strategy Recreate (single-use refresh token)")
pod = spec["template"]["spec"]
check(not any("subPath" in m for c in pod.get("containers", []) + pod.get("initContainers", [])
              for m in c.get("volumeMounts", [])), "no subPath mounts (they never update)")
main = next(c for c in pod["containers"] if c["name"] == "flexsync")
args = main.get("args", [])
def has(flag):
    return any(a == flag or a.startswith(flag + "=") for a in args)
if has("--snapshot-token-file"):
    check(has("--tls-cert") and has("--tls-key"),
          "/snapshot is served over TLS only (--tls-cert and --tls-key)")
if has("--tls-cert"):
    check(all(main[p]["httpGet"].get("scheme") == "HTTPS" for p in ("livenessProbe", "readinessProbe")),
          "probes use HTTPS when flexsync serves TLS")
for d in docs:
    if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "flexsync-declarations":
        for key, text in d["data"].items():
            errs = list(jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(text)))
            check(not errs, f"ConfigMap declaration {key} matches schemas/flexsync.schema.json"
                  + "".join(f"\n        {e.message}" for e in errs))
sys.exit(not ok)
EOF
done
echo "== deploy: alerting rules, PrometheusRule, Grafana dashboard"
bash deploy/monitoring/check.sh

echo "deploy checks passed"
