"""The ringfetch side of the s3torchconnector names: one engine per process, one store per bucket, listing and
uploads.

An engine does not survive ``fork`` (DataLoader workers fork), so every lookup checks the process id and builds a
fresh engine in a new process. The endpoint comes from the caller's keyword, else ``AWS_ENDPOINT_URL_S3``, else
``AWS_ENDPOINT_URL``; credentials and region defaults are the library's (the usual AWS variables and files).
"""
import json
import os
import subprocess
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ... import dcp as _dcp

MiB = 1024 * 1024


def endpoint_from_environment(endpoint: Optional[str]) -> Optional[str]:
    return endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def parse_s3_uri(uri: str) -> Tuple[str, str]:
    """(bucket, key or prefix) of ``s3://bucket/key``."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError(f"only s3:// URIs are supported, not {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"bucket name must be non-empty in {uri!r}")
    return bucket, key


def store_options(region: Optional[str], endpoint: Optional[str], config=None, max_gap: Optional[int] = None
                  ) -> Dict[str, Any]:
    options: Dict[str, Any] = {}
    if region:
        options["region"] = region
    endpoint = endpoint_from_environment(endpoint)
    if endpoint:
        options["endpoint_url"] = endpoint
    if config is not None:
        if getattr(config, "part_size", None):
            options["part_size"] = int(config.part_size)
        if getattr(config, "profile", None):
            options["profile"] = config.profile
    if max_gap is not None:
        options["max_gap"] = int(max_gap)
    return options


class Connection:
    """Engine and stores of one process for one set of store options."""

    def __init__(self, options: Dict[str, Any]):
        self.options = dict(options)
        self._lock = threading.Lock()
        self._pid = None
        self._engine = None
        self._stores: Dict[str, Any] = {}

    def _fresh(self):
        if self._pid != os.getpid():
            import ringfetch

            if self._engine is not None:
                # Inherited through fork: its threads did not come along, so it is kept, never torn down here.
                _inherited.append((self._engine, self._stores))
            self._engine = ringfetch.Engine()
            self._stores = {}
            self._pid = os.getpid()

    def store(self, bucket: str):
        import ringfetch

        with self._lock:
            self._fresh()
            store = self._stores.get(bucket)
            if store is None:
                store = ringfetch.Store.open(f"s3://{bucket}", self._engine, **self.options)
                self._stores[bucket] = store
            return store

    def list_objects(self, bucket: str, prefix: str) -> List[Tuple[str, int]]:
        """(key, size) of every object under ``prefix``, in key order, through ``ringfetch ls`` (the Python
        module has no listing call)."""
        command = [_dcp._cli_path(), "ls", f"s3://{bucket}/{prefix}", "--json"]
        command += _dcp._cli_connection_flags(self.options)
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
        if done.returncode != 0:
            raise OSError(f"listing s3://{bucket}/{prefix} failed: {done.stderr.strip()}")
        listing = json.loads(done.stdout)
        return sorted((o["key"], int(o["size"])) for o in listing["objects"])

    def put(self, bucket: str, key: str, data) -> None:
        _dcp.put_object(f"s3://{bucket}/{key}", data, self.options)


_connections: Dict[Tuple, Connection] = {}
_inherited: List[Any] = []
_connections_lock = threading.Lock()


def connection(options: Dict[str, Any]) -> Connection:
    key = tuple(sorted((k, str(v)) for k, v in options.items()))
    with _connections_lock:
        found = _connections.get(key)
        if found is None:
            found = _connections[key] = Connection(options)
        return found
