"""Reference conformance: with default flags the project trains what the reference trained.

One test (or a small group) per item of the conformance issue; each would fail on the project's
earlier behaviour. The expected values are written from the facts in REFERENCE.md (the paper and
the reference protocol), never from the reference's code. The opt-in flags that restore the
project's earlier choices are checked alongside.

1. online-eval batches get the last view's SSL augmentation (both data paths)
2. SwAV prototypes: weight normalisation with a learnable per-prototype gain
3. MoCoV2+ hands the L2-normalised q to the distiller
4. multi-process losses on each process's local batch (2 gloo processes); SwAV queue per process
5. CIFAR stem: 3x3 conv, stride 1, padding 2 (34x34 maps), pretraining and linear evaluation
6. CIFAR-100 normalised with the CIFAR-10 statistics, pretraining and linear evaluation
7. DomainNet SwAV (queue 50, frozen 3) and BYOL + CaSSLe (batch 256) scripts
8. only --lr is scaled by batch x devices / 256; lr / distill_lamb for the predictive distiller only
9. warmup-cosine stepped per epoch (tau still per step)
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from cassle.losses import (
    barlow_loss_func,
    decorrelative_distill_loss,
    simclr_loss_func,
    supcon_pos_mask,
    vicreg_loss_func,
)

REPO = Path(__file__).resolve().parents[1]
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))


def _tiny(method, *extra, distiller=None):
    from main_continual import build_model
    from tests.helpers import tiny_args

    args = tiny_args(method, *extra, distiller=distiller)
    args.num_classes = 4
    return args, build_model(args)


# --------------------------------------------------------------------------- 1. online eval
@pytest.mark.parametrize("data_device", ["cpu", "cpu_batched"])
def test_1_online_eval_batches_get_the_last_views_augmentation(data_device):
    """View 2 always solarizes (threshold 128), view 1 never; nothing else is random but the
    crop, which covers the whole image. Solarized pixels are < 128/255, the raw images are not:
    the reference's stream (transform[-1]) is solarized, the clean one and view 1 are not."""
    from cassle.data import ContinualDataModule

    common = dict(
        dataset="synthetic",
        synthetic_size=64,
        synthetic_image_size=16,
        num_classes=4,
        batch_size=16,
        num_workers=0,
        data_device=data_device,
        online_eval_batch_size=32,
        min_scale=[1.0],
        color_jitter_prob=[0.0],
        gray_scale_prob=[0.0],
        horizontal_flip_prob=[0.0],
        solarization_prob=[0.0, 1.0],
    )

    def max_pixel(dm):
        x, y = next(iter(dm.online_eval_loader()))
        assert x.shape == (32, 3, 16, 16) and y.shape == (32,)
        mean, std = torch.tensor(dm.mean).view(1, 3, 1, 1), torch.tensor(dm.std).view(1, 3, 1, 1)
        return float((x * std + mean).max())

    reference = ContinualDataModule(**common)
    assert max_pixel(reference) < 128 / 255 + 0.01
    clean = ContinualDataModule(**common, online_eval_transform="clean")
    assert max_pixel(clean) > 0.6
    view1 = ContinualDataModule(**{**common, "solarization_prob": [1.0, 0.0]})
    assert max_pixel(view1) > 0.6  # the *last* view, not the first
    with pytest.raises(ValueError, match="online_eval_transform 'augmented'.*last_view, clean"):
        ContinualDataModule(**common, online_eval_transform="augmented")


# --------------------------------------------------------------------------- 2. SwAV prototypes
def test_2_swav_prototypes_weight_norm_with_learnable_gain():
    from cassle.methods.prototypes import Prototypes

    torch.manual_seed(0)
    layer = Prototypes(128, 3000)
    g, v = layer.weight_g, layer.weight_v
    assert g.shape == (3000, 1) and v.shape == (3000, 128)
    torch.testing.assert_close(g.detach(), v.detach().norm(dim=1, keepdim=True))  # init: row norms
    assert abs(float(g.mean()) - 0.58) < 0.01  # nn.Linear init: sqrt(1/3)
    # scores = g * cos(z, v), against a float64 computation
    z = F.normalize(torch.randn(5, 128), dim=1)
    with torch.no_grad():
        g.mul_(torch.rand(3000, 1) + 0.5)  # gains away from the init
    want = g.double().T * (F.normalize(z.double(), dim=1) @ F.normalize(v.double(), dim=1).T)
    torch.testing.assert_close(layer(z).double(), want, rtol=1e-5, atol=1e-6)
    layer(z).sum().backward()
    assert g.grad is not None and g.grad.abs().sum() > 0  # the gain is learnable


