"""ringfetch.dcp against real DCP checkpoints written by the installed torch, in both layouts (one file per item,
torch 1.13's default, and one file per rank, torch 2.x's), loaded fully and partially from file://, http:// (nginx)
and s3:// (s3rver), every tensor compared with torch.equal; the in-place path proven by address and counters."""
import io
import os
import shutil

import pytest
import torch

import ringfetch
from ringfetch import dcp
from ringfetch._torch_dcp_fix import checkpoint_module

DCP = checkpoint_module()

MiB = 1024 * 1024
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool]
BYTES_ENTRIES = {"step": 1234, "config": {"lr": 3e-4, "betas": (0.9, 0.95), "name": "tiny"}, "tags": ["a", "b"]}


def _random(shape, dtype, generator):
    if dtype == torch.bool:
        return torch.rand(shape, generator=generator) > 0.5
    if dtype.is_floating_point:
        return torch.randn(shape, generator=generator).to(dtype)
    info = torch.iinfo(dtype)
    return torch.randint(max(info.min, -1000), min(info.max, 1000) + 1, shape, generator=generator, dtype=dtype)


def _shape(i):
    """Mixed sizes: 0-d, tiny, tens of KiB, a few hundred KiB, a few MiB (bytes depend on the dtype)."""
    kind = i % 20
    if kind < 3:
        return ()
    if kind < 8:
        return (i % 13 + 1,)
    if kind < 15:
        return (64 + i % 5, 96 + i)
    if kind < 19:
        return (256, 200 + i % 9)
    return (512 + i, 1024)


def make_state_dict(count=200, seed=0):
    """~200 tensors of mixed dtypes, 0-d to a few MiB (~40 MiB in all), plus special cases and bytes entries."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for i in range(count):
        dtype = DTYPES[i % len(DTYPES)]
        state[f"layer{i:03d}.{dtype}".replace("torch.", "")] = _random(_shape(i), dtype, generator)
    state["special.transposed"] = _random((300, 170), torch.float32, generator).t()  # saved non-contiguous
    state["special.empty"] = torch.empty(0, 5)
    state["special.big"] = _random((4 * MiB // 4,), torch.float32, generator)
    state.update(BYTES_ENTRIES)
    return state


def tensor_keys(state):
    return [k for k, v in state.items() if isinstance(v, torch.Tensor)]


def partial_keys(state):
    """About 30% of the entries, bytes entries included."""
    keys = list(state)
    return [k for i, k in enumerate(keys) if i % 3 == 1] + ["step"]


def write_checkpoint(directory, state, single_file_per_rank):
    if os.path.exists(directory):
        shutil.rmtree(directory)
    DCP.save_state_dict(state, DCP.FileSystemWriter(directory, single_file_per_rank=single_file_per_rank),
                        no_dist=True)
    return directory


def empty_like_state(state, keys):
    """Destinations: tensors of the same dtype and shape filled with a sentinel, bytes entries as None."""
    out = {}
    for key in keys:
        value = state[key]
        if isinstance(value, torch.Tensor):
            out[key] = torch.zeros_like(value, memory_format=torch.contiguous_format)
            if out[key].numel():
                out[key].view(-1)[0] = 1 if value.dtype != torch.bool else True
        else:
            out[key] = None
    return out


def check_loaded(expected, loaded, keys, addresses=None):
    for key in keys:
        want, got = expected[key], loaded[key]
        if isinstance(want, torch.Tensor):
            assert got.dtype == want.dtype and got.shape == want.shape, key
            assert torch.equal(got, want), f"tensor {key} differs"
            if addresses is not None:
                assert got.data_ptr() == addresses[key], f"tensor {key} was replaced, not filled"
        else:
            assert got == want, f"bytes entry {key}: {got!r} != {want!r}"


def load_and_check(reader, expected, keys):
    dest = empty_like_state(expected, keys)
    addresses = {k: v.data_ptr() for k, v in dest.items() if isinstance(v, torch.Tensor)}
    DCP.load_state_dict(dest, reader, no_dist=True)
    check_loaded(expected, dest, keys, addresses)
    return dest


@pytest.fixture(scope="session")
def state():
    return make_state_dict()


@pytest.fixture(scope="session")
def checkpoints(state, tmp_path_factory):
    """Both layouts, written by torch's own FileSystemWriter."""
    root = tmp_path_factory.mktemp("dcp")
    return {
        "per_item": write_checkpoint(str(root / "per_item"), state, single_file_per_rank=False),
        "per_rank": write_checkpoint(str(root / "per_rank"), state, single_file_per_rank=True),
    }


