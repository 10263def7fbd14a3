#!/usr/bin/env bash
# The shipped unit, unchanged, under a real systemd: boots a debootstrapped
# Debian in systemd-nspawn (private network), installs flexsync the way
# deploy/systemd/README.md says, against a sandbox served on loopback inside,
# and checks what the README promises: `systemctl start` returns on READY=1
# even with an invalid declaration, STATUS text, errors at error priority in
# the journal, `systemctl reload`, a reconcile, `systemd-analyze security`,
# a watchdog restart of a stopped process, the "Login lost" procedure, and
# `systemctl stop` exiting 0.
#
#   bash deploy/test/systemd.sh     as root; FLEXSYNC_BIN=path skips the build
#
# The rootfs is debootstrapped once and kept under $CACHE (see lib.sh); each
# run boots a copy. The unit is installed byte for byte; the sandbox's URL
# and client id go in /etc/flexsync/env, the file the unit reads for them.
# shellcheck source=deploy/test/lib.sh
source "$(dirname "$0")/lib.sh"

NAME=flexsync-systemd-$$
MIRROR=${FLEXSYNC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The binary is built here, so the guest's glibc must be the host's or newer:
# Debian hosts boot their own release; anything else boots bookworm.
SUITE=$(. /etc/os-release 2>/dev/null && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}" || true)
SUITE=${SUITE:-bookworm}
INCLUDE=systemd,systemd-sysv,dbus,curl,ca-certificates
API=http://127.0.0.1:8787/team-admin/v1
SERVICE_URL=http://127.0.0.1:9464   # the unit's --listen
MAX_EXPOSURE=1.5

need_root
need_cmd systemd-nspawn systemd-container
need_cmd debootstrap debootstrap
need_cmd nsenter util-linux
python3 -c 'import yaml' 2>/dev/null || fail "python3 with PyYAML is needed (pip install pyyaml)"
release_binary

# ---- the rootfs, debootstrapped once ---------------------------------------------
ROOTFS=$CACHE/rootfs/$SUITE-$(printf '%s %s' "$INCLUDE" v1 | sha256sum | cut -c1-8)
if [ -d "$ROOTFS" ]; then
  log "rootfs $ROOTFS (cached)"
else
  log "debootstrap $SUITE from $MIRROR (once; cached in $ROOTFS)"
  mkdir -p "$CACHE/rootfs"
  rm -rf "$ROOTFS.tmp"
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS.tmp" "$MIRROR" >"$CACHE/rootfs/debootstrap.log" 2>&1 ||
    { tail -20 "$CACHE/rootfs/debootstrap.log" >&2; fail "debootstrap $SUITE from $MIRROR"; }
  # A quiet, quick boot: no login prompts, no timers fetching packages.
  for u in console-getty.service getty@.service apt-daily.timer apt-daily-upgrade.timer \
    dpkg-db-backup.timer e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "$ROOTFS.tmp/etc/systemd/system/$u"
  done
  rm -rf "$ROOTFS.tmp/var/cache/apt/archives"/*.deb
  mv "$ROOTFS.tmp" "$ROOTFS"
  # Rootfs made for an older INCLUDE list or release go.
  find "$CACHE/rootfs" -mindepth 1 -maxdepth 1 -type d ! -path "$ROOTFS" -exec rm -rf {} +
  log "rootfs ready ($(du -sh "$ROOTFS" | cut -f1))"
fi

work=$(mktemp -d)
root=$work/root
nspawn_pid=
LEADER=
cleanup() {
  local code=$?
  set +e
  if [ "$code" != 0 ] && [ -n "$LEADER" ]; then
    echo "---- journal of flexsync.service (last 60 lines)" >&2
    in_ct journalctl -u flexsync --no-pager -n 60 >&2
  fi
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid"   # nspawn shuts the guest down cleanly
    for _ in $(seq 60); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$nspawn_pid" 2>/dev/null
    wait "$nspawn_pid" 2>/dev/null
  fi
  rm -rf "$work"
  exit "$code"
}
trap cleanup EXIT

log "copying the rootfs"
cp -a --reflink=auto "$ROOTFS" "$root"

# ---- install as deploy/systemd/README.md, step 3 --------------------------------
install -m 0755 "$BIN" "$root/usr/local/bin/flexsync"
install -m 0644 "$REPO/deploy/systemd/flexsync.service" "$root/etc/systemd/system/flexsync.service"
install -d -m 0755 "$root/etc/flexsync/teams"
printf 'FLEXSYNC_CLIENT_ID=%s\nFLEXSYNC_API_URL=%s\n' "$SANDBOX_CLIENT_ID" "$API" >"$root/etc/flexsync/env"
(umask 077 && printf '%s' "$SANDBOX_CLIENT_SECRET" >"$root/etc/flexsync/client-secret")
# The declaration starts invalid (an alias it never defines): the service
# must start and say so.
decl=$root/etc/flexsync/teams/team-100001.yaml
python3 - "$REPO/deploy/kubernetes/base/configmap.yaml" "$decl" <<'EOF'
import sys, yaml
text = yaml.safe_load(open(sys.argv[1]))["data"]["team-100001.yaml"]
open(sys.argv[2], "w").write(text)
open(sys.argv[2] + ".valid", "w").write(text)
EOF
mv "$decl.valid" "$work/team-100001.yaml"
sed -i 's/erin@example.com, products: \[platform-services\]/erin@example.com, products: [platform-service]/' "$decl"
grep -q 'platform-service\]' "$decl" || fail "could not break the declaration"
# The sandbox, served on loopback inside the guest.
cat >"$root/etc/systemd/system/flexsync-sandbox.service" <<EOF
[Unit]
Description=flexsync's Team Admin API sandbox (test only)
[Service]
ExecStart=/usr/local/bin/flexsync sandbox serve --listen 127.0.0.1:8787 --admin-endpoints --state /var/lib/flexsync-sandbox/state.json
StateDirectory=flexsync-sandbox
EOF
cmp -s "$REPO/deploy/systemd/flexsync.service" "$root/etc/systemd/system/flexsync.service" || fail "the unit was changed"

# ---- boot --------------------------------------------------------------------------
log "booting $SUITE in systemd-nspawn"
systemd-nspawn --quiet --directory="$root" --boot --machine="$NAME" --register=no --keep-unit \
  --private-network --console=read-only >"$work/boot.log" 2>&1 &
nspawn_pid=$!
leader() {
  local p q
  for p in $(pgrep -x systemd); do
    q=$p
    while [ "$q" -gt 1 ]; do
      q=$(awk '/^PPid:/ {print $2}' "/proc/$q/status" 2>/dev/null) || break
      [ "$q" = "$nspawn_pid" ] && { echo "$p"; return 0; }
    done
  done
  return 1
}
for _ in $(seq 100); do LEADER=$(leader) && break; kill -0 "$nspawn_pid" || break; sleep 0.2; done
[ -n "$LEADER" ] || { cat "$work/boot.log" >&2; fail "systemd-nspawn did not boot"; }
in_ct() { nsenter --target "$LEADER" --all -- env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb "$@"; }
NET=(in_ct)
FLEXSYNC=/usr/local/bin/flexsync  # for sandbox_login
state=$(timeout 120 nsenter --target "$LEADER" --all -- systemctl is-system-running --wait 2>&1) || true
log "guest booted: $state ($(in_ct systemctl --version | head -n 1))"
case $state in running | degraded) ;; *) cat "$work/boot.log" >&2; fail "the guest did not finish booting: $state" ;; esac

in_ct systemctl start flexsync-sandbox
wait_for 20 "sandbox serving on 127.0.0.1:8787 inside the guest" in_ct curl -sf http://127.0.0.1:8787/_sandbox/clock

# README step 2: a login made "on a workstation" (here /root/ws), then step 3.
in_ct mkdir -p /root/ws
sandbox_login /root/ws/token.json "$API"
in_ct sh -ec 'cd /root/ws
  install -d -m 0700 /var/lib/private /var/lib/private/flexsync
  install -m 0600 token.json /var/lib/private/flexsync/token.json
  shred -u token.json'
in_ct systemctl daemon-reload

# ---- start with an invalid declaration ------------------------------------------
prop() { in_ct systemctl show -p "$1" --value flexsync; }
metric() { http /metrics | awk -v m="$1" '$1 == m {print $2}'; }
journal_has() {  # PRIORITY PATTERN: a journal entry of flexsync at exactly that priority
  in_ct journalctl -u flexsync -o json --no-pager | python3 -c '
import json, re, sys
want, pattern = sys.argv[1], re.compile(sys.argv[2])
sys.exit(0 if any(e.get("PRIORITY") == want and pattern.search(str(e.get("MESSAGE", "")))
                  for e in map(json.loads, sys.stdin)) else 1)' "$1" "$2"
}
t=$(date +%s)
check "systemctl start flexsync returns 0 with an invalid declaration (READY=1 whatever it holds)" \
  timeout 150 nsenter --target "$LEADER" --all -- systemctl start flexsync
log "systemctl start took $(($(date +%s) - t))s"
# READY=1 comes after the listener is up: no waiting here.
check "serving /healthz as soon as start returned" test "$(http_code /healthz)" = 200
check "active (running) after start" test "$(prop ActiveState)/$(prop SubState)" = active/running
check "flexsync_declaration_loaded 0" test "$(metric flexsync_declaration_loaded)" = 0
wait_for 10 "the declaration's error is in the journal at error priority" \
  journal_has 3 "invalid declaration.*unknown product alias"
err_lists() { in_ct journalctl -u flexsync -p err --no-pager | grep -q "$1"; }
check "journalctl -u flexsync -p err lists it" err_lists "invalid declaration"
status=$(prop StatusText)
echo "  STATUS: $status"
check "STATUS= says the declaration is invalid" grep -q '^no valid declaration' <<<"$status"
readyz_says() { test "$(http_code /readyz)" = 200 && http /readyz | grep -q "$1"; }
check "/readyz answers 200 and names the invalid declaration" readyz_says "no valid declaration"
check "info lines are not errors (\"flexsync is running\" at priority 6)" journal_has 6 "flexsync is running"
no_info_at_err() { ! err_lists 'flexsync is running'; }
check "journalctl -p err does not list info lines" no_info_at_err

# ---- fix it, reload, reconcile -------------------------------------------------------
pid=$(prop MainPID)
install -m 0644 "$work/team-100001.yaml" "$decl"
check "systemctl reload flexsync returns 0" in_ct systemctl reload flexsync
check "reload kept the process ($pid)" test "$(prop MainPID)" = "$pid"
wait_for 10 "the journal shows the SIGHUP re-read" journal_has 6 "SIGHUP: re-reading"
converged() {
  http /status | json_get "d['declaration']['loaded'] and len(d['teams']) > 0 and all(t['state'] in ('applied', 'converged') for t in d['teams'])" | grep -qx True
}
wait_for 60 "a reconcile: every team applied or converged (/status)" converged
check "the sandbox now holds what the declaration says" sandbox_matches "$root/etc/flexsync/teams"
check "flexsync_declaration_loaded 1" test "$(metric flexsync_declaration_loaded)" = 1
status=$(prop StatusText)
echo "  STATUS: $status"
check "STATUS= counts the team" grep -q '^1 team(s)' <<<"$status"
check "the audit log is in the state directory" in_ct test -s /var/lib/private/flexsync/audit.jsonl

# ---- systemd-analyze security, live -------------------------------------------------
exposure=$(in_ct systemd-analyze security flexsync.service | sed -n 's/.*Overall exposure level for flexsync.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security flexsync.service: $exposure <= $MAX_EXPOSURE" \
  python3 -c "import sys; sys.exit(not ('$exposure' and float('$exposure') <= $MAX_EXPOSURE))"

# ---- the watchdog: a stopped process is killed and restarted ----------------------------
pid=$(prop MainPID)
restarts=$(prop NRestarts)
wd=$(prop WatchdogUSec)
log "SIGSTOP $pid (WatchdogSec=$wd); waiting for systemd to kill and restart it"
t=$(date +%s)
in_ct sh -c 'kill -STOP "$1"' sh "$pid"   # the shell's kill: minbase has no procps
restarted() { test "$(prop NRestarts)" -gt "$restarts" && test "$(prop ActiveState)/$(prop SubState)" = active/running && test "$(prop MainPID)" != "$pid"; }
wait_for 150 "restarted after the watchdog timeout" restarted
log "watchdog restart took $(($(date +%s) - t))s"
watchdog_logged() { in_ct journalctl -u flexsync --no-pager | grep -q 'Watchdog timeout'; }
check "systemd logged the watchdog timeout" watchdog_logged
wait_for 30 "/readyz answers 200 again" test "$(http_code /readyz)" = 200

# ---- "Login lost", and the README's procedure -------------------------------------------
# The sandbox's refresh tokens die after 15 days of its clock.
in_ct curl -sf -X POST -H 'content-type: application/json' -d '{"advanceSeconds": 1382400}' \
  http://127.0.0.1:8787/_sandbox/clock >/dev/null
in_ct systemctl reload flexsync   # try now, not in 10 minutes
wait_for 60 "the loss is in the journal at error priority" journal_has 3 "the login is lost"
check "still active without a login" test "$(prop ActiveState)" = active
check "flexsync_login_valid 0" test "$(metric flexsync_login_valid)" = 0
check "/readyz says: login lost" readyz_says "login lost"
sandbox_login /root/ws/token.json "$API"
check "README: sudo flexsync login --from-file token.json --token-file /var/lib/flexsync/token.json" \
  in_ct sh -ec 'cd /root/ws
    flexsync login --from-file token.json --token-file /var/lib/flexsync/token.json
    shred -u token.json'
owner=$(in_ct stat -c %u /var/lib/private/flexsync)
check "the installed token belongs to the service's dynamic user ($owner), 0600" \
  test "$(in_ct stat -c '%u %a' /var/lib/private/flexsync/token.json)" = "$owner 600"
t=$(date +%s)
wait_for 120 "picked up by itself: \"the login works again\" (no restart, no reload)" journal_has 6 "the login works again"
log "the new login was picked up after $(($(date +%s) - t))s"
check "flexsync_login_valid 1" test "$(metric flexsync_login_valid)" = 1

# ---- stop ---------------------------------------------------------------------------------
t=$(date +%s)
check "systemctl stop flexsync returns 0" in_ct systemctl stop flexsync
log "systemctl stop took $(($(date +%s) - t))s"
check "it exited 0 (Result=success, ExecMainStatus=0)" test "$(prop Result)/$(prop ExecMainStatus)" = success/0
check "it logged its stop" journal_has 6 ": stopped$"
log "systemd test passed"
