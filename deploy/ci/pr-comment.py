#!/usr/bin/env python3
"""Keep ONE flexsync plan comment up to date on a pull or merge request.

    pr-comment.py github|gitlab --plan plan.md [--log flexsync.log] [--failed]

Finds the comment (GitHub) or note (GitLab) that starts with the marker and
was written by this pipeline's identity, paging through all of them, and
updates it, or creates it when there is none. A comment carrying the marker
but written by someone else is never touched.

A failed run (--failed, or an empty or missing plan) replaces the comment
with the error (the last lines of --log) and keeps the last good plan below
it, collapsed, so reviewers never lose it; an empty comment is never posted.

Exit codes: 0 the plan was posted; 1 the run failed and the comment says so
(keep the job red); 2 the comment could not be written (API or usage error).

Python 3 standard library only, so CI runners need nothing installed.
Settings come from the CI's own variables; flags override them:

  GitHub  GITHUB_TOKEN; GITHUB_API_URL, GITHUB_REPOSITORY, PR_NUMBER (or
          the event's pull_request.number); FLEXSYNC_COMMENT_AUTHOR, the
          login the token writes as (default github-actions[bot], which is
          GITHUB_TOKEN's; an App's token writes as APP-NAME[bot]).
  GitLab  GITLAB_API_TOKEN (a project or group access token, `api` scope);
          CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID. The author is
          the token's own user (GET /user), or FLEXSYNC_COMMENT_AUTHOR.
"""

import argparse
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

MARKER = "<!-- flexsync-plan -->"
FAILED = "<!-- flexsync-plan: failed -->"
GOOD_START = "<!-- flexsync-last-good -->"
GOOD_END = "<!-- /flexsync-last-good -->"

EXIT_POSTED, EXIT_RUN_FAILED, EXIT_CANNOT_POST = 0, 1, 2

# A bound on pages, so a server that always says "next" cannot loop us.
MAX_PAGES = 1000
PER_PAGE = 100
LOG_LINES = 60
LOG_CHARS = 12_000
ATTEMPTS = 3
# Seconds before the first retry, doubled each time; the tests set it to 0.
RETRY_DELAY = float(os.environ.get("FLEXSYNC_CI_RETRY_DELAY", "2"))
TIMEOUT = 60
USER_AGENT = "flexsync-pr-comment"


class ApiError(Exception):
    pass


class Http:
    """JSON over HTTP to one origin; the token never leaves it."""

    def __init__(self, base, auth, headers=None):
        self.base = base.rstrip("/")
        self.origin = origin(self.base)
        self.auth = auth
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}

    def call(self, method, url, body=None):
        """Returns (headers, decoded JSON). Retries connection errors, 429
        and 5xx, which a busy forge returns now and then."""
        if not url.startswith(("http://", "https://")):
            url = self.base + url
        if origin(url) != self.origin:
            raise ApiError(f"refusing to send the token to {origin(url)} (the API is {self.origin})")
        data = None if body is None else json.dumps(body).encode()
        delay = RETRY_DELAY
        for attempt in range(1, ATTEMPTS + 1):
            req = urllib.request.Request(url, data=data, method=method, headers=self.headers)
            if data is not None:
                req.add_header("Content-Type", "application/json")
            for k, v in self.auth.items():
                # Unredirected: urllib would otherwise copy it to wherever a
                # redirect points.
                req.add_unredirected_header(k, v)
            try:
                with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                    raw = resp.read()
                    headers = resp.headers
            except urllib.error.HTTPError as e:
                detail = server_message(e)
                retry = e.code == 429 or e.code >= 500
                if not retry or attempt == ATTEMPTS:
                    raise ApiError(f"{method} {redact(url)}: HTTP {e.code}{detail}") from None
                wait = retry_after(e.headers, delay)
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                if attempt == ATTEMPTS:
                    raise ApiError(f"{method} {redact(url)}: {getattr(e, 'reason', e)}") from None
                wait = delay
            else:
                try:
                    return headers, (json.loads(raw) if raw.strip() else None)
                except ValueError:
                    raise ApiError(f"{method} {redact(url)}: the answer is not JSON") from None
            print(f"pr-comment: {method} {redact(url)} failed, retrying in {wait:g}s", file=sys.stderr)
            time.sleep(wait)
            delay *= 2
        raise ApiError("unreachable")


