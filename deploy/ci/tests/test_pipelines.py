"""The shipped pipelines' own shell, run end to end: the flexsync binary
"released" by the stand-in server and pinned by its SHA-256, the snapshot
behind a bearer token, the comment written to the stand-in forge.

GitHub's steps run one by one as Actions would (bash -e, GITHUB_OUTPUT),
with their `if:`s decided here; GitLab's script runs as one bash script.
Needs PyYAML and a flexsync binary: FLEXSYNC_BIN names it (.ci/run sets it,
and then neither may be missing); without FLEXSYNC_BIN these tests skip.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
import unittest

from standin import GITLAB_TOKENS, PROJECT, REPO, Server

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
BIN = os.environ.get("FLEXSYNC_BIN")
VERSION = "0.1.0"
ASSET = f"/files/releases/v{VERSION}/flexsync-{VERSION}-x86_64-linux-gnu"
MARKER = "<!-- flexsync-plan -->"

try:
    import yaml
except ImportError:
    yaml = None


def required():
    if not BIN:
        raise unittest.SkipTest("FLEXSYNC_BIN is not set")
    if yaml is None:
        raise RuntimeError("PyYAML is missing (pip install pyyaml)")
    if not os.access(BIN, os.X_OK):
        raise RuntimeError(f"FLEXSYNC_BIN={BIN} is not an executable")


def load(name):
    with open(os.path.join(ROOT, "deploy", "ci", name), encoding="utf-8") as f:
        return yaml.safe_load(f)


class Pipeline(unittest.TestCase):
    def setUp(self):
        required()
        self.server = Server().__enter__()
        self.addCleanup(self.server.__exit__)
        self.forge = self.server.forge
        with open(BIN, "rb") as f:
            binary = f.read()
        self.sha = hashlib.sha256(binary).hexdigest()
        self.forge.files[ASSET] = {"body": binary}
        with open(os.path.join(ROOT, "examples", "snapshot.json"), "rb") as f:
            self.forge.files["/files/snapshot"] = {"body": f.read(), "bearer": "snap-token"}
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.work = os.path.join(tmp.name, "repo")
        self.temp = os.path.join(tmp.name, "runner-temp")
        os.makedirs(os.path.join(self.work, "teams"))
        os.makedirs(self.temp)
        shutil.copytree(os.path.join(ROOT, "deploy", "ci"), os.path.join(self.work, "ci", "flexsync"),
                        ignore=shutil.ignore_patterns("tests", "*.yml", "*.md"))

    def declare(self, example):
        for name in os.listdir(os.path.join(self.work, "teams")):
            os.unlink(os.path.join(self.work, "teams", name))
        shutil.copy(os.path.join(ROOT, example), os.path.join(self.work, "teams"))

    def base_env(self):
        keep = ("PATH", "HOME", "LANG", "TMPDIR")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.update(FLEXSYNC_CI_RETRY_DELAY="0", NO_COLOR="1")
        return env

    def bash(self, script, env):
        p = subprocess.run(["bash", "-e", "-c", script], cwd=self.work, env=env,
                           capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout + p.stderr


class GitHub(Pipeline):
    def run_workflow(self, snapshot_token="snap-token"):
        """Runs the job's steps; returns (step outcomes, the job's result)."""
        job = load("github-actions.yml")["jobs"]["plan"]
        env = self.base_env()
        env.update({k: str(v) for k, v in job["env"].items()})
        env.update(FLEXSYNC_SHA256=self.sha, FLEXSYNC_RELEASE_URL=self.server.url + "/files/releases",
                   RUNNER_TEMP=self.temp, GITHUB_REPOSITORY=REPO, GITHUB_API_URL=self.server.url,
                   GITHUB_RUN_ID="1", GITHUB_SERVER_URL="https://github.example")
        self.assertEqual(env["FLEXSYNC_VERSION"], VERSION)
        secrets = {"vars.FLEXSYNC_SNAPSHOT_URL": self.server.url + "/files/snapshot",
                   "secrets.FLEXSYNC_SNAPSHOT_TOKEN": snapshot_token, "github.token": "gh-token",
                   "github.event.pull_request.number": "7", "secrets.FLEXSYNC_CLIENT_ID": "",
                   "secrets.FLEXSYNC_CLIENT_SECRET": "", "secrets.FLEXSYNC_ACCESS_TOKEN": ""}
        outcomes, outputs, logs, job_ok = {}, {}, {}, True
        for step in job["steps"]:
            if "run" not in step:
                continue
            name, cond = step["name"], step.get("if", "${{ success() }}")
            if cond == "${{ !cancelled() }}":
                go = True
            elif cond == "${{ success() }}":
                go = job_ok
            elif cond == "${{ steps.plan.outputs.exitcode == '3' }}":
                go = job_ok and outputs.get("exitcode") == "3"
            else:
                self.fail(f"step {name!r}: this test cannot decide if: {cond}")
            if not go:
                outcomes[name] = "skipped"
                continue
            step_env = dict(env)
            for k, v in (step.get("env") or {}).items():
                v = str(v)
                for expr, value in secrets.items():
                    v = v.replace("${{ " + expr + " }}", value)
                v = v.replace("${{ steps.plan.outcome }}", outcomes.get("Plan", "skipped"))
                self.assertNotIn("${{", v, f"step {name!r}: env {k}")
                step_env[k] = v
            out_file = os.path.join(self.temp, "output")
            open(out_file, "w").close()
            step_env["GITHUB_OUTPUT"] = out_file
            code, logs[name] = self.bash(step["run"], step_env)
            outcomes[name] = "success" if code == 0 else "failure"
            job_ok = job_ok and code == 0
            if step.get("id") == "plan":
                with open(out_file) as f:
                    outputs = dict(line.strip().split("=", 1) for line in f if "=" in line)
        self.logs = logs
        return outcomes, job_ok

    def comment(self):
        [c] = self.forge.github[7]
        self.assertEqual(c["user"]["login"], "github-actions[bot]")
        return c["body"]

    def test_changes_comment_and_pass(self):
        self.declare("examples/platform-services.yaml")
        outcomes, ok = self.run_workflow()
        self.assertTrue(ok, (outcomes, self.logs))
        self.assertEqual(outcomes["Fail on blockers"], "skipped")
        body = self.comment()
        self.assertTrue(body.startswith(MARKER + "\n### flexsync plan: 1 invite"), body)
        # The snapshot is asked for the teams the pull request declares.
        asked = [path for _, path, _ in self.forge.log if path.startswith("/files/snapshot")]
        self.assertEqual(asked, ["/files/snapshot?teams=100001"])

    def test_blockers_comment_then_fail(self):
        self.declare("tests/fixtures/blocked.yaml")
        outcomes, ok = self.run_workflow()
        self.assertFalse(ok)
        self.assertEqual(outcomes, {"Plan": "success", "Comment on the pull request": "success",
                                    "Fail on blockers": "failure"}, self.logs)
        self.assertIn("⛔", self.comment())

    def test_an_error_is_posted_over_the_good_plan_which_is_kept(self):
        self.declare("examples/platform-services.yaml")
        self.run_workflow()
        outcomes, ok = self.run_workflow(snapshot_token="expired")
        self.assertFalse(ok)
        self.assertEqual(outcomes["Plan"], "failure")
        self.assertEqual(outcomes["Comment on the pull request"], "failure", "the comment step keeps it red")
        body = self.comment()
        self.assertIn("flexsync plan failed", body)
        self.assertIn("HTTP 401", body)
        self.assertIn("<summary>Last good plan", body)
        self.assertIn("### flexsync plan: 1 invite", body)
        # The first run's plan.md, still in the workspace, is not this run's.
        self.assertNotIn("What this run planned", body)

    def test_a_wrong_pin_runs_nothing_and_says_so(self):
        self.declare("examples/platform-services.yaml")
        self.sha = "0" * 64
        outcomes, ok = self.run_workflow()
        self.assertFalse(ok)
        self.assertIn("not the pinned " + "0" * 64, self.comment())
        self.assertFalse(os.path.exists(os.path.join(self.temp, "flexsync")))


class GitLab(Pipeline):
    def run_job(self, snapshot_token="snap-token"):
        job = load("gitlab-ci.yml")["flexsync-plan"]
        env = self.base_env()
        env.update({k: str(v) for k, v in job["variables"].items()})
        self.assertEqual(env["FLEXSYNC_VERSION"], VERSION)
        env.update(FLEXSYNC_SHA256=self.sha, FLEXSYNC_RELEASE_URL=self.server.url + "/files/releases",
                   FLEXSYNC_SNAPSHOT_URL=self.server.url + "/files/snapshot",
                   FLEXSYNC_SNAPSHOT_TOKEN=snapshot_token, GITLAB_API_TOKEN="gl-token",
                   CI_API_V4_URL=self.server.url + "/api/v4", CI_PROJECT_ID=PROJECT,
                   CI_MERGE_REQUEST_IID="4", CI_JOB_URL="https://gitlab.example/jobs/1")
        script = "set -o pipefail\n" + "\n".join(job["script"])
        code, self.log = self.bash(script, env)
        return code

    def note(self):
        [n] = self.forge.gitlab[4]
        self.assertEqual(n["author"]["id"], GITLAB_TOKENS["gl-token"]["id"])
        return n["body"]

    def test_changes_note_and_pass(self):
        self.declare("examples/platform-services.yaml")
        self.assertEqual(self.run_job(), 0, self.log)
        self.assertTrue(self.note().startswith(MARKER + "\n### flexsync plan: 1 invite"))

    def test_blockers_note_then_fail(self):
        self.declare("tests/fixtures/blocked.yaml")
        self.assertEqual(self.run_job(), 1, self.log)
        self.assertIn("the plan has blockers", self.log)
        self.assertIn("⛔", self.note())

    def test_an_invalid_declaration_is_posted_and_fails(self):
        self.declare("examples/platform-services.yaml")
        self.assertEqual(self.run_job(), 0, self.log)
        self.declare("tests/fixtures/invalid/version.yaml")
        self.assertEqual(self.run_job(), 1, self.log)
        body = self.note()
        self.assertIn("flexsync plan failed", body)
        self.assertIn("version.yaml", body)
        self.assertIn("### flexsync plan: 1 invite", body)


if __name__ == "__main__":
    unittest.main()
