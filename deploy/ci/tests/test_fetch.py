"""deploy/ci/fetch.py against the stand-in server: the pinned binary and the
service's snapshot, as the pipelines fetch them."""

import hashlib
import os
import stat
import subprocess
import sys
import tempfile
import unittest

from standin import Server

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "fetch.py")
BINARY = b"\x7fELF pretend flexsync " * 1000
SHA = hashlib.sha256(BINARY).hexdigest()


class Fetch(unittest.TestCase):
    def setUp(self):
        self.server = Server().__enter__()
        self.addCleanup(self.server.__exit__)
        files = self.server.forge.files
        files["/files/v0.1.0/flexsync"] = {"body": BINARY}
        files["/files/latest/flexsync"] = {"status": 302, "headers": {"Location": "/files/v0.1.0/flexsync"}}
        files["/files/short/flexsync"] = {"body": BINARY[:100], "headers": {"Content-Length": str(len(BINARY))}}
        files["/files/snapshot"] = {"body": b'{"formatVersion": 1}', "bearer": "snap-token"}
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.out = os.path.join(self.dir.name, "flexsync")

    def fetch(self, path, *args, env=None, url=None):
        e = dict(os.environ, FLEXSYNC_CI_RETRY_DELAY="0", **(env or {}))
        p = subprocess.run([sys.executable, SCRIPT, url or self.server.url + path, self.out, *args],
                           env=e, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stderr

    def test_the_pinned_binary_is_installed_executable(self):
        code, err = self.fetch("/files/v0.1.0/flexsync", "--sha256", SHA.upper(), "--executable")
        self.assertEqual(code, 0, err)
        with open(self.out, "rb") as f:
            self.assertEqual(f.read(), BINARY)
        self.assertTrue(os.stat(self.out).st_mode & stat.S_IXUSR)
        self.assertEqual([n for n in os.listdir(self.dir.name)], ["flexsync"])

    def test_another_checksum_is_refused_and_nothing_is_left(self):
        code, err = self.fetch("/files/v0.1.0/flexsync", "--sha256", "0" * 64, "--executable")
        self.assertEqual(code, 1)
        self.assertIn(f"its SHA-256 is {SHA}, not the pinned {'0' * 64}", err)
        self.assertEqual(os.listdir(self.dir.name), [])

    def test_a_placeholder_checksum_is_refused_before_downloading(self):
        code, err = self.fetch("/files/v0.1.0/flexsync", "--sha256", "<sha256 of the release asset>")
        self.assertEqual(code, 1)
        self.assertIn("is not a SHA-256", err)
        self.assertEqual(self.server.forge.requests(), [])

    def test_redirects_are_followed(self):
        code, err = self.fetch("/files/latest/flexsync", "--sha256", SHA)
        self.assertEqual(code, 0, err)

    def test_a_truncated_download_is_retried_then_refused(self):
        code, err = self.fetch("/files/short/flexsync", "--sha256", SHA)
        self.assertEqual(code, 1)
        self.assertEqual(len(self.server.forge.requests()), 3)
        self.assertEqual(os.listdir(self.dir.name), [])

    def test_a_missing_file_is_refused(self):
        code, err = self.fetch("/files/v9.9.9/flexsync", "--sha256", SHA)
        self.assertEqual(code, 1)
        self.assertIn("HTTP 404", err)
        self.assertEqual(len(self.server.forge.requests()), 1, "a 404 is not retried")

    def test_the_snapshot_needs_the_bearer_token(self):
        code, err = self.fetch("/files/snapshot", "--bearer-env", "SNAP", env={"SNAP": "wrong"})
        self.assertEqual(code, 1)
        self.assertIn("HTTP 401", err)
        self.assertNotIn("wrong", err)
        code, err = self.fetch("/files/snapshot", "--bearer-env", "SNAP", env={"SNAP": "snap-token"})
        self.assertEqual(code, 0, err)
        code, err = self.fetch("/files/snapshot", "--bearer-env", "SNAP", env={"SNAP": ""})
        self.assertEqual(code, 1)
        self.assertIn("SNAP is empty", err)

    def test_no_token_over_plain_http_off_loopback(self):
        code, err = self.fetch(None, "--bearer-env", "SNAP", env={"SNAP": "snap-token"},
                               url="http://flexsync.example.invalid/snapshot")
        self.assertEqual(code, 1)
        self.assertIn("over https", err)


if __name__ == "__main__":
    unittest.main()
