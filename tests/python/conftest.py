"""Fixtures of the Python suites. The peers are real: nginx (HTTP and HTTPS) and s3rver on loopback, started
once per session by ringfetch_test_servers (the C++ harness of the GoogleTest suites) and stopped at the end. A
peer that cannot start makes every test using it fail (an error, never a skip).

Session fixtures for other suites:
  file_root, http_root, https_root, s3_root   a Root each (url, options, put(key, data), open(engine))
  any_root                                    parametrized over the four
  data_dir                                    the directory behind file_root, http_root and https_root
  nginx, s3rver                               the raw peer info (URLs, ca_file, s3_endpoint)
  s3_bucket_client                            a botocore client for s3rver; S3_BUCKET is the bucket's name
"""

from __future__ import annotations

import os
import pathlib

import pytest

import rf_testing
from rf_testing import Root, ServerProcess

S3_BUCKET = "ringfetch-test"


def pytest_configure(config):
    """Under ctest, the module must be the one of the build being tested (not an installed copy)."""
    if "RINGFETCH_TEST_BUILD_DIR" in os.environ:
        from ringfetch import _ringfetch
        expected = pathlib.Path(os.environ["RINGFETCH_TEST_BUILD_DIR"]).resolve() / "python"
        if expected not in pathlib.Path(_ringfetch.__file__).resolve().parents:
            raise pytest.UsageError(f"testing {_ringfetch.__file__}, not the module of {expected}; "
                                    "check PYTHONPATH")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="session")
def nginx(data_dir):
    server = ServerProcess("--nginx", str(data_dir))
    yield server.info
    server.stop()


@pytest.fixture(scope="session")
def s3rver():
    server = ServerProcess("--s3rver")
    saved = {k: os.environ.get(k) for k in rf_testing.s3_environment()}
    os.environ.update(rf_testing.s3_environment())  # ringfetch reads credentials from the environment
    yield server.info
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


@pytest.fixture(scope="session")
def s3_bucket_client(s3rver):
    client = rf_testing.s3_client(s3rver["s3_endpoint"])
    client.create_bucket(Bucket=S3_BUCKET)
    return client


@pytest.fixture(scope="session")
def file_root(data_dir) -> Root:
    return Root("file", data_dir.as_uri(), rf_testing.directory_put(data_dir))


@pytest.fixture(scope="session")
def http_root(nginx, data_dir) -> Root:
    return Root("http", nginx["http"], rf_testing.directory_put(data_dir))


@pytest.fixture(scope="session")
def https_root(nginx, data_dir) -> Root:
    return Root("https", nginx["https"], rf_testing.directory_put(data_dir), {"ca_bundle": nginx["ca_file"]})


@pytest.fixture(scope="session")
def s3_root(s3rver, s3_bucket_client) -> Root:
    def put(key: str, data: bytes) -> None:
        s3_bucket_client.put_object(Bucket=S3_BUCKET, Key=key, Body=data)
    return Root("s3", f"s3://{S3_BUCKET}", put, {"endpoint_url": s3rver["s3_endpoint"], "region": rf_testing.S3_REGION})


@pytest.fixture(scope="session", params=["file", "http", "https", "s3"])
def any_root(request) -> Root:
    return request.getfixturevalue(f"{request.param}_root")


@pytest.fixture
def engine():
    import ringfetch
    e = ringfetch.Engine(threads=2, arena_bytes=64 << 20)
    yield e
    e.close()
