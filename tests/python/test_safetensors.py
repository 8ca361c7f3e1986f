"""ringfetch.safetensors and `ringfetch load --safetensors`, on files this test writes by the format's published
specification: an unsigned 64-bit little-endian header length N, N bytes of JSON (name -> dtype, shape,
data_offsets relative to the end of the header; optional __metadata__ of strings), then the little-endian,
row-major tensor bytes."""
import json
import os
import struct
import subprocess

import pytest
import torch

import ringfetch
from ringfetch import safetensors

from test_dcp import http_server, ringfetch_cli, s3_bucket  # noqa: F401  (fixtures)

SPEC_DTYPES = {torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16", torch.int32: "I32",
               torch.int64: "I64", torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32",
               torch.float64: "F64"}


def tensor_bytes(tensor):
    flat = tensor.contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    return flat.view(torch.uint8).numpy().tobytes()


def write_safetensors(path, tensors, metadata=None, pad_header_to=8, shuffle_offsets=False):
    """Writes ``tensors`` (name -> tensor) as the specification describes; returns the header dict."""
    header, blobs, offset = {}, [], 0
    order = list(tensors)
    if shuffle_offsets:  # data order need not follow header order
        order = order[::-1]
    for name in order:
        blob = tensor_bytes(tensors[name])
        header[name] = {"dtype": SPEC_DTYPES[tensors[name].dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % pad_header_to)  # the spec allows trailing spaces in the header
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for blob in blobs:
            out.write(blob)
    return header


def mixed_tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {
        "scalar.f32": torch.tensor(3.25),
        "scalar.bf16": torch.tensor(-1.5, dtype=torch.bfloat16),
        "scalar.i64": torch.tensor(-(2 ** 40), dtype=torch.int64),
        "empty.f16": torch.empty(0, 8, dtype=torch.float16),
        "mask": torch.rand(33, 7, generator=g) > 0.5,
    }
    for i in range(40):
        dtype = list(SPEC_DTYPES)[i % len(SPEC_DTYPES)]
        shape = (i % 5 + 1, 3 + i * 7) if i % 4 else (257 + i, 129)
        if dtype == torch.bool:
            value = torch.rand(shape, generator=g) > 0.5
        elif dtype.is_floating_point:
            value = torch.randn(shape, generator=g).to(dtype)
        else:
            value = torch.randint(-100 if dtype != torch.uint8 else 0, 100, shape, generator=g, dtype=dtype)
        out[f"layers.{i}.{'weight' if i % 2 else 'bias'}"] = value
    out["embed.weight"] = torch.randn(1024, 512, generator=g).to(torch.bfloat16)  # 1 MiB
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    directory = tmp_path_factory.mktemp("safetensors")
    tensors = mixed_tensors()
    path = directory / "model.safetensors"
    write_safetensors(path, tensors, metadata={"format": "pt"}, shuffle_offsets=True)
    return directory, path, tensors


def check(expected, loaded, names):
    assert list(sorted(loaded)) == sorted(names)
    for name in names:
        assert loaded[name].dtype == expected[name].dtype, name
        assert loaded[name].shape == expected[name].shape, name
        assert torch.equal(loaded[name], expected[name]), name


def test_everything_loads_from_a_path_and_a_file_url(written):
    _, path, tensors = written
    check(tensors, safetensors.load(str(path)), list(tensors))
    check(tensors, safetensors.load("file://" + str(path)), list(tensors))


def test_names_and_globs_select_tensors(written):
    _, path, tensors = written
    loaded = safetensors.load(path, names=["layers.*.weight", "scalar.bf16"])
    wanted = [n for n in tensors if n.startswith("layers.") and n.endswith(".weight")] + ["scalar.bf16"]
    check(tensors, loaded, wanted)
    with pytest.raises(KeyError, match="nothing.here"):
        safetensors.load(path, names=["nothing.here*"])


def test_into_fills_preallocated_tensors_in_place(written):
    _, path, tensors = written
    names = ["embed.weight", "scalar.bf16", "layers.3.weight", "mask"]
    into = {n: torch.zeros_like(tensors[n]) for n in names}
    addresses = {n: t.data_ptr() for n, t in into.items()}
    engine = ringfetch.Engine()
    loaded = safetensors.load(path, into=into, engine=engine)
    check(tensors, loaded, names)
    for n in names:
        assert loaded[n] is into[n] and into[n].data_ptr() == addresses[n]
    assert engine.stats()["bytes_copied_user"] == 0


def test_into_with_the_wrong_dtype_or_shape_is_refused(written):
    _, path, tensors = written
    with pytest.raises(ValueError, match="embed.weight"):
        safetensors.load(path, into={"embed.weight": torch.zeros(1024, 512)})
    with pytest.raises(ValueError, match="scalar.f32"):
        safetensors.load(path, into={"scalar.f32": torch.zeros(1)})


def test_a_header_longer_than_the_first_read_still_loads(tmp_path):
    tensors = {f"t{i:05d}.with.a.long.name.to.grow.the.header": torch.tensor([i], dtype=torch.int32)
               for i in range(1500)}
    path = tmp_path / "long_header.safetensors"
    write_safetensors(path, tensors)
    assert struct.unpack("<Q", path.read_bytes()[:8])[0] > safetensors.FIRST_READ_BYTES
    check(tensors, safetensors.load(path, names=["t0149*"]), [n for n in tensors if n.startswith("t0149")])


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:4], "too short"),
    (lambda b: struct.pack("<Q", 10 ** 12) + b[8:], "header length"),
    (lambda b: b[:8] + b"{not json" + b[17:], "not JSON"),
    (lambda b: b[:-1], "beyond the file"),
])
def test_damaged_files_are_clear_errors(tmp_path, damage, message):
    path = tmp_path / "ok.safetensors"
    write_safetensors(path, {"a": torch.arange(10, dtype=torch.float32)})
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=message):
        safetensors.load(bad)


