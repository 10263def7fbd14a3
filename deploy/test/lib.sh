# shellcheck shell=bash disable=SC2034  # globals for the scripts that source it
# Shared by deploy/test/image.sh and deploy/test/systemd.sh (sourced, not run).
# They run as root on a Debian-like machine (CI's kind), install what they
# lack with apt-get, and fail loudly when something cannot be had: a check
# that cannot run is a failure, never a skip.

set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Reruns on one machine reuse the debootstrapped rootfs, the image base and
# the container storage kept here.
CACHE=${FLEXSYNC_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flexsync-ci}
# The sandbox's OAuth client (docs/sandbox.md).
SANDBOX_CLIENT_ID=flexsync-sandbox
SANDBOX_CLIENT_SECRET=flexsync-sandbox-secret

T0=$(date +%s)
log() { printf '[%4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}
# `check WHAT CMD…`: prints ok/FAIL with WHAT; a failure ends the script.
check() {
  local what=$1
  shift
  if "$@"; then
    printf '  ok:   %s\n' "$what"
  else
    fail "$what"
  fi
}

need_root() {
  [ "$(id -u)" = 0 ] || fail "$0 needs root (it runs containers and systemd-nspawn)"
}

# `need_cmd CMD PACKAGE`: installs PACKAGE (Debian) when CMD is missing.
need_cmd() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null && return 0
  command -v apt-get >/dev/null || fail "$cmd is missing and there is no apt-get to install $pkg"
  log "installing $pkg (for $cmd)"
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq || fail "apt-get update failed"
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null ||
    fail "apt-get install $pkg failed"
  command -v "$cmd" >/dev/null || fail "$pkg is installed but $cmd is still missing"
}

# The release binary: $FLEXSYNC_BIN if set, else built here (once per run).
release_binary() {
  if [ -n "${FLEXSYNC_BIN:-}" ]; then
    [ -x "$FLEXSYNC_BIN" ] || fail "FLEXSYNC_BIN=$FLEXSYNC_BIN is not an executable"
    BIN=$(realpath "$FLEXSYNC_BIN")
  else
    log "cargo build --release --locked"
    (cd "$REPO" && cargo build --release --locked --quiet) || fail "cargo build --release failed"
    local target=${CARGO_TARGET_DIR:-$REPO/target}
    case $target in /*) ;; *) target=$REPO/$target ;; esac
    BIN=$target/release/flexsync
  fi
  "$BIN" --version >/dev/null || fail "$BIN does not run"
  log "binary: $BIN ($("$BIN" --version))"
}

# `wait_for SECONDS WHAT CMD…`: retries CMD every half second.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local deadline=$(($(date +%s) + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${limit}s waiting for: $what"
    sleep 0.5
  done
  printf '  ok:   %s\n' "$what"
}

# The deployment as rendered for Kubernetes, as JSON on stdout:
# {args, env, mounts, securityContext, podSecurityContext, configmap}.
rendered_pod() {
  python3 - "$REPO" <<'EOF'
import json, subprocess, sys, yaml
repo = sys.argv[1]
out = subprocess.run([sys.executable, f"{repo}/deploy/render_kustomize.py", f"{repo}/deploy/kubernetes/base"],
                     check=True, capture_output=True, text=True).stdout
docs = [d for d in yaml.safe_load_all(out) if d]
dep = next(d for d in docs if d["kind"] == "Deployment")
pod = dep["spec"]["template"]["spec"]
c = next(c for c in pod["containers"] if c["name"] == "flexsync")
cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "flexsync-declarations")
vols = {v["name"]: v for v in pod["volumes"]}
print(json.dumps({
    "image": c["image"],
    "args": c["args"],
    "env": [e["name"] for e in c.get("env", [])],
    "mounts": [{"path": m["mountPath"], "readOnly": m.get("readOnly", False),
                "volume": vols[m["name"]]} for m in c["volumeMounts"]],
    "securityContext": c.get("securityContext", {}),
    "podSecurityContext": pod.get("securityContext", {}),
    "port": c["ports"][0]["containerPort"],
    "probes": {"liveness": c["livenessProbe"]["httpGet"]["path"],
               "readiness": c["readinessProbe"]["httpGet"]["path"]},
    "configmap": cm["data"],
}))
EOF
}

# `NET` (an array) runs a command where the sandbox is reachable (a network
# namespace, a container); `FLEXSYNC` is the binary's path there.
# `sandbox_login TOKEN_FILE API_URL`: `flexsync login` against the served
# sandbox as a person would, the browser played by curl (tests/served does
# the same): GET the printed authorize URL, which approves at once, and
# follow its redirect to flexsync's callback listener.
sandbox_login() {
  local token=$1 api=$2 err url location pid
  err=$(mktemp)
  "${NET[@]}" env FLEXSYNC_CLIENT_SECRET="$SANDBOX_CLIENT_SECRET" "$FLEXSYNC" login \
    --api-url "$api" --client-id "$SANDBOX_CLIENT_ID" --token-file "$token" \
    --no-browser --callback-url http://127.0.0.1:0/callback 2>"$err" &
  pid=$!
  for _ in $(seq 100); do
    url=$(grep -o 'http://[^ ]*/authentication/v2/authorize?[^ ]*' "$err" || true)
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { cat "$err" >&2; fail "flexsync login printed no authorize URL"; }
  location=$("${NET[@]}" curl -s -o /dev/null -w '%{redirect_url}' "$url")
  [ -n "$location" ] || fail "the sandbox's authorize endpoint did not redirect"
  "${NET[@]}" curl -sf -o /dev/null "$location" || fail "flexsync login's callback refused the code"
  wait "$pid" || { cat "$err" >&2; fail "flexsync login failed"; }
  rm -f "$err"
}

# `http PATH`: GET on the service (SERVICE_URL) where NET runs; the body.
http() { "${NET[@]}" curl -s --max-time 5 "$SERVICE_URL$1"; }
# `http_code PATH`: the status code only.
http_code() { "${NET[@]}" curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$SERVICE_URL$1"; }
# `json_get EXPR`: evaluates a Python expression over stdin's JSON as `d`.
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# `sandbox_matches DIR`: every product the declarations in DIR give a user
# is held by that user in the sandbox's state (read through NET): the
# reconcile really happened, seen from the API's side.
sandbox_matches() {
  "${NET[@]}" curl -sf http://127.0.0.1:8787/_sandbox/state | python3 -c '
import glob, json, sys, yaml
world = json.load(sys.stdin)["world"]
email_of = {uid: a["email"].lower() for uid, a in world["accounts"].items()}
missing = []
for path in sorted(glob.glob(sys.argv[1] + "/*.yaml")):
    for decl in yaml.safe_load_all(open(path)):
        team = world["teams"][decl["team"]["id"]]
        pools = {p["productName"]: p["productId"] for p in team["pools"]}
        held = {(email_of[a["userId"]], a["productId"]) for a in team["direct"] if not a.get("removedAt")}
        for user in decl.get("users", []):
            for alias in user.get("products", []):
                ref = decl["products"][alias]
                pid = ref.get("productId") or pools.get(ref.get("productName"))
                if (user["email"].lower(), pid) not in held:
                    missing.append(f"{user['"'"'email'"'"']} {alias}")
if missing:
    sys.exit("not held: " + ", ".join(missing))
' "$1"
}
