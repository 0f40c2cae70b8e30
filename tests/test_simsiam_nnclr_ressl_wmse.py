"""SimSiam, NNCLR, ReSSL and W-MSE beyond their losses: the update rules of NNCLR's support set and
ReSSL's queue, their exact resume from a checkpoint, SimSiam's fixed predictor lr (the original's
``static_lr``) and W-MSE's random whitening slices and its flag checks."""

from __future__ import annotations

import copy

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from cassle.losses import wmse_loss_func
from cassle.methods.wmse import whiten
from main_continual import build_model, run_task
from tests.helpers import fake_batch, tiny_args


def _model(method, *extra):
    args = tiny_args(method, *extra)
    args.num_classes = 4
    torch.manual_seed(0)
    return build_model(args).train()


# --------------------------------------------------------------------------- NNCLR's support set
def test_nnclr_support_set_takes_the_normalised_z1_and_labels_after_the_lookup():
    model = _model("nnclr")  # queue_size 64
    _, views, targets = fake_batch()  # 8 images
    model.queue_ptr.fill_(60)  # wraps: rows 60..63 then 0..3
    before = copy.deepcopy(model)
    out = model.ssl_step(views, targets)
    z1 = F.normalize(before.projector(before.backbone(views[0])), dim=-1).detach()
    rows = [60, 61, 62, 63, 0, 1, 2, 3]
    torch.testing.assert_close(model.queue[rows], z1)
    assert torch.equal(model.queue_y[rows], targets)
    untouched = [r for r in range(64) if r not in rows]
    assert torch.equal(model.queue[untouched], before.queue[untouched])
    assert model.queue_ptr.item() == 4
    # the nearest-neighbour accuracy: labels of the neighbours found in the support set before the update
    idx = (z1 @ before.queue.T).argmax(dim=1)
    expected = (before.queue_y[idx] == targets).float().mean()
    torch.testing.assert_close(out.logs["nn_acc"], expected)
    assert out.logs["nn_acc"] == 0  # a fresh support set holds no labels (-1)


def test_nnclr_neighbour_is_the_support_row_of_largest_dot_product():
    model = _model("nnclr")
    z = F.normalize(torch.randn(5, 16), dim=-1)
    model.queue[7] = z[2]  # z[2] itself is in the support set: it is its own neighbour
    idx, nn = model.find_nn(z)
    assert idx[2] == 7 and torch.equal(nn[2], z[2])
    assert torch.equal(idx, (z @ model.queue.T).argmax(1)) and torch.equal(nn, model.queue[idx])


# --------------------------------------------------------------------------- ReSSL's queue
def test_ressl_queue_takes_the_second_views_momentum_keys():
    model = _model("ressl")  # queue_size 64
    _, views, targets = fake_batch()
    model.queue_ptr.fill_(58)
    before = copy.deepcopy(model)
    model.ssl_step(views, targets)
    with torch.no_grad():
        k = F.normalize(before.momentum_projector(before.momentum_backbone(views[1])), dim=-1)
    rows = [58, 59, 60, 61, 62, 63, 0, 1]
    torch.testing.assert_close(model.queue[rows], k)
    assert model.queue_ptr.item() == 2
    untouched = [r for r in range(64) if r not in rows]
    assert torch.equal(model.queue[untouched], before.queue[untouched])


# --------------------------------------------------------------------------- exact resume
class _Stopped(Exception):
    pass


class _StopAtSecondEpoch(pl.Callback):
    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            raise _Stopped  # as a kill after the first epoch's checkpoint


@pytest.mark.parametrize("method", ["nnclr", "ressl"])
def test_support_set_and_queue_resume_exactly(method, tmp_path):
    """Two epochs in one go equal one epoch, a stop, and a resume from the checkpoint: weights,
    the queue, its labels and its pointer."""

    def args(path, *extra):
        return tiny_args(
            method, "--max_epochs", "2", "--synthetic_size", "48", "--deterministic", *extra, tmp_path=path
        )

    run_task(args(tmp_path / "straight"))
    with pytest.raises(_Stopped):
        run_task(args(tmp_path / "resumed"), extra_callbacks=[_StopAtSecondEpoch()])
    assert torch.load(tmp_path / "resumed" / "last.ckpt", weights_only=False)["epoch"] == 0
    run_task(args(tmp_path / "resumed", "--resume_from_checkpoint", str(tmp_path / "resumed" / "last.ckpt")))
    ours, theirs = (
        torch.load(tmp_path / d / "last.ckpt", weights_only=False)["state_dict"] for d in ("resumed", "straight")
    )
    assert ours.keys() == theirs.keys() and "queue_ptr" in ours
    assert ours["queue_ptr"].item() != 0  # the queue did move
    different = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    assert not different, f"{method}: resumed state differs: {different[:5]}"


# --------------------------------------------------------------------------- SimSiam's predictor lr
class _Lrs(pl.Callback):
    def __init__(self):
        self.lrs = []

    def on_train_epoch_start(self, trainer, module):
        self.lrs.append({g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups})


