"""deploy/ci/pr-comment.py against the stand-in GitHub and GitLab APIs, run
as the pipelines run it: a process, its settings in the environment."""

import os
import subprocess
import sys
import tempfile
import unittest

from standin import GITLAB_TOKENS, PROJECT, REPO, Server

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "pr-comment.py")
MARKER = "<!-- flexsync-plan -->"
PLAN = "### flexsync plan: 1 invite, 2 assignments\n\nPlanned against snapshot.json.\n"
BOT = "github-actions[bot]"
GL_BOT = GITLAB_TOKENS["gl-token"]
HUMAN = {"id": 3, "username": "alice"}


class Case(unittest.TestCase):
    def setUp(self):
        self.server = Server().__enter__()
        self.addCleanup(self.server.__exit__)
        self.forge = self.server.forge
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def file(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run_script(self, forge, *args, plan=PLAN, log=None, env=None):
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("GITHUB_", "CI_", "GITLAB_", "FLEXSYNC_", "PR_"))}
        base["FLEXSYNC_CI_RETRY_DELAY"] = "0"
        if forge == "github":
            base.update(GITHUB_TOKEN="gh-token", GITHUB_API_URL=self.server.url, GITHUB_REPOSITORY=REPO,
                        PR_NUMBER="7", GITHUB_RUN_ID="99", GITHUB_SERVER_URL="https://github.example")
        else:
            base.update(GITLAB_API_TOKEN="gl-token", CI_API_V4_URL=self.server.url + "/api/v4",
                        CI_PROJECT_ID=PROJECT, CI_MERGE_REQUEST_IID="4", CI_COMMIT_SHA="0123456789abcdef0123",
                        CI_JOB_URL="https://gitlab.example/jobs/1")
        base.update(env or {})
        argv = [sys.executable, SCRIPT, forge, "--plan", self.file("plan.md", plan) if plan is not None
                else os.path.join(self.dir.name, "missing.md")]
        if log is not None:
            argv += ["--log", self.file("flexsync.log", log)]
        p = subprocess.run(argv + list(args), env=base, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def comments(self, number=7):
        return self.forge.github.get(number, [])

    def notes(self, iid=4):
        return self.forge.gitlab.get(iid, [])


class GitHub(Case):
    def test_first_run_creates_the_comment(self):
        code, out, err = self.run_script("github")
        self.assertEqual(code, 0, err)
        [c] = self.comments()
        self.assertEqual(c["user"]["login"], BOT)
        self.assertTrue(c["body"].startswith(MARKER + "\n### flexsync plan"), c["body"])
        self.assertIn("[CI job](https://github.example/acme/access/actions/runs/99)", c["body"])
        self.assertIn("created", out)

    def test_updates_its_own_comment_never_a_humans_with_the_marker(self):
        human = self.forge.add_comment(7, "alice", MARKER + "\nI pasted the plan here")
        self.forge.add_comment(7, "bob", "looks good")
        mine = self.forge.add_comment(7, BOT, MARKER + "\n### flexsync plan: old")
        code, _, err = self.run_script("github")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(self.comments()), 3)
        self.assertEqual(human["body"], MARKER + "\nI pasted the plan here")
        self.assertIn("1 invite, 2 assignments", mine["body"])
        self.assertEqual(len(self.forge.requests("PATCH")), 1)
        self.assertEqual(self.forge.requests("POST"), [])
        self.assertIn(f"left alone comment {human['id']} by alice", err)

    def test_a_human_comment_with_the_marker_is_not_ours_even_alone(self):
        human = self.forge.add_comment(7, "alice", MARKER + "\nmine")
        code, _, err = self.run_script("github")
        self.assertEqual(code, 0, err)
        self.assertEqual(human["body"], MARKER + "\nmine")
        self.assertEqual([c["user"]["login"] for c in self.comments()], ["alice", BOT])

    def test_finds_its_comment_beyond_the_first_100(self):
        for i in range(180):
            self.forge.add_comment(7, "reviewer", f"comment {i}")
        mine = self.forge.add_comment(7, BOT, MARKER + "\nold plan")
        for i in range(70):
            self.forge.add_comment(7, "reviewer", f"later {i}")
        code, _, err = self.run_script("github")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(self.comments()), 251, "a second plan comment was created")
        self.assertIn("1 invite", mine["body"])
        gets = self.forge.requests("GET")
        self.assertEqual(len(gets), 3, [g[1] for g in gets])
        self.assertTrue(all("per_page=100" in g[1] for g in gets))

    def test_a_failure_keeps_the_last_good_plan_and_exits_1(self):
        mine = self.forge.add_comment(7, BOT, MARKER + "\n### flexsync plan: 3 assignments\n\n| a | b |")
        log = "== validate\nerror: teams/eng.yaml:4:3: unknown field `emial`\n"
        code, _, err = self.run_script("github", "--failed", plan="", log=log)
        self.assertEqual(code, 1, err)
        body = mine["body"]
        self.assertTrue(body.startswith(MARKER + "\n<!-- flexsync-plan: failed -->\n### ❌ flexsync plan failed"), body)
        self.assertIn("unknown field `emial`", body)
        self.assertIn("<summary>Last good plan", body)
        self.assertIn("### flexsync plan: 3 assignments\n\n| a | b |", body)
        # A second failure keeps the same good plan, not the failure.
        code, _, _ = self.run_script("github", "--failed", plan="", log="error: snapshot: HTTP 503\n")
        self.assertEqual(code, 1)
        body = mine["body"]
        self.assertIn("HTTP 503", body)
        self.assertNotIn("emial", body)
        self.assertEqual(body.count("<summary>Last good plan"), 1)
        self.assertIn("### flexsync plan: 3 assignments", body)
        # Success again: the plan alone.
        code, _, _ = self.run_script("github")
        self.assertEqual(code, 0)
        self.assertEqual(mine["body"].split("\n", 1)[1].split("\n")[0], "### flexsync plan: 1 invite, 2 assignments")
        self.assertNotIn("failed", mine["body"])
        self.assertEqual(len(self.comments()), 1)

    def test_a_failure_on_the_first_run_posts_the_error(self):
        code, _, err = self.run_script("github", "--failed", plan=None, log="error: boom ``` fence\n")
        self.assertEqual(code, 1, err)
        [c] = self.comments()
        self.assertIn("flexsync plan failed", c["body"])
        # The log's backticks cannot close the block around it.
        self.assertIn("````text\nerror: boom ``` fence\n````", c["body"])
        self.assertNotIn("Last good plan", c["body"])

    def test_a_failed_run_that_planned_shows_what_it_planned(self):
        code, _, _ = self.run_script("github", "--failed", plan=PLAN,
                                     log="error: team 100003 could not be read\n")
        self.assertEqual(code, 1)
        body = self.comments()[0]["body"]
        self.assertIn("could not be read", body)
        self.assertIn("<summary>What this run planned before it failed</summary>", body)
        self.assertIn("1 invite, 2 assignments", body)

    def test_an_empty_plan_is_a_failure_never_an_empty_comment(self):
        mine = self.forge.add_comment(7, BOT, MARKER + "\n### flexsync plan: good")
        code, _, _ = self.run_script("github", plan="\n")
        self.assertEqual(code, 1)
        self.assertIn("flexsync wrote no plan", mine["body"])
        self.assertIn("### flexsync plan: good", mine["body"])

    def test_the_author_is_configurable(self):
        self.forge.add_comment(7, BOT, MARKER + "\nanother workflow's")
        env = {"GITHUB_TOKEN": "app-token", "FLEXSYNC_COMMENT_AUTHOR": "flexsync-app[bot]"}
        code, _, err = self.run_script("github", env=env)
        self.assertEqual(code, 0, err)
        code, _, err = self.run_script("github", env=env)
        self.assertEqual(code, 0, err)
        self.assertEqual([c["user"]["login"] for c in self.comments()], [BOT, "flexsync-app[bot]"])

    def test_a_long_plan_is_cut_to_what_github_accepts(self):
        plan = "### flexsync plan\n" + "| row | with some text |\n" * 5000
        code, _, err = self.run_script("github", plan=plan)
        self.assertEqual(code, 0, err)
        body = self.comments()[0]["body"]
        self.assertLessEqual(len(body), 65536)
        self.assertIn("the plan was cut to fit the comment", body)

    def test_a_transient_server_error_is_retried(self):
        self.forge.faults = [("GET", 502), ("POST", 500)]
        code, _, err = self.run_script("github")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(self.comments()), 1)

    def test_a_refused_write_is_exit_2_with_the_reason(self):
        self.forge.faults = [("POST", 403)]
        code, _, err = self.run_script("github")
        self.assertEqual(code, 2)
        self.assertIn("HTTP 403: injected fault", err)
        code, _, err = self.run_script("github", env={"GITHUB_TOKEN": "wrong"})
        self.assertEqual(code, 2)
        self.assertIn("Bad credentials", err)
        self.assertNotIn("wrong", err)

    def test_missing_settings_are_exit_2(self):
        code, _, err = self.run_script("github", env={"PR_NUMBER": "", "GITHUB_TOKEN": ""})
        self.assertEqual(code, 2)
        self.assertIn("GITHUB_TOKEN", err)
        self.assertIn("PR_NUMBER", err)