LAYOUTS = ["per_item", "per_rank"]


# ---------------------------------------------------------------------------------------------------------------
# Peers (the session's nginx and s3rver from conftest.py), shared with the other checkpoint suites. Fixtures
# imported into several modules are instantiated once per module, so the uploads are memoized here.

_memo = {}


class S3Bucket:
    """The session's s3rver bucket as these suites use it."""

    def __init__(self, info, client, bucket):
        self.client = client
        self.name = bucket
        self.endpoint = info["s3_endpoint"]
        self.credentials = {"AWS_ACCESS_KEY_ID": info["s3_access_key"],
                            "AWS_SECRET_ACCESS_KEY": info["s3_secret_key"], "AWS_REGION": "us-east-1"}
        self.environment = dict(self.credentials, AWS_ENDPOINT_URL_S3=self.endpoint)
        self.store_options = {"endpoint_url": self.endpoint, "region": "us-east-1"}

    def put_bytes(self, key, data):
        self.client.put_object(Bucket=self.name, Key=key, Body=data)
        return key

    def upload(self, path, key):
        with open(path, "rb") as source:
            self.client.put_object(Bucket=self.name, Key=key, Body=source.read())
        return f"s3://{self.name}/{key}"

    def upload_directory(self, directory, prefix):
        if (directory, prefix) not in _memo:
            for name in sorted(os.listdir(directory)):
                self.upload(os.path.join(directory, name), f"{prefix}/{name}")
            _memo[(directory, prefix)] = f"s3://{self.name}/{prefix}"
        return _memo[(directory, prefix)]


class HttpServer:
    """The session's nginx: publish() copies a file or directory under its root and returns its URL."""

    def __init__(self, info, data_dir):
        self.base = info["http"]
        self.data_dir = data_dir

    def publish(self, path, name=None):
        name = name or os.path.basename(str(path))
        target = os.path.join(str(self.data_dir), "published", name)
        if not os.path.exists(target):
            if os.path.isdir(path):
                shutil.copytree(path, target)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(path, target)
        return f"{self.base}/published/{name}"


@pytest.fixture(scope="session")
def s3_bucket(s3rver, s3_bucket_client):
    import conftest

    return S3Bucket(s3rver, s3_bucket_client, conftest.S3_BUCKET)


@pytest.fixture(scope="session")
def http_server(nginx, data_dir):
    return HttpServer(nginx, data_dir)


@pytest.fixture(scope="session")
def ringfetch_cli():
    import rf_testing

    path = os.environ.get("RINGFETCH_CLI") or str(rf_testing.BUILD_DIR / "ringfetch")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: build the target ringfetch_cli (or set RINGFETCH_CLI)")
    os.environ.setdefault("RINGFETCH_CLI", path)  # the s3:// writer and listings run it
    return path


@pytest.fixture(scope="session")
def checkpoints_on_s3(state, checkpoints, s3_bucket, ringfetch_cli):
    return {layout: (state, s3_bucket.upload_directory(path, f"dcp-test/{layout}"), s3_bucket)
            for layout, path in checkpoints.items()}


@pytest.fixture(scope="session")
def checkpoints_on_http(state, checkpoints, http_server):
    return {layout: (state, http_server.publish(path, f"dcp_{layout}")) for layout, path in checkpoints.items()}