def test_simsiam_predictor_keeps_the_scaled_lr_while_the_rest_follow_the_schedule(tmp_path):
    lrs = _Lrs()
    args = tiny_args(
        "simsiam",
        "--max_epochs",
        "3",
        "--warmup_epochs",
        "1",
        "--synthetic_size",
        "32",
        "--exclude_bias_n_norm",
        "--lr",
        "0.08",
        tmp_path=tmp_path,
    )
    trainer = run_task(args, extra_callbacks=[lrs])
    scaled = 0.08 * 16 / 256
    assert [e["predictor"] for e in lrs.lrs] == [scaled] * 3
    assert [e["predictor_bias_norm"] for e in lrs.lrs] == [scaled] * 3
    projector = [e["projector"] for e in lrs.lrs]
    assert projector[0] == pytest.approx(0.003) and projector[1] == pytest.approx(scaled)
    assert projector[2] < scaled  # cosine decay
    # the projector's last bias (followed by BN) is frozen and outside the optimiser
    model = trainer.lightning_module
    bias = model.projector[6].bias
    assert not bias.requires_grad
    assert all(bias is not p for g in trainer.optimizers[0].param_groups for p in g["params"])


# --------------------------------------------------------------------------- W-MSE
def test_wmse_whitens_random_slices_and_restores_the_batch_order():
    model = _model("wmse", "--whitening_iters", "2")  # whitening_size 8, output 4
    z = [torch.randn(16, 4, dtype=torch.float64) for _ in range(2)]
    torch.manual_seed(5)
    expected = []
    for _ in range(2):
        perm = torch.randperm(16).view(-1, 8)
        w = []
        for zi in z:
            out = torch.empty_like(zi)
            for idx in perm:
                out[idx] = whiten(zi[idx])
            w.append(out)
        expected.append(wmse_loss_func(w[0], w[1]))
    torch.manual_seed(5)
    torch.testing.assert_close(model.wmse_loss(z), torch.stack(expected).mean())


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--whitening_size", "4"], "must exceed --output_dim"),
        (["--whitening_size", "12"], "multiple of --whitening_size"),
    ],
)
def test_wmse_refuses_sizes_it_cannot_whiten(flags, message):
    with pytest.raises(ValueError, match=message):
        _model("wmse", *flags)


# --------------------------------------------------------------------------- --compare
def test_compare_names_the_new_methods_without_paper_numbers(tmp_path):
    from main_linear import main as linear_main
    from tests.test_compare import _run

    _run(tmp_path, "simsiam-ft", "simsiam", 1, 30.0)
    _run(tmp_path, "ressl-cassle", "ressl", 1, 40.0, distiller="relational")
    _run(tmp_path, "wmse-ft", "wmse", 1, 35.0)
    _run(tmp_path, "nnclr-cassle", "nnclr", 1, 45.0, distiller="contrastive")
    out = tmp_path / "cmp"
    assert linear_main(["--compare", str(tmp_path), "--output_dir", str(out)]) == 0
    md = (out / "comparison.md").read_text()
    assert "| strategy | SimSiam | NNCLR | ReSSL | W-MSE |" in md
    import re

    assert not re.search(r"\[paper \d", md)  # the CaSSLe paper has no number for these methods


# --------------------------------------------------------------------------- bf16 autocast
@pytest.mark.parametrize("method", ["simsiam", "nnclr", "ressl", "wmse"])
def test_step_under_bf16_autocast_is_a_finite_float32_loss(method):
    """The GPU default is bf16 autocast: the losses, NNCLR's neighbour search and W-MSE's
    Cholesky whitening run in float32 inside it (a bf16 Cholesky of a 4x4 covariance of 8 rows
    is not even defined on the CPU)."""
    model = _model(method)
    _, views, targets = fake_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.ssl_step(views, targets)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    if method in ("nnclr", "ressl"):
        assert model.queue.dtype == torch.float32


# --------------------------------------------------------------------------- the original's checkpoints
@pytest.mark.parametrize("method", ["nnclr", "ressl"])
def test_original_layout_checkpoint_is_recognised(method):
    """A state dict in the original's names (encoder., momentum_encoder.; NNCLR's queue, queue_y
    and queue_ptr, ReSSL's (K, D) queue, which are the original's buffer names and shapes) maps
    to this code's keys and its method is told from the weights (MoCo's queue is (2, D, K))."""
    from cassle.utils.original_checkpoint import infer_from_weights, is_original, translate

    ours = _model(method).state_dict()
    original = {
        k.replace("momentum_backbone.", "momentum_encoder.").replace("backbone.", "encoder."): v
        for k, v in ours.items()
    }
    assert is_original(original)
    mapped = translate(original, "x.ckpt")
    assert mapped.keys() == ours.keys()
    assert infer_from_weights(mapped)["method"] == method
