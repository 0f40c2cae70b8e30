"""Two gloo processes on CPU run one step of SimSiam, NNCLR, ReSSL and W-MSE (tiny models): the
multi-process semantics of the original code.

* every loss is local: each process's loss is the single-process loss of its own batch (SimSiam,
  NNCLR's InfoNCE, ReSSL against the shared queue, W-MSE whitening the process's own batch);
* NNCLR's support set takes the normalised z1 and the labels of the whole batch, gathered in rank
  order; ReSSL's queue the momentum keys of the whole batch: after the step both processes hold
  the same queue, equal to the single-process model's after a step on the concatenated batch.

One ``torch.multiprocessing.spawn`` for the four methods; spawning two interpreters that import
Lightning takes tens of seconds on 2 busy cores, hence ``slow`` (like tests/test_ddp.py).
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

pytestmark = pytest.mark.slow

WORLD = 2
METHODS = ("simsiam", "nnclr", "ressl", "wmse")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model(method):
    from main_continual import build_model
    from tests.helpers import tiny_args

    args = tiny_args(method)
    args.num_classes = 4
    torch.manual_seed(0)  # the same initial weights and queues on every process, as DDP's broadcast
    return build_model(args).train()


def _batch(rank):
    from tests.helpers import fake_batch

    return fake_batch(batch_size=8, seed=10 + rank)


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60)
    )
    try:
        res = {}
        for method in METHODS:
            model = _model(method)
            _, views, targets = _batch(rank)
            out = model.ssl_step(views, targets)
            res[method] = {
                "loss": out.loss.detach(),
                **{k: v.clone() for k, v in model.state_dict().items() if k.startswith("queue")},
            }
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp22a")
    ctx = mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 180
    while not ctx.join(timeout=5):  # raises if a child failed
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail("distributed workers did not finish within 180 s")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.mark.parametrize("method", METHODS)
def test_each_process_loss_is_its_own_batch_loss(results, method):
    for rank in range(WORLD):
        model = _model(method)
        _, views, targets = _batch(rank)
        torch.testing.assert_close(results[rank][method]["loss"], model.ssl_step(views, targets).loss.detach())


def _keys(method, model, views):
    with torch.no_grad():
        if method == "nnclr":  # normalised z1
            return F.normalize(model.projector(model.backbone(views[0])), dim=-1)
        return F.normalize(model.momentum_projector(model.momentum_backbone(views[1])), dim=-1)  # ressl


@pytest.mark.parametrize("method", ["nnclr", "ressl"])
def test_queue_takes_the_whole_batch_in_rank_order(results, method):
    model = _model(method)
    batches = [_batch(rank) for rank in range(WORLD)]
    keys = torch.cat([_keys(method, model, views) for _, views, _ in batches])  # (16, D)
    for rank in range(WORLD):
        got = results[rank][method]
        torch.testing.assert_close(got["queue"][:16], keys)
        torch.testing.assert_close(got["queue"][16:], model.queue[16:])
        assert got["queue_ptr"].item() == 16
        if method == "nnclr":
            assert torch.equal(got["queue_y"][:16], torch.cat([t for _, _, t in batches]))
    for key, value in results[0][method].items():  # both processes hold the same queue
        if key != "loss":
            assert torch.equal(value, results[1][method][key]), key
