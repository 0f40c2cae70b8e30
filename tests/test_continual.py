"""Invariants of the CaSSLe task loop on a tiny 2-task run, and every method x distiller pair."""

from __future__ import annotations

import itertools
import math

import pytest
import pytorch_lightning as pl
import torch

from cassle.distillers import DISTILLERS, PNR_DISTILLER
from cassle.methods import METHODS
from main_continual import build_model, run_task
from tests.helpers import fake_batch, tiny_args

GENERIC_DISTILLERS = [d for d in DISTILLERS if d != "knowledge" and d not in PNR_DISTILLER.values()]
PROTOTYPE_METHODS = ("swav", "dino", "deepclusterv2")  # the knowledge distiller's methods
PAIRS = (
    [(m, d) for m, d in itertools.product(METHODS, GENERIC_DISTILLERS)]
    + [(m, "knowledge") for m in PROTOTYPE_METHODS]
    + list(PNR_DISTILLER.items())
)


def _task_args(tmp_path, task, method="barlow_twins", distiller="decorrelative", *extra):
    argv = ["--num_tasks", "2", "--task_idx", str(task), "--max_epochs", "1", "--synthetic_size", "48", *extra]
    if task > 0:
        argv += ["--pretrained_model", str(tmp_path / f"task{task - 1}" / "last.ckpt")]
    return tiny_args(method, *argv, distiller=distiller if task > 0 else None, tmp_path=tmp_path / f"task{task}")


class InvariantChecker(pl.Callback):
    """Checks, during task 1, everything the paper's frozen model must satisfy."""

    def __init__(self, expected_frozen: dict[str, torch.Tensor], check_buffers: bool):
        self.expected = expected_frozen
        self.check_buffers = check_buffers
        self.batches = 0
        self.distill_losses = []
        self.predictor_grads = []

    def _assert_frozen_unchanged(self, module):
        state = {
            **{f"frozen_backbone.{k}": v for k, v in module.frozen_backbone.state_dict().items()},
            **{f"frozen_projector.{k}": v for k, v in module.frozen_projector.state_dict().items()},
        }
        params = {n for n, _ in module.named_parameters() if n.startswith("frozen_")}
        for key, expected in self.expected.items():
            if key in params or self.check_buffers:
                assert torch.equal(state[key], expected), f"{key} differs from task 0's checkpoint"

    def on_train_start(self, trainer, module):
        self._assert_frozen_unchanged(module)
        frozen_ids = {id(p) for n, p in module.named_parameters() if n.startswith("frozen_")}
        assert frozen_ids, "no frozen parameters at task 1"
        in_optimizer = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
        assert not frozen_ids & in_optimizer, "a frozen parameter is in the optimizer"
        assert all(not p.requires_grad for n, p in module.named_parameters() if n.startswith("frozen_"))
        predictor_ids = {id(p) for p in module.distiller.predictor.parameters()}
        assert predictor_ids <= in_optimizer, "the predictor is not optimised"
        ssl_step = module.ssl_step

        def recording_step(views, targets):  # records the distillation term of each step
            out = ssl_step(views, targets)
            self.distill_losses.append(out.logs.get("distill_loss"))
            return out

        module.ssl_step = recording_step

    def on_after_backward(self, trainer, module):
        grads = [p.grad for p in module.distiller.predictor.parameters()]
        self.predictor_grads.append(
            all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
        )

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.batches += 1
        self._assert_frozen_unchanged(module)