class GitLab(Case):
    def test_first_run_creates_the_note(self):
        code, out, err = self.run_script("gitlab")
        self.assertEqual(code, 0, err)
        [n] = self.notes()
        self.assertEqual(n["author"]["id"], GL_BOT["id"])
        self.assertTrue(n["body"].startswith(MARKER + "\n### flexsync plan"))
        self.assertIn("commit `0123456789ab`", n["body"])

    def test_updates_its_own_note_never_a_humans_or_a_system_note(self):
        human = self.forge.add_note(4, HUMAN, MARKER + "\ncopied")
        system = self.forge.add_note(4, GL_BOT, MARKER + "\nsystem", system=True)
        mine = self.forge.add_note(4, GL_BOT, MARKER + "\nold")
        code, _, err = self.run_script("gitlab")
        self.assertEqual(code, 0, err)
        self.assertEqual(human["body"], MARKER + "\ncopied")
        self.assertEqual(system["body"], MARKER + "\nsystem")
        self.assertIn("1 invite", mine["body"])
        self.assertEqual(len(self.notes()), 3)

    def test_a_busy_merge_request_pages_through_notes(self):
        # Ours is the oldest; GitLab lists newest first unless asked, 20 a page.
        mine = self.forge.add_note(4, GL_BOT, MARKER + "\nold")
        for i in range(230):
            self.forge.add_note(4, HUMAN, f"note {i}")
        code, _, err = self.run_script("gitlab")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(self.notes()), 231, "a second plan note was created")
        self.assertIn("1 invite", mine["body"])
        gets = [g[1] for g in self.forge.requests("GET") if "/notes" in g[1]]
        self.assertEqual(len(gets), 3, gets)

    def test_ours_among_the_newest_past_100_is_found(self):
        for i in range(150):
            self.forge.add_note(4, HUMAN, f"note {i}")
        mine = self.forge.add_note(4, GL_BOT, MARKER + "\nold")
        code, _, err = self.run_script("gitlab")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(self.notes()), 151)
        self.assertIn("1 invite", mine["body"])

    def test_a_failure_keeps_the_last_good_plan_and_exits_1(self):
        mine = self.forge.add_note(4, GL_BOT, MARKER + "\n### flexsync plan: good")
        code, _, err = self.run_script("gitlab", "--failed", plan="", log="fetch: refused: HTTP 401\n")
        self.assertEqual(code, 1, err)
        self.assertIn("HTTP 401", mine["body"])
        self.assertIn("### flexsync plan: good", mine["body"])
        self.assertEqual(len(self.notes()), 1)

    def test_the_author_may_be_named_instead_of_looked_up(self):
        mine = self.forge.add_note(4, GL_BOT, MARKER + "\nold")
        code, _, err = self.run_script("gitlab", env={"FLEXSYNC_COMMENT_AUTHOR": GL_BOT["username"]})
        self.assertEqual(code, 0, err)
        self.assertIn("1 invite", mine["body"])
        self.assertFalse(any(g[1].startswith("/api/v4/user") for g in self.forge.requests("GET")))

    def test_a_wrong_token_is_exit_2(self):
        code, _, err = self.run_script("gitlab", env={"GITLAB_API_TOKEN": "nope"})
        self.assertEqual(code, 2)
        self.assertIn("401", err)


if __name__ == "__main__":
    unittest.main()
