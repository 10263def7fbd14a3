"""A small local stand-in for the parts of GitHub's and GitLab's REST APIs
the pipelines use, plus static files, served from a thread.

It keeps what real forges do that a careless client gets wrong: default page
sizes (GitHub 30, GitLab 20) and GitLab's newest-first default order, Link
and X-Next-Page paging, tokens checked on every call, and 403 for editing
someone else's comment.
"""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GITHUB_TOKENS = {"gh-token": "github-actions[bot]", "app-token": "flexsync-app[bot]"}
GITLAB_TOKENS = {"gl-token": {"id": 77, "username": "project_5_bot_1"}}
REPO = "acme/access"
PROJECT = "5"


class Forge:
    def __init__(self):
        self.lock = threading.Lock()
        self.github = {}   # PR number -> [comment]
        self.gitlab = {}   # MR iid -> [note]
        self.files = {}    # path -> {status, headers, body, bearer}
        self.log = []      # (method, path with query, headers)
        self.faults = []   # [(method, status)], consumed in order
        self._id = 1000

    def new_id(self):
        self._id += 1
        return self._id

    def add_comment(self, number, login, body):
        c = {"id": self.new_id(), "user": {"login": login, "type": "Bot" if "[bot]" in login else "User"},
             "body": body, "html_url": f"https://github.example/{REPO}/pull/{number}#c{self._id}"}
        self.github.setdefault(number, []).append(c)
        return c

    def add_note(self, iid, user, body, system=False):
        n = {"id": self.new_id(), "author": dict(user), "body": body, "system": system}
        self.gitlab.setdefault(iid, []).append(n)
        return n

    def requests(self, method=None):
        return [r for r in self.log if method is None or r[0] == method]


class Server:
    def __init__(self):
        self.forge = Forge()
        handler = type("Handler", (Handler,), {"forge": self.forge})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def page_of(items, query, default_per_page):
    per_page = min(int(query.get("per_page", [default_per_page])[0]), 100)
    page = max(int(query.get("page", ["1"])[0]), 1)
    start = (page - 1) * per_page
    pages = max(1, -(-len(items) // per_page))
    return items[start:start + per_page], page, per_page, pages


class Handler(BaseHTTPRequestHandler):
    forge = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PATCH(self):
        self.route("PATCH")

    def do_PUT(self):
        self.route("PUT")

    def send(self, status, body=None, headers=None, raw=None):
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def route(self, method):
        f = self.forge
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        parts = [p for p in u.path.split("/") if p]
        with f.lock:
            f.log.append((method, self.path, dict(self.headers)))
            if f.faults and f.faults[0][0] == method:
                _, status = f.faults.pop(0)
                return self.send(status, {"message": "injected fault"})
            if parts[:1] == ["files"]:
                return self.file(u.path)
            if parts[:2] == ["api", "v4"]:
                return self.gitlab(method, parts[2:], q)
            return self.github(method, parts, q)

    def file(self, path):
        spec = self.forge.files.get(path)
        if spec is None:
            return self.send(404, {"message": "Not Found"})
        bearer = spec.get("bearer")
        if bearer and self.headers.get("Authorization") != f"Bearer {bearer}":
            return self.send(401, {"message": "unauthorized"})
        return self.send(spec.get("status", 200), headers=spec.get("headers"), raw=spec.get("body", b""))

    # GitHub: /repos/OWNER/REPO/issues/N/comments, /repositories/1/issues/N/comments
    # (the form its Link headers use), /repos/OWNER/REPO/issues/comments/ID.
    def github(self, method, parts, q):
        f = self.forge
        auth = self.headers.get("Authorization", "")
        login = GITHUB_TOKENS.get(auth.removeprefix("Bearer ").removeprefix("token "))
        if not login:
            return self.send(401, {"message": "Bad credentials"})
        if parts[:3] == ["repos", *REPO.split("/")]:
            rest = parts[3:]
        elif parts[:2] == ["repositories", "1"]:
            rest = parts[2:]
        else:
            return self.send(404, {"message": "Not Found"})
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments":
            number = int(rest[1])
            comments = f.github.setdefault(number, [])
            if method == "GET":
                items, page, per_page, pages = page_of(comments, q, 30)
                links = []
                if page < pages:
                    nxt = f"http://{self.headers['Host']}/repositories/1/issues/{number}/comments?per_page={per_page}&page={page + 1}"
                    links.append(f'<{nxt}>; rel="next"')
                return self.send(200, items, {"Link": ", ".join(links)} if links else {})
            if method == "POST":
                return self.send(201, f.add_comment(number, login, self.body()["body"]))
        if len(rest) == 3 and rest[:2] == ["issues", "comments"] and method == "PATCH":
            for c in (c for cs in f.github.values() for c in cs):
                if c["id"] == int(rest[2]):
                    if c["user"]["login"] != login:
                        return self.send(403, {"message": "Resource not accessible by integration"})
                    c["body"] = self.body()["body"]
                    return self.send(200, c)
            return self.send(404, {"message": "Not Found"})
        return self.send(404, {"message": "Not Found"})

    # GitLab: /api/v4/user, /api/v4/projects/ID/merge_requests/IID/notes[/ID].
    def gitlab(self, method, parts, q):
        f = self.forge
        user = GITLAB_TOKENS.get(self.headers.get("PRIVATE-TOKEN", ""))
        if not user:
            return self.send(401, {"message": "401 Unauthorized"})
        if parts == ["user"] and method == "GET":
            return self.send(200, dict(user, name="flexsync bot"))
        if len(parts) >= 5 and parts[0] == "projects" and parts[1] == PROJECT and parts[2] == "merge_requests" \
                and parts[4] == "notes":
            iid = int(parts[3])
            notes = f.gitlab.setdefault(iid, [])
            if len(parts) == 5 and method == "GET":
                asc = q.get("sort", ["desc"])[0] == "asc"
                ordered = notes if asc else list(reversed(notes))
                items, page, per_page, pages = page_of(ordered, q, 20)
                headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(notes)),
                           "X-Total-Pages": str(pages), "X-Next-Page": str(page + 1) if page < pages else ""}
                return self.send(200, items, headers)
            if len(parts) == 5 and method == "POST":
                return self.send(201, f.add_note(iid, user, self.body()["body"]))
            if len(parts) == 6 and method == "PUT":
                for n in notes:
                    if n["id"] == int(parts[5]):
                        if n["author"]["id"] != user["id"]:
                            return self.send(403, {"message": "403 Forbidden"})
                        n["body"] = self.body()["body"]
                        return self.send(200, n)
                return self.send(404, {"message": "404 Not found"})
        return self.send(404, {"message": "404 Not Found"})
