#!/usr/bin/env python3
"""Does deploy/check.sh catch realistic mistakes? Mutation test of the deployment files.

Each mutation changes one line of a copy of the repository's deployment
files (a misspelled flag, a dropped directive, a wrong path or port…) and
runs deploy/check.sh on that copy; the check must fail. The unchanged copy
must pass first. Prints what was caught by which check, and what was
missed; exits 1 when fewer than --min (default: all) were caught.

  python3 deploy/mutate.py [--min N] [--jobs N] [--only SUBSTRING]
  FLEXSYNC_BIN=path   the binary check.sh holds the files to (default: built)
Run as root, like check.sh.
"""

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What check.sh reads.
TREE = ["deploy", ".ci", "Dockerfile", "Cargo.toml", "examples", "schemas"]

UNIT = "deploy/systemd/flexsync.service"
DEPLOYMENT = "deploy/kubernetes/base/deployment.yaml"
GIT_SYNC = "deploy/kubernetes/git-sync/deployment-patch.yaml"

# (name, file, line as it is, line as mutated or None to delete it, which
# occurrence when the line appears more than once).
MUTATIONS = [
    ("unit: misspelled flag --audit-logg", UNIT,
     "    --audit-log /var/lib/flexsync/audit.jsonl \\", "    --audit-logg /var/lib/flexsync/audit.jsonl \\", 0),
    ("unit: misspelled flag --intervall", UNIT, "    --interval 10m \\", "    --intervall 10m \\", 0),
    ("unit: Type=simple", UNIT, "Type=notify", "Type=simple", 0),
    ("unit: no WatchdogSec", UNIT, "WatchdogSec=60s", None, 0),
    ("unit: no StateDirectory", UNIT, "StateDirectory=flexsync", None, 0),
    ("unit: PrivateUsers dropped", UNIT, "PrivateUsers=yes", None, 0),
    ("unit: ExecReload sends SIGTERM", UNIT, "ExecReload=/bin/sh -c 'kill -HUP \"$MAINPID\"'",
     "ExecReload=/bin/sh -c 'kill -TERM \"$MAINPID\"'", 0),
    ("unit: TimeoutStopSec shorter than flexsync's grace", UNIT, "TimeoutStopSec=30s", "TimeoutStopSec=10s", 0),
    ("unit: credential name differs from ExecStart's", UNIT,
     "LoadCredential=client-secret:/etc/flexsync/client-secret", "LoadCredential=secret:/etc/flexsync/client-secret", 0),
    ("unit: listens on every interface", UNIT, "    --listen 127.0.0.1:9464 \\", "    --listen 0.0.0.0:9464 \\", 0),
    ("pod: liveness probe path /health", DEPLOYMENT,
     "            httpGet: { path: /healthz, port: metrics }", "            httpGet: { path: /health, port: metrics }", 0),
    ("pod: --listen=127.0.0.1", DEPLOYMENT, "            - --listen=0.0.0.0:9464", "            - --listen=127.0.0.1:9464", 0),
    ("pod: runAsNonRoot: false", DEPLOYMENT, "        runAsNonRoot: true", "        runAsNonRoot: false", 0),
    ("pod: misspelled flag --token-fil", DEPLOYMENT,
     "            - --token-file=/var/lib/flexsync/token.json", "            - --token-fil=/var/lib/flexsync/token.json", 0),
    ("pod: containerPort 9465", DEPLOYMENT,
     "            - { name: metrics, containerPort: 9464, protocol: TCP }",
     "            - { name: metrics, containerPort: 9465, protocol: TCP }", 0),
    ("pod: flexsync may escalate privileges", DEPLOYMENT,
     "            allowPrivilegeEscalation: false", "            allowPrivilegeEscalation: true", 1),
    ("pod: writable root filesystem", DEPLOYMENT,
     "            readOnlyRootFilesystem: true", "            readOnlyRootFilesystem: false", 1),
    ("pod: termination grace shorter than flexsync's", DEPLOYMENT,
     "      terminationGracePeriodSeconds: 30    # SIGTERM: graceful stop after the current write",
     "      terminationGracePeriodSeconds: 10", 0),
    ("pod: token store mounted read-only", DEPLOYMENT,
     "            - { name: state, mountPath: /var/lib/flexsync }",
     "            - { name: state, mountPath: /var/lib/flexsync, readOnly: true }", 1),
    ("service: targetPort names no container port", "deploy/kubernetes/base/service.yaml",
     "      targetPort: metrics", "      targetPort: http", 0),
    ("kustomize: image tag behind Cargo.toml's version", "deploy/kubernetes/base/kustomization.yaml",
     '    newTag: "0.1.0"', '    newTag: "0.0.9"', 0),
    ("git-sync: flexsync reads a path git-sync never writes", GIT_SYNC,
     "- { op: replace, path: /spec/template/spec/containers/0/args/1, value: /git/current }",
     "- { op: replace, path: /spec/template/spec/containers/0/args/1, value: /git/latest }", 0),
    ("ConfigMap: unknown product alias", "deploy/kubernetes/base/configmap.yaml",
     "      - { email: erin@example.com, products: [platform-services] }",
     "      - { email: erin@example.com, products: [platform-service] }", 0),
    ("CI: broken YAML indentation (GitHub)", "deploy/ci/github-actions.yml",
     "      - name: Comment on the pull request", "     - name: Comment on the pull request", 0),
    ("CI: unknown permission value (release)", "deploy/ci/release.yml",
     "      contents: write      # create the release", "      contents: writable", 0),
    ("CI: unterminated quote in a script (GitLab)", "deploy/ci/gitlab-ci.yml",
     '        ./flexsync validate "$DECLARATIONS"', '        ./flexsync validate "$DECLARATIONS', 0),
    ("image: runs as root", "Dockerfile", "USER 65532:65532", "USER 0:0", 0),
]