def test_2_swav_gain_is_optimised_and_shared_by_the_knowledge_distiller():
    args, model = _tiny("swav", "--task_idx", "1", "--num_tasks", "2", distiller="knowledge")
    optimised = {id(p) for group in model.learnable_params() for p in group["params"]}
    assert id(model.prototypes.weight_g) in optimised
    assert id(model.distiller.prototypes.weight_g) in optimised  # the new distill prototypes
    frozen = model.frozen_prototypes  # the frozen copy: same parametrisation, no gradient
    assert {n for n, _ in frozen.named_parameters()} == {"weight_g", "weight_v"}
    assert not any(p.requires_grad for p in frozen.parameters())
    with torch.no_grad():
        model.prototypes.weight_g.mul_(3.0)
    model.start_new_task()  # snapshot: the frozen copy takes the gains too
    torch.testing.assert_close(frozen.weight_g, model.prototypes.weight_g)


def test_2_old_unit_gain_prototypes_load_as_gain_one():
    from cassle.methods.prototypes import Prototypes

    w = torch.randn(6, 4)
    layer = Prototypes(4, 6)
    layer.load_state_dict({"weight": w})  # this project's checkpoints before weight norm
    z = F.normalize(torch.randn(3, 4), dim=1)
    torch.testing.assert_close(layer(z), z @ F.normalize(w, dim=1).T)


# --------------------------------------------------------------------------- 3. MoCoV2+ q
def test_3_mocov2plus_distiller_gets_normalised_q():
    from tests.helpers import fake_batch

    _, model = _tiny("mocov2plus", "--task_idx", "1", "--num_tasks", "2", distiller="contrastive")
    model.start_new_task()
    seen = []
    model.distiller.predictor.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    _, views, targets = fake_batch()
    model.train()
    model.ssl_step(views, targets)
    assert len(seen) == 2
    for q in seen:
        torch.testing.assert_close(q.norm(dim=1), torch.ones(len(q)))


# --------------------------------------------------------------------------- 4. local losses
WORLD, N_LOCAL, D = 2, 6, 5
TOL = dict(rtol=1e-9, atol=1e-11)


def _naive_barlow_local(z1s, z2s, lamb, scale):
    """Reference semantics from the equations: BN with each process's own batch statistics,
    C = mean over processes of zn1^T zn2 / N, loss of C (float64, plain loops over processes)."""
    cs = []
    for z1, z2 in zip(z1s, z2s):
        zn = [(z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5) for z in (z1, z2)]
        cs.append(zn[0].T @ zn[1] / z1.shape[0])
    c = sum(cs) / len(cs)
    eye = torch.eye(c.shape[0], dtype=torch.bool)
    return scale * ((1 - c.diagonal()).pow(2).sum() + lamb * c[~eye].pow(2).sum())