# ---------------------------------------------------------------------------------------------------------------
# file://


@pytest.mark.parametrize("layout", LAYOUTS)
def test_full_load_from_file_matches_every_tensor_and_bytes_entry(state, checkpoints, layout):
    reader = dcp.StorageReader("file://" + checkpoints[layout])
    load_and_check(reader, state, list(state))
    assert reader.last_load.byte_items == len(BYTES_ENTRIES)
    assert reader.last_load.in_place > 100


@pytest.mark.parametrize("layout", LAYOUTS)
def test_partial_load_from_file_reads_only_the_chosen_entries(state, checkpoints, layout):
    keys = partial_keys(state)
    reader = dcp.StorageReader(checkpoints[layout])  # a plain path works too
    load_and_check(reader, state, keys)
    stats = reader.last_load
    assert stats.in_place + stats.copied + stats.torch_loaded == len([k for k in keys if k in tensor_keys(state)])


def test_in_place_tensors_are_written_by_the_engine_alone(state, checkpoints, monkeypatch):
    """Proof of the in-place path: the destination keeps its address, Python makes no copy (no torch.load, no
    copy_ for those tensors) and the engine counts zero user-space copies."""
    engine = ringfetch.Engine()
    reader = dcp.StorageReader("file://" + checkpoints["per_rank"], engine=engine)
    keys = [k for k in tensor_keys(state) if state[k].is_contiguous() and state[k].numel() * state[k].element_size()
            > dcp.SMALL_ITEM_BYTES]
    assert len(keys) > 50
    calls = {"load": 0, "copy_": 0}
    real_load, real_copy = torch.load, torch.Tensor.copy_

    def counting_load(*args, **kwargs):
        calls["load"] += 1
        return real_load(*args, **kwargs)

    def counting_copy(self, *args, **kwargs):
        calls["copy_"] += 1
        return real_copy(self, *args, **kwargs)

    dest = empty_like_state(state, keys)
    addresses = {k: v.data_ptr() for k, v in dest.items()}
    reader.read_metadata()  # the metadata read is not part of the measured data load
    engine.reset_stats()
    monkeypatch.setattr(torch, "load", counting_load)
    monkeypatch.setattr(torch.Tensor, "copy_", counting_copy)
    DCP.load_state_dict(dest, reader, no_dist=True)
    monkeypatch.undo()
    check_loaded(state, dest, keys, addresses)
    assert calls == {"load": 0, "copy_": 0}
    assert reader.last_load.fetches == 1 and reader.last_load.mispredicted == 0
    assert reader.last_load.in_place == len(keys)
    assert reader.last_load.in_place_bytes == sum(state[k].numel() * state[k].element_size() for k in keys)
    stats = engine.stats()
    assert stats["bytes_copied_user"] == 0
    assert stats["bytes_requested"] >= reader.last_load.in_place_bytes


def test_non_contiguous_and_mismatched_destinations_fall_back_and_still_match(state, checkpoints):
    keys = ["special.transposed", "layer010.float32", "layer011.float16"]
    dest = empty_like_state(state, keys)
    dest["layer010.float32"] = torch.zeros(state["layer010.float32"].shape[::-1]).t()  # a strided destination
    dest["layer011.float16"] = torch.zeros(state["layer011.float16"].shape, dtype=torch.float32)  # another dtype
    reader = dcp.StorageReader(checkpoints["per_item"])
    DCP.load_state_dict(dest, reader, no_dist=True)
    assert torch.equal(dest["special.transposed"], state["special.transposed"])
    assert torch.equal(dest["layer010.float32"], state["layer010.float32"])
    assert torch.equal(dest["layer011.float16"], state["layer011.float16"].float())
    assert reader.last_load.torch_loaded == 1 and reader.last_load.copied == 2
    # The transposed tensor was saved non-contiguous: its predicted layout is refuted by its bytes, and it is
    # read again through its archive's head.
    assert reader.last_load.mispredicted == 1