@pytest.mark.parametrize("bn_eval", [False, True])
def test_frozen_model_is_previous_checkpoint_and_never_changes(tmp_path, bn_eval):
    extra = ("--distill_bn_eval",) if bn_eval else ()
    # Task 0: no distillation even when a distiller is named (nothing to distil yet).
    args0 = _task_args(tmp_path, 0)
    args0.distiller = "decorrelative"
    trainer0 = run_task(args0)
    model0 = trainer0.lightning_module
    assert not model0.distill_active and not hasattr(model0, "frozen_backbone")
    assert "train/distill_loss" not in trainer0.callback_metrics

    ckpt = torch.load(tmp_path / "task0" / "last.ckpt", map_location="cpu", weights_only=False)
    expected = {
        k.replace("backbone.", "frozen_backbone.", 1)
        if k.startswith("backbone.")
        else k.replace("projector.", "frozen_projector.", 1): v
        for k, v in ckpt["state_dict"].items()
        if k.startswith(("backbone.", "projector."))
    }
    checker = InvariantChecker(expected, check_buffers=bn_eval)
    args1 = _task_args(tmp_path, 1, "barlow_twins", "decorrelative", *extra)
    trainer1 = run_task(args1, extra_callbacks=[checker])
    assert checker.batches > 0 and len(checker.distill_losses) == checker.batches
    assert all(v is not None and math.isfinite(float(v)) for v in checker.distill_losses)
    assert checker.predictor_grads and all(checker.predictor_grads)
    # The online backbone did move away from the frozen copy.
    model1 = trainer1.lightning_module
    assert any(not torch.equal(a, b) for a, b in zip(model1.backbone.parameters(), model1.frozen_backbone.parameters()))
    if not bn_eval:  # reference behaviour: the frozen BN runs on batch statistics (drifts stats)
        assert model1.frozen_backbone.training


def test_resume_keeps_end_of_previous_task_frozen_model(tmp_path):
    """Resuming mid-task must restore the snapshot, not rebuild it from the partly trained
    weights (a defect of the reference)."""
    run_task(_task_args(tmp_path, 0))
    args1 = _task_args(tmp_path, 1, "barlow_twins", "decorrelative", "--max_epochs", "2", "--max_steps", "3")
    run_task(args1)  # stops after 3 steps: a partly trained task 1
    mid = tmp_path / "task1" / "last.ckpt"
    frozen_mid = {
        k: v for k, v in torch.load(mid, weights_only=False)["state_dict"].items() if k.startswith("frozen_backbone.")
    }
    task0 = torch.load(tmp_path / "task0" / "last.ckpt", weights_only=False)["state_dict"]
    for k, v in frozen_mid.items():
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(v, task0[k.replace("frozen_", "", 1)])
    args_resume = _task_args(
        tmp_path, 1, "barlow_twins", "decorrelative", "--max_epochs", "2", "--resume_from_checkpoint", str(mid)
    )
    trainer = run_task(args_resume)
    model = trainer.lightning_module
    for name, p in model.frozen_backbone.named_parameters():
        assert torch.equal(p.detach(), task0[f"backbone.{name}"])


@pytest.mark.parametrize("method,distiller", PAIRS)
def test_every_method_distiller_pair_steps(method, distiller):
    args = tiny_args(method, "--num_tasks", "2", "--task_idx", "1", distiller=distiller)
    args.num_classes = 4
    model = build_model(args)
    model.start_new_task()
    model.log = model.log_dict = lambda *a, **k: None
    params = [p for g in model.learnable_params() for p in g["params"]]
    opt = torch.optim.SGD(params, lr=0.01)
    model.train()
    for step in range(2):
        opt.zero_grad()
        loss = model.training_step(fake_batch(seed=step), step)
        assert torch.isfinite(loss)
        loss.backward()
        grads = [p.grad for p in model.distiller.parameters()]
        assert all(g is not None for g in grads), "a distiller parameter got no gradient"
        opt.step()
    for (frozen_p,) in zip(model.frozen_backbone.parameters()):
        assert frozen_p.grad is None


@pytest.mark.parametrize("method", [m for m in METHODS if m not in PROTOTYPE_METHODS])
def test_knowledge_distiller_needs_prototypes(method):
    args = tiny_args(method, "--task_idx", "1", "--num_tasks", "2", distiller="knowledge")
    args.num_classes = 4
    with pytest.raises(ValueError, match="needs a method with prototypes"):
        build_model(args)


