"""Store and Engine options reach the C++ API: coalescing (max_gap), request size (part_size), TLS settings,
S3 endpoints, extra headers; and destinations given only through __array_interface__."""

from __future__ import annotations

import numpy as np
import pytest

import ringfetch
import rf_testing


@pytest.fixture(scope="module")
def obj(any_root):
    data = rf_testing.pattern(4 << 20, seed=41)
    any_root.put("options/obj.bin", data)
    return any_root, "options/obj.bin", data


def requests_for(store, engine, items):
    engine.reset_stats()
    plan = ringfetch.Plan()
    for offset, length in items:
        plan.add("options/obj.bin", offset, length)
    list(store.fetch(plan))
    return engine.stats()


def test_max_gap_decides_whether_neighbours_share_a_request(obj, engine):
    root, _, _ = obj
    items = [(0, 4096), (8192, 4096)]
    assert requests_for(root.open(engine, max_gap=0), engine, items)["requests"] == 2
    coalesced = requests_for(root.open(engine, max_gap=1 << 20), engine, items)
    assert coalesced["requests"] == 1
    assert coalesced["bytes_fetched"] - coalesced["bytes_requested"] == 4096  # the gap was read


def test_part_size_cuts_a_long_item_into_requests(obj, engine):
    root, _, data = obj
    store = root.open(engine, part_size=1 << 20)
    stats = requests_for(store, engine, [(0, 4 << 20)])
    assert stats["requests"] == 4


def test_verify_tls_false_accepts_an_unknown_certificate(nginx, https_root, engine):
    https_root.put("options/tls.bin", b"tls" * 100)
    store = ringfetch.Store.open(nginx["https"], engine, verify_tls=False)
    assert store.size("options/tls.bin") == 300


def test_s3_endpoints_list_and_profile_free_environment(s3_root, s3rver, engine):
    s3_root.put("options/s3.bin", b"abc" * 1000)
    store = ringfetch.Store.open(s3_root.url, engine, endpoints=[s3rver["s3_endpoint"]], region="us-east-1",
                                 addressing_style="path", endpoint_policy="least_outstanding",
                                 headers={"x-test": "1"}, connections=2, max_attempts=2)
    plan = ringfetch.Plan()
    plan.add("options/s3.bin", 3, 6)
    assert bytes(next(store.fetch(plan))) == b"abcabc"
    with pytest.raises(ValueError, match="endpoint_url or endpoints"):
        ringfetch.Store.open(s3_root.url, engine, endpoints=["http://a"], endpoint_url="http://b")
    with pytest.raises(ValueError, match="addressing_style"):
        ringfetch.Store.open(s3_root.url, engine, addressing_style="sideways")


class ArrayInterfaceOnly:
    """Memory offered only through __array_interface__ (no buffer protocol)."""

    def __init__(self, array):
        self.array = array
        self.__array_interface__ = array.__array_interface__


def test_array_interface_destinations_are_filled_in_place(obj, engine):
    root, key, data = obj
    backing = np.zeros(256, dtype=np.uint16)
    target = ArrayInterfaceOnly(backing)
    plan = ringfetch.Plan()
    plan.add(key, 1000, 512, into=target)
    (view,) = root.open(engine).fetch(plan)
    assert backing.tobytes() == data[1000:1512]
    assert np.frombuffer(view, np.uint8).__array_interface__["data"][0] == backing.__array_interface__["data"][0]
    strided = ArrayInterfaceOnly(np.zeros((4, 4), dtype=np.uint8)[:, :2])
    with pytest.raises(ValueError, match="C-contiguous"):
        ringfetch.Plan().add(key, 0, 8, into=strided)


def test_engine_options_are_reported_and_memory_limit_is_kept():
    engine = ringfetch.Engine(threads=1, arena_bytes=8 << 20, memory_limit=64 << 20, backend="epoll",
                              huge_pages=False, ring_entries=64)
    assert engine.memory_limit == 64 << 20
    assert engine.options["backend"] == "epoll" and engine.options["ring_entries"] == 64
    assert engine.stats()["backend"] == "epoll"
    engine.close()
    assert engine.closed