def copy_tree(dest):
    for item in TREE:
        src = os.path.join(REPO, item)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, item), ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, os.path.join(dest, item))


def mutate(root, path, old, new, nth):
    full = os.path.join(root, path)
    lines = open(full, encoding="utf-8").read().split("\n")
    hits = [i for i, line in enumerate(lines) if line == old]
    if len(hits) <= nth:
        raise SystemExit(f"mutation target not found in {path} (occurrence {nth}): {old!r}")
    i = hits[nth]
    if new is None:
        del lines[i]
    else:
        lines[i] = new
    with open(full, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def run_check(root, env):
    t = time.monotonic()
    p = subprocess.run(["bash", os.path.join(root, "deploy/check.sh")], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout, time.monotonic() - t


def first_failure(output):
    """The first failed check, with flexsync's own reason when it was `run --check`."""
    lines = [line.strip() for line in output.splitlines()]
    for i, s in enumerate(lines):
        if s.startswith("FAIL") or "error" in s.lower() or s.startswith("×"):
            why = s if len(s) < 110 else s[:107] + "..."
            if "--check` accepts" in s:
                reason = next((x for x in lines[i + 1:i + 8] if x.startswith(("error:", "×"))), "")
                why = "flexsync run --check: " + reason.lstrip("× ")[:110]
            return why
    return lines[-1][:110] if lines else "(no output)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min", type=int, default=len(MUTATIONS), help="mutations that must be caught")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    chosen = [m for m in MUTATIONS if a.only in m[0]]

    env = dict(os.environ)
    if not env.get("FLEXSYNC_BIN"):
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=REPO, check=True)
        target = env.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
        env["FLEXSYNC_BIN"] = os.path.join(REPO, target, "release", "flexsync")
    env["FLEXSYNC_BIN"] = os.path.abspath(env["FLEXSYNC_BIN"])

    work = tempfile.mkdtemp(prefix="flexsync-mutate-")
    try:
        base = os.path.join(work, "unchanged")
        copy_tree(base)
        # The first run installs the linters; the others reuse them.
        code, out, secs = run_check(base, env)
        if code != 0:
            print(out, file=sys.stderr)
            sys.exit("deploy/check.sh fails on the unchanged files: fix that first")
        print(f"unchanged files pass ({secs:.0f}s); {len(chosen)} mutation(s), {a.jobs} at a time")
        env["FLEXSYNC_CHECK_TOOLS"] = "installed"

        def one(i):
            name, path, old, new, nth = chosen[i]
            root = os.path.join(work, f"m{i}")
            copy_tree(root)
            mutate(root, path, old, new, nth)
            code, out, secs = run_check(root, env)
            shutil.rmtree(root, ignore_errors=True)
            return name, code != 0, first_failure(out) if code else "", secs

        with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
            results = list(pool.map(one, range(len(chosen))))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    caught = [r for r in results if r[1]]
    for name, hit, why, secs in results:
        print(f"{'caught' if hit else 'MISSED'}  {name}  ({secs:.0f}s)")
        if hit:
            print(f"        by: {why}")
    print(f"mutations caught: {len(caught)}/{len(results)}")
    missed = [r[0] for r in results if not r[1]]
    if missed:
        print("missed: " + "; ".join(missed))
    if len(caught) < min(a.min, len(results)):
        sys.exit(f"FAIL: deploy/check.sh caught {len(caught)} of {len(results)} mutations; at least {a.min} must be caught")


if __name__ == "__main__":
    main()
