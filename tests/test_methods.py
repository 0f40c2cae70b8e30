"""Every method in METHODS trains; the online classifier never touches the backbone; momentum
and prototype-freezing behave as specified."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

from cassle.data import ContinualDataModule
from cassle.methods import METHODS, StepOutput
from cassle.methods.momentum import ema_update, momentum_tau
from main_continual import build_model
from tests.helpers import fake_batch, tiny_args


def make(method, *extra, distiller=None):
    args = tiny_args(method, *extra, distiller=distiller)
    args.num_classes = 4
    return args, build_model(args)


def fit(model, args, max_steps=None, max_epochs=1):
    dm = ContinualDataModule.from_args(args)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        max_steps=max_steps or -1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(model, datamodule=dm)
    return trainer


@pytest.mark.parametrize("method", list(METHODS))
def test_method_trains_a_few_steps(method):
    args, model = make(method)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    losses = []
    model.ssl_step_orig = model.ssl_step

    def recording_step(views, targets):
        out = model.ssl_step_orig(views, targets)
        losses.append(out.loss.item())
        return out

    model.ssl_step = recording_step
    fit(model, args, max_steps=3)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    moved = [
        k for k, v in model.backbone.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])
    ]
    assert moved, "no backbone parameter changed"


@pytest.mark.parametrize("method", list(METHODS))
def test_online_classifier_gradient_never_reaches_backbone(method):
    _, model = make(method)
    model.train()

    def classifier_only(views, targets):  # the SSL part contributes no gradient
        feats = [model.backbone(v) for v in views]
        return StepOutput(loss=torch.zeros(()), feats=feats, z=feats)

    model.ssl_step = classifier_only
    model.log = model.log_dict = lambda *a, **k: None
    loss = model.training_step(fake_batch(), 0)
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.backbone.parameters())
    assert model.classifier.weight.grad is not None and model.classifier.weight.grad.abs().sum() > 0


def test_momentum_tau_schedule_values():
    assert momentum_tau(0, 100, 0.99, 1.0) == pytest.approx(0.99)
    assert momentum_tau(100, 100, 0.99, 1.0) == pytest.approx(1.0)
    assert momentum_tau(50, 100, 0.99, 1.0) == pytest.approx(0.995)
    expected = 1.0 - 0.01 * (math.cos(math.pi * 25 / 100) + 1) / 2
    assert momentum_tau(25, 100, 0.99, 1.0) == pytest.approx(expected)


def test_ema_update_formula():
    online, momentum = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    expected = [0.9 * m.detach() + 0.1 * o.detach() for o, m in zip(online.parameters(), momentum.parameters())]
    ema_update(online, momentum, 0.9)
    for e, m in zip(expected, momentum.parameters()):
        assert torch.allclose(e, m)


@pytest.mark.parametrize("method", ["byol", "mocov2plus"])
def test_momentum_networks_follow_tau_schedule(method):
    args, model = make(method, "--base_tau_momentum", "0.9", "--final_tau_momentum", "1.0")
    taus_used = []
    orig = model.on_train_batch_end

    def spy(outputs, batch, batch_idx):
        # Reconstruct the EMA with the tau in force and compare after the hook ran.
        online = [p.detach().clone() for p in model.backbone.parameters()]
        momentum = [p.detach().clone() for p in model.momentum_backbone.parameters()]
        tau = model.current_tau
        orig(outputs, batch, batch_idx)
        for o, m, new in zip(online, momentum, model.momentum_backbone.parameters()):
            assert torch.allclose(new, tau * m + (1 - tau) * o, atol=1e-6)
        taus_used.append(tau)

    model.on_train_batch_end = spy
    fit(model, args, max_steps=4)
    expected = [momentum_tau(k, 4, 0.9, 1.0) for k in range(4)]
    assert taus_used == pytest.approx(expected)
    assert model.current_tau == pytest.approx(1.0)
    assert not any(p.requires_grad for p in model.momentum_backbone.parameters())


def test_swav_prototypes_frozen_for_configured_epochs():
    args, model = make("swav", "--freeze_prototypes_epochs", "1", "--synthetic_size", "32")

    def snapshot(module):  # gain g and direction v of the weight-normalised prototypes
        return {k: v.detach().clone() for k, v in module.prototypes.state_dict().items()}

    start = snapshot(model)
    assert set(start) == {"weight_g", "weight_v"}
    after_epoch = []

    class Spy(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            after_epoch.append(snapshot(pl_module))

    dm = ContinualDataModule.from_args(args)
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[Spy()],
    )
    trainer.fit(model, datamodule=dm)
    for k in start:
        assert torch.equal(after_epoch[0][k], start[k]), f"prototypes.{k} moved during the frozen epoch"
        assert not torch.equal(after_epoch[1][k], start[k]), f"prototypes.{k} never trained after the freeze"


def test_mocov2plus_queue_wraps_and_keeps_newest_keys():
    _, model = make("mocov2plus")
    size = model.queue.shape[-1]
    keys = torch.nn.functional.normalize(torch.randn(2, size - 2, 16), dim=-1)
    model._enqueue(keys)
    more = torch.nn.functional.normalize(torch.randn(2, 5, 16), dim=-1)
    model._enqueue(more)
    assert int(model.queue_ptr) == 3
    assert torch.allclose(model.queue[:, :, size - 2 :], more[:, :2].permute(0, 2, 1))
    assert torch.allclose(model.queue[:, :, :3], more[:, 2:].permute(0, 2, 1))


def test_unknown_method_and_optimizer_errors():
    from cassle.utils.args import parse_args

    with pytest.raises(SystemExit) as err:
        parse_args(["--method", "dinov2"])
    assert "unknown method 'dinov2'" in str(err.value.code)
    assert "simclr, mocov2plus, byol, barlow_twins, swav, vicreg" in str(err.value.code)
    args = tiny_args("byol", "--optimizer", "rmsprop")
    args.num_classes = 4
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'.*sgd, lars, adam, adamw"):
        build_model(args)
    args = tiny_args("byol", "--scheduler", "linear")
    args.num_classes = 4
    with pytest.raises(ValueError, match="unknown scheduler 'linear'"):
        build_model(args)


def test_unknown_flag_is_an_error():
    from cassle.utils.args import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--method", "byol", "--not_a_flag", "1"])


def test_online_knn_monitor_logs_accuracy():
    args, model = make("barlow_twins", "--knn_eval", "--knn_k", "5")
    dm = ContinualDataModule.from_args(args)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=dm)
    for distance in ("cosine", "euclidean"):
        acc = float(trainer.callback_metrics[f"val/knn_acc_{distance}"])
        assert 0.0 <= acc <= 100.0


def test_channels_last_inputs_reach_the_backbone():
    _, model = make("barlow_twins")
    model.channels_last = True
    model = model.to(memory_format=torch.channels_last)
    formats = []
    model.backbone.register_forward_pre_hook(
        lambda m, inp: formats.append(inp[0].is_contiguous(memory_format=torch.channels_last))
    )
    model.log = model.log_dict = lambda *a, **k: None
    model.training_step(fake_batch(), 0)
    assert formats and all(formats)


def test_exclude_bias_n_norm_groups_in_the_optimizer():
    args, model = make("barlow_twins", "--optimizer", "lars", "--exclude_bias_n_norm", "--weight_decay", "1e-4")
    trainer = fit(model, args, max_steps=1)
    groups = trainer.optimizers[0].param_groups
    for g in groups:
        for p in g["params"]:
            excluded = g.get("exclude_from_lars", False)
            assert excluded == (p.ndim <= 1), g["name"]
            if excluded:
                assert g["weight_decay"] == 0.0
    names = [g["name"] for g in groups]
    assert len(names) == len(set(names)), "duplicate group names break LearningRateMonitor"
    decayed = {g["name"]: g["weight_decay"] for g in groups if not g.get("exclude_from_lars")}
    assert decayed["backbone"] == 1e-4 and decayed["classifier"] == 0.0