def test_in_place_can_be_turned_off_and_gives_the_same_tensors(state, checkpoints):
    keys = partial_keys(state)
    reader = dcp.StorageReader(checkpoints["per_item"], in_place=False)
    load_and_check(reader, state, keys)
    assert reader.last_load.in_place == 0 and reader.last_load.torch_loaded > 0


def test_archive_head_parser_finds_the_storage_record_of_torch_save():
    for tensor in (torch.arange(10, dtype=torch.bfloat16), torch.tensor(2.5), torch.randn(33, 7)[:, 2:5],
                   torch.zeros(0, 3, dtype=torch.int8)):
        blob = io.BytesIO()
        torch.save(tensor, blob)
        layout = dcp.parse_archive_head(blob.getvalue()[:dcp.HEAD_BYTES], len(blob.getvalue()))
        assert layout.dtype == tensor.dtype and layout.size == tuple(tensor.shape)
        assert layout.stride == tuple(tensor.stride()) and layout.storage_offset == tensor.storage_offset()
        nbytes = layout.storage_numel * layout.element_size
        raw = blob.getvalue()[layout.data_offset:layout.data_offset + nbytes]
        storage = torch.frombuffer(bytearray(raw), dtype=tensor.dtype) if raw else torch.empty(0, dtype=tensor.dtype)
        rebuilt = storage.as_strided(layout.size, layout.stride, layout.storage_offset)
        assert torch.equal(rebuilt, tensor)


@pytest.mark.parametrize("dtype", DTYPES)
def test_predicted_layouts_match_what_torch_save_writes(dtype):
    for shape in [(), (1,), (7,), (255, 3), (256, 257), (65536, 2), (2, 3, 4, 5), (0, 9)]:
        blob = io.BytesIO()
        torch.save(torch.zeros(shape, dtype=dtype), blob)
        actual = dcp.parse_archive_head(blob.getvalue()[:dcp.HEAD_BYTES], len(blob.getvalue()))
        assert dcp.predict_layout(dtype, shape) == actual, shape


def test_archive_head_parser_refuses_what_it_cannot_place():
    blob = io.BytesIO()
    torch.save({"not": "a tensor"}, blob)
    with pytest.raises(dcp.UnsupportedArchive):
        dcp.parse_archive_head(blob.getvalue(), len(blob.getvalue()))
    with pytest.raises(dcp.UnsupportedArchive):
        dcp.parse_archive_head(b"PK\x05\x06" + bytes(100), 104)
    blob = io.BytesIO()
    torch.save(torch.arange(1000), blob)
    with pytest.raises(dcp.UnsupportedArchive):  # the storage record would run past the item's end
        dcp.parse_archive_head(blob.getvalue()[:dcp.HEAD_BYTES], 2000)


