"""Threads and processes: the GIL is released while ringfetch waits, engines work again in a forked child
(DataLoader workers), objects that cannot cross a fork fail at once with a clear message, and the interpreter
exits cleanly with fetches in flight."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import ringfetch
import rf_testing

BIG = 64 << 20
CHILD_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def big(file_root, http_root):
    data = rf_testing.pattern(BIG, seed=31)
    file_root.put("proc/big.bin", data)  # one directory serves file:// and nginx
    return data


def test_other_python_threads_run_while_a_fetch_waits(http_root, big):
    engine = ringfetch.Engine(arena_bytes=BIG + (8 << 20))
    store = http_root.open(engine, connections=1, part_size=BIG)
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    plan = ringfetch.Plan()
    for _ in range(4):  # one long, single-request item, read four times
        plan.add("proc/big.bin", 0, BIG)
    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        progress = []
        started = time.monotonic()
        batch = store.fetch(plan)
        for _ in range(4):
            before = counter[0]
            t = time.monotonic()
            view = next(batch)  # blocks in C++ until the item is complete
            progress.append((counter[0] - before, time.monotonic() - t))
            del view
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        spinner.join()
    # While next() waited (tens of ms per item), the spinning thread ran: the GIL was released. Had it been held,
    # the spinner could not have counted at all during the wait.
    waited = [(count, seconds) for count, seconds in progress if seconds > 0.005]
    assert waited, f"the fetch finished too fast to tell ({progress}, {elapsed:.3f} s)"
    assert all(count > 1000 for count, _ in waited), progress


def test_callbacks_run_concurrently_with_a_python_thread(file_root, big):
    engine = ringfetch.Engine(threads=2)
    store = file_root.open(engine)
    plan = ringfetch.Plan()
    for i in range(64):
        plan.add("proc/big.bin", i * (1 << 20), 1 << 20)
    total = [0]
    lock = threading.Lock()

    def on_item(view):
        with lock:
            total[0] += int(np.frombuffer(view, dtype=np.uint8)[:16].sum())

    batch = store.fetch(plan, on_item)
    batch.wait()
    expected = sum(int(np.frombuffer(big[i << 20:(i << 20) + 16], dtype=np.uint8).sum()) for i in range(64))
    assert total[0] == expected


def test_a_forked_child_re_creates_the_engine_and_store(file_root, big):
    engine = ringfetch.Engine()
    store = file_root.open(engine)
    plan = ringfetch.Plan()
    plan.add("proc/big.bin", 1000, 100)
    assert bytes(next(store.fetch(plan))) == big[1000:1100]  # the parent's engine is running
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must exit, whatever happens
        status = 1
        try:
            os.close(read)
            view = next(store.fetch(plan))
            os.write(write, bytes(view))
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    received = b""
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while chunk := os.read(read, 1 << 16):
        received += chunk
        assert time.monotonic() < deadline
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert received == big[1000:1100]
    assert bytes(next(store.fetch(plan))) == big[1000:1100]  # the parent's engine is unharmed


def run_child(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT_S, env=os.environ)


def test_a_batch_or_view_from_before_a_fork_fails_at_once_in_the_child(file_root, big):
    result = run_child(f"""
        import os, ringfetch
        engine = ringfetch.Engine()
        store = ringfetch.Store.open({file_root.url!r}, engine)
        plan = ringfetch.Plan()
        for i in range(8):
            plan.add("proc/big.bin", i << 20, 1 << 20)
        batch = store.fetch(plan)
        view = next(batch)
        reader = store.reader("proc/big.bin")
        pid = os.fork()
        if pid == 0:
            try:
                next(batch)
                os._exit(3)
            except ValueError as e:
                assert "cannot be used in process" in str(e) and "worker" in str(e), e
            try:
                reader.read(10)
                os._exit(4)
            except ValueError as e:
                assert "after fork()" in str(e), e
            assert len(bytes(view)) == 1 << 20  # the parent's memory is still mapped here
            del view, batch, reader  # abandoned, never touching the parent's engine
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        print("parent", len(list(batch)))
    """)
    assert result.returncode == 0, result.stderr
    assert "child 0" in result.stdout and "parent 7" in result.stdout, result.stdout + result.stderr


class TensorDataset:
    """Item i: bytes [i * 4096, i * 4096 + 4096) of an object as a float32 tensor, fetched in place."""

    def __init__(self, store, key, count):
        self.store, self.key, self.count = store, key, count

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        import torch
        out = torch.empty(1024, dtype=torch.float32)
        plan = ringfetch.Plan()
        plan.add(self.key, i * 4096, 4096, into=out)
        for _ in self.store.fetch(plan):
            pass
        return out


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_with_two_workers_fetches_in_its_workers(http_root, big, context):
    torch = pytest.importorskip("torch")
    engine = ringfetch.Engine()
    store = http_root.open(engine)  # made in the main process; forked workers re-create it, spawned ones unpickle
    dataset = TensorDataset(store, "proc/big.bin", 64)
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, num_workers=2, multiprocessing_context=context,
                                         timeout=CHILD_TIMEOUT_S)
    batches = list(loader)
    got = torch.cat(batches).numpy().tobytes()
    assert got == big[:64 * 4096]


def test_engine_and_store_pickle_by_their_arguments(file_root):
    engine = ringfetch.Engine(threads=2, arena_bytes=32 << 20)
    store = file_root.open(engine, part_size=1 << 20)
    copy = pickle.loads(pickle.dumps(store))
    assert copy.url == store.url
    assert copy.engine.options == engine.options
    assert copy.engine is not engine


EXIT_SCRIPT = """
    import sys, threading, ringfetch
    engine = ringfetch.Engine(threads=2, arena_bytes=16 << 20)
    store = ringfetch.Store.open({url!r}, engine, part_size=1 << 20, connections=2, **{options!r})
    plan = ringfetch.Plan()
    for i in range(64):
        plan.add("proc/big.bin", i << 20, 1 << 20)
    mode = {mode!r}
    if mode == "iterating":
        batch = store.fetch(plan)
        first = next(batch)
    elif mode == "callback":
        seen = []
        batch = store.fetch(plan, lambda view: seen.append(len(view)))
    elif mode == "thread":
        def consume():
            for view in store.fetch(plan):
                pass
        threading.Thread(target=consume, daemon=True).start()
    elif mode == "reader":
        reader = store.reader("proc/big.bin")
        reader.read(10)
    print("exiting", flush=True)
"""


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("mode", ["iterating", "callback", "thread", "reader"])
def test_interpreter_exit_with_fetches_in_flight_is_clean(http_root, https_root, big, mode, scheme):
    root = http_root if scheme == "http" else https_root
    result = run_child(EXIT_SCRIPT.format(url=root.url, mode=mode, options=root.options))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "exiting\n"
    if mode == "thread":
        # The daemon thread may run once more at exit: its batch then says why it stopped.
        assert "Fatal" not in result.stderr and "terminate" not in result.stderr, result.stderr
        assert "Error" not in result.stderr or "ringfetch._errors.CancelledError" in result.stderr, result.stderr
    else:
        assert result.stderr == ""