def _naive_ntxent(z1, z2, t, labels=None):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n2 = z.shape[0]
    sim = z @ z.T / t
    total = 0.0
    for i in range(n2):
        others = [k for k in range(n2) if k != i]
        pos = [(i + n2 // 2) % n2]
        if labels is not None:
            y = torch.cat([labels, labels])
            pos = [j for j in others if y[j] == y[i]]
        log_den = torch.logsumexp(sim[i, others], 0)
        total = total + sum(sim[i, j] - log_den for j in pos) / len(pos)
    return -total / n2


def _naive_vicreg(z1, z2):
    def var(z):
        return F.relu(1 - torch.sqrt(z.var(0) + 1e-4)).mean()

    def cov(z):
        c = torch.cov(z.T)
        return (c.pow(2).sum() - c.diagonal().pow(2).sum()) / z.shape[1]

    return 25 * F.mse_loss(z1, z2) + 25 * (var(z1) + var(z2)) + (cov(z1) + cov(z2))


LOCAL_LOSSES = {  # name -> (distributed call, per-process naive reference of the same semantics)
    "simclr": (lambda z1, z2, y: simclr_loss_func(z1, z2, 0.2), lambda z1, z2, y: _naive_ntxent(z1, z2, 0.2)),
    "supcon": (
        lambda z1, z2, y: simclr_loss_func(z1, z2, 0.1, supcon_pos_mask(y)),
        lambda z1, z2, y: _naive_ntxent(z1, z2, 0.1, y),
    ),
    "vicreg": (lambda z1, z2, y: vicreg_loss_func(z1, z2), lambda z1, z2, y: _naive_vicreg(z1, z2)),
}


def _data():
    g = torch.Generator().manual_seed(1)
    n = WORLD * N_LOCAL
    return {
        "z1": torch.randn(n, D, generator=g, dtype=torch.float64),
        "z2": torch.randn(n, D, generator=g, dtype=torch.float64) * 0.5 + 0.2,
        "y": torch.tensor([0, 1, 0, 2, 1, 3, 1, 1, 0, 2, 3, 3]),
    }


def _grads(fn, z1, z2, *extra):
    z1, z2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    loss = fn(z1, z2, *extra)
    loss.backward()
    return loss.detach(), z1.grad, z2.grad


def _barlow(z1, z2, **opt_in):  # no keyword: the default semantics
    return barlow_loss_func(z1, z2, lamb=0.3, scale_loss=0.7, **opt_in)


def _decorrelative(z1, z2, **opt_in):
    return decorrelative_distill_loss(z1, z2, 2 * z2 + 1, z1.tanh(), lamb=0.3, scale_loss=0.7, **opt_in)


def _worker(rank, port, out_dir, data):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60)
    )
    try:
        local = slice(rank * N_LOCAL, (rank + 1) * N_LOCAL)
        z1, z2, y = data["z1"][local], data["z2"][local], data["y"][local]
        res = {name: _grads(fn, z1, z2, y) for name, (fn, _) in LOCAL_LOSSES.items()}
        for name, fn in (("barlow", _barlow), ("decorrelative", _decorrelative)):
            res[name] = _grads(fn, z1, z2)
            res[name + "_global"] = _grads(lambda a, b, fn=fn: fn(a, b, global_batch=True), z1, z2)
        res["simclr_global"] = _grads(lambda a, b: simclr_loss_func(a, b, 0.2, global_batch=True), z1, z2)
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def local_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = _data()
    ctx = mp.spawn(_worker, args=(port, str(out), data), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 180
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail("distributed workers did not finish within 180 s")
    return data, [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.mark.parametrize("name", list(LOCAL_LOSSES))
def test_4_contrastive_and_vicreg_losses_are_per_process(local_results, name):
    """Each process's loss and gradients are those of its own batch alone (no gather)."""
    data, res = local_results
    naive = LOCAL_LOSSES[name][1]
    for r in range(WORLD):
        local = slice(r * N_LOCAL, (r + 1) * N_LOCAL)
        want = _grads(naive, data["z1"][local], data["z2"][local], data["y"][local])
        for got, expected in zip(res[r][name], want):
            torch.testing.assert_close(got, expected, **TOL)


@pytest.mark.parametrize("name,fn", [("barlow", _barlow), ("decorrelative", _decorrelative)])
def test_4_barlow_local_statistics_with_averaged_correlation(local_results, name, fn):
    """Local BN statistics, C averaged over processes; each process's gradient is the partial
    derivative of that loss w.r.t. its own inputs (so DDP's average is 1/W of the total)."""
    data, res = local_results
    chunks = lambda z: list(z.split(N_LOCAL))  # noqa: E731

    def naive(z1, z2):
        if name == "barlow":
            return _naive_barlow_local(chunks(z1), chunks(z2), 0.3, 0.7)
        zb1, zb2 = (2 * z2 + 1).detach(), z1.tanh().detach()
        return 0.5 * (
            _naive_barlow_local(chunks(z1), chunks(zb1), 0.3, 0.7)
            + _naive_barlow_local(chunks(z2), chunks(zb2), 0.3, 0.7)
        )

    loss, g1, g2 = _grads(naive, data["z1"], data["z2"])
    glob = _grads(lambda a, b: fn(a, b), data["z1"], data["z2"])  # one process: whole batch
    assert not torch.isclose(loss, glob[0]), "local and global semantics must differ here"
    for r in range(WORLD):
        local = slice(r * N_LOCAL, (r + 1) * N_LOCAL)
        got_loss, got_g1, got_g2 = res[r][name]
        torch.testing.assert_close(got_loss, loss, **TOL)
        torch.testing.assert_close(got_g1, g1[local], **TOL)
        torch.testing.assert_close(got_g2, g2[local], **TOL)
        # the opt-in global semantics: the loss of the concatenated batch, W x the slice's grad
        torch.testing.assert_close(res[r][name + "_global"][0], glob[0], **TOL)
        torch.testing.assert_close(res[r][name + "_global"][1], WORLD * glob[1][local], **TOL)


def test_4_simclr_global_opt_in_differs_from_local(local_results):
    data, res = local_results
    whole = _grads(lambda a, b: simclr_loss_func(a, b, 0.2), data["z1"], data["z2"])
    for r in range(WORLD):
        torch.testing.assert_close(res[r]["simclr_global"][0], whole[0], **TOL)
        assert not torch.isclose(res[r]["simclr"][0], whole[0])


@pytest.mark.parametrize(
    "method,distiller,loss_name",
    [
        ("barlow_twins", None, "barlow_loss_func"),
        ("simclr", None, "simclr_loss_func"),
        ("vicreg", None, "vicreg_loss_func"),
        ("barlow_twins", "decorrelative", "decorrelative_distill_loss"),
    ],
)
def test_4_methods_pass_the_distributed_loss_flag(monkeypatch, method, distiller, loss_name):
    import cassle.distillers.decorrelative as decorrelative_mod
    from tests.helpers import fake_batch

    module = decorrelative_mod if distiller else __import__(f"cassle.methods.{method}", fromlist=["x"])
    real = getattr(module, loss_name)
    calls = []

    def spy(*a, **k):
        calls.append(k.get("global_batch"))
        return real(*a, **k)

    monkeypatch.setattr(module, loss_name, spy)
    extra = ["--task_idx", "1", "--num_tasks", "2"] if distiller else []
    if method == "simclr":
        extra.append("--supervised")  # SupCon: the label mask follows the same semantics
    for flag, want in (([], False), (["--distributed_loss", "global"], True)):
        calls.clear()
        _, model = _tiny(method, *extra, *flag, distiller=distiller)
        model.start_new_task()
        _, views, targets = fake_batch()
        model.ssl_step(views, targets)
        assert calls and all(c is want for c in calls), (extra, calls)


def test_4_swav_queue_holds_queue_size_over_world_size_rows(monkeypatch):
    import cassle.methods.swav as swav_mod

    _, model = _tiny("swav", "--queue_size", "32")
    monkeypatch.setattr(swav_mod, "world_size", lambda: 2)
    model.setup("fit")
    assert model.queue.shape == (2, 16, 16)  # queue_size // world_size rows per process
    # a checkpoint written with that size restores into it; another size leaves it empty
    state = {k: v for k, v in model.state_dict().items()}
    state["queue"] = torch.ones(2, 16, 16)
    model.load_state_dict(state)
    assert torch.equal(model.queue, torch.ones(2, 16, 16))
    state["queue"] = torch.ones(2, 32, 16)
    model.load_state_dict(state)
    assert model.queue.shape == (2, 16, 16) and not model.queue.any()


# --------------------------------------------------------------------------- 5. CIFAR stem
def test_5_cifar_stem_padding_two_in_pretraining_and_linear_eval():
    from cassle.eval.linear import _build_backbone

    _, model = _tiny("simclr", "--backbone", "resnet18", "--dataset", "cifar100")
    probe, _ = _build_backbone({"backbone": "resnet18", "dataset": "cifar100"})
    for net in (model.backbone, probe):
        conv = net.conv1
        assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (1, 1), (2, 2))
        x = torch.randn(1, 3, 32, 32)
        sizes = []
        h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        sizes.append(h.shape[-1])
        for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
            h = stage(h)
            sizes.append(h.shape[-1])
        assert sizes == [34, 34, 17, 9, 5]


# --------------------------------------------------------------------------- 6. normalisation
def test_6_cifar100_uses_cifar10_statistics_in_pretraining_and_linear_eval(tmp_path):
    import main_linear
    from cassle.data import ContinualDataModule
    from cassle.eval.run_eval import resolve_data

    rng = np.random.default_rng(0)
    for name in ("train_0", "test"):
        np.savez(
            tmp_path / f"{name}.npz",
            x=rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8),
            y=np.arange(100, dtype=np.int64),
        )
    dm = ContinualDataModule(dataset="cifar100", data_dir=str(tmp_path), num_workers=0)
    assert (dm.mean, dm.std) == CIFAR10_STATS
    opts = main_linear.parse_args(
        ["--pretrained_feature_extractor", "x.ckpt", "--dataset", "cifar100", "--data_dir", str(tmp_path)]
    )
    data = resolve_data(opts, {"dataset": "cifar100"})
    assert (tuple(data.mean), tuple(data.std)) == CIFAR10_STATS
    # CIFAR-100's own statistics stay available through --mean / --std
    own = ContinualDataModule(
        dataset="cifar100", data_dir=str(tmp_path), mean=[0.5071, 0.4865, 0.4409], std=[0.2673, 0.2564, 0.2762]
    )
    assert own.mean == (0.5071, 0.4865, 0.4409)