def test_missing_checkpoint_is_a_file_not_found_error_naming_the_location(tmp_path):
    reader = dcp.StorageReader("file://" + str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        reader.read_metadata()
    with pytest.raises(DCP.api.CheckpointException, match="no DCP checkpoint at"):  # torch wraps rank errors
        DCP.load_state_dict({"x": torch.zeros(1)}, reader, no_dist=True)


# ---------------------------------------------------------------------------------------------------------------
# http:// (nginx) and s3:// (s3rver)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("part", ["full", "partial"])
def test_loads_over_http_match_every_tensor(checkpoints_on_http, layout, part):
    state, url = checkpoints_on_http[layout]
    keys = list(state) if part == "full" else partial_keys(state)
    reader = dcp.StorageReader(url)
    load_and_check(reader, state, keys)
    assert reader.last_load.in_place > (100 if part == "full" else 30)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("part", ["full", "partial"])
def test_loads_over_s3_match_every_tensor(checkpoints_on_s3, layout, part):
    state, url, bucket = checkpoints_on_s3[layout]
    keys = list(state) if part == "full" else partial_keys(state)
    reader = dcp.StorageReader(url, engine=ringfetch.Engine(threads=2), **bucket.store_options)
    load_and_check(reader, state, keys)
    # In the data fetch, the only bytes copied in user space are those that arrived with a response's head:
    # a bounded amount per response.
    data = reader.last_load.data_fetch
    assert data["bytes_copied_user"] <= data["requests"] * 64 * 1024, data
    print(layout, part, data)


def test_a_partial_load_over_s3_fetches_little_more_than_it_needs(checkpoints_on_s3):
    state, url, bucket = checkpoints_on_s3["per_rank"]
    keys = partial_keys(state)
    engine = ringfetch.Engine()
    reader = dcp.StorageReader(url, engine=engine, max_gap=64 * 1024, **bucket.store_options)
    reader.read_metadata()
    engine.reset_stats()
    load_and_check(reader, state, keys)
    wanted = sum(state[k].numel() * state[k].element_size() for k in keys if isinstance(state[k], torch.Tensor))
    total = sum(v.numel() * v.element_size() for v in state.values() if isinstance(v, torch.Tensor))
    assert engine.stats()["bytes_fetched"] < wanted + 0.2 * total


# ---------------------------------------------------------------------------------------------------------------
# The writer


@pytest.mark.parametrize("single_file_per_rank", [False, True])
def test_writer_output_is_read_by_torchs_own_file_system_reader(state, tmp_path, single_file_per_rank):
    target = tmp_path / "written"
    DCP.save_state_dict(state, dcp.StorageWriter("file://" + str(target), single_file_per_rank=single_file_per_rank),
                        no_dist=True)
    files = sorted(os.listdir(target))
    assert ".metadata" in files
    assert len(files) - 1 == (1 if single_file_per_rank else len(state))
    keys = list(state)
    dest = empty_like_state(state, keys)
    DCP.load_state_dict(dest, DCP.FileSystemReader(str(target)), no_dist=True)
    check_loaded(state, dest, keys)
    again = load_and_check(dcp.StorageReader(str(target)), state, keys)
    assert again is not None


def test_writer_to_s3_uploads_a_checkpoint_that_reads_back(s3_bucket, ringfetch_cli):
    state = make_state_dict(count=40, seed=3)
    state["special.big"] = torch.randn(20 * MiB // 4)  # a > 16 MiB file: a multipart upload
    url = f"s3://{s3_bucket.name}/dcp-test/written"
    DCP.save_state_dict(state, dcp.StorageWriter(url, **s3_bucket.store_options), no_dist=True)
    listed = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name, Prefix="dcp-test/written/")["Contents"]
    assert sorted(o["Key"] for o in listed) == ["dcp-test/written/.metadata", "dcp-test/written/__0_0.distcp"]
    load_and_check(dcp.StorageReader(url, **s3_bucket.store_options), state, list(state))


def test_writer_refuses_an_http_root():
    with pytest.raises(ValueError, match="http"):
        dcp.StorageWriter("http://127.0.0.1:1/ckpt")


# ---------------------------------------------------------------------------------------------------------------
# The import fix for torch 1.13 on Python 3.11


def test_dcp_imports_through_the_package_where_plain_import_fails():
    import subprocess
    import sys

    from ringfetch import _torch_dcp_fix

    plain = subprocess.run([sys.executable, "-c", "import torch.distributed._shard.checkpoint"],
                           capture_output=True, text=True, timeout=120)
    fixed = subprocess.run([sys.executable, "-c", "import ringfetch.dcp, torch.distributed._shard.checkpoint as d; "
                            "print(d.FileSystemReader.__name__)"], capture_output=True, text=True, timeout=120)
    assert fixed.returncode == 0, fixed.stderr
    assert "FileSystemReader" in fixed.stdout
    if _torch_dcp_fix.needed():  # torch 1.13 on Python 3.11+: the defect the hook works around is real
        assert plain.returncode != 0 and "mutable default" in plain.stderr
    else:
        assert plain.returncode == 0, plain.stderr
