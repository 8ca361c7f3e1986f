"""Many ranks: torch.distributed with the gloo backend, 2 and 4 processes on this machine. A sharded checkpoint
is saved by 2 ranks and loaded through ringfetch.dcp.StorageReader by 2 and by 4 ranks (resharded), each rank
reading only its shard as the coordinator's global plan assigns it; and with several S3 endpoints configured
and pinning on, each rank's S3 traffic goes to its own endpoint (rank % endpoints)."""
import os
import socket
import subprocess
import sys
import threading

import pytest
import torch
import torch.multiprocessing as mp

from ringfetch._torch_dcp_fix import checkpoint_module

from test_dcp import ringfetch_cli, s3_bucket  # noqa: F401,E402  (fixtures)

checkpoint_module()  # makes torch.distributed._shard importable on torch 1.13 / Python 3.11
from torch.distributed._shard import sharded_tensor  # noqa: E402
from torch.distributed._shard.sharding_spec import ChunkShardingSpec  # noqa: E402

ROWS, COLS = 1024, 96  # per sharded tensor; row chunks of 512 (2 ranks) or 256 (4 ranks)
NAMES = [f"sharded.{i}" for i in range(6)]
DTYPES = [torch.float32, torch.bfloat16, torch.int64, torch.float16, torch.float64, torch.int32]
TIMEOUT_S = 240


def expected_full(i):
    g = torch.Generator().manual_seed(100 + i)
    value = torch.randn(ROWS, COLS, generator=g) * 100
    return value.to(DTYPES[i])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spec(world):
    return ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(world)])


def _init(rank, world, port):
    os.environ["RANK"] = str(rank)  # what the S3 layer pins by
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                         world_size=world)


def _save_worker(rank, world, port, directory):
    from ringfetch import dcp

    _init(rank, world, port)
    DCP = checkpoint_module()
    state = {}
    for i, name in enumerate(NAMES):
        st = sharded_tensor.empty(_spec(world), ROWS, COLS, dtype=DTYPES[i])
        for shard in st.local_shards():
            rows = shard.metadata.shard_offsets[0]
            shard.tensor.copy_(expected_full(i)[rows:rows + shard.tensor.shape[0]])
        state[name] = st
    state["replicated"] = torch.arange(1000, dtype=torch.int64)
    DCP.save_state_dict(state, dcp.StorageWriter("file://" + directory))
    torch.distributed.destroy_process_group()


def _load_worker(rank, world, port, url, options, results, counters, turn):
    import time

    from ringfetch import dcp

    _init(rank, world, port)
    DCP = checkpoint_module()
    state = {}
    for i, name in enumerate(NAMES):
        st = sharded_tensor.empty(_spec(world), ROWS, COLS, dtype=DTYPES[i])
        for shard in st.local_shards():
            shard.tensor.zero_()
        state[name] = st
    state["replicated"] = torch.zeros(1000, dtype=torch.int64)
    traffic = {}

    class TakingTurns(dcp.StorageReader):
        """Ranks run read_data one after another (waiting on a shared counter, outside torch's collectives) so
        that each rank's S3 traffic can be told apart on the proxies' shared counters."""

        def read_data(self, plan, planner):
            if counters is None:
                return super().read_data(plan, planner)
            deadline = time.monotonic() + TIMEOUT_S
            while turn.value != rank:
                assert time.monotonic() < deadline, f"rank {rank} never got its turn"
                time.sleep(0.01)
            before = list(counters)
            try:
                return super().read_data(plan, planner)
            finally:
                traffic["delta"] = [a - b for a, b in zip(list(counters), before)]
                with turn.get_lock():
                    turn.value += 1

    reader = TakingTurns(url, **options)
    DCP.load_state_dict(state, reader)
    shard_bytes = 0
    for i, name in enumerate(NAMES):
        for shard in state[name].local_shards():
            rows = shard.metadata.shard_offsets[0]
            want = expected_full(i)[rows:rows + shard.tensor.shape[0]]
            assert torch.equal(shard.tensor, want), f"rank {rank}: {name} rows {rows}.. differ"
            shard_bytes += shard.tensor.numel() * shard.tensor.element_size()
    assert torch.equal(state["replicated"], torch.arange(1000))
    results[rank] = {
        "in_place_bytes": reader.last_load.in_place_bytes,
        "shard_bytes": shard_bytes,
        "traffic": traffic.get("delta"),
    }
    torch.distributed.destroy_process_group()


def run_ranks(target, world, *args):
    context = mp.get_context("spawn")
    processes = []
    port = free_port()
    for rank in range(world):
        process = context.Process(target=target, args=(rank, world, port) + args, daemon=True)
        process.start()
        processes.append(process)
    for process in processes:
        process.join(TIMEOUT_S)
    alive = [p for p in processes if p.is_alive()]
    for process in alive:
        process.kill()
    assert not alive, f"{len(alive)} rank(s) still running after {TIMEOUT_S} s"
    codes = [p.exitcode for p in processes]
    assert codes == [0] * world, f"rank exit codes {codes}"


