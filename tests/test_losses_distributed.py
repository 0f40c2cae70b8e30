"""Two real gloo processes on CPU, global-batch semantics (the losses' opt-in
``global_batch=True``, ``--distributed_loss global``): distributed losses equal the
single-process loss on the concatenated batch, and the local gradients are the matching slice of
the global gradient. The reference's local semantics (the default) are pinned in
tests/test_conformance.py.

Gradient convention (see cassle/utils/distributed.py): every process computes the same global
loss, so the gradient a process gets for its local input is the sum over the W copies of the
loss, ``W * dL/dx_local``; DDP's average over W processes then gives exactly ``dL/dtheta``.

One ``torch.multiprocessing.spawn`` runs every check (spawning is slow); the children save
their results to ``tmp_path`` and the parent compares them with the single-process values.
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

from cassle.losses import (
    barlow_loss_func,
    decorrelative_distill_loss,
    simclr_loss_func,
    sinkhorn_knopp,
    supcon_pos_mask,
    vicreg_loss_func,
)
from cassle.utils import distributed as du

WORLD = 2
N_LOCAL, D, K = 4, 5, 3
TOL = dict(rtol=1e-9, atol=1e-11)  # float64 throughout: only summation order differs
TWO_VIEW = {  # name -> loss(z1, z2); each gets its loss value and gradients checked
    "barlow": lambda z1, z2: barlow_loss_func(z1, z2, lamb=0.3, scale_loss=1.0, global_batch=True),
    "vicreg": lambda z1, z2: vicreg_loss_func(z1, z2, 1.0, 2.0, 3.0, global_batch=True),
    "simclr": lambda z1, z2: simclr_loss_func(z1, z2, temperature=0.2, global_batch=True),
    # z_bar (row-wise functions of the inputs, so slices stay aligned) is detached inside
    "decorrelative": lambda z1, z2: decorrelative_distill_loss(z1, z2, 2 * z2 + 1, z1.tanh(), global_batch=True),
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    n = WORLD * N_LOCAL
    return {
        "z1": torch.randn(n, D, generator=g, dtype=torch.float64),
        "z2": torch.randn(n, D, generator=g, dtype=torch.float64) * 0.7 + 0.3,
        "labels": torch.tensor([0, 1, 2, 0, 1, 1, 3, 0]),  # repeats across the two ranks
        "scores": torch.nn.functional.normalize(torch.randn(n, K, generator=g, dtype=torch.float64), dim=1),
    }


def _supcon(z1, z2, labels):
    # the method's usage: gather the local labels, build the global mask
    return simclr_loss_func(
        z1, z2, temperature=0.2, extra_pos_mask=supcon_pos_mask(du.gather(labels)), global_batch=True
    )


def _loss_and_grads(fn, z1, z2, *extra):
    z1, z2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    loss = fn(z1, z2, *extra)
    loss.backward()
    return loss.detach(), z1.grad, z2.grad


def _worker(rank: int, port: int, out_dir: str, data: dict[str, torch.Tensor]) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60)
    )
    try:
        local = slice(rank * N_LOCAL, (rank + 1) * N_LOCAL)
        z1, z2 = data["z1"][local], data["z2"][local]
        res = {name: _loss_and_grads(fn, z1, z2) for name, fn in TWO_VIEW.items()}
        res["supcon"] = _loss_and_grads(_supcon, z1, z2, data["labels"][local])
        try:  # a mask from un-gathered labels has the local shape: must be rejected
            simclr_loss_func(z1, z2, 0.2, supcon_pos_mask(data["labels"][local]), global_batch=True)
            res["ungathered_mask_error"] = ""
        except ValueError as e:
            res["ungathered_mask_error"] = str(e)
        res["sinkhorn"] = sinkhorn_knopp(data["scores"][local], epsilon=0.3, num_iters=3)
        res["gather"] = du.gather(z1)
        res["rank_world"] = (du.rank(), du.world_size(), du.is_distributed())
        res["mean"] = du.all_reduce_mean(torch.tensor([float(rank)], dtype=torch.float64))
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def dist_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    data = _data()
    ctx = mp.spawn(_worker, args=(_free_port(), str(out), data), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 180
    while not ctx.join(timeout=5):  # raises if a child failed
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail("distributed workers did not finish within 180 s")
    return data, [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_helpers_outside_a_process_group_are_identity():
    x = torch.randn(3, 2)
    assert du.world_size() == 1 and du.rank() == 0 and not du.is_distributed()
    assert du.gather(x) is x and du.all_reduce_sum(x) is x and du.all_reduce_mean(x) is x


def test_helpers_in_process_group(dist_results):
    data, res = dist_results
    for r in range(WORLD):
        assert res[r]["rank_world"] == (r, WORLD, True)
        torch.testing.assert_close(res[r]["gather"], data["z1"])  # rank order
        torch.testing.assert_close(res[r]["mean"], torch.tensor([0.5], dtype=torch.float64))
        assert "extra_pos_mask must be a (16, 16)" in res[r]["ungathered_mask_error"]


@pytest.mark.parametrize("name", [*TWO_VIEW, "supcon"])
def test_distributed_loss_and_gradients_equal_single_process(dist_results, name):
    data, res = dist_results
    if name == "supcon":
        ref_loss, ref_g1, ref_g2 = _loss_and_grads(_supcon, data["z1"], data["z2"], data["labels"])
    else:
        ref_loss, ref_g1, ref_g2 = _loss_and_grads(TWO_VIEW[name], data["z1"], data["z2"])
    assert ref_g1.abs().sum() > 0
    for r in range(WORLD):
        loss, g1, g2 = res[r][name]
        local = slice(r * N_LOCAL, (r + 1) * N_LOCAL)
        torch.testing.assert_close(loss, ref_loss, **TOL)
        # local gradient = W * slice of the global gradient (DDP divides by W; module docstring)
        torch.testing.assert_close(g1, WORLD * ref_g1[local], **TOL)
        torch.testing.assert_close(g2, WORLD * ref_g2[local], **TOL)


def test_distributed_sinkhorn_equals_single_process_rows(dist_results):
    data, res = dist_results
    ref = sinkhorn_knopp(data["scores"], epsilon=0.3, num_iters=3)
    got = torch.cat([res[r]["sinkhorn"] for r in range(WORLD)])
    torch.testing.assert_close(got, ref, **TOL)
    # and not the per-process codes: the global sums matter
    assert not torch.allclose(res[0]["sinkhorn"], sinkhorn_knopp(data["scores"][:N_LOCAL], 0.3, 3))