def origin(url):
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}".lower()


def redact(url):
    """The URL without its query, which is never secret here but is noise."""
    return url.split("?", 1)[0]


def server_message(e):
    try:
        body = json.loads(e.read() or b"null")
    except (ValueError, OSError):
        return ""
    if isinstance(body, dict):
        msg = body.get("message") or body.get("error") or ""
        return f": {msg}" if msg else ""
    return ""


def retry_after(headers, default):
    try:
        return min(float(headers.get("Retry-After", default)), 60.0)
    except (TypeError, ValueError):
        return default


def next_link(link_header):
    """The rel="next" URL of a GitHub Link header, or None."""
    for part in (link_header or "").split(","):
        m = re.match(r'\s*<([^>]*)>\s*;(.*)', part)
        if m and re.search(r'\brel="?next"?', m.group(2)):
            return m.group(1)
    return None


def is_ours(body, marker):
    return isinstance(body, str) and body.lstrip().split("\n", 1)[0].strip() == marker


class GitHub:
    name = "pull request"
    # GitHub refuses bodies over 65,536 characters; keep a margin.
    limit = 65_000

    def __init__(self, api, repo, number, token, author):
        self.http = Http(api, {"Authorization": f"Bearer {token}"}, {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        })
        self.repo, self.number, self.author = repo, number, author

    def comments(self):
        url = f"/repos/{self.repo}/issues/{self.number}/comments?per_page={PER_PAGE}"
        for _ in range(MAX_PAGES):
            headers, page = self.http.call("GET", url)
            for c in page or []:
                yield c["id"], (c.get("user") or {}).get("login"), c.get("body")
            url = next_link(headers.get("Link"))
            if not url:
                return
        raise ApiError(f"more than {MAX_PAGES} pages of comments")

    def is_author(self, who):
        return who == self.author

    def create(self, body):
        _, c = self.http.call("POST", f"/repos/{self.repo}/issues/{self.number}/comments", {"body": body})
        return c.get("html_url") or c.get("id")

    def update(self, cid, body):
        _, c = self.http.call("PATCH", f"/repos/{self.repo}/issues/comments/{cid}", {"body": body})
        return c.get("html_url") or cid


class GitLab:
    name = "merge request"
    # GitLab's limit for a note is 1,000,000 characters.
    limit = 999_000

    def __init__(self, api, project, iid, token, author):
        self.http = Http(api, {"PRIVATE-TOKEN": token})
        self.project = urllib.parse.quote(str(project), safe="")
        self.iid, self.author, self.author_id = iid, author, None

    def comments(self):
        if not self.author:
            _, me = self.http.call("GET", "/user")
            self.author_id = me["id"]
        base = f"/projects/{self.project}/merge_requests/{self.iid}/notes"
        page = "1"
        for _ in range(MAX_PAGES):
            query = urllib.parse.urlencode(
                {"per_page": PER_PAGE, "page": page, "sort": "asc", "order_by": "created_at"})
            headers, notes = self.http.call("GET", f"{base}?{query}")
            notes = notes or []
            for n in notes:
                if not n.get("system"):
                    a = n.get("author") or {}
                    yield n["id"], (a.get("id"), a.get("username")), n.get("body")
            nxt = headers.get("X-Next-Page")
            if nxt is None:
                # Without pagination headers, a full page means there may be more.
                nxt = str(int(page) + 1) if len(notes) == PER_PAGE else ""
            if not nxt.strip():
                return
            page = nxt.strip()
        raise ApiError(f"more than {MAX_PAGES} pages of notes")

    def is_author(self, who):
        uid, username = who
        return username == self.author if self.author else uid == self.author_id

    def create(self, body):
        _, n = self.http.call("POST", f"/projects/{self.project}/merge_requests/{self.iid}/notes", {"body": body})
        return n.get("id")

    def update(self, cid, body):
        self.http.call("PUT", f"/projects/{self.project}/merge_requests/{self.iid}/notes/{cid}", {"body": body})
        return cid


