"""store.reader(key, ranges=None): an io.RawIOBase over one object. Reads never come back short inside the
ranges, seek/tell follow the C++ reader's sequential rules, and torch.load reads a checkpoint through it."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

import ringfetch
import rf_testing

SIZE = 2 << 20


@pytest.fixture(scope="module")
def obj(any_root):
    data = rf_testing.pattern(SIZE, seed=21)
    any_root.put("reader/obj.bin", data)
    return any_root, "reader/obj.bin", data


def test_reader_is_a_raw_binary_file(obj, engine):
    root, key, data = obj
    with root.open(engine).reader(key) as reader:
        assert isinstance(reader, io.RawIOBase)
        assert reader.readable() and reader.seekable() and not reader.writable()
        assert reader.name == key
        assert reader.size == SIZE
        assert reader.read(100) == data[:100]
        assert reader.tell() == 100
    assert reader.closed
    with pytest.raises(ValueError, match="closed"):
        reader.read(1)


def test_reads_are_never_short_across_adjacent_ranges(obj, engine):
    root, key, data = obj
    store = root.open(engine, part_size=64 << 10)  # many small requests under the ranges
    ranges = [(1000, 300_000), (301_000, 200_000), (600_000, 10)]
    with store.reader(key, ranges=ranges) as reader:
        reader.seek(1000)
        # One read spanning both adjacent ranges (and many requests) comes back whole.
        assert reader.read(499_999) == data[1000:500_999]
        assert reader.read(10) == data[500_999:501_000]  # the rest of the second range, then a gap: short here
        reader.seek(600_000)
        assert reader.read(100) == data[600_000:600_010]  # the last range ends: short at its end only


def test_readinto_fills_numpy_and_bytearray_buffers(obj, engine):
    root, key, data = obj
    with root.open(engine).reader(key, ranges=[(0, 1 << 20)]) as reader:
        array = np.zeros(4096, dtype=np.uint8)
        assert reader.readinto(array) == 4096
        assert array.tobytes() == data[:4096]
        buffer = bytearray(10)
        assert reader.readinto(buffer) == 10
        assert buffer == data[4096:4106]


def test_seek_set_and_cur_move_within_and_forward_across_ranges(obj, engine):
    root, key, data = obj
    with root.open(engine).reader(key, ranges=[(0, 10_000), (500_000, 10_000)]) as reader:
        assert reader.seek(5000) == 5000
        assert reader.read(10) == data[5000:5010]
        assert reader.seek(-10, os.SEEK_CUR) == 5000      # backward within the current range: fine
        assert reader.read(10) == data[5000:5010]
        assert reader.seek(500_100, os.SEEK_SET) == 500_100
        assert reader.read(5) == data[500_100:500_105]
        with pytest.raises(ringfetch.SequentialAccessError, match="only sequential access"):
            reader.seek(10)


def test_read_view_is_zero_copy_and_readline_finds_lines(any_root, engine):
    lines = b"".join(b"line %d\n" % i for i in range(20_000))
    any_root.put("reader/lines.txt", lines)
    with any_root.open(engine).reader("reader/lines.txt") as reader:
        view = reader.read_view(7)
        assert isinstance(view, ringfetch.View) and bytes(view) == b"line 0\n"
        assert reader.readline() == b"line 1\n"
        assert reader.readline(3) == b"lin"
        assert reader.readline() == b"e 2\n"
        rest = list(reader)
        assert rest[0] == b"line 3\n" and rest[-1] == b"line 19999\n" and len(rest) == 19_997
        assert reader.read(10) == b""


def test_whole_object_reader_seeks_anywhere_and_reads_all(obj, engine):
    root, key, data = obj
    with root.open(engine, part_size=256 << 10).reader(key) as reader:
        assert reader.seek(-100, os.SEEK_END) == SIZE - 100
        assert reader.read() == data[-100:]
        reader.seek(10)
        assert reader.read(20) == data[10:30]
        reader.seek(0)
        assert reader.readall() == data


def test_buffered_reader_on_top_works(obj, engine):
    root, key, data = obj
    with io.BufferedReader(root.open(engine).reader(key), buffer_size=1 << 16) as f:
        f.seek(12345)
        assert f.read(100_000) == data[12345:112345]


def test_torch_load_through_the_reader(any_root, engine):
    torch = pytest.importorskip("torch")
    state = {
        "weight": torch.arange(300_000, dtype=torch.float32).reshape(600, 500),
        "bias": torch.randn(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(3)),
        "step": 42,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    any_root.put("reader/ckpt.pt", buffer.getvalue())
    loaded = torch.load(any_root.open(engine).reader("reader/ckpt.pt"))
    assert loaded["step"] == 42
    assert torch.equal(loaded["weight"], state["weight"])
    assert torch.equal(loaded["bias"], state["bias"])
