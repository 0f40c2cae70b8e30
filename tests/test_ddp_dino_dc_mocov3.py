"""Two gloo processes (CPU): the multi-process semantics of DINO, DeepClusterV2 and MoCo v3 are the
original's. MoCo v3: keys all-gathered, each query's positive is its own key in the global batch;
DINO: the centre moves to the mean teacher output of the global batch (all-reduced), the same on
every process; DeepClusterV2: k-means over the memories of all processes equals k-means over the
concatenated memory, and every process gets the whole assignment table."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cassle.losses import DINOLoss, mocov3_loss_func
from cassle.methods.kmeans import spherical_kmeans

WORLD, N = 2, 4


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(0)
    bank = torch.nn.functional.normalize(torch.randn(2, WORLD * 6, 3, generator=g, dtype=torch.float64), dim=-1)
    return {
        "q": torch.randn(WORLD * N, 5, generator=g, dtype=torch.float64),
        "k": torch.randn(WORLD * N, 5, generator=g, dtype=torch.float64),
        "student": torch.randn(2 * WORLD * N, 6, generator=g, dtype=torch.float64),
        "teacher": torch.randn(2 * WORLD * N, 6, generator=g, dtype=torch.float64),
        "bank": bank,
        "index": torch.randperm(40, generator=g)[: WORLD * 6],
        "init": [bank[0, [0, 1, 2]].clone(), bank[1, [3, 4]].clone()],
    }


def _views(x, rank):
    """Rows of rank `rank` from a (2 views x WORLD*N) stack: its slice of each view."""
    v = x.chunk(2)
    return torch.cat([vi[rank * N : (rank + 1) * N] for vi in v])


def _worker(rank, port, out_dir, data):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60)
    )
    try:
        local = slice(rank * N, (rank + 1) * N)
        res = {"mocov3": mocov3_loss_func(data["q"][local], data["k"][local], temperature=0.2)}
        dino = DINOLoss(6, 0.04, 0.07, 3, 10).double()
        res["dino_loss"] = dino(_views(data["student"], rank), _views(data["teacher"], rank))
        res["dino_center"] = dino.center.clone()
        m = data["bank"].shape[1] // WORLD
        res["kmeans"] = spherical_kmeans(
            data["bank"][:, rank * m : (rank + 1) * m],
            data["index"][rank * m : (rank + 1) * m],
            [3, 2],
            iters=3,
            init=data["init"] if rank == 0 else [torch.zeros(3, 3), torch.zeros(2, 3)],
        )
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp22")
    data = _data()
    ctx = mp.spawn(_worker, args=(_free_port(), str(out), data), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 180
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail("distributed workers did not finish within 180 s")
    return data, [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_mocov3_keys_of_the_global_batch(results):
    data, res = results
    # each rank's loss is its rows of the single-process loss of the whole batch: the mean over
    # ranks equals it, and rank 0's value is recomputed from the gathered keys by hand
    whole = mocov3_loss_func(data["q"], data["k"], temperature=0.2)
    torch.testing.assert_close(sum(r["mocov3"] for r in res) / WORLD, whole, rtol=0, atol=1e-10)
    q = torch.nn.functional.normalize(data["q"], dim=1)
    k = torch.nn.functional.normalize(data["k"], dim=1)
    for rank in range(WORLD):
        logits = q[rank * N : (rank + 1) * N] @ k.T / 0.2
        labels = torch.arange(N) + rank * N
        expected = torch.nn.functional.cross_entropy(logits, labels) * 0.4
        torch.testing.assert_close(res[rank]["mocov3"], expected, rtol=0, atol=1e-10)


def test_dino_centre_is_the_global_mean(results):
    data, res = results
    single = DINOLoss(6, 0.04, 0.07, 3, 10).double()
    single(data["student"], data["teacher"])  # one process, the concatenated batch
    for r in res:
        torch.testing.assert_close(r["dino_center"], single.center, rtol=0, atol=1e-12)
    assert res[0]["dino_center"].abs().sum() > 0


def test_kmeans_over_all_memories_equals_kmeans_of_the_concatenation(results):
    data, res = results
    table, centroids = spherical_kmeans(data["bank"], data["index"], [3, 2], iters=3, init=data["init"])
    for r in res:  # rank 1's own init is ignored: rank 0's centroids are broadcast
        assert torch.equal(r["kmeans"][0], table)
        for a, b in zip(r["kmeans"][1], centroids):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
