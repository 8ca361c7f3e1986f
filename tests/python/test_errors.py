"""Every error type: ringfetch.Error with kind, status, s3_code and request_id, and the built-in exception each
subclass also is (FileNotFoundError, ValueError, TypeError, ConnectionError, TimeoutError, MemoryError)."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import ringfetch
import rf_testing
from ringfetch import ErrorKind


@pytest.fixture(scope="module")
def small(any_root):
    data = rf_testing.pattern(10_000, seed=5)
    any_root.put("errors/small.bin", data)
    return any_root


# ---- bad arguments: ValueError / TypeError, raised before anything is fetched

def test_plan_rejects_negative_and_non_integer_values():
    plan = ringfetch.Plan()
    with pytest.raises(ValueError, match="offset must not be negative"):
        plan.add("k", -1, 10)
    with pytest.raises(ValueError, match="length must not be negative"):
        plan.add("k", 0, -10)
    with pytest.raises(ValueError, match="64 bits"):
        plan.add("k", 2**64, 1)
    with pytest.raises(TypeError, match="offset must be an int"):
        plan.add("k", "0", 1)
    with pytest.raises(TypeError, match="length must be an int"):
        plan.add("k", 0, 1.5)
    with pytest.raises(ValueError, match="key must not be empty"):
        plan.add("", 0, 1)
    assert plan.add("k", np.int64(3), np.uint32(4)) == 0  # NumPy integers are ints


def test_into_must_be_writable_contiguous_and_of_the_item_length():
    plan = ringfetch.Plan()
    with pytest.raises(TypeError, match="read-only"):
        plan.add("k", 0, 3, into=b"abc")
    with pytest.raises(TypeError, match="writable, C-contiguous buffer"):
        plan.add("k", 0, 3, into="abc")
    with pytest.raises(ValueError, match="C-contiguous"):
        plan.add("k", 0, 8, into=np.zeros((4, 4), dtype=np.uint8)[:, 1:3])
    with pytest.raises(ValueError, match="holds 10 bytes but the item's length is 11"):
        plan.add("k", 0, 11, into=bytearray(10))
    read_only = np.zeros(4, dtype=np.uint8)
    read_only.setflags(write=False)
    with pytest.raises(TypeError, match="read-only"):
        plan.add("k", 0, 4, into=read_only)
    assert len(plan) == 0


def test_non_contiguous_tensor_is_refused():
    torch = pytest.importorskip("torch")
    plan = ringfetch.Plan()
    with pytest.raises(ValueError, match="contiguous"):
        plan.add("k", 0, 32, into=torch.zeros(4, 4, dtype=torch.float32).t()[:2])


def test_engine_and_store_arguments_are_checked(data_dir):
    with pytest.raises(ValueError, match="threads must be at least 1"):
        ringfetch.Engine(threads=0)
    with pytest.raises(ValueError, match="backend must be"):
        ringfetch.Engine(backend="kqueue")
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        ringfetch.Engine(colour="blue")
    with pytest.raises(ValueError, match="memory_limit"):
        ringfetch.Engine(arena_bytes=8 << 20, memory_limit=1 << 20)
    engine = ringfetch.Engine()
    with pytest.raises(TypeError, match="unexpected keyword argument 'part_sise'"):
        ringfetch.Store.open(data_dir.as_uri(), engine, part_sise=1)
    with pytest.raises(TypeError, match="verify_tls must be a bool"):
        ringfetch.Store.open(data_dir.as_uri(), engine, verify_tls="no")
    with pytest.raises(TypeError, match="engine must be a ringfetch.Engine"):
        ringfetch.Store.open(data_dir.as_uri(), "engine")
    with pytest.raises(ringfetch.InvalidArgumentError) as bad_url:
        ringfetch.Store.open("gopher://example/x", engine)
    assert isinstance(bad_url.value, ValueError) and bad_url.value.kind == ErrorKind.INVALID_ARGUMENT
    assert "gopher" in str(bad_url.value)
    with pytest.raises(ringfetch.InvalidArgumentError, match="part_size"):
        ringfetch.Store.open(data_dir.as_uri(), engine, part_size=0)
    engine.close()
    with pytest.raises(ValueError, match="closed"):
        ringfetch.Store.open(data_dir.as_uri(), engine)


def test_an_item_past_the_end_of_its_object_is_refused(small, engine):
    store = small.open(engine)
    plan = ringfetch.Plan()
    plan.add("errors/small.bin", 9_000, 2_000)
    if small.scheme == "file":
        # The size is known when planning: a bad argument.
        with pytest.raises(ringfetch.InvalidArgumentError) as raised:
            store.fetch(plan)
        assert isinstance(raised.value, ValueError)
        assert "offset 9000, length 2000" in str(raised.value)
    else:
        # Over HTTP the size comes with the answer: the item fails, with the same kind and words as file://.
        with pytest.raises(ringfetch.InvalidArgumentError) as raised:
            list(store.fetch(plan))
        assert isinstance(raised.value, ValueError)
        assert raised.value.kind == ErrorKind.INVALID_ARGUMENT
        assert "bytes 9000-10999" in str(raised.value) and "errors/small.bin" in str(raised.value)
        assert "past the object's end" in str(raised.value)


# ---- a missing object: FileNotFoundError everywhere

def test_a_missing_object_is_a_file_not_found_error(small, engine):
    store = small.open(engine)
    plan = ringfetch.Plan()
    plan.add("errors/missing.bin", 0, 10)
    with pytest.raises(FileNotFoundError) as raised:
        list(store.fetch(plan))  # raised by fetch() (file://) or by the first item (HTTP, S3)
    error = raised.value
    assert isinstance(error, ringfetch.NotFoundError) and isinstance(error, ringfetch.Error)
    assert "missing.bin" in str(error)
    with pytest.raises(FileNotFoundError):
        store.size("errors/missing.bin")
    with pytest.raises(FileNotFoundError):
        store.reader("errors/missing.bin")
    if small.scheme in ("http", "https"):
        assert error.kind == ErrorKind.HTTP_STATUS and error.status == 404
    if small.scheme == "s3":
        assert error.kind == ErrorKind.S3 and error.status == 404 and error.s3_code == "NoSuchKey"
    if small.scheme == "file":
        assert error.kind == ErrorKind.IO and error.status == 0


def test_a_missing_bucket_is_a_file_not_found_error_with_the_s3_code(s3_root, engine):
    store = ringfetch.Store.open("s3://no-such-bucket-here", engine, **s3_root.options)
    with pytest.raises(FileNotFoundError) as raised:
        store.size("x")
    # A HEAD answer has no body to name the code: NoSuchKey is all a client can tell from a bare 404.
    assert raised.value.s3_code in ("NoSuchBucket", "NoSuchKey")
    plan = ringfetch.Plan()
    plan.add("x", 0, 1)
    with pytest.raises(FileNotFoundError) as raised:
        list(store.fetch(plan))
    assert raised.value.s3_code == "NoSuchBucket"


# ---- S3 and HTTP errors

def test_a_refused_access_key_is_an_s3_error_with_code_status_and_request_id(s3_root, engine, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "NOT-A-KEY")
    store = s3_root.open(engine)
    plan = ringfetch.Plan()
    plan.add("errors/small.bin", 0, 10)
    with pytest.raises(ringfetch.S3Error) as raised:
        list(store.fetch(plan))  # a GET: its error document names the code
    error = raised.value
    assert error.kind == ErrorKind.S3 and error.kind == "s3"
    assert error.s3_code == "InvalidAccessKeyId"
    assert error.status == 403
    assert isinstance(error.request_id, str)  # s3rver sends no request id; AWS does (x-amz-request-id)
    assert not isinstance(error, FileNotFoundError)


def test_an_unexpected_http_status_is_an_http_status_error(http_root, engine):
    http_root.put("errors/dir/x.bin", b"x")
    store = http_root.open(engine)
    plan = ringfetch.Plan()
    plan.add("errors/dir", 0, 1)  # nginx redirects a directory
    with pytest.raises(ringfetch.HttpStatusError) as raised:
        list(store.fetch(plan))
    assert raised.value.kind == ErrorKind.HTTP_STATUS and raised.value.status == 301
    assert not isinstance(raised.value, FileNotFoundError)


def test_calls_after_interpreter_exit_began_are_cancelled(file_root):
    file_root.put("errors/exit.bin", b"y" * 100)
    script = textwrap.dedent(f"""
        import atexit

        def after_ringfetch_shut_down():  # registered first, so it runs after ringfetch's own exit handler
            try:
                list(store.fetch(plan))
            except ringfetch.CancelledError as e:
                assert e.kind == "cancelled", e.kind
                print("cancelled:", e)

        atexit.register(after_ringfetch_shut_down)
        import ringfetch
        store = ringfetch.Store.open({file_root.url!r}, ringfetch.Engine())
        plan = ringfetch.Plan()
        plan.add("errors/exit.bin", 0, 10)
        assert len(list(store.fetch(plan))) == 1
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("cancelled: ") and "interpreter is exiting" in result.stdout, result.stdout


