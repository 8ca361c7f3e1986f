"""ringfetch.compat.s3torchconnector: a script written for s3torchconnector runs against s3rver with only its
import lines changed; the names behave as s3torchconnector's do (readers, writer, client, checkpoint, map and
iterable datasets under a DataLoader with workers, DCP reader and writer with both reader constructors)."""
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch

from ringfetch.compat import s3torchconnector as s3tc
from ringfetch.compat.s3torchconnector import dcp as s3dcp
from ringfetch._torch_dcp_fix import checkpoint_module

import test_dcp as ckpt
from test_dcp import checkpoints, checkpoints_on_s3, ringfetch_cli, s3_bucket, state  # noqa: F401  (fixtures)

DCP = checkpoint_module()

# A user's script for s3torchconnector (torch 1.13's DCP calls where 2.x's are missing). The test changes only
# the lines that import s3torchconnector.
USER_SCRIPT = textwrap.dedent('''
    import io, os, sys
    import torch
    from torch.utils.data import DataLoader
    from s3torchconnector import S3Checkpoint, S3MapDataset, S3IterableDataset, S3ReaderConstructor
    from s3torchconnector.dcp import S3StorageReader, S3StorageWriter
    from s3torchconnector._s3client import S3Client

    REGION = "us-east-1"
    BUCKET = sys.argv[1]
    ROOT = "compat-script"
    try:
        import torch.distributed.checkpoint as DCP
        save = lambda state, writer: DCP.save(state, storage_writer=writer)
        load = lambda state, reader: DCP.load(state, storage_reader=reader)
    except (ImportError, AttributeError):
        import torch.distributed._shard.checkpoint as DCP
        save = lambda state, writer: DCP.save_state_dict(state, writer, no_dist=True)
        load = lambda state, reader: DCP.load_state_dict(state, reader, no_dist=True)

    # torch.save / torch.load through S3Checkpoint
    checkpoint = S3Checkpoint(region=REGION)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    with checkpoint.writer(f"s3://{BUCKET}/{ROOT}/plain/model.pt") as writer:
        torch.save(model.state_dict(), writer)
    with checkpoint.reader(f"s3://{BUCKET}/{ROOT}/plain/model.pt") as reader:
        restored = torch.load(reader)
    assert all(torch.equal(restored[k], v) for k, v in model.state_dict().items())

    # DCP through S3StorageWriter / S3StorageReader, both reader constructors
    state = {f"w{i}": torch.randn(64, 64 + i) for i in range(20)}
    state["step"] = 42
    save(state, S3StorageWriter(region=REGION, path=f"s3://{BUCKET}/{ROOT}/dcp/"))
    for constructor in (S3ReaderConstructor.dcp_optimized(max_gap_size=32 * 1024 * 1024),
                        S3ReaderConstructor.sequential()):
        target = {k: (torch.zeros_like(v) if isinstance(v, torch.Tensor) else 0) for k, v in state.items()}
        load(target, S3StorageReader(region=REGION, path=f"s3://{BUCKET}/{ROOT}/dcp/", reader_constructor=constructor))
        assert all(torch.equal(target[k], state[k]) for k in state if k != "step") and target["step"] == 42

    # a client's ranged read
    client = S3Client(REGION)
    whole = client.get_object(BUCKET, f"{ROOT}/plain/model.pt").read()
    part = client.get_object(BUCKET, f"{ROOT}/plain/model.pt", start=10, end=110)
    assert part.bucket == BUCKET and part.key == f"{ROOT}/plain/model.pt"
    assert part.read(40) == whole[10:50] and part.tell() == 40
    part.seek(5)
    buffer = bytearray(10)
    assert part.readinto(buffer) == 10 and bytes(buffer) == whole[15:25]
    part.close()

    # datasets
    for i in range(6):
        with checkpoint.writer(f"s3://{BUCKET}/{ROOT}/shards/sample{i:02d}.bin") as writer:
            writer.write(bytes([i]) * (1000 + i))
    def to_pair(reader):
        return reader.key, len(reader.read())
    mapped = S3MapDataset.from_prefix(f"s3://{BUCKET}/{ROOT}/shards/", region=REGION, transform=to_pair)
    assert len(mapped) == 6 and mapped[3] == (f"{ROOT}/shards/sample03.bin", 1003)
    streamed = S3IterableDataset.from_prefix(f"s3://{BUCKET}/{ROOT}/shards/", region=REGION, transform=to_pair)
    assert sorted(streamed) == [(f"{ROOT}/shards/sample{i:02d}.bin", 1000 + i) for i in range(6)]
    loader = DataLoader(mapped, batch_size=2, num_workers=2)
    seen = sorted(k for keys, _ in loader for k in keys)
    assert seen == [f"{ROOT}/shards/sample{i:02d}.bin" for i in range(6)], seen
    objects = S3IterableDataset.from_objects([f"s3://{BUCKET}/{ROOT}/shards/sample01.bin"], region=REGION)
    (only,) = list(objects)
    assert only.read() == bytes([1]) * 1001
    print("SCRIPT OK")
''')


