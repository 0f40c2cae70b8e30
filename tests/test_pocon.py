"""POCON (cassle/strategies/pocon.py): the two phases of a task on CPU (tiny backbone).

Task 0: the expert learns with the SSL loss while the main network stays as it was; then the main
network learns from the frozen expert. Task 1: the expert and F_(t-1) start as task 0's main
network, g_exp is fresh, g_ret carries over. A step is the equation written out from the modules.
Sources: alviur/pocon_wacv2024 src/approach/copyOPscratch.py (task loop), sslModels.py (losses).
"""

from __future__ import annotations

import copy

import pytest
import pytorch_lightning as pl
import torch

from cassle.continual.progress import PROGRESS_KEY, task_complete
from cassle.losses import barlow_loss_func
from cassle.strategies import pocon as pocon_module
from main_continual import build_model, run_task
from tests.helpers import fake_batch, tiny_args

E, M = 2, 3  # expert epochs, max epochs


def _args(folder, task, *extra, method="barlow_twins"):
    return tiny_args(
        method,
        "--num_tasks",
        "2",
        "--task_idx",
        str(task),
        "--max_epochs",
        str(M),
        "--pocon",
        "--pocon_expert_epochs",
        str(E),
        "--synthetic_size",
        "48",
        "--limit_val_batches",
        "0",
        "--deterministic",
        *extra,
        tmp_path=folder,
    )


def _sub(model, prefix):
    """The part's state, its keys without the prefix (so parts of one architecture compare)."""
    return {k[len(prefix) :]: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(prefix)}


def _part(state, prefix):
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _same(a, b):
    assert a.keys() == b.keys() and a
    return all(torch.equal(a[k], b[k]) for k in a)


