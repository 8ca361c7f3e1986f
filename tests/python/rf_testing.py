"""Helpers for the Python suites: deterministic test data and the test peers (nginx, s3rver) started through
ringfetch_test_servers, the C++ harness the GoogleTest suites use. Fixtures built on these live in conftest.py.
"""

from __future__ import annotations

import json
import os
import pathlib
import select
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
# Set by ctest; when pytest is run by hand, the release build tree.
BUILD_DIR = pathlib.Path(os.environ.get("RINGFETCH_TEST_BUILD_DIR", REPO / "build"))
SERVERS_BINARY = pathlib.Path(
    os.environ.get("RINGFETCH_TEST_SERVERS", BUILD_DIR / "tests" / "python" / "ringfetch_test_servers"))
# The ASan+UBSan flavour runs python3 with the ASan runtime preloaded.
SANITIZED = os.environ.get("RINGFETCH_TEST_SANITIZED") == "1"
# npm may install s3rver on the first run.
SERVER_START_TIMEOUT_S = 330.0
S3_ACCESS_KEY = "S3RVER"
S3_SECRET_KEY = "S3RVER"
S3_REGION = "us-east-1"


def pattern(size: int, seed: int = 1) -> bytes:
    """`size` deterministic pseudo-random bytes; different seeds give unrelated bytes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()


class ServerProcess:
    """ringfetch_test_servers ARGS: waits for its JSON line; stop() closes its stdin, which stops the peers."""

    def __init__(self, *args: str) -> None:
        if not SERVERS_BINARY.exists():
            raise RuntimeError(f"{SERVERS_BINARY} is missing: build the target ringfetch_test_servers "
                               "(or set RINGFETCH_TEST_SERVERS)")
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)  # the server binary carries its own sanitizer runtime when it has one
        self._process = subprocess.Popen([str(SERVERS_BINARY), *args], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.info = self._read_ready_line(" ".join(args))

    def _read_ready_line(self, what: str) -> Dict[str, str]:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._process.stdout], [], [], left)[0]:
                self.stop()
                raise RuntimeError(f"ringfetch_test_servers {what} did not start within {SERVER_START_TIMEOUT_S} s")
            chunk = os.read(self._process.stdout.fileno(), 4096)
            if not chunk:
                err = self._process.stderr.read().decode(errors="replace")
                self.stop()
                raise RuntimeError(f"ringfetch_test_servers {what} exited during start: {line!r} {err}")
            line += chunk
        info = json.loads(line)
        if "error" in info:
            self.stop()
            raise RuntimeError(f"ringfetch_test_servers {what}: {info['error']}")
        return info

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@dataclass
class Root:
    """One store root for tests: `url` and the Store.open options it needs; put(key, data) creates an object."""

    scheme: str
    url: str
    put: Callable[[str, bytes], None]
    options: Dict[str, object] = field(default_factory=dict)

    def open(self, engine, **extra):
        import ringfetch
        return ringfetch.Store.open(self.url, engine, **{**self.options, **extra})


def directory_put(directory: pathlib.Path) -> Callable[[str, bytes], None]:
    def put(key: str, data: bytes) -> None:
        path = directory / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return put


def s3_client(endpoint: str):
    """A botocore S3 client for s3rver (path-style addressing, the test keys)."""
    import botocore.config
    import botocore.session
    session = botocore.session.get_session()
    return session.create_client(
        "s3", endpoint_url=endpoint, region_name=S3_REGION, aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))


def s3_environment(endpoint: Optional[str] = None) -> Dict[str, str]:
    """The AWS variables under which ringfetch (and boto3) reach s3rver."""
    env = {"AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY, "AWS_REGION": S3_REGION}
    if endpoint:
        env["AWS_ENDPOINT_URL_S3"] = endpoint
    return env