def find(forge, marker):
    """The oldest comment with the marker written by our identity, and how
    many others carry the marker."""
    mine, others = None, []
    for cid, who, body in forge.comments():
        if not is_ours(body, marker):
            continue
        if forge.is_author(who):
            if mine is None:
                mine = (cid, body)
        else:
            others.append((cid, who))
    return mine, others


def last_good(body):
    """The plan an earlier run posted: the whole comment after the marker,
    or, if that comment reports a failure, the plan it kept."""
    if not body:
        return None
    rest = body.lstrip().split("\n", 1)[1] if "\n" in body.lstrip() else ""
    if rest.lstrip().startswith(FAILED):
        start, end = rest.find(GOOD_START), rest.rfind(GOOD_END)
        if start < 0 or end < start:
            return None
        rest = rest[start + len(GOOD_START):end]
    return rest.strip() or None


def tail(text):
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    lines = text.rstrip().splitlines()[-LOG_LINES:]
    out = "\n".join(lines)
    return out[-LOG_CHARS:]


def fenced(text):
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def footer(commit, job_url):
    parts = []
    if commit:
        parts.append(f"commit `{commit[:12]}`")
    if job_url:
        parts.append(f"[CI job]({job_url})")
    return f"\n\n<sub>flexsync plan · {' · '.join(parts)}</sub>\n" if parts else "\n"


def cut(text, room, what):
    """At most `room` characters of text, cut at a line, saying so."""
    if len(text) <= room:
        return text
    note = f"\n\n… {what} was cut to fit the comment; the CI job's artifacts hold all of it.\n"
    keep = text[: max(0, room - len(note))]
    keep = keep[: keep.rfind("\n")] if "\n" in keep else keep
    return keep + note


def plan_body(marker, plan, foot, limit):
    return f"{marker}\n" + cut(plan.rstrip(), limit - len(marker) - len(foot) - 1, "the plan") + foot


def failure_body(marker, log, partial, good, foot, name, limit):
    head = (f"{marker}\n{FAILED}\n### ❌ flexsync plan failed\n\n"
            f"No plan could be made for this {name}'s latest commit, and the check stays red "
            f"until one can. The last lines of the log:\n\n")
    err = fenced(tail(log)) if log.strip() else "_The job logged nothing; its log in CI says more._"
    body = head + err + "\n"
    room = limit - len(body) - len(foot)
    if partial.strip():
        block = ("\n<details><summary>What this run planned before it failed</summary>\n\n"
                 f"{partial.strip()}\n\n</details>\n")
        if len(block) < room // 2:
            body += block
            room -= len(block)
    if good:
        wrap_len = 200
        if len(good) + wrap_len > room:
            body += "\n_The last good plan was too long to keep here; the earlier job's artifacts hold it._\n"
        else:
            body += ("\n<details><summary>Last good plan (an earlier commit's; "
                     "the declarations may have changed since)</summary>\n\n"
                     f"{GOOD_START}\n\n{good}\n\n{GOOD_END}\n\n</details>\n")
    return body + foot


def read(path):
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def event_field(*keys):
    """A field of the GitHub event payload, or None."""
    path = os.environ.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            v = json.load(f)
        for k in keys:
            v = v[k]
        return v
    except (OSError, ValueError, KeyError, TypeError):
        return None


