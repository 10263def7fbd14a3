#!/usr/bin/env python3
"""Download one file for a CI job, checked before anyone can run or read it.

    fetch.py URL OUT [--sha256 HEX] [--executable] [--bearer-env VAR]

OUT is written only whole and, with --sha256, only if its SHA-256 is the
pinned one: a different build, a wrong version or a truncated download is
refused and OUT is left as it was. --bearer-env names the environment
variable holding a bearer token (never a flag, which other processes can
read); it is sent over https, or plain http to loopback only, and never
along a redirect to another host.

Exit codes: 0 fetched; 1 refused or failed (the reason on stderr); 2 usage.
Python 3 standard library only, so CI runners need nothing installed.
"""

import argparse
import hashlib
import http.client
import ipaddress
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ATTEMPTS = 3
# Seconds before the first retry, doubled each time; the tests set it to 0.
RETRY_DELAY = float(os.environ.get("FLEXSYNC_CI_RETRY_DELAY", "2"))
TIMEOUT = 60
CHUNK = 1 << 16


class Refused(Exception):
    pass


class Retry(Exception):
    pass


def loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch_once(url, token, out_dir, max_bytes):
    """Streams URL into a temporary file in out_dir; returns (path, sha256)."""
    req = urllib.request.Request(url, headers={"User-Agent": "flexsync-fetch"})
    if token:
        # Unredirected: urllib would otherwise copy it to wherever a
        # redirect points (release downloads redirect to a CDN).
        req.add_unredirected_header("Authorization", f"Bearer {token}")
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        reason = f"HTTP {e.code} {e.reason}"
        if e.code == 429 or e.code >= 500:
            raise Retry(reason) from None
        raise Refused(reason) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise Retry(str(getattr(e, "reason", e))) from None
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".fetch-")
    try:
        with resp, os.fdopen(fd, "wb") as f:
            size = 0
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    raise Retry(f"the download broke off: {e!r}") from None
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise Refused(f"larger than {max_bytes} bytes")
                digest.update(chunk)
                f.write(chunk)
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) != size:
                raise Retry(f"got {size} of {length} bytes")
        return tmp, digest.hexdigest()
    except BaseException:
        os.unlink(tmp)
        raise


def fetch(url, out, sha256=None, executable=False, token=None, allow_http=False, max_bytes=256 << 20):
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("https", "http"):
        raise Refused("only https (or http) URLs")
    if token and u.scheme == "http" and not loopback(u.hostname or "") and not allow_http:
        raise Refused("a bearer token goes over https, or plain http to loopback only "
                      "(--allow-http if this network is trusted)")
    out_dir = os.path.dirname(os.path.abspath(out))
    delay = RETRY_DELAY
    for attempt in range(1, ATTEMPTS + 1):
        try:
            tmp, got = fetch_once(url, token, out_dir, max_bytes)
            break
        except Retry as e:
            if attempt == ATTEMPTS:
                raise Refused(str(e)) from None
            print(f"fetch: {url}: {e}; retrying in {delay:g}s", file=sys.stderr)
            time.sleep(delay)
            delay *= 2
    try:
        if sha256 and got != sha256:
            raise Refused(f"its SHA-256 is {got}, not the pinned {sha256}: "
                          "a different build, or the pin names another version")
        os.chmod(tmp, 0o755 if executable else 0o644)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    return got


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("url")
    p.add_argument("out")
    p.add_argument("--sha256", help="the pinned SHA-256 (64 hex digits); refuse anything else")
    p.add_argument("--executable", action="store_true", help="make OUT executable (0755)")
    p.add_argument("--bearer-env", metavar="VAR", help="send the token in this environment variable")
    p.add_argument("--allow-http", action="store_true", help="allow the token over plain http")
    p.add_argument("--max-bytes", type=int, default=256 << 20)
    a = p.parse_args(argv)
    sha = (a.sha256 or "").strip().lower()
    if a.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha):
        print(f"fetch: --sha256 {a.sha256!r} is not a SHA-256 (64 hex digits)", file=sys.stderr)
        return 1
    token = None
    if a.bearer_env:
        token = os.environ.get(a.bearer_env, "")
        if not token:
            print(f"fetch: {a.bearer_env} is empty", file=sys.stderr)
            return 1
    try:
        got = fetch(a.url, a.out, sha or None, a.executable, token, a.allow_http, a.max_bytes)
    except Refused as e:
        print(f"fetch: refused {a.url}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"fetch: {a.url} -> {a.out}: {e}", file=sys.stderr)
        return 1
    print(f"fetch: {a.out} ({got[:16]}…){' verified' if sha else ''}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
