"""DCP checkpoint loading: ringfetch.dcp.StorageReader against torch's FileSystemReader (file://) and against a
boto3 reader that GETs each item (s3://, what s3torchconnector's sequential reader does), on one ~1 GiB checkpoint
written by the installed torch, full and 30% partial loads.

    /usr/bin/python3 bench/python/dcp_load_bench.py --build build [--size-mib 1024] [--repeat 3]

PYTHONPATH must reach the ringfetch package (build/python). s3rver is started on loopback through the test-peer
launcher of the build tree (build/tests/python/ringfetch_test_servers). Every contender fills the same
preallocated, already-touched destination tensors through torch's own load_state_dict; wall time covers
load_state_dict (metadata read and planning included), CPU is the process's user+system time over the same
interval (engine threads included; s3rver's own CPU is not), and GB means 10^9 bytes of tensor data loaded.
Figures are medians; contenders are interleaved per repetition. Every load is checked with torch.equal.
"""
import argparse
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from ringfetch import dcp
from ringfetch._torch_dcp_fix import checkpoint_module

DCP = checkpoint_module()
MiB = 1024 * 1024
DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.int64, torch.int32, torch.float64, torch.int8]


def build_state(total_mib, count=200, seed=0):
    """``count`` tensors adding up to ~total_mib: every 25th 0-d, every 5th tiny, the rest weighted between
    ~1/100 and 1x of the largest (tens of KiB to ~15 MiB for 1 GiB), dtypes mixed; plus one bytes entry."""
    generator = torch.Generator().manual_seed(seed)
    kinds = ["scalar" if i % 25 == 0 else "tiny" if i % 5 == 0 else 1 + (i * 7919) % 97 for i in range(count)]
    weights = sum(k for k in kinds if isinstance(k, int))
    budget = total_mib * MiB
    state = {}
    for i, kind in enumerate(kinds):
        dtype = DTYPES[i % len(DTYPES)]
        element = torch.empty((), dtype=dtype).element_size()
        if kind == "scalar":
            shape = ()
        elif kind == "tiny":
            shape = (16 + i,)
        else:
            numel = max(1024, int(budget * kind / weights) // element // 1024 * 1024)
            shape = (numel // 1024, 1024)
        if dtype.is_floating_point:
            value = torch.empty(shape, dtype=torch.float32).uniform_(-1, 1, generator=generator).to(dtype)
        else:
            value = torch.randint(-100, 100, shape, dtype=dtype, generator=generator)
        state[f"model.layer{i:03d}"] = value
    state["optimizer.step"] = 1000
    return state


def partial_keys(state, fraction=0.3):
    """Every third-or-so tensor, chosen so that the chosen tensors hold ~fraction of the bytes."""
    keys = [k for k, v in state.items() if isinstance(v, torch.Tensor)]
    total = sum(state[k].numel() * state[k].element_size() for k in keys)
    chosen, taken = [], 0
    for i, key in enumerate(keys):
        if i % 3 == 0 and taken < fraction * total:
            chosen.append(key)
            taken += state[key].numel() * state[key].element_size()
    return chosen + ["optimizer.step"]


def tensor_bytes(state, keys):
    return sum(state[k].numel() * state[k].element_size() for k in keys if isinstance(state[k], torch.Tensor))


def destinations(state, keys):
    out = {}
    for key in keys:
        value = state[key]
        out[key] = torch.zeros_like(value) if isinstance(value, torch.Tensor) else None
    return out


def verify(state, loaded, keys):
    for key in keys:
        if isinstance(state[key], torch.Tensor):
            assert torch.equal(state[key], loaded[key]), f"{key} differs"
            loaded[key].zero_()  # the next run must write it again
        else:
            assert state[key] == loaded[key]


class Boto3Reader(DCP.FileSystemReader):
    """torch's reader logic over S3: one ranged GET per item (sequentially), torch.load of its bytes, copy_ into
    the destination; the per-item access pattern of s3torchconnector's sequential reader."""

    def __init__(self, client, bucket, prefix):
        super().__init__("unused")
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def _get(self, key, offset=None, length=None):
        arguments = {"Bucket": self.bucket, "Key": f"{self.prefix}/{key}"}
        if offset is not None:
            arguments["Range"] = f"bytes={offset}-{offset + length - 1}"
        return self.client.get_object(**arguments)["Body"].read()

    def read_metadata(self):
        import pickle

        return pickle.loads(self._get(".metadata"))

    def read_data(self, plan, planner):
        from torch.distributed._shard._utils import narrow_tensor_by_index

        for req in plan.items:
            info = self.storage_data[req.storage_index]
            data = io.BytesIO(self._get(info.relative_path, info.offset, info.length))
            if req.type == DCP.planner.LoadItemType.BYTE_IO:
                planner.load_bytes(req, data)
                continue
            tensor = narrow_tensor_by_index(torch.load(data, map_location="cpu"), req.storage_offsets, req.lengths)
            target = planner.resolve_tensor(req).detach()
            target.copy_(tensor)
            planner.commit_tensor(req, target)
        future = torch.futures.Future()
        future.set_result(None)
        return future


def timed(load):
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    load()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    return wall, (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)


def start_s3rver(build):
    launcher = os.path.join(build, "tests", "python", "ringfetch_test_servers")
    process = subprocess.Popen([launcher, "--s3rver"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = json.loads(process.stdout.readline())
    if "error" in ready:
        raise RuntimeError(f"s3rver did not start: {ready['error']}")
    return process, ready


def s3_client(peer):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=peer["s3_endpoint"], aws_access_key_id=peer["s3_access_key"],
                        aws_secret_access_key=peer["s3_secret_key"], region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="build", help="the CMake build directory (for the s3rver launcher)")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--layout", choices=["per_item", "per_rank"], default="per_item",
                        help="one file per item (torch 1.13's default) or one per rank (torch 2.x's)")
    parser.add_argument("--threads", type=int, default=2, help="ringfetch engine threads")
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--workdir", default=None, help="where the checkpoint is written (default: a temp dir)")
    args = parser.parse_args()

    import ringfetch

    workdir = args.workdir or tempfile.mkdtemp(prefix="ringfetch-dcp-bench-")
    directory = os.path.join(workdir, f"ckpt_{args.layout}")
    state = build_state(args.size_mib)
    if os.path.exists(directory):
        shutil.rmtree(directory)
    DCP.save_state_dict(state, DCP.FileSystemWriter(directory, single_file_per_rank=args.layout == "per_rank"),
                        no_dist=True)
    plans = {"full": list(state), "partial30": partial_keys(state)}
    engine = ringfetch.Engine(threads=args.threads)

    contenders = {"file": {
        "torch FileSystemReader": lambda: DCP.FileSystemReader(directory),
        "ringfetch StorageReader": lambda: dcp.StorageReader("file://" + directory, engine=engine),
    }}
    s3rver = None
    if not args.skip_s3:
        s3rver, peer = start_s3rver(args.build)
        client = s3_client(peer)
        client.create_bucket(Bucket="bench")
        for name in sorted(os.listdir(directory)):
            client.upload_file(os.path.join(directory, name), "bench", f"dcp/{name}")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", peer["s3_access_key"])
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", peer["s3_secret_key"])
        contenders["s3"] = {
            "boto3 GET per item": lambda: Boto3Reader(client, "bench", "dcp"),
            "ringfetch StorageReader": lambda: dcp.StorageReader(
                "s3://bench/dcp", engine=engine, endpoint_url=peer["s3_endpoint"], region="us-east-1"),
        }

    results = []
    try:
        for source, readers in contenders.items():
            for plan_name, keys in plans.items():
                dest = destinations(state, keys)
                nbytes = tensor_bytes(state, keys)
                runs = {name: [] for name in readers}
                for _ in range(args.repeat):
                    for name, make in readers.items():
                        reader = make()
                        wall, cpu = timed(lambda: DCP.load_state_dict(dest, reader, no_dist=True))
                        verify(state, dest, keys)
                        runs[name].append((wall, cpu))
                for name, samples in runs.items():
                    wall = statistics.median(s[0] for s in samples)
                    cpu = statistics.median(s[1] for s in samples)
                    results.append({"source": source, "plan": plan_name, "reader": name, "bytes": nbytes,
                                    "wall_s": wall, "cpu_s": cpu, "gb_per_s": nbytes / 1e9 / wall,
                                    "cpu_s_per_gb": cpu / (nbytes / 1e9)})
    finally:
        if s3rver is not None:
            s3rver.stdin.close()
            s3rver.wait(timeout=30)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"checkpoint: {len(state)} entries, {tensor_bytes(state, list(state)) / MiB:.0f} MiB of tensors, "
          f"layout {args.layout}; torch {torch.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, engine threads {args.threads}, median of {args.repeat}")
    print(f"{'source':6} {'plan':9} {'reader':26} {'MiB':>7} {'wall s':>8} {'GB/s':>6} {'CPU s/GB':>9} {'speedup':>8}")
    for row in results:
        base = next(r for r in results if r["source"] == row["source"] and r["plan"] == row["plan"])
        print(f"{row['source']:6} {row['plan']:9} {row['reader']:26} {row['bytes'] / MiB:7.0f} {row['wall_s']:8.3f} "
              f"{row['gb_per_s']:6.2f} {row['cpu_s_per_gb']:9.3f} {base['wall_s'] / row['wall_s']:7.2f}x")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"layout": args.layout, "size_mib": args.size_mib, "repeat": args.repeat,
                       "torch": torch.__version__, "results": results}, out, indent=2)


if __name__ == "__main__":
    sys.exit(main())