# --------------------------------------------------------------------------- 7. scripts
def test_7_domainnet_swav_and_byol_distill_scripts():
    from cassle.continual.plan import parse_script
    from cassle.utils.args import parse_args

    def script_args(name):
        text = (REPO / "bash_files" / "continual" / "domainnet" / name).read_text()
        return parse_args(parse_script(text, {"DATA_DIR": "/data", "PRETRAINED_PATH": "p.ckpt"}))

    swav = script_args("swav.sh")
    assert (swav.epoch_queue_starts, swav.freeze_prototypes_epochs) == (50, 3)
    byol = script_args("byol_distill.sh")
    assert (byol.batch_size, byol.devices, byol.lr) == (256, 4, 0.6)


# --------------------------------------------------------------------------- 8. learning rates
def _optimizer_lrs(model, world_size):
    model._trainer = SimpleNamespace(world_size=world_size)
    opt = model.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    return {g["name"]: g["lr"] for g in opt.param_groups}


@pytest.mark.parametrize("distiller,divided", [("predictive", True), ("contrastive", False)])
def test_8_only_lr_is_scaled_and_lamb_rule_is_predictive_only(distiller, divided):
    method = "byol" if distiller == "predictive" else "simclr"
    _, model = _tiny(
        method,
        "--lr",
        "0.4",
        "--classifier_lr",
        "0.1",
        "--batch_size",
        "64",
        "--scheduler",
        "none",
        "--task_idx",
        "1",
        "--num_tasks",
        "2",
        "--distill_lamb",
        "0.5",
        distiller=distiller,
    )
    lrs = _optimizer_lrs(model, world_size=2)
    scaled = 0.4 * 64 * 2 / 256
    assert lrs["backbone"] == pytest.approx(scaled) and lrs["projector"] == pytest.approx(scaled)
    assert lrs["classifier"] == pytest.approx(0.1)  # as given, not scaled
    assert lrs["distiller"] == pytest.approx(scaled / 0.5 if divided else scaled)


