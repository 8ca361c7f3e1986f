"""store.fetch over file://, http://, https:// and s3://: the bytes, plan order, zero-copy views (proved by
address), overlapping items sharing memory, in-place fills of NumPy arrays and torch tensors, views outliving
their batch, store and engine, and the callback form."""

from __future__ import annotations

import os
import warnings
import gc
import threading

import numpy as np
import pytest

import ringfetch
import rf_testing

OBJECT_SIZE = 3 << 20


@pytest.fixture(scope="module")
def blob(any_root):
    """(root, key, bytes): one object of OBJECT_SIZE pattern bytes under each root."""
    data = rf_testing.pattern(OBJECT_SIZE, seed=11)
    key = "fetch/blob.bin"
    any_root.put(key, data)
    return any_root, key, data


def address(buffer) -> int:
    """Address of the first byte of a buffer-protocol object, through NumPy (which never copies here)."""
    return np.frombuffer(buffer, dtype=np.uint8).__array_interface__["data"][0]


def test_items_come_in_plan_order_with_their_bytes_key_offset_and_index(blob, engine):
    root, key, data = blob
    store = root.open(engine)
    plan = ringfetch.Plan()
    ranges = [(2_000_000, 4096), (0, 100), (1_000_000, 1), (OBJECT_SIZE - 10, 10), (5000, 70_000)]
    for i, (offset, length) in enumerate(ranges):
        assert plan.add(key, offset, length) == i
    assert len(plan) == len(ranges)
    batch = store.fetch(plan)
    assert len(batch) == len(ranges)
    views = list(batch)
    assert [v.index for v in views] == list(range(len(ranges)))
    for view, (offset, length) in zip(views, ranges):
        assert view.key == key
        assert view.offset == offset
        assert len(view) == length
        assert bytes(view) == data[offset:offset + length]
        assert view.tobytes() == data[offset:offset + length]
        assert view.ok and view.error is None


def test_a_view_is_a_read_only_buffer_that_numpy_and_memoryview_share_without_copying(blob, engine):
    root, key, data = blob
    store = root.open(engine)
    plan = ringfetch.Plan()
    plan.add(key, 4096, 65536)
    (view,) = store.fetch(plan)
    mv = memoryview(view)
    assert mv.readonly and mv.nbytes == 65536 and mv.format == "B"
    array = np.frombuffer(view, dtype=np.uint32)
    assert not array.flags.writeable
    # The same bytes, seen three ways, at one address: nothing was copied.
    assert address(view) == address(mv) == array.__array_interface__["data"][0]
    assert array.tobytes() == data[4096:4096 + 65536]
    with pytest.raises((BufferError, TypeError, ValueError)):
        np.frombuffer(view, dtype=np.uint8)[0:1].setflags(write=True)


def test_overlapping_items_share_memory(blob, engine):
    root, key, data = blob
    store = root.open(engine)
    plan = ringfetch.Plan()
    plan.add(key, 10_000, 50_000)   # outer
    plan.add(key, 12_345, 1000)     # inside the outer item
    plan.add(key, 10_000, 50_000)   # the same range again
    outer, inner, same = store.fetch(plan)
    assert address(inner) == address(outer) + (12_345 - 10_000)
    assert address(same) == address(outer)
    assert bytes(inner) == data[12_345:13_345]


def test_numpy_array_and_torch_tensor_are_filled_in_place(blob, engine):
    torch = pytest.importorskip("torch")
    root, key, data = blob
    store = root.open(engine)
    array = np.zeros(1000, dtype=np.float32)
    tensor = torch.zeros(500, dtype=torch.float64)
    array_address = array.__array_interface__["data"][0]
    tensor_address = tensor.data_ptr()
    plan = ringfetch.Plan()
    plan.add(key, 100_000, array.nbytes, into=array)
    plan.add(key, 2_500_000, tensor.numel() * tensor.element_size(), into=tensor)
    v_array, v_tensor = store.fetch(plan)
    assert array.__array_interface__["data"][0] == array_address
    assert tensor.data_ptr() == tensor_address
    assert array.tobytes() == data[100_000:104_000]
    assert tensor.numpy().tobytes() == data[2_500_000:2_504_000]
    # The view of an item with into= is a view of the destination itself.
    assert address(v_array) == array_address
    assert address(v_tensor) == tensor_address


def test_bytearray_and_writable_memoryview_slices_are_destinations(blob, engine):
    root, key, data = blob
    store = root.open(engine)
    whole = bytearray(300)
    part = bytearray(b"x" * 100)
    plan = ringfetch.Plan()
    plan.add(key, 7, 300, into=whole)
    plan.add(key, 1_000_003, 50, into=memoryview(part)[25:75])
    list(store.fetch(plan))
    assert whole == data[7:307]
    assert part == b"x" * 25 + data[1_000_003:1_000_053] + b"x" * 25


