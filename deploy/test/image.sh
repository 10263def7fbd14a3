#!/usr/bin/env bash
# Builds the Dockerfile into an image on a machine without any registry, and
# runs it the way deploy/kubernetes runs it: the Deployment's own args, env,
# mounts, user and read-only root, against a sandbox served on loopback in a
# network namespace of its own. Checks the image (user, entrypoint, labels,
# no shell), /healthz, /readyz, a reconcile, and a clean exit on SIGTERM.
#
#   bash deploy/test/image.sh       as root; FLEXSYNC_BIN=path skips the build
#
# No image can be pulled here, so the base is assembled from Debian's own
# packages the way distroless builds cc-debian12 (glibc, libgcc, CA
# certificates, tzdata, /etc/passwd with nonroot 65532), imported with
# `podman import`, and passed as BASE_IMAGE; the binary goes in through the
# Dockerfile's `prebuilt` stage. Podman uses the vfs driver and chroot
# isolation, with its storage under $CACHE (see lib.sh) so reruns reuse the
# base. What this proves and what only a registry and a cluster would:
# README.md, "Container image".
# shellcheck source=deploy/test/lib.sh
source "$(dirname "$0")/lib.sh"

NAME=flexsync-image-test-$$
NS=$NAME
IMAGE=localhost/flexsync:test
BASE_PACKAGES=(libc6 libgcc-s1 ca-certificates netbase tzdata base-files)

need_root
need_cmd podman podman
need_cmd runc runc
need_cmd curl curl
need_cmd ip iproute2
need_cmd apt-get apt
python3 -c 'import yaml' 2>/dev/null || fail "python3 with PyYAML is needed (pip install pyyaml)"
release_binary

PODMAN=(podman --storage-driver vfs --root "$CACHE/podman/storage" --runroot /run/flexsync-ci-podman
  --runtime runc --cgroup-manager cgroupfs)
# Ulimits podman would copy from a host whose limits it may not raise here.
RUN_OPTS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