def parse_args(argv):
    env = os.environ.get
    p = argparse.ArgumentParser(description="Keep one flexsync plan comment up to date.",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("forge", choices=["github", "gitlab"])
    p.add_argument("--plan", required=True, help="the plan in Markdown (flexsync plan --format markdown)")
    p.add_argument("--log", help="the job's output, whose last lines a failure comment shows")
    p.add_argument("--failed", action="store_true", help="the run failed: post the error, exit 1")
    p.add_argument("--marker", default=MARKER, help=f"first line identifying the comment (default {MARKER})")
    p.add_argument("--author", default=env("FLEXSYNC_COMMENT_AUTHOR"),
                   help="who writes the comment (FLEXSYNC_COMMENT_AUTHOR)")
    p.add_argument("--commit", help="the commit planned, shown under the comment")
    p.add_argument("--job-url", help="a link to the CI job, shown under the comment")
    p.add_argument("--api-url", help="GITHUB_API_URL or CI_API_V4_URL")
    p.add_argument("--repo", default=env("GITHUB_REPOSITORY"), help="GitHub owner/name")
    p.add_argument("--number", default=env("PR_NUMBER"), help="GitHub pull-request number")
    p.add_argument("--project", default=env("CI_PROJECT_ID"), help="GitLab project id or path")
    p.add_argument("--iid", default=env("CI_MERGE_REQUEST_IID"), help="GitLab merge-request iid")
    a = p.parse_args(argv)
    if not a.marker.startswith("<!--") or "\n" in a.marker:
        p.error("--marker must be one HTML comment line")
    if a.forge == "github":
        a.api_url = a.api_url or env("GITHUB_API_URL") or "https://api.github.com"
        a.number = a.number or event_field("pull_request", "number")
        a.author = a.author or "github-actions[bot]"
        a.token = env("GITHUB_TOKEN")
        a.commit = a.commit or event_field("pull_request", "head", "sha")
        if not a.job_url and env("GITHUB_RUN_ID") and env("GITHUB_REPOSITORY"):
            server = env("GITHUB_SERVER_URL") or "https://github.com"
            a.job_url = f"{server}/{env('GITHUB_REPOSITORY')}/actions/runs/{env('GITHUB_RUN_ID')}"
        missing = [n for n, v in [("GITHUB_TOKEN", a.token), ("--repo/GITHUB_REPOSITORY", a.repo),
                                  ("--number/PR_NUMBER", a.number)] if not v]
    else:
        a.api_url = a.api_url or env("CI_API_V4_URL")
        a.token = env("GITLAB_API_TOKEN")
        a.commit = a.commit or env("CI_COMMIT_SHA")
        a.job_url = a.job_url or env("CI_JOB_URL")
        missing = [n for n, v in [("GITLAB_API_TOKEN", a.token), ("--api-url/CI_API_V4_URL", a.api_url),
                                  ("--project/CI_PROJECT_ID", a.project),
                                  ("--iid/CI_MERGE_REQUEST_IID", a.iid)] if not v]
    if missing:
        p.error("missing " + ", ".join(missing))
    return a


def main(argv=None):
    try:
        a = parse_args(argv)
    except SystemExit as e:
        # argparse exits 2 on a usage error, which is ours too.
        return EXIT_CANNOT_POST if e.code else EXIT_POSTED
    if a.forge == "github":
        forge = GitHub(a.api_url, a.repo, a.number, a.token, a.author)
    else:
        forge = GitLab(a.api_url, a.project, a.iid, a.token, a.author)
    plan, log = read(a.plan), read(a.log)
    failed = a.failed or not plan.strip()
    foot = footer(a.commit, a.job_url)
    try:
        mine, others = find(forge, a.marker)
        for cid, who in others:
            who = who if isinstance(who, str) else who[1]
            print(f"pr-comment: left alone comment {cid} by {who}: it carries the marker "
                  f"but the comments here are written by {a.author or 'this token'}", file=sys.stderr)
        if failed:
            if not a.failed:
                log += "\nflexsync wrote no plan."
            body = failure_body(a.marker, log, plan if a.failed else "",
                                last_good(mine[1]) if mine else None, foot, forge.name, forge.limit)
        else:
            body = plan_body(a.marker, plan, foot, forge.limit)
        if mine:
            where = forge.update(mine[0], body)
            print(f"pr-comment: updated {where}")
        else:
            where = forge.create(body)
            print(f"pr-comment: created {where}")
    except ApiError as e:
        print(f"pr-comment: cannot write the {forge.name} comment: {e}", file=sys.stderr)
        return EXIT_CANNOT_POST
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        print(f"pr-comment: cannot write the {forge.name} comment: unexpected answer from the API ({e!r})",
              file=sys.stderr)
        return EXIT_CANNOT_POST
    if failed:
        print("pr-comment: the run failed; the comment says why", file=sys.stderr)
        return EXIT_RUN_FAILED
    return EXIT_POSTED


if __name__ == "__main__":
    sys.exit(main())
