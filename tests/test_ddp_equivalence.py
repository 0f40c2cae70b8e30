"""Two processes equal one: a training step run by 2 gloo processes under torch's
DistributedDataParallel, each on its half of a global batch, gives the gradients (and, for MoCo,
the queue) of the single-process step on the whole batch, for a method of every family (contrastive:
SimCLR, MoCoV2+; momentum / predictive: BYOL + CaSSLe; decorrelative: Barlow Twins + CaSSLe;
clustering: SwAV), wherever the reference's semantics make them equal:

* BatchNorm's batch statistics are per process in the reference (SyncBatchNorm needs GPUs), so the
  "equal" cases run BatchNorm on its running statistics (eval mode): what is left is the losses'
  cross-process semantics, which is what is tested;
* per-sample losses (BYOL, MoCo's InfoNCE against the gathered keys and the queue, SwAV with its
  Sinkhorn-Knopp summed over processes, the predictive distiller) equal the global batch with the
  reference's default ``--distributed_loss local``; batch-coupled losses (SimCLR's negatives,
  Barlow Twins' correlation, the decorrelative distiller) need ``--distributed_loss global``;
* the documented difference instead: with ``--distributed_loss local`` SimCLR and VICReg see
  only each process's batch, so the 2-process gradient is the mean of the single-process gradients
  of the two halves (BatchNorm in training mode, as in the reference), and not the global one.

One ``torch.multiprocessing.spawn`` runs every case; the children save their gradients to tmp_path.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from tests.helpers import fake_batch

WORLD, BATCH = 2, 16
TOL = dict(rtol=1e-4, atol=1e-5)  # float32, summed in another order
# name -> (method, flags, distiller, task, BatchNorm on running stats, expected: "global" or "halves")
CASES = {
    "simclr_global": ("simclr", ["--distributed_loss", "global"], None, 0, True, "global"),
    "simclr_local": ("simclr", [], None, 0, False, "halves"),
    "mocov2plus": ("mocov2plus", [], None, 0, True, "global"),
    "byol_cassle": ("byol", [], "predictive", 1, True, "global"),
    "barlow_cassle_global": ("barlow_twins", ["--distributed_loss", "global"], "decorrelative", 1, True, "global"),
    "vicreg_local": ("vicreg", [], None, 0, False, "halves"),
    "swav": ("swav", [], None, 0, True, "global"),
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine threads cost minutes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Step(torch.nn.Module):
    """The SSL step as a module's forward, so that DDP wraps it as it wraps a Lightning module."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, views, targets):
        return self.model.ssl_step(views, targets).loss


def build(name):
    from main_continual import build_model
    from tests.helpers import tiny_args

    method, flags, distiller, task, bn_eval, _ = CASES[name]
    args = tiny_args(method, "--num_tasks", "2", "--task_idx", str(task), *flags, distiller=distiller)
    args.num_classes = 4
    torch.manual_seed(0)
    model = build_model(args).train()
    with torch.no_grad():  # away from the frozen snapshot, so the distillers have a gradient
        for p in model.backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    if bn_eval:
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
    return model


def batch(rows=slice(None)):
    _, views, targets = fake_batch(batch_size=BATCH, seed=7)
    return [v[rows] for v in views], targets[rows]


def grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def single_step(name, rows=slice(None)):
    model = build(name)
    Step(model)(*batch(rows)).backward()
    return model, grads(model)


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=120))
    try:
        half = BATCH // WORLD
        results = {}
        for name in CASES:
            model = build(name)
            ddp = DistributedDataParallel(Step(model), find_unused_parameters=True)
            ddp(*batch(slice(rank * half, (rank + 1) * half))).backward()
            results[name] = {"grads": grads(model), "queue": model.queue.clone() if name == "mocov2plus" else None}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_step")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def assert_grads_close(got, expected, what):
    assert got.keys() == expected.keys(), what
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], **TOL, msg=lambda s, key=key: f"{what}, {key}: {s}")


@pytest.mark.parametrize("name", list(CASES))
def test_two_process_step_equals_the_single_process_step(name, ddp_results):
    expectation = CASES[name][-1]
    for rank in range(WORLD):  # DDP leaves the same averaged gradient on every process
        assert_grads_close(ddp_results[rank][name]["grads"], ddp_results[0][name]["grads"], f"rank {rank}")
    got = ddp_results[0][name]["grads"]
    model, whole = single_step(name)
    if expectation == "global":
        assert_grads_close(got, whole, "2 processes vs the global batch")
        if name == "mocov2plus":  # both processes' keys entered the queue, in the global order
            torch.testing.assert_close(ddp_results[0][name]["queue"], model.queue, **TOL)
            torch.testing.assert_close(ddp_results[1][name]["queue"], model.queue, **TOL)
    else:  # each process's own batch: the mean of the two halves' gradients, not the global one
        half = BATCH // WORLD
        halves = [single_step(name, slice(r * half, (r + 1) * half))[1] for r in range(WORLD)]
        assert_grads_close(got, {k: (halves[0][k] + halves[1][k]) / 2 for k in halves[0]}, "mean of halves")
        diff = max((got[k] - whole[k]).abs().max().item() for k in whole)
        assert diff > 1e-3, "local semantics should differ from the global batch's"