@pytest.mark.parametrize("distiller", sorted(PNR_DISTILLER.values()))
def test_pnr_distillers_reject_the_methods_their_code_does_not_cover(distiller):
    other = "swav" if distiller != "pnr_contrastive" else "byol"
    args = tiny_args(other, "--task_idx", "1", "--num_tasks", "2", distiller=distiller)
    args.num_classes = 4
    with pytest.raises(ValueError, match="needs one of the methods"):
        build_model(args)


def test_distill_lamb_below_one_scales_predictor_lr():
    args = tiny_args("byol", "--task_idx", "1", "--num_tasks", "2", "--distill_lamb", "0.5", distiller="predictive")
    args.num_classes = 4
    model = build_model(args)
    groups = {g["name"]: g for g in model.learnable_params()}
    assert groups["distiller"]["lr_factor"] == pytest.approx(1 / 0.5)  # x the scaled --lr
    args.distill_lamb = 2.0
    model = build_model(args)
    assert "lr_factor" not in {g["name"]: g for g in model.learnable_params()}["distiller"]


@pytest.mark.parametrize(
    "method,distiller", [("mocov2plus", "contrastive"), ("swav", "knowledge"), ("byol", "predictive")]
)
def test_carry_over_between_tasks(method, distiller):
    """All weights carry over (momentum networks, MoCo queue, classifier, predictor); the SwAV
    queue and the tau schedule start afresh (REFERENCE section 3)."""
    from cassle.utils.checkpoint import load_pretrained

    args0 = tiny_args(method, "--num_tasks", "2", "--task_idx", "1", distiller=distiller)
    args0.num_classes = 4
    previous = build_model(args0)
    with torch.no_grad():  # make every tensor distinctive
        for t in itertools.chain(previous.parameters(), previous.buffers()):
            if t.is_floating_point():
                t.copy_(torch.randn_like(t))
    previous.current_tau = 0.999
    ckpt = {"state_dict": previous.state_dict(), "hyper_parameters": vars(args0)}
    model = build_model(args0)
    load_pretrained(model, ckpt, "previous.ckpt")
    model.start_new_task()
    state = model.state_dict()
    for key, value in ckpt["state_dict"].items():
        if key.startswith("frozen_"):
            source = key.replace("frozen_", "", 1)
            assert torch.equal(state[key], ckpt["state_dict"][source]), key
        elif method == "swav" and key == "queue":
            assert not state[key].any(), "the SwAV queue must be reset at every task"
        else:
            assert torch.equal(state[key], value), f"{key} was not carried over"
    if hasattr(model, "current_tau"):
        assert model.current_tau == args0.base_tau_momentum


@pytest.mark.parametrize("data_device", ["cpu", "cpu_batched"])
def test_online_eval_stream_covers_all_classes(tmp_path, data_device):
    """--online_eval_batch_size: the online classifier sees labelled images of every class while
    the SSL batches hold only the task's classes (the reference's CIFAR protocol)."""
    seen = {"ssl": set(), "online_eval": set(), "task": None, "first": []}

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == 0:
                seen["first"].append(batch["online_eval"][1].tolist())
            seen["task"] = set(trainer.datamodule.task_classes)
            seen["ssl"] |= set(batch["ssl"][2].tolist())
            x, y = batch["online_eval"]
            assert x.dtype == torch.float32 and x.ndim == 4 and len(y) == 8
            seen["online_eval"] |= set(y.tolist())

    args = tiny_args(
        "byol",
        "--num_tasks",
        "2",
        "--task_idx",
        "1",
        "--online_eval_batch_size",
        "8",
        "--data_device",
        data_device,
        "--synthetic_size",
        "96",
        "--max_epochs",
        "2",
        tmp_path=tmp_path,
    )
    run_task(args, extra_callbacks=[Spy()])
    assert seen["first"][0] != seen["first"][1], "the online-eval stream is not reshuffled"

    assert seen["ssl"] <= seen["task"]
    assert seen["online_eval"] - seen["task"], "online eval saw only the task's classes"
