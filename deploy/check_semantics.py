#!/usr/bin/env python3
"""What the deployment files mean, checked against the binary (deploy/check.sh).

  check_semantics.py unit FLEXSYNC_BIN UNIT_FILE SECURITY_JSON
  check_semantics.py pod FLEXSYNC_BIN RENDERED.yaml BASE_CONFIGMAP.yaml

Both run `flexsync run --check` with the deployment's own arguments in a
scratch tree laid out the way systemd or the kubelet would lay it out (the
directories the service may write owned by its user, everything else
root-owned), as the service's user, so a misspelled flag, a path no volume
or StateDirectory provides, or an unknown product alias fails here. Then the
ports, probes and timeouts are held to what that run prints. Needs PyYAML;
run as root (it switches to the service's UID with setpriv).
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

OK = True


def check(cond, msg):
    global OK
    print(("  ok:   " if cond else "  FAIL: ") + msg, file=sys.stdout if cond else sys.stderr)
    OK &= bool(cond)
    return bool(cond)


def flexsync_check(binary, root, argv, env, uid, gid, groups=()):
    """Runs `flexsync run --check` with every absolute path under `root`.

    Returns the printed `what: value` lines as a dict, or None on failure."""
    args = []
    for a in argv:
        flag, eq, value = a.partition("=")
        if eq and flag.startswith("--") and value.startswith("/"):
            a = f"{flag}={root}{value}"
        elif a.startswith("/"):
            a = root + a
        args.append(a)
    # The binary must be reachable by the service's UID.
    exe = os.path.join(root, ".flexsync-check-bin")
    shutil.copy(binary, exe)
    os.chmod(exe, 0o755)
    cmd = [exe] + args + ["--check"]
    if os.geteuid() == 0:
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}",
               f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"] + cmd
    else:
        print(f"  note: not root, so `run --check` runs as UID {os.geteuid()}, not {uid}: "
              "permissions are checked for the wrong user", file=sys.stderr)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **env}
    p = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
    shown = " ".join(shlex.quote(a) for a in argv)
    if not check(p.returncode == 0, f"`flexsync {shown} --check` accepts the flags, paths and declaration"):
        print(re.sub(r"^", "        ", p.stderr.strip(), flags=re.M), file=sys.stderr)
        return None
    out = {}
    for line in p.stdout.splitlines():
        key, _, value = line.partition(": ")
        out[key] = value
    return out


def listen_addrs(out):
    """[(host, port)] from the `listen:` line."""
    addrs = []
    for a in out.get("listen", "").split():
        host, _, port = a.rpartition(":")
        addrs.append((host.strip("[]"), int(port)))
    return addrs


def mkdir(path, mode=0o755, uid=0, gid=0):
    os.makedirs(path, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def put(path, text, mode=0o644, uid=0, gid=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def seconds(value):
    """A systemd time span ("30s", "2min", "1min 30s", "90") in seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}
    value = value.strip()
    if value in ("", "infinity"):
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", value):
        if unit not in units:
            return None
        total += float(num) * units[unit]
    return total


# ---- systemd ------------------------------------------------------------------

# ✗ lines of `systemd-analyze security` the unit accepts, each for a reason.
# Any other one fails: a lost hardening directive shows up here even when
# the overall exposure stays under the threshold.
SECURITY_ACCEPTED = {
    "RootDirectoryOrRootImage": "the binary runs from the host's /usr/local/bin",
    "RestrictAddressFamilies_AF_UNIX": "sd_notify and the journal are AF_UNIX sockets",
    "RestrictAddressFamilies_AF_INET_INET6": "HTTPS to Autodesk and the listener",
    "PrivateNetwork": "it must reach Autodesk",
    "DeviceAllow": "DevicePolicy=closed still leaves /dev/rtc readable; nothing to do",
    "IPAddressDeny": "Autodesk's API sits behind a CDN whose addresses change",
}
# systemd-created directories, by directive: where they live.
SYSTEMD_DIRS = {"StateDirectory": "/var/lib", "CacheDirectory": "/var/cache",
                "LogsDirectory": "/var/log", "RuntimeDirectory": "/run"}