def test_all_tensors_arrive_in_one_coalesced_fetch_over_http(written, http_server):
    directory, path, tensors = written
    url = http_server.publish(path)
    engine = ringfetch.Engine()
    engine.reset_stats()
    check(tensors, safetensors.load(url, engine=engine), list(tensors))
    stats = engine.stats()
    # A HEAD for the size (if the source needs one), one read of the header, one ranged GET for all tensors
    # (well under one 8 MiB part); one request per tensor would be 46.
    assert stats["requests"] <= 3
    assert stats["bytes_requested"] >= sum(t.numel() * t.element_size() for t in tensors.values())


def test_selected_tensors_load_over_s3(written, s3_bucket):
    _, path, tensors = written
    url = s3_bucket.upload(path, "safetensors-test/model.safetensors")
    loaded = safetensors.load(url, names=["layers.1*", "embed.*"], **s3_bucket.store_options)
    check(tensors, loaded, [n for n in tensors if n.startswith("layers.1") or n.startswith("embed.")])


def test_cli_loads_the_tensors_a_glob_selects(written, ringfetch_cli):
    _, path, tensors = written
    done = subprocess.run([ringfetch_cli, "load", "--safetensors", "file://" + str(path), "--tensors",
                           "layers.*.bias", "--tensors", "embed.*", "--json"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    chosen = [n for n in tensors if (n.startswith("layers.") and n.endswith(".bias")) or n.startswith("embed.")]
    assert report["tensors"] == len(chosen)
    assert report["bytes_requested"] == sum(tensors[n].numel() * tensors[n].element_size() for n in chosen)


def test_cli_says_when_no_tensor_matches(written, ringfetch_cli):
    _, path, _ = written
    done = subprocess.run([ringfetch_cli, "load", "--safetensors", "file://" + str(path), "--tensors", "zzz*"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "no tensor matches" in done.stderr


def test_cli_loads_from_s3_with_the_endpoint_flag(written, s3_bucket, ringfetch_cli):
    _, path, tensors = written
    url = s3_bucket.upload(path, "safetensors-test/cli.safetensors")
    env = dict(os.environ, **s3_bucket.credentials)
    env.pop("AWS_ENDPOINT_URL_S3", None)
    done = subprocess.run([ringfetch_cli, "load", "--safetensors", url, "--endpoint-url", s3_bucket.endpoint,
                           "--json"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    nonempty = [t for t in tensors.values() if t.numel()]
    assert report["tensors"] == len(tensors) and report["items"] == len(nonempty)
    assert report["bytes_requested"] == sum(t.numel() * t.element_size() for t in tensors.values())