def test_an_unknown_certificate_authority_fails_the_https_fetch(nginx, https_root, engine):
    https_root.put("errors/small.bin", b"x" * 100)
    store = ringfetch.Store.open(nginx["https"], engine, ca_bundle=nginx["other_ca_file"], max_attempts=1)
    with pytest.raises(ringfetch.Error) as raised:
        store.size("errors/small.bin")
    assert "certificate" in str(raised.value).lower()


# ---- network failures and timeouts

def test_a_refused_connection_is_a_connection_error(engine):
    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        store = ringfetch.Store.open(f"http://127.0.0.1:{port}", engine, max_attempts=1)
        with pytest.raises(ConnectionError) as raised:
            store.size("x")
    assert isinstance(raised.value, ringfetch.NetworkError)
    assert raised.value.kind == ErrorKind.NETWORK


def test_a_server_that_never_answers_is_a_timeout_error(engine):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    stop = threading.Event()

    def accept_and_stay_silent():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    try:
        store = ringfetch.Store.open(f"http://127.0.0.1:{listener.getsockname()[1]}", engine,
                                     first_byte_timeout_ms=300, max_attempts=1)
        with pytest.raises(TimeoutError) as raised:
            store.size("x")
        assert isinstance(raised.value, ringfetch.FetchTimeoutError)
        assert raised.value.kind == ErrorKind.TIMEOUT
    finally:
        stop.set()
        thread.join()
        for c in accepted:
            c.close()
        listener.close()