# What the unit's EnvironmentFile= holds, per deploy/systemd/README.md.
ENV_FILE = {"/etc/flexsync/env": {"FLEXSYNC_CLIENT_ID": "check"}}


def parse_unit(path):
    """{section: {key: [values]}}, continuation lines joined."""
    text = open(path, encoding="utf-8").read().replace("\\\n", " ")
    unit, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = unit.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def unit(binary, unit_file, security_json):
    name = os.path.basename(unit_file)
    svc = parse_unit(unit_file).get("Service", {})
    last = lambda k, default="": (svc.get(k) or [default])[-1]

    print("== deploy: systemd unit, what it means")
    check(last("Type") == "notify", "Type=notify: flexsync sends READY=1 once serving (src/daemon/systemd.rs)")
    check(last("NotifyAccess", "main") in ("main", "exec", "all"), "NotifyAccess lets the main process notify")
    wd = seconds(last("WatchdogSec"))
    check(wd is not None and wd >= 10,
          "WatchdogSec is set (flexsync pings every WatchdogSec/2 from its controller loop)")
    check(last("Restart") in ("on-failure", "on-abnormal", "on-watchdog", "always"),
          "Restart= restarts after a watchdog kill")
    check(any(re.search(r"kill\s+(-HUP|-s\s*HUP|-SIGHUP|-1)\s+\"?\$\{?MAINPID", v) for v in svc.get("ExecReload", [])),
          "ExecReload sends SIGHUP to $MAINPID (flexsync re-reads on SIGHUP)")
    check(last("KillSignal", "SIGTERM") in ("SIGTERM", "SIGINT", "15", "2"), "KillSignal is SIGTERM or SIGINT")

    security = json.load(open(security_json, encoding="utf-8"))
    failed = {x["json_field"]: x["description"] for x in security if not x["set"]}
    for field, why in sorted(failed.items()):
        check(field in SECURITY_ACCEPTED, f"systemd-analyze security: {field} ({why})"
              + (f" accepted: {SECURITY_ACCEPTED[field]}" if field in SECURITY_ACCEPTED else " is new: restore its directive"))

    # The service's view: what systemd creates for it, nothing else writable.
    uid = gid = 65532  # stands for the DynamicUser
    root = tempfile.mkdtemp(prefix="flexsync-unit-")
    os.chmod(root, 0o755)
    try:
        env = {}
        for directive, base in SYSTEMD_DIRS.items():
            for d in " ".join(svc.get(directive, [])).split():
                if last("DynamicUser") == "yes" and directive != "RuntimeDirectory":
                    # 0700 on the host; the service's namespace lets it through.
                    mkdir(f"{root}{base}/private")
                    mkdir(f"{root}{base}/private/{d}", 0o700, uid, gid)
                    os.symlink(f"private/{d}", f"{root}{base}/{d}")
                else:
                    mkdir(f"{root}{base}/{d}", 0o755, uid, gid)
                env[directive.upper().replace("DIRECTORY", "_DIRECTORY")] = f"{base}/{d}"
        for d in " ".join(svc.get("ConfigurationDirectory", [])).split():
            mkdir(f"{root}/etc/{d}")
        creds = f"/run/credentials/{name}"
        for spec in svc.get("LoadCredential", []) + svc.get("SetCredential", []):
            cred = spec.split(":", 1)[0]
            put(f"{root}{creds}/{cred}", "check-secret-0123456789abcdef", 0o400, uid, gid)
        env["CREDENTIALS_DIRECTORY"] = creds
        for spec in svc.get("EnvironmentFile", []):
            env.update(ENV_FILE.get(spec.lstrip("-"), {}))
        for spec in svc.get("Environment", []):
            for kv in shlex.split(spec):
                k, _, v = kv.partition("=")
                env[k] = v
        # The declarations: one valid team, where the unit reads them.
        exec_start = last("ExecStart")
        argv = shlex.split(exec_start)
        expand = lambda a: re.sub(r"\$\{(\w+)\}|\$(\w+)",
                                  lambda m: env.get(m.group(1) or m.group(2), m.group(0)), a)
        argv = [expand(a) for a in argv]
        exe = argv[0].lstrip("-@:+!")
        check(os.path.basename(exe) == "flexsync" and argv[1:2] == ["run"], f"ExecStart runs flexsync run ({exe})")
        for a in argv[2:]:
            if a.startswith("-"):
                break
            if a.startswith("/"):
                put(f"{root}{a}/team.yaml", open("examples/platform-services.yaml", encoding="utf-8").read())
        out = flexsync_check(binary, root, argv[1:], {k: v for k, v in env.items() if k.startswith("FLEXSYNC_")}, uid, gid)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if out is None:
        return
    addrs = listen_addrs(out)
    check(addrs and all(h in ("127.0.0.1", "::1") for h, _ in addrs),
          f"--listen is loopback only ({out.get('listen')}), as deploy/systemd/README.md says")
    grace = int(out.get("shutdown grace", "0s").rstrip("s"))
    stop = seconds(last("TimeoutStopSec", "90s"))
    check(stop is None or stop > grace,
          f"TimeoutStopSec ({last('TimeoutStopSec', '90s')}) leaves flexsync its {grace}s to finish a write")