class Snapshots(pl.Callback):
    """State of each part at fit start and at every epoch end."""

    PARTS = ("backbone.", "projector.", "pocon.expert.", "pocon.adapt_proj.", "pocon.retro_proj.", "frozen_backbone.")

    def __init__(self):
        self.states = []

    def _take(self, pl_module):
        self.states.append({p: _sub(pl_module, p) for p in self.PARTS})

    def on_train_start(self, trainer, pl_module):
        self._take(pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        self._take(pl_module)


def test_progress_key_is_the_one_pocon_reads():
    assert pocon_module.PROGRESS_RECORD == PROGRESS_KEY


def test_task0_expert_phase_leaves_the_main_network_then_the_merge_leaves_the_expert(tmp_path):
    snap = Snapshots()
    run_task(_args(tmp_path / "t0", 0), extra_callbacks=[snap])
    start, *ends = snap.states
    assert len(ends) == M
    assert not _same(start["pocon.expert."], start["backbone."]), "task 0: the expert has its own random start"
    for s in ends[:E]:  # expert phase
        assert _same(s["backbone."], start["backbone."]), "the expert phase moved the main network"
        assert _same(s["pocon.adapt_proj."], start["pocon.adapt_proj."])
    assert not _same(ends[E - 1]["pocon.expert."], start["pocon.expert."])
    assert not _same(ends[E - 1]["projector."], start["projector."]), "the SSL projector learns with the expert"
    for s in ends[E:]:  # merge phase
        assert _same(s["pocon.expert."], ends[E - 1]["pocon.expert."]), "the merge moved the expert (or its BN stats)"
        assert _same(s["projector."], ends[E - 1]["projector."])
        assert _same(s["pocon.retro_proj."], start["pocon.retro_proj."]), "task 0 has no retrospection"
    assert not _same(ends[-1]["backbone."], start["backbone."])
    assert not _same(ends[-1]["pocon.adapt_proj."], start["pocon.adapt_proj."])
    ckpt = torch.load(tmp_path / "t0" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["pocon"] == {"expert_epochs": E, "max_epochs": M, "epochs_done": M, "next_phase": "merge"}
    assert task_complete(str(tmp_path / "t0" / "last.ckpt"), 0, M, None)[0]


def test_task1_starts_the_expert_and_the_old_network_from_task0_and_keeps_g_ret(tmp_path):
    run_task(_args(tmp_path / "t0", 0))
    t0 = torch.load(tmp_path / "t0" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    snap = Snapshots()
    pre = ("--pretrained_model", str(tmp_path / "t0" / "last.ckpt"))
    run_task(_args(tmp_path / "t1", 1, *pre), extra_callbacks=[snap])
    start, *ends = snap.states
    main0 = _part(t0, "backbone.")
    for part in ("pocon.expert.", "frozen_backbone.", "backbone."):
        assert _same(start[part], main0), part
    retro0 = _part(t0, "pocon.retro_proj.")
    assert _same(start["pocon.retro_proj."], retro0), "g_ret carries over from task to task"
    adapt0 = _part(t0, "pocon.adapt_proj.")
    assert not _same(start["pocon.adapt_proj."], adapt0), "g_exp is fresh for every merge phase"
    assert _same(ends[E - 1]["backbone."], start["backbone."])
    assert not _same(ends[-1]["pocon.retro_proj."], retro0), "task 1's merge trains g_ret"
    for s in ends:
        assert _same(s["frozen_backbone."], start["frozen_backbone."]), "F_(t-1) changed"


def test_merge_step_is_the_equation_and_expert_step_is_the_ssl_loss_of_the_expert():
    torch.manual_seed(0)
    model = build_model(_args(None, 1))
    model.start_new_task()
    with torch.no_grad():  # a trained-looking expert and old network, distinct from the main one
        for p in model.pocon["expert"].parameters():
            p.add_(0.05 * torch.randn_like(p))
        for p in model.frozen_backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.train()
    _, views, targets = fake_batch()
    hp = model.hparams
    # expert phase (current_epoch 0 < E): Barlow Twins of the expert through the method's projector
    with model._expert_as_backbone():
        out = model.ssl_step(views, targets)
    ref = copy.deepcopy(model)
    z = [ref.projector(ref.pocon["expert"](v)) for v in views]
    want = barlow_loss_func(z[0], z[1], lamb=hp.lamb, scale_loss=hp.scale_loss)
    torch.testing.assert_close(out.loss, want)
    # merge phase
    model.pocon_expert_epochs = 0
    ref = copy.deepcopy(model)
    out = model.ssl_step(views, targets)
    ref.pocon["expert"].eval()
    ref.frozen_backbone.eval()

    def n(x):
        return x / x.norm(dim=1, keepdim=True)

    adapt = retro = 0.0
    for v in views:
        f = ref.backbone(v)
        adapt = adapt + (n(ref.pocon["adapt_proj"](f)) - n(ref.pocon["expert"](v))).pow(2).sum().sqrt()
        retro = retro + (n(ref.pocon["retro_proj"](f)) - n(ref.frozen_backbone(v))).pow(2).sum().sqrt()
    torch.testing.assert_close(out.loss, hp.pocon_adapt_lamb * adapt + hp.pocon_retro_lamb * retro)
    torch.testing.assert_close(out.logs["pocon_adapt"], adapt.detach())
    out.loss.backward()
    assert all(p.grad is None for p in model.pocon["expert"].parameters())
    assert all(p.grad is None for p in model.projector.parameters())
    assert all(p.grad is not None for p in model.backbone.parameters())
    assert not model.pocon["expert"].training and not model.frozen_backbone.training


@pytest.mark.parametrize(
    "extra,message",
    [
        (("--distiller", "decorrelative"), "replaces"),
        (("--cl_strategy", "ewc"), "replaces"),
        (("--pocon_expert_epochs", "3"), "pocon_expert_epochs"),
        (("--pocon_expert_epochs", "0"), "pocon_expert_epochs"),
    ],
)
def test_bad_pocon_input_is_a_clear_error_before_anything_is_written(extra, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        run_task(_args(tmp_path / "t0", 0, *extra))
    assert not (tmp_path / "t0").exists()


def test_momentum_methods_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not supported"):
        run_task(_args(tmp_path / "t0", 0, method="byol"))


def test_task1_needs_the_previous_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="pretrained_model"):
        run_task(_args(tmp_path / "t1", 1))


def test_default_expert_epochs_are_two_thirds_of_the_task():
    args = tiny_args("barlow_twins", "--pocon", "--max_epochs", "750")
    pocon_module.check_pocon_args(args)
    assert args.pocon_expert_epochs == 500


@pytest.mark.parametrize("method", ["vicreg", "simclr"])
def test_other_supported_methods_run_both_phases(method, tmp_path):
    run_task(tiny_args(method, "--pocon", "--max_epochs", "2", "--synthetic_size", "32", tmp_path=tmp_path))
    ckpt = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["pocon"]["expert_epochs"] == 1 and ckpt["pocon"]["epochs_done"] == 2
