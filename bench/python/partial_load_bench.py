#!/usr/bin/env python3
"""Partial checkpoint load from Python: the ringfetch package against one ranged GET per item (http.client for
HTTP, boto3 for S3, sequential and with a pool of connections), and the package's overhead over the C++
`ringfetch load --json` on the same plan. Peers are a private nginx and s3rver on loopback, started through
ringfetch_test_servers. Every contender consumes every item (its bytes are touched once) and reports wall time
and the process CPU time (user + sys, all threads); figures are medians of the repetitions, run interleaved.

    PYTHONPATH=build/python /usr/bin/python3 bench/python/partial_load_bench.py --build build [--size-mib 1024]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import pathlib
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "python"))  # the servers helper of the test suites

import numpy as np  # noqa: E402

import ringfetch  # noqa: E402
import rf_testing  # noqa: E402

KEY = "ckpt/__0_0.distcp"
BUCKET = "bench"
FRACTION = 0.30
SEED = 7
POOL = 8  # connections of the pooled contenders and of ringfetch


def checkpoint_layout(size: int, seed: int):
    """Tensor-like items covering `size` bytes: many small (norms, biases), some medium, a few large."""
    rng = random.Random(seed)
    items, offset = [], 0
    while offset < size:
        r = rng.random()
        length = rng.randint(1 << 10, 64 << 10) if r < 0.5 else (
            rng.randint(256 << 10, 4 << 20) if r < 0.9 else rng.randint(8 << 20, 32 << 20))
        length = min(length, size - offset)
        items.append((offset, length))
        offset += length
    return items


def partial_plan(layout, fraction: float, seed: int):
    """A random selection of items holding about `fraction` of the bytes, in file order."""
    rng = random.Random(seed + 1)
    total = sum(length for _, length in layout)
    chosen, taken = [], 0
    for index in rng.sample(range(len(layout)), len(layout)):
        if taken >= fraction * total:
            break
        chosen.append(layout[index])
        taken += layout[index][1]
    return sorted(chosen)


def write_file(path: pathlib.Path, size: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 64 << 20)
            f.write(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            left -= n


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def touch(buffer) -> int:
    """Looks at every item once (the first byte), so no contender can skip work."""
    return buffer[0] if len(buffer) else 0


# ---- contenders: each returns the number of bytes consumed

def ringfetch_load(store, plan_items):
    plan = ringfetch.Plan()
    for offset, length in plan_items:
        plan.add(KEY, offset, length)
    n = 0
    for view in store.fetch(plan):
        touch(memoryview(view))
        n += len(view)
    return n


def http_sequential(endpoint: str, plan_items):
    url = urllib.parse.urlsplit(endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    n = 0
    for offset, length in plan_items:
        conn.request("GET", "/" + KEY, headers={"Range": f"bytes={offset}-{offset + length - 1}"})
        response = conn.getresponse()
        body = bytearray(length)
        got = response.readinto(body)
        assert response.status == 206 and got == length, (response.status, got)
        touch(body)
        n += length
    conn.close()
    return n


def pooled(plan_items, make_client, get_range):
    local = threading.local()

    def one(item):
        if not hasattr(local, "client"):
            local.client = make_client()
        body = get_range(local.client, *item)
        touch(body)
        return len(body)

    with concurrent.futures.ThreadPoolExecutor(POOL) as pool:
        return sum(pool.map(one, plan_items))


def http_pooled(endpoint: str, plan_items):
    url = urllib.parse.urlsplit(endpoint)

    def get_range(conn, offset, length):
        conn.request("GET", "/" + KEY, headers={"Range": f"bytes={offset}-{offset + length - 1}"})
        response = conn.getresponse()
        body = bytearray(length)
        assert response.status == 206 and response.readinto(body) == length
        return body

    return pooled(plan_items, lambda: http.client.HTTPConnection(url.hostname, url.port), get_range)


def boto3_client(endpoint: str):
    import boto3
    import botocore.config
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=rf_testing.S3_REGION,
        aws_access_key_id=rf_testing.S3_ACCESS_KEY, aws_secret_access_key=rf_testing.S3_SECRET_KEY,
        config=botocore.config.Config(s3={"addressing_style": "path"}, max_pool_connections=POOL))


def boto3_get(client, offset, length):
    body = client.get_object(Bucket=BUCKET, Key=KEY, Range=f"bytes={offset}-{offset + length - 1}")["Body"].read()
    assert len(body) == length
    return body


def boto3_sequential(endpoint: str, plan_items):
    client = boto3_client(endpoint)
    n = 0
    for item in plan_items:
        n += len(boto3_get(client, *item))
    return n


def boto3_pooled(endpoint: str, plan_items):
    client = boto3_client(endpoint)  # boto3 clients are thread-safe
    return pooled(plan_items, lambda: client, boto3_get)


def cli_load(cli: pathlib.Path, root: str, plan_file: pathlib.Path, env, threads: int):
    out = subprocess.run([str(cli), "load", root, "--plan", str(plan_file), "--json", "--threads", str(threads)],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def measure(fn):
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    n = fn()
    return {"wall_s": time.perf_counter() - wall0, "cpu_s": cpu_seconds() - cpu0, "bytes": n}


def median(runs, field):
    return statistics.median(r[field] for r in runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=str(REPO / "build"), help="build directory (servers and CLI)")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="engine threads (package and CLI alike)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    build = pathlib.Path(args.build)
    os.environ.setdefault("RINGFETCH_TEST_BUILD_DIR", str(build))
    rf_testing.SERVERS_BINARY = build / "tests" / "python" / "ringfetch_test_servers"
    cli = build / "ringfetch"

    layout = checkpoint_layout(args.size_mib << 20, SEED)
    plan_items = partial_plan(layout, FRACTION, SEED)
    plan_bytes = sum(length for _, length in plan_items)
    print(f"checkpoint {args.size_mib} MiB, {len(layout)} tensors; plan {len(plan_items)} items, "
          f"{plan_bytes / 2**20:.1f} MiB ({100 * plan_bytes / (args.size_mib << 20):.1f}%)", flush=True)

    with tempfile.TemporaryDirectory(prefix="rf-pybench-", dir=build) as tmp:
        tmp = pathlib.Path(tmp)
        write_file(tmp / "served" / KEY, args.size_mib << 20)
        plan_file = tmp / "plan.json"
        plan_file.write_text(json.dumps({"items": [{"key": KEY, "offset": o, "length": n} for o, n in plan_items]}))
        nginx = rf_testing.ServerProcess("--nginx", str(tmp / "served"))
        s3 = rf_testing.ServerProcess("--s3rver")
        try:
            s3_endpoint = s3.info["s3_endpoint"]
            env = {**os.environ, **rf_testing.s3_environment(s3_endpoint)}
            os.environ.update(rf_testing.s3_environment())
            uploader = boto3_client(s3_endpoint)
            uploader.create_bucket(Bucket=BUCKET)
            uploader.upload_file(str(tmp / "served" / KEY), BUCKET, KEY)
            engine = ringfetch.Engine(threads=args.threads, arena_bytes=256 << 20)
            http_store = ringfetch.Store.open(nginx.info["http"], engine, connections=POOL)
            s3_store = ringfetch.Store.open(f"s3://{BUCKET}", engine, endpoint_url=s3_endpoint,
                                            region=rf_testing.S3_REGION, connections=POOL)
            contenders = {
                ("http", "ringfetch (Python)"): lambda: ringfetch_load(http_store, plan_items),
                ("http", "http.client, one GET per item"): lambda: http_sequential(nginx.info["http"], plan_items),
                ("http", f"http.client, {POOL} threads"): lambda: http_pooled(nginx.info["http"], plan_items),
                ("s3", "ringfetch (Python)"): lambda: ringfetch_load(s3_store, plan_items),
                ("s3", "boto3, one GET per item"): lambda: boto3_sequential(s3_endpoint, plan_items),
                ("s3", f"boto3, {POOL} threads"): lambda: boto3_pooled(s3_endpoint, plan_items),
            }
            cli_roots = {"http": nginx.info["http"], "s3": f"s3://{BUCKET}"}
            results = {key: [] for key in contenders}
            cli_results = {t: [] for t in cli_roots}
            for key in contenders:  # warm-up: page cache, connections, imports
                contenders[key]()
            for rep in range(args.repetitions):
                for key, fn in contenders.items():
                    run = measure(fn)
                    assert run["bytes"] == plan_bytes, (key, run)
                    results[key].append(run)
                for transport, root in cli_roots.items():
                    out = cli_load(cli, root, plan_file, env, args.threads)
                    cli_results[transport].append({"wall_s": out["seconds"], "cpu_s": out["cpu_seconds"]})
                print(f"repetition {rep + 1}/{args.repetitions} done", flush=True)
        finally:
            s3.stop()
            nginx.stop()

    rows = []
    print(f"\n| transport | contender | wall s | GB/s | CPU s |")
    print("|---|---|---|---|---|")
    for (transport, name), runs in results.items():
        wall, cpu = median(runs, "wall_s"), median(runs, "cpu_s")
        rows.append({"transport": transport, "contender": name, "wall_s": wall, "cpu_s": cpu})
        print(f"| {transport} | {name} | {wall:.3f} | {plan_bytes / wall / 1e9:.2f} | {cpu:.3f} |")
    for transport, runs in cli_results.items():
        wall, cpu = median(runs, "wall_s"), median(runs, "cpu_s")
        rows.append({"transport": transport, "contender": "ringfetch load (C++ CLI)", "wall_s": wall, "cpu_s": cpu})
        print(f"| {transport} | ringfetch load (C++ CLI) | {wall:.3f} | {plan_bytes / wall / 1e9:.2f} | {cpu:.3f} |")
    for transport in cli_roots:
        py = median(results[(transport, "ringfetch (Python)")], "wall_s")
        cpp = median(cli_results[transport], "wall_s")
        print(f"{transport}: Python package wall / C++ CLI wall = {py / cpp:.3f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {"size_mib": args.size_mib, "plan_items": len(plan_items), "plan_bytes": plan_bytes,
             "repetitions": args.repetitions, "threads": args.threads, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