# ---- Kubernetes ------------------------------------------------------------------

RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                 "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}


def pod_security_restricted(pod):
    """Violations of the Pod Security Standard "restricted" (baseline included),
    as the admission controller of Kubernetes 1.29+ evaluates them."""
    v = []
    psc = pod.get("securityContext") or {}
    containers = [(k, c) for k in ("initContainers", "containers", "ephemeralContainers")
                  for c in pod.get(k) or []]
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            v.append(f"{key}: true")
    for vol in pod.get("volumes") or []:
        kind = next((k for k in vol if k != "name"), None)
        if kind not in RESTRICTED_VOLUMES:
            v.append(f"volume {vol['name']}: type {kind} is not allowed")
    for s in (psc.get("sysctls") or []):
        if s.get("name") not in SAFE_SYSCTLS:
            v.append(f"sysctl {s.get('name')} is not safe")

    def host_process(sc):
        return (sc.get("windowsOptions") or {}).get("hostProcess")
    if host_process(psc):
        v.append("pod: hostProcess")
    non_root_everywhere = True
    seccomp_everywhere = True
    for kind, c in containers:
        sc = c.get("securityContext") or {}
        where = f"{kind[:-1]} {c['name']}"
        if host_process(sc):
            v.append(f"{where}: hostProcess")
        if sc.get("privileged"):
            v.append(f"{where}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            v.append(f"{where}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            v.append(f"{where}: capabilities must drop ALL")
        for cap in caps.get("add") or []:
            if cap != "NET_BIND_SERVICE":
                v.append(f"{where}: adds capability {cap}")
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                v.append(f"{where}: hostPort {p['hostPort']}")
        if sc.get("procMount", "Default") != "Default":
            v.append(f"{where}: procMount {sc['procMount']}")
        for ctx in (psc, sc):
            se = ctx.get("seLinuxOptions") or {}
            if se.get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t") \
                    or se.get("user") or se.get("role"):
                v.append(f"{where}: seLinuxOptions {se}")
            aa = (ctx.get("appArmorProfile") or {}).get("type")
            if aa not in (None, "RuntimeDefault", "Localhost"):
                v.append(f"{where}: appArmorProfile {aa}")
        if sc.get("runAsNonRoot") is False:
            v.append(f"{where}: runAsNonRoot: false")
        if sc.get("runAsNonRoot") is not True:
            non_root_everywhere = False
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            v.append(f"{where}: runAsUser 0")
        sp = (sc.get("seccompProfile") or {}).get("type")
        if sp == "Unconfined":
            v.append(f"{where}: seccompProfile Unconfined")
        if sp not in ("RuntimeDefault", "Localhost"):
            seccomp_everywhere = False
    if psc.get("runAsNonRoot") is not True and not non_root_everywhere:
        v.append("runAsNonRoot must be true for the pod (or every container)")
    if psc.get("runAsUser") == 0:
        v.append("pod: runAsUser 0")
    if (psc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost") and not seccomp_everywhere:
        v.append("seccompProfile must be RuntimeDefault or Localhost for the pod (or every container)")
    return v


def named_port(container, port):
    """A probe's or Service's port (number or name) as a container port number."""
    for p in container.get("ports") or []:
        if port in (p.get("name"), p.get("containerPort")):
            return p["containerPort"]
    return None


def env_of(container, docs):
    """The container's environment: literal values, and a stand-in for values from Secrets."""
    env = {}
    for ref in container.get("envFrom") or []:
        cm = (ref.get("configMapRef") or {}).get("name")
        for d in docs:
            if d["kind"] == "ConfigMap" and d["metadata"]["name"] == cm:
                env.update({k: str(x) for k, x in (d.get("data") or {}).items()})
    for e in container.get("env") or []:
        env[e["name"]] = str(e["value"]) if "value" in e else "check-0123456789abcdef"
    return env


def pod(binary, rendered, base_configmap):
    docs = [d for d in yaml.safe_load_all(open(rendered, encoding="utf-8")) if d]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    spec = dep["spec"]["template"]["spec"]
    psc = spec.get("securityContext") or {}
    c = next(c for c in spec["containers"] if c["name"] == "flexsync")

    version = re.search(r'^version = "([^"]+)"', open("Cargo.toml", encoding="utf-8").read(), re.M)[1]
    image = c["image"]
    check("/" in image and (image.endswith(f":{version}") or "@sha256:" in image),
          f"the image {image} is a published name at this version ({version}) or a digest")
    dockerfile = open("Dockerfile", encoding="utf-8").read()
    user = re.findall(r"^USER\s+(\d+)", dockerfile, re.M)
    check(user and int(user[-1]) == (c.get("securityContext") or {}).get("runAsUser", (spec.get("securityContext") or {}).get("runAsUser")),
          f"the image's USER ({user[-1] if user else 'unset'}) is the pod's runAsUser")
    exposed = {int(p) for p in re.findall(r"^EXPOSE\s+(\d+)", dockerfile, re.M)}
    check(exposed == {p["containerPort"] for p in c.get("ports") or []},
          f"the image EXPOSEs the containerPort ({sorted(exposed)})")

    violations = pod_security_restricted(spec)
    check(not violations, "Pod Security Standard \"restricted\" holds"
          + "".join(f"\n        {x}" for x in violations))
    sc = c.get("securityContext") or {}
    check(sc.get("readOnlyRootFilesystem") is True, "flexsync's root filesystem is read-only")

    # The pod's filesystem as the kubelet lays it out, with a git-sync
    # sidecar's checkout where it would put it.
    uid = sc.get("runAsUser", psc.get("runAsUser", 65532))
    gid = sc.get("runAsGroup", psc.get("runAsGroup", uid))
    fs_group = psc.get("fsGroup")
    groups = [fs_group] if fs_group is not None else []
    declarations = yaml.safe_load(open(base_configmap, encoding="utf-8"))["data"]
    tmp = tempfile.mkdtemp(prefix="flexsync-pod-")
    os.chmod(tmp, 0o755)
    root = f"{tmp}/root"
    mkdir(root)
    try:
        vols = {}
        for vol in spec.get("volumes") or []:
            d = f"{tmp}/volumes/{vol['name']}"
            g = fs_group or 0
            if "configMap" in vol:
                mkdir(d, 0o755, 0, g)
                name = vol["configMap"]["name"]
                cm = next((x for x in docs if x["kind"] == "ConfigMap" and x["metadata"]["name"] == name), None)
                if not check(cm is not None or vol["configMap"].get("optional"), f"volume {vol['name']}: ConfigMap {name} exists"):
                    continue
                for k, text in ((cm or {}).get("data") or {}).items():
                    put(f"{d}/{k}", text, vol["configMap"].get("defaultMode", 0o644), 0, g)
            elif "secret" in vol:
                mkdir(d, 0o755, 0, g)
                for item in vol["secret"].get("items") or []:
                    put(f"{d}/{item['path']}", "check-secret-0123456789abcdef",
                        item.get("mode", vol["secret"].get("defaultMode", 0o644)), 0, g)
            elif "persistentVolumeClaim" in vol:
                # fsGroup: group-owned, group-writable, setgid.
                mkdir(d, 0o2770 if fs_group is not None else 0o755, 0, g)
            elif "emptyDir" in vol:
                mkdir(d, 0o1777)
            else:
                mkdir(d)
            vols[vol["name"]] = d
        for side in spec.get("initContainers") or []:
            if "git-sync" not in side.get("image", ""):
                continue
            env = env_of(side, docs)
            gs_root, link = env.get("GITSYNC_ROOT", "/tmp/git"), env.get("GITSYNC_LINK", "")
            mount = max((m for m in side.get("volumeMounts") or []
                         if (gs_root + "/").startswith(m["mountPath"].rstrip("/") + "/")),
                        key=lambda m: len(m["mountPath"]), default=None)
            if check(mount is not None and link, f"git-sync writes {gs_root}/{link} into a volume"):
                rel = os.path.relpath(gs_root, mount["mountPath"])
                where = os.path.normpath(f"{vols[mount['name']]}/{rel}")
                for k, text in declarations.items():
                    put(f"{where}/.worktrees/check/{k}", text)
                os.symlink(".worktrees/check", f"{where}/{link}")
            bind = env.get("GITSYNC_HTTP_BIND", "")
            probe = (side.get("startupProbe") or {}).get("httpGet")
            if bind and probe:
                check(named_port(side, probe["port"]) == int(bind.rsplit(":", 1)[1]),
                      f"git-sync's startupProbe port is GITSYNC_HTTP_BIND ({bind})")
        for m in c.get("volumeMounts") or []:
            src = vols.get(m["name"])
            if not check(src is not None, f"mount {m['mountPath']}: volume {m['name']} exists"):
                continue
            target = f"{root}{m['mountPath']}"
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(src, target)
            if m.get("readOnly"):
                for dirpath, _, files in os.walk(src):
                    for p in [dirpath] + [os.path.join(dirpath, f) for f in files]:
                        if not os.path.islink(p):
                            os.chmod(p, os.stat(p).st_mode & ~0o222)
        env = {k: v for k, v in env_of(c, docs).items() if k.startswith("FLEXSYNC_")}
        args = list(c.get("command") or [])[1:] + list(c.get("args") or [])
        out = flexsync_check(binary, root, args, env, uid, gid, groups)
    finally:
        subprocess.run(["chmod", "-R", "u+w", tmp])
        shutil.rmtree(tmp, ignore_errors=True)
    if out is None:
        return

    endpoints = out.get("endpoints", "").split()
    addrs = listen_addrs(out)
    check(addrs and all(h in ("0.0.0.0", "::") for h, _ in addrs),
          f"--listen ({out.get('listen')}) takes connections on the pod's IP, where probes and the Service come")
    ports = {p for _, p in addrs}
    container_ports = {p["containerPort"] for p in c.get("ports") or []}
    check(ports and ports <= container_ports, f"the port flexsync listens on ({sorted(ports)}) is a containerPort ({sorted(container_ports)})")
    for kind, want in (("livenessProbe", endpoints[0:1]), ("readinessProbe", endpoints[1:2])):
        get = (c.get(kind) or {}).get("httpGet") or {}
        check(get.get("path") in want and get.get("path"), f"{kind} asks {get.get('path')} (flexsync serves it as {want})")
        check(named_port(c, get.get("port")) in ports, f"{kind} port {get.get('port')} is where flexsync listens")
    grace = int(out.get("shutdown grace", "0s").rstrip("s"))
    check(spec.get("terminationGracePeriodSeconds", 30) > grace,
          f"terminationGracePeriodSeconds leaves flexsync its {grace}s to finish a write")
    for svc in (d for d in docs if d["kind"] == "Service"):
        for p in svc["spec"].get("ports") or []:
            check(named_port(c, p.get("targetPort", p.get("port"))) in ports,
                  f"Service {svc['metadata']['name']} port {p.get('name')} targets flexsync's port")
        ann = svc["metadata"].get("annotations") or {}
        if ann.get("prometheus.io/scrape") == "true":
            check(int(ann.get("prometheus.io/port", 0)) in ports, "prometheus.io/port is flexsync's port")
            check(ann.get("prometheus.io/path", "/metrics") in endpoints, f"prometheus.io/path {ann.get('prometheus.io/path')} is served")


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("unit", "pod"):
        sys.exit(__doc__)
    {"unit": unit, "pod": pod}[sys.argv[1]](*sys.argv[2:])
    sys.exit(0 if OK else 1)


if __name__ == "__main__":
    main()