# ---- the reader's sequential-access rules: ValueError with the C++ guidance

def test_reader_access_outside_its_ranges_is_a_value_error_with_the_guidance(small, engine):
    store = small.open(engine)
    with store.reader("errors/small.bin", ranges=[(100, 100), (1000, 100)]) as reader:
        reader.seek(1000)
        assert len(reader.read(10)) == 10
        with pytest.raises(ringfetch.SequentialAccessError) as back:
            reader.seek(100)
        assert isinstance(back.value, ValueError)
        assert "only sequential access over the given ranges is supported" in str(back.value)
        with pytest.raises(ValueError, match="only sequential access"):
            reader.seek(0, 2)  # SEEK_END
        with pytest.raises(ValueError, match="only sequential access"):
            reader.read()
        reader.seek(5000)
        with pytest.raises(ValueError, match="past the last given range"):
            reader.read(1)


def test_native_errors_carry_status_code_and_request_id():
    error = ringfetch._errors.from_native("s3", "GET failed: SlowDown", 503, "SlowDown", "REQ123", "general")
    assert type(error) is ringfetch.S3Error
    assert (error.status, error.s3_code, error.request_id, str(error)) == (503, "SlowDown", "REQ123",
                                                                           "GET failed: SlowDown")
    assert type(ringfetch._errors.from_native("unsupported", "no io_uring", 0, "", "", "general")) \
        is ringfetch.UnsupportedError
    assert not isinstance(ringfetch._errors.from_native("unsupported", "x", 0, "", "", "general"), ValueError)


# ---- memory exhaustion: a MemoryError

def test_resource_exhaustion_maps_to_a_memory_error():
    error = ringfetch._errors.from_native("resource_exhausted", "memory limit reached", 0, "", "", "general")
    assert isinstance(error, MemoryError) and isinstance(error, ringfetch.ResourceExhaustedError)
    assert error.kind == ErrorKind.RESOURCE_EXHAUSTED


def test_holding_every_byte_of_the_memory_limit_raises_a_memory_error(file_root):
    file_root.put("errors/big.bin", rf_testing.pattern(8 << 20, seed=6))
    script = textwrap.dedent(f"""
        import ringfetch
        engine = ringfetch.Engine(arena_bytes=4 << 20, memory_limit=4 << 20)
        store = ringfetch.Store.open({file_root.url!r}, engine)
        plan = ringfetch.Plan()
        for i in range(4):
            plan.add("errors/big.bin", i * 2_000_000, 1_500_000)
        held = []
        try:
            for view in store.fetch(plan):
                held.append(view)
        except MemoryError as e:
            assert isinstance(e, ringfetch.ResourceExhaustedError), type(e)
            print("MemoryError", e)
    """)
    # A subprocess, so that a regression to waiting forever still lets the test end.
    try:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the fetch waited for memory the caller holds instead of raising")
    assert result.returncode == 0, result.stderr
    assert "MemoryError" in result.stdout