def test_views_outlive_their_batch_store_and_engine(blob):
    torch = pytest.importorskip("torch")
    root, key, data = blob

    def fetch_and_drop_everything():
        engine = ringfetch.Engine(arena_bytes=16 << 20)
        store = root.open(engine)
        plan = ringfetch.Plan()
        plan.add(key, 0, 1 << 20)
        plan.add(key, 1 << 20, 4096)
        batch = store.fetch(plan)
        views = list(batch)
        first = np.frombuffer(views[0], dtype=np.uint8)            # holds the view through the buffer
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given buffer is not writable")
            second = torch.frombuffer(views[1], dtype=torch.uint8)
        engine.close()
        return first, second, views[1]

    gc.collect()  # engines of earlier tests end first, so the count below sees this engine's threads only
    threads_before = len(os.listdir("/proc/self/task"))
    first, second, view = fetch_and_drop_everything()
    gc.collect()
    # The engine's threads are gone: the engine itself was destroyed while the views live on.
    assert len(os.listdir("/proc/self/task")) == threads_before
    assert first.tobytes() == data[:1 << 20]
    assert bytes(view) == data[1 << 20:(1 << 20) + 4096]
    assert second.numpy().tobytes() == data[1 << 20:(1 << 20) + 4096]
    assert second.data_ptr() == address(view)  # torch.frombuffer shares the view's memory too


def test_zero_length_items_are_skipped(blob, engine):
    root, key, data = blob
    store = root.open(engine)
    plan = ringfetch.Plan()
    plan.add(key, 5, 0)
    plan.add(key, 5, 5)
    views = list(store.fetch(plan))
    assert [(v.index, bytes(v)) for v in views] == [(1, data[5:10])]


def test_callback_gets_every_item_on_an_engine_thread(blob, engine):
    root, key, data = blob
    store = root.open(engine)
    plan = ringfetch.Plan()
    for i in range(20):
        plan.add(key, i * 100_000, 10_000)
    seen = []
    threads = set()

    def on_item(view):
        threads.add(threading.get_ident())
        seen.append((view.index, bytes(view)))

    batch = store.fetch(plan, on_item)
    batch.wait()
    assert sorted(seen) == [(i, data[i * 100_000:i * 100_000 + 10_000]) for i in range(20)]
    assert threading.get_ident() not in threads


def test_an_exception_in_the_callback_is_raised_by_wait(blob, engine):
    root, key, _ = blob
    store = root.open(engine)
    plan = ringfetch.Plan()
    plan.add(key, 0, 10)
    plan.add(key, 100, 10)

    def on_item(view):
        raise KeyError(f"bad item {view.index}")

    batch = store.fetch(plan, on_item)
    with pytest.raises(KeyError, match="bad item"):
        batch.wait()


def test_a_callback_batch_cannot_be_iterated(blob, engine):
    root, key, _ = blob
    store = root.open(engine)
    plan = ringfetch.Plan()
    plan.add(key, 0, 10)
    batch = store.fetch(plan, lambda view: None)
    with pytest.raises(ValueError, match="call wait"):
        next(batch)
    batch.wait()


def test_closing_a_batch_early_leaves_delivered_views_valid(blob, engine):
    root, key, data = blob
    store = root.open(engine)
    plan = ringfetch.Plan()
    for i in range(30):
        plan.add(key, i * 100_000, 50_000)
    with store.fetch(plan) as batch:
        first = next(batch)
    with pytest.raises(ValueError, match="closed"):
        next(batch)
    assert bytes(first) == data[:50_000]


def test_size_and_stats(blob, engine):
    root, key, _ = blob
    store = root.open(engine)
    assert store.size(key) == OBJECT_SIZE
    engine.reset_stats()
    plan = ringfetch.Plan()
    plan.add(key, 0, 1000)
    plan.add(key, 2000, 1000)
    list(store.fetch(plan))
    stats = engine.stats()
    assert stats["items"] == 2
    assert stats["bytes_requested"] == 2000
    assert stats["requests"] >= 1
    assert stats["backend"] in ("io_uring", "epoll")
    if root.scheme in ("http", "s3"):
        # Plain HTTP bodies are read in place: at most the bytes that came with the response head are copied.
        assert stats["bytes_copied_user"] < stats["bytes_fetched"]


def test_request_path_options_and_their_stats(http_root, engine):
    # Hedging, the slow-connection floor and the adaptive gap are store options; their effects are counted in stats.
    data = bytes(range(256)) * 4096
    http_root.put("request-path.bin", data)
    store = http_root.open(engine, hedge=False, min_throughput_bytes_per_s=1024, slow_grace_ms=2000, hedge_min_ms=50)
    engine.reset_stats()
    plan = ringfetch.Plan()
    for i in range(8):
        plan.add("request-path.bin", i * 100_000, 10_000)
    views = list(store.fetch(plan))
    assert [bytes(v) for v in views] == [data[i * 100_000:i * 100_000 + 10_000] for i in range(8)]
    stats = engine.stats()
    for name in ("hedges_sent", "hedges_won", "hedge_bytes_wasted", "slow_connections"):
        assert stats[name] == 0
    assert stats["max_gap"] > 0  # the gap this fetch was planned with (max_gap left at its default)
    with pytest.raises((TypeError, ValueError)):
        http_root.open(engine, hedge="sometimes")


def test_registered_memory_is_filled_in_place(blob, engine):
    root, key, data = blob
    store = root.open(engine)
    memory = np.zeros(1 << 20, dtype=np.uint8)
    with engine.register_memory(memory) as registration:
        assert registration.registered in (True, False)
        plan = ringfetch.Plan()
        plan.add(key, 0, 4096, into=memory[:4096])
        plan.add(key, 8192, 4096, into=memory[4096:8192])
        list(store.fetch(plan))
    assert memory[:4096].tobytes() == data[:4096]
    assert memory[4096:8192].tobytes() == data[8192:12288]