def switched_imports(script):
    """The same script with only its s3torchconnector import lines changed."""
    lines = []
    for line in script.splitlines():
        if re.match(r"\s*(from|import) s3torchconnector\b", line):
            line = line.replace("s3torchconnector", "ringfetch.compat.s3torchconnector", 1)
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_a_script_written_for_s3torchconnector_runs_with_only_its_imports_changed(s3_bucket, tmp_path):
    script = switched_imports(USER_SCRIPT)
    changed = [a for a, b in zip(USER_SCRIPT.splitlines(), script.splitlines()) if a != b]
    assert len(changed) == 3 and all("s3torchconnector" in line for line in changed)
    path = tmp_path / "user_script.py"
    path.write_text(script)
    env = dict(os.environ, **s3_bucket.environment)
    done = subprocess.run([sys.executable, str(path), s3_bucket.name], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SCRIPT OK" in done.stdout


def test_endpoint_keyword_wins_over_the_environment(s3_bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens there
    for name, value in s3_bucket.credentials.items():
        monkeypatch.setenv(name, value)
    client = s3tc.S3Client("us-east-1", endpoint=s3_bucket.endpoint)
    key = s3_bucket.put_bytes("compat/endpoint.bin", b"x" * 100)
    assert client.get_object(s3_bucket.name, key).read() == b"x" * 100


def test_reader_seek_end_and_sizes_follow_io_rules(s3_bucket):
    key = s3_bucket.put_bytes("compat/seek.bin", bytes(range(256)) * 4)
    client = s3tc.S3Client("us-east-1", endpoint=s3_bucket.endpoint)
    reader = client.get_object(s3_bucket.name, key)
    assert reader.seek(-16, os.SEEK_END) == 1008
    assert reader.read() == (bytes(range(256)) * 4)[-16:]
    assert reader.read(5) == b""
    reader.close()
    assert reader.closed


def test_missing_object_is_file_not_found(s3_bucket):
    client = s3tc.S3Client("us-east-1", endpoint=s3_bucket.endpoint)
    with pytest.raises(FileNotFoundError):
        client.get_object(s3_bucket.name, "compat/does-not-exist").read()


def test_constructor_choices_map_to_gap_sizes():
    assert s3tc.S3ReaderConstructor.dcp_optimized().max_gap_size == 32 * 1024 * 1024
    assert s3tc.S3ReaderConstructor.dcp_optimized(max_gap_size=0).max_gap_size == 0
    assert s3tc.S3ReaderConstructor.sequential().max_gap_size == 0
    with pytest.raises(ValueError):
        s3tc.S3ReaderConstructor.dcp_optimized(max_gap_size=-1)


@pytest.mark.parametrize("layout", ckpt.LAYOUTS)
def test_s3_storage_reader_loads_torch_written_checkpoints_fully_and_partially(checkpoints_on_s3, layout):
    state, url, bucket = checkpoints_on_s3[layout]
    for keys in (list(state), ckpt.partial_keys(state)):
        reader = s3dcp.S3StorageReader("us-east-1", url, endpoint=bucket.endpoint)
        ckpt.load_and_check(reader, state, keys)


def test_s3_storage_writer_output_reads_back(s3_bucket):
    state = ckpt.make_state_dict(count=30, seed=5)
    url = f"s3://{s3_bucket.name}/compat/written"
    DCP.save_state_dict(state, s3dcp.S3StorageWriter("us-east-1", url, endpoint=s3_bucket.endpoint), no_dist=True)
    reader = s3dcp.S3StorageReader("us-east-1", url, endpoint=s3_bucket.endpoint,
                                   reader_constructor=s3tc.S3ReaderConstructor.sequential())
    ckpt.load_and_check(reader, state, list(state))


def _key_and_size(reader):
    return reader.key, len(reader.read())


def test_iterable_dataset_shards_across_dataloader_workers(s3_bucket, ringfetch_cli):
    for i in range(7):
        s3_bucket.put_bytes(f"compat/iter/sample{i}.bin", bytes([i]) * (100 + i))
    dataset = s3tc.S3IterableDataset.from_prefix(f"s3://{s3_bucket.name}/compat/iter/", region="us-east-1",
                                                 endpoint=s3_bucket.endpoint, transform=_key_and_size,
                                                 enable_sharding=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
    seen = sorted(tuple(pair) for pair in loader)
    assert seen == [(f"compat/iter/sample{i}.bin", 100 + i) for i in range(7)]  # each object once


def test_endpoint_comes_from_the_keyword_then_aws_endpoint_url_s3_then_aws_endpoint_url(monkeypatch):
    from ringfetch.compat.s3torchconnector._connection import endpoint_from_environment

    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://general:1")
    assert endpoint_from_environment(None) == "http://general:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-only:2")
    assert endpoint_from_environment(None) == "http://s3-only:2"
    assert endpoint_from_environment("http://given:3") == "http://given:3"