# --------------------------------------------------------------------------- 9. schedule interval
def test_9_warmup_cosine_steps_per_epoch_and_tau_per_step():
    import pytorch_lightning as pl

    from cassle.data import ContinualDataModule
    from cassle.methods.momentum import momentum_tau
    from cassle.utils.schedulers import warmup_cosine_lr

    args, model = _tiny(
        "byol",
        "--max_epochs",
        "3",
        "--warmup_epochs",
        "1",
        "--lr",
        "0.4",
        "--synthetic_size",
        "32",
        "--base_tau_momentum",
        "0.9",
    )
    seen = []

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen.append((trainer.current_epoch, trainer.optimizers[0].param_groups[0]["lr"], module.current_tau))

    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[Spy()],
    )
    trainer.fit(model, datamodule=ContinualDataModule.from_args(args))
    assert trainer.lr_scheduler_configs[0].interval == "epoch"
    base = 0.4 * 16 / 256
    steps = len(seen)
    assert steps == 6  # 3 epochs x 2 steps
    for k, (epoch, lr, tau) in enumerate(seen):
        assert lr == pytest.approx(warmup_cosine_lr(epoch, base, 1, 3, 0.003, 0.0))  # per epoch
        assert tau == pytest.approx(momentum_tau(k, steps, 0.9, 1.0))  # per optimizer step


def test_9_per_step_schedule_is_opt_in():
    _, model = _tiny("simclr", "--scheduler_interval", "step")
    model._trainer = SimpleNamespace(world_size=1, estimated_stepping_batches=20, max_epochs=2)
    assert model.configure_optimizers()["lr_scheduler"]["interval"] == "step"


# --------------------------------------------------------------------------- the opt-in flags
@pytest.mark.parametrize(
    "flag,value",
    [("--distributed_loss", "all"), ("--scheduler_interval", "batch"), ("--online_eval_transform", "augmented")],
)
def test_opt_in_flags_reject_unknown_values(flag, value, capsys):
    from tests.helpers import tiny_args

    with pytest.raises(SystemExit):
        tiny_args("simclr", flag, value)
    assert f"{flag}: invalid choice: '{value}'" in capsys.readouterr().err


def test_opt_in_flag_combinations_are_checked():
    with pytest.raises(ValueError, match="scheduler_interval step applies to warmup_cosine and cosine"):
        _tiny("simclr", "--scheduler", "step", "--lr_decay_steps", "1", "--scheduler_interval", "step")
    with pytest.raises(ValueError, match="not a whole number of epochs"):
        _tiny("simclr", "--warmup_epochs", "0.5")
    _tiny("simclr", "--warmup_epochs", "0.5", "--scheduler_interval", "step")  # fine per step
    args = argparse.Namespace(**{**vars(_tiny("simclr")[0]), "distributed_loss": "sum"})
    from main_continual import build_model

    with pytest.raises(ValueError, match="unknown --distributed_loss 'sum'; valid: local, global"):
        build_model(args)