@pytest.fixture(scope="module")
def sharded_checkpoint(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("ranks") / "sharded")
    run_ranks(_save_worker, 2, directory)
    assert os.path.exists(os.path.join(directory, ".metadata"))
    return directory


def _load(world, url, options, counters=None):
    context = mp.get_context("spawn")
    turn = context.Value("i", 0)
    with context.Manager() as manager:
        results = manager.dict()
        run_ranks(_load_worker, world, url, options, results, counters, turn)
        return dict(results)


@pytest.mark.parametrize("world", [2, 4])
def test_each_rank_loads_only_its_shard_from_file(sharded_checkpoint, world):
    results = _load(world, "file://" + sharded_checkpoint, {})
    assert sorted(results) == list(range(world))
    for rank, result in results.items():
        # Every byte placed in place belongs to this rank's shards (plus the replicated tensor, which every
        # rank reads), and no rank read the other ranks' rows.
        assert result["in_place_bytes"] == result["shard_bytes"] + 1000 * 8, (rank, result)


class CountingProxy:
    """A TCP relay in front of one S3 endpoint that counts the bytes it returns, into a shared counter slot."""

    def __init__(self, target_host, target_port, counters, slot):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.target = (target_host, target_port)
        self.counters, self.slot = counters, slot
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source, sink, count):
        try:
            while True:
                data = source.recv(1 << 16)
                if not data:
                    break
                sink.sendall(data)
                if count:
                    with self.counters.get_lock():
                        self.counters[self.slot] += len(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stopping = True
        self.server.close()


@pytest.mark.parametrize("world", [2, 4])
def test_each_rank_reads_through_its_pinned_endpoint(sharded_checkpoint, s3_bucket, world):
    prefix = f"ranks/pinned{world}"
    url = s3_bucket.upload_directory(sharded_checkpoint, prefix)
    host, port = s3_bucket.endpoint.split("//", 1)[1].split(":")
    counters = mp.get_context("spawn").Array("q", 2)
    proxies = [CountingProxy(host, int(port), counters, slot) for slot in range(2)]
    try:
        endpoints = [f"http://127.0.0.1:{p.port}" for p in proxies]
        options = dict(s3_bucket.store_options, endpoints=endpoints, pin_by_rank=True)
        options.pop("endpoint_url", None)
        results = _load(world, url, options, counters)
    finally:
        for proxy in proxies:
            proxy.close()
    for rank, result in results.items():
        traffic = result["traffic"]
        pinned = rank % 2
        assert traffic[pinned] > result["shard_bytes"], (rank, traffic)
        assert traffic[1 - pinned] == 0, f"rank {rank} also used endpoint {1 - pinned}: {traffic}"


OMPI_LOAD_SCRIPT = """
import sys
from ringfetch import dcp
from ringfetch._torch_dcp_fix import checkpoint_module
DCP = checkpoint_module()
reader = dcp.StorageReader(sys.argv[1], endpoints=sys.argv[2].split(","), pin_by_rank=True, region="us-east-1")
metadata = reader.read_metadata()
print(len(metadata.state_dict_metadata))
"""


def test_processes_started_by_mpirun_pin_by_ompi_comm_world_rank(sharded_checkpoint, s3_bucket, tmp_path):
    """mpirun sets OMPI_COMM_WORLD_RANK (and no RANK): rank r reads through endpoint r % endpoints. The processes
    run one after another with that variable set as mpirun would (OpenMPI is not installed here)."""
    url = s3_bucket.upload_directory(sharded_checkpoint, "ranks/ompi")
    host, port = s3_bucket.endpoint.split("//", 1)[1].split(":")
    counters = mp.get_context("spawn").Array("q", 3)
    proxies = [CountingProxy(host, int(port), counters, slot) for slot in range(3)]
    script = tmp_path / "ompi_rank.py"
    script.write_text(OMPI_LOAD_SCRIPT)
    try:
        endpoints = ",".join(f"http://127.0.0.1:{p.port}" for p in proxies)
        for rank in range(4):
            env = {k: v for k, v in os.environ.items() if k not in ("RANK", "SLURM_PROCID", "AWS_ENDPOINT_URL_S3")}
            env.update(s3_bucket.credentials, OMPI_COMM_WORLD_RANK=str(rank), OMPI_COMM_WORLD_SIZE="4")
            before = list(counters)
            done = subprocess.run([sys.executable, str(script), url, endpoints], env=env, capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            delta = [a - b for a, b in zip(list(counters), before)]
            assert delta[rank % 3] > 0 and sum(delta) == delta[rank % 3], (rank, delta)
    finally:
        for proxy in proxies:
            proxy.close()