work=$(mktemp -d)
sandbox_pid=
cleanup() {
  set +e
  "${PODMAN[@]}" rm -f -t 0 "$NAME" >/dev/null 2>&1
  # Earlier runs' images, untagged by this one's (vfs keeps full copies).
  "${PODMAN[@]}" image prune -f >/dev/null 2>&1
  [ -n "$sandbox_pid" ] && kill "$sandbox_pid" 2>/dev/null && wait "$sandbox_pid" 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# ---- the base image -----------------------------------------------------------
# Keyed by the package versions, so a point release of glibc makes a new one.
if ! apt-cache show --no-all-versions libc6 >/dev/null 2>&1; then apt-get update -qq; fi
versions=$(for p in "${BASE_PACKAGES[@]}"; do
  printf '%s=%s\n' "$p" "$(apt-cache show --no-all-versions "$p" | sed -n 's/^Version: //p')"
done)
key=$(printf '%s' "$versions" | sha256sum | cut -c1-12)
BASE=localhost/flexsync-base:$key
if "${PODMAN[@]}" image exists "$BASE"; then
  log "base image $BASE (cached)"
else
  tarball=$CACHE/image-base/$key.tar
  if [ ! -f "$tarball" ]; then
    log "assembling the base from Debian packages: $(echo $versions)"
    mkdir -p "$work/debs" "$work/pkg" "$work/base" "$CACHE/image-base"
    (cd "$work/debs" && apt-get download "${BASE_PACKAGES[@]}" 2>/dev/null) || fail "apt-get download ${BASE_PACKAGES[*]}"
    b=$work/base
    for p in libc6 libgcc-s1 netbase tzdata; do dpkg-deb -x "$work"/debs/"$p"_*.deb "$b"; done
    for p in ca-certificates base-files; do dpkg-deb -x "$work"/debs/"$p"_*.deb "$work/pkg"; done
    # What distroless keeps of these: the CA bundle (update-ca-certificates'
    # output, made here without running it) and os-release.
    mkdir -p "$b/etc/ssl/certs" "$b/usr/lib" "$b/tmp" "$b/home/nonroot"
    cat "$work"/pkg/usr/share/ca-certificates/mozilla/*.crt >"$b/etc/ssl/certs/ca-certificates.crt"
    cp "$work/pkg/usr/lib/os-release" "$b/usr/lib/os-release"
    ln -s ../usr/lib/os-release "$b/etc/os-release"
    rm -rf "$b/usr/share/doc" "$b/usr/share/lintian" "$b/usr/lib/x86_64-linux-gnu/gconv"
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
      'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$b/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$b/etc/group"
    printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' 'networks: files' >"$b/etc/nsswitch.conf"
    chmod 1777 "$b/tmp"
    chown 65532:65532 "$b/home/nonroot" && chmod 0700 "$b/home/nonroot"
    [ ! -e "$b/bin/sh" ] && [ ! -e "$b/usr/bin/sh" ] || fail "the base has a shell"
    tar -C "$b" --numeric-owner --sort=name --mtime=@0 -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  fi
  log "podman import $tarball -> $BASE"
  "${PODMAN[@]}" import --quiet "$tarball" "$BASE" >/dev/null || fail "podman import"
fi

# ---- the image ------------------------------------------------------------------
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/Cargo.toml" | head -n 1)
revision=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
source_url=$(git -C "$REPO" config --get remote.origin.url 2>/dev/null || echo "file://$REPO")
mkdir -p "$work/context"
cp "$BIN" "$work/context/flexsync"
log "podman build (BINARY=prebuilt, BASE_IMAGE=$BASE)"
# --no-cache: this buildah keeps a cached LABEL layer when only a build
# arg changed, so the labels would name an earlier revision.
"${PODMAN[@]}" build --quiet --isolation chroot --pull=never --no-cache -f "$REPO/Dockerfile" \
  --build-arg BINARY=prebuilt --build-arg BASE_IMAGE="$BASE" \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg SOURCE="$source_url" \
  -t "$IMAGE" "$work/context" >/dev/null || fail "podman build"
config=$("${PODMAN[@]}" image inspect "$IMAGE" --format '{{json .Config}}')
size=$("${PODMAN[@]}" image inspect "$IMAGE" --format '{{.Size}}')
log "image $IMAGE: $((size / 1024 / 1024)) MiB"
label() { printf '%s' "$config" | json_get "d['Labels'].get('org.opencontainers.image.$1', '')"; }
check "runs as 65532:65532" test "$(printf '%s' "$config" | json_get "d['User']")" = 65532:65532
check "entrypoint is the binary" test "$(printf '%s' "$config" | json_get "d['Entrypoint']")" = "['/usr/local/bin/flexsync']"
check "label version = $version" test "$(label version)" = "$version"
check "label revision = $revision" test "$(label revision)" = "$revision"
check "label source = $source_url" test "$(label source)" = "$source_url"
runs() { "${PODMAN[@]}" run --rm "${RUN_OPTS[@]}" --network none "$IMAGE" --version | grep -qx "flexsync $version"; }
check "it runs: flexsync --version in the image says $version" runs
no_shell() { ! "${PODMAN[@]}" run --rm "${RUN_OPTS[@]}" --network none --entrypoint /bin/sh "$IMAGE" -c true >/dev/null 2>&1; }
check "no shell in the image" no_shell

# ---- the pod, in a network namespace with a served sandbox ------------------------
ip netns add "$NS"
ip -n "$NS" link set lo up
NET=(ip netns exec "$NS")
FLEXSYNC=$BIN  # for sandbox_login
"${NET[@]}" "$BIN" sandbox serve --listen 127.0.0.1:8787 --admin-endpoints 2>"$work/sandbox.log" &
sandbox_pid=$!
API=http://127.0.0.1:8787/team-admin/v1
wait_for 10 "sandbox serving on 127.0.0.1:8787 (in netns $NS)" "${NET[@]}" curl -sf http://127.0.0.1:8787/_sandbox/clock

# The Deployment as rendered: its args, env, mounts and user.
rendered_pod >"$work/pod.json"
pod() { json_get "$1" <"$work/pod.json"; }
mapfile -t args < <(pod "'\n'.join(d['args'])")
uid=$(pod "d['securityContext'].get('runAsUser', d['podSecurityContext'].get('runAsUser'))")
gid=$(pod "d['securityContext'].get('runAsGroup', d['podSecurityContext'].get('runAsGroup'))")
fs_group=$(pod "d['podSecurityContext'].get('fsGroup', '')")
port=$(pod "d['port']")
SERVICE_URL=http://127.0.0.1:$port
# Volumes the kubelet would mount: the ConfigMap's files, the Secret's
# items (the sandbox's client secret), the PVC seeded with a login the way
# the seed-token init container does it.
mounts=()
while IFS=$'\t' read -r path kind ro; do
  dir=$work/volumes$path
  mkdir -p "$dir"
  case $kind in
    configMap)
      python3 - "$work/pod.json" "$dir" <<'EOF'
import json, sys
for name, text in json.load(open(sys.argv[1]))["configmap"].items():
    open(f"{sys.argv[2]}/{name}", "w").write(text)
EOF
      ;;
    secret) printf '%s' "$SANDBOX_CLIENT_SECRET" >"$dir/client-secret"
      chown "0:${fs_group:-0}" "$dir/client-secret" && chmod 0440 "$dir/client-secret" ;;
    persistentVolumeClaim)
      sandbox_login "$work/token.json" "$API"
      install -m 0600 -o "$uid" -g "$gid" "$work/token.json" "$dir/token.json"
      chown "$uid:${fs_group:-$gid}" "$dir" && chmod 2770 "$dir"
      STATE=$dir ;;
    *) fail "volume kind $kind at $path: not emulated here" ;;
  esac
  if [ "$ro" = True ]; then mounts+=(-v "$dir:$path:ro"); else mounts+=(-v "$dir:$path"); fi
done < <(pod "'\n'.join(m['path'] + '\t' + next(k for k in m['volume'] if k != 'name') + '\t' + str(m['readOnly']) for m in d['mounts'])")
envs=()
for e in $(pod "' '.join(d['env'])"); do
  case $e in
    FLEXSYNC_CLIENT_ID) envs+=(-e "FLEXSYNC_CLIENT_ID=$SANDBOX_CLIENT_ID") ;;
    *) fail "env $e: not emulated here" ;;
  esac
done
# The one addition to the pod: where the API is.
envs+=(-e "FLEXSYNC_API_URL=$API")

log "podman run $IMAGE ${args[*]}"
"${PODMAN[@]}" run -d --name "$NAME" "${RUN_OPTS[@]}" --network "ns:/run/netns/$NS" \
  --user "$uid:$gid" ${fs_group:+--group-add "$fs_group"} --read-only --cap-drop ALL \
  --security-opt no-new-privileges "${envs[@]}" "${mounts[@]}" "$IMAGE" "${args[@]}" >/dev/null ||
  fail "podman run"
probe_path() { pod "d['probes']['$1']"; }
live=$(probe_path liveness)
ready=$(probe_path readiness)
wait_for 30 "liveness probe $live answers 200" test "$(http_code "$live")" = 200
wait_for 30 "readiness probe $ready answers 200" test "$(http_code "$ready")" = 200
converged() {
  http /status | json_get "d['declaration']['loaded'] and all(t['state'] in ('applied', 'converged') for t in d['teams']) and len(d['teams']) > 0" | grep -qx True
}
wait_for 60 "a reconcile: every team applied or converged (/status)" converged
http "$ready" | json_get "d" | sed 's/^/  readyz: /'
check "readiness lists no problem" test "$(http "$ready" | json_get "d['problems']")" = "[]"
check "the sandbox now holds what the ConfigMap declares" sandbox_matches "$work/volumes/etc/flexsync/teams"
check "the audit log in the state volume records the writes" test -s "$STATE/audit.jsonl"
wc -l <"$STATE/audit.jsonl" | sed 's/^/  audit lines: /'
check "metrics: flexsync_declaration_loaded 1" sh -c "$(printf '%q ' "${NET[@]}") curl -s $SERVICE_URL/metrics | grep -qx 'flexsync_declaration_loaded 1'"
check "metrics: flexsync_login_valid 1" sh -c "$(printf '%q ' "${NET[@]}") curl -s $SERVICE_URL/metrics | grep -qx 'flexsync_login_valid 1'"

# deploy/kubernetes/README.md's re-login: a login made elsewhere, installed
# into the running pod with `kubectl exec -i … -- flexsync login --from-file -`.
token_path=$(printf '%s\n' "${args[@]}" | sed -n 's/^--token-file=//p')
[ -n "$token_path" ] || fail "the pod's args name no --token-file"
sandbox_login "$work/fresh-token.json" "$API"
relogin() {
  "${PODMAN[@]}" exec -i "$NAME" flexsync login --from-file - --token-file "$token_path" \
    <"$work/fresh-token.json" >/dev/null
}
check "kubectl exec -i … -- flexsync login --from-file - (as podman exec): installed" relogin
installed() {
  [ "$(json_get "d['refreshToken']" <"$work/fresh-token.json")" = \
    "$(json_get "d['refreshToken']" <"$STATE/token.json")" ] &&
    [ "$(stat -c %u "$STATE/token.json")" = "$uid" ]
}
check "the pod's token file holds the new login, still owned by the pod's user" installed
check "metrics: flexsync_login_valid 1 after the re-login" sh -c "$(printf '%q ' "${NET[@]}") curl -s $SERVICE_URL/metrics | grep -qx 'flexsync_login_valid 1'"

log "podman stop (SIGTERM)"
t=$(date +%s)
"${PODMAN[@]}" stop -t 30 "$NAME" >/dev/null
stop_secs=$(($(date +%s) - t))
code=$("${PODMAN[@]}" inspect "$NAME" --format '{{.State.ExitCode}}')
check "exit code 0 after SIGTERM, within ${stop_secs}s (the pod allows 30)" test "$code" = 0 -a "$stop_secs" -lt 30
check "it logged its stop" sh -c "$(printf '%q ' "${PODMAN[@]}") logs $NAME 2>&1 | grep -q '\"message\":\"stopped\"'"
log "image test passed"
