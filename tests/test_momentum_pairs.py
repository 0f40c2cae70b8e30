"""Every momentum (EMA) copy of every momentum method follows the tau schedule, at every step of a
real Lightning fit. The copies are found from the module tree, not from the method's own
``momentum_pairs()``: every submodule none of whose parameters is trainable must be either a CaSSLe
/ strategy snapshot ``frozen_*`` (which must not change during the task) or a ``momentum_X`` copy of
a module ``X``, and each of those must be updated as

    m <- tau_k * m + (1 - tau_k) * o,  tau_k = tau_final - (tau_final - tau_base)(cos(pi k / K) + 1) / 2

after optimiser step k (so a momentum projector or head left out of ``momentum_pairs()`` fails).
"""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

from cassle.data import ContinualDataModule
from cassle.distillers import DEFAULT_DISTILLER
from cassle.methods import METHODS, BaseMomentumMethod
from main_continual import build_model
from tests.helpers import tiny_args

MOMENTUM_METHODS = [m for m, cls in METHODS.items() if issubclass(cls, BaseMomentumMethod)]
BASE_TAU, FINAL_TAU, STEPS = 0.9, 1.0, 3


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine threads cost minutes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def non_trainable_modules(model) -> dict[str, torch.nn.Module]:
    """The outermost submodules that have parameters, none of them trainable."""
    found: dict[str, torch.nn.Module] = {}
    for name, module in model.named_modules():
        if not name or any(name.startswith(f + ".") for f in found):
            continue
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            found[name] = module
    return found


def ema_pairs(model):
    """(name, online, momentum) for every momentum copy; the frozen snapshots apart."""
    pairs, frozen = [], {}
    for name, module in non_trainable_modules(model).items():
        parent, _, leaf = name.rpartition(".")
        if leaf.startswith("frozen_"):
            frozen[name] = module
            continue
        assert leaf.startswith("momentum_"), (
            f"{name}: a module with no trainable parameter that is neither a momentum_* copy nor a "
            "frozen_* snapshot; name it so that this test checks how it is updated"
        )
        online_name = ".".join(filter(None, [parent, leaf[len("momentum_") :]]))
        online = model.get_submodule(online_name)
        assert [p.shape for p in online.parameters()] == [p.shape for p in module.parameters()], name
        pairs.append((name, online, module))
    return pairs, frozen


def params(module):
    return [p.detach().clone() for p in module.parameters()]


@pytest.mark.parametrize("method", MOMENTUM_METHODS)
def test_every_momentum_copy_follows_the_tau_schedule(method):
    args = tiny_args(
        method,
        "--num_tasks",
        "2",
        "--task_idx",
        "1",
        "--synthetic_size",
        "96",
        "--base_tau_momentum",
        str(BASE_TAU),
        "--final_tau_momentum",
        str(FINAL_TAU),
        "--momentum_classifier",
        distiller=DEFAULT_DISTILLER[method],
    )
    args.num_classes = 4
    model = build_model(args)
    pairs, frozen = ema_pairs(model)
    names = [n for n, _, _ in pairs]
    assert {"momentum_backbone", "momentum_projector"} <= set(names), names
    assert "momentum_classifier" not in names  # trained (a monitor), not an EMA copy
    frozen_start = {n: params(m) for n, m in frozen.items()}
    momentum_start = {n: params(m) for n, _, m in pairs}
    assert frozen_start, "the CaSSLe model at task 1 has frozen snapshots"

    taus, hook = [], model.on_train_batch_end

    def checked_hook(outputs, batch, batch_idx):
        tau = model.current_tau
        before = [(params(online), params(momentum)) for _, online, momentum in pairs]
        hook(outputs, batch, batch_idx)
        for (name, _, momentum), (o, m) in zip(pairs, before):
            for old_o, old_m, new_m in zip(o, m, momentum.parameters()):
                torch.testing.assert_close(
                    new_m,
                    tau * old_m + (1 - tau) * old_o,
                    rtol=1e-6,
                    atol=1e-7,
                    msg=lambda s, name=name: f"{name} is not the EMA: {s}",
                )
        taus.append(tau)

    model.on_train_batch_end = checked_hook
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(model, datamodule=ContinualDataModule.from_args(args))

    assert trainer.global_step == STEPS  # 48 images of task 1, batch 16
    expected = [FINAL_TAU - (FINAL_TAU - BASE_TAU) * (math.cos(math.pi * k / STEPS) + 1) / 2 for k in range(STEPS)]
    assert taus == pytest.approx(expected, rel=1e-12)
    for name, _, momentum in pairs:  # every copy moved (tau < 1 before the last step)
        assert any(not torch.equal(a, b) for a, b in zip(momentum_start[name], momentum.parameters())), name
    for name, module in frozen.items():
        for old, new in zip(frozen_start[name], module.parameters()):
            assert torch.equal(old, new), f"{name} changed during the task"
