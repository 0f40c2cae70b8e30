"""Issue 22's DINO, DeepClusterV2 and MoCo v3 scripts through the launcher (slow smoke runs; the
fast checks of every script are in tests/test_bash_scripts.py), and the ImageNet-100 recipes of
issue 22's seven methods (fast)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from cassle.continual.plan import split_flags
from tests.script_table_22a import IN100_RECIPE_22, MORE_22
from tests.test_bash_scripts import MORE_22B, PAPER, SCRIPT_ROOT, _args, _argv, _final_val_acc, _flat, _launch

IN100_22 = sorted(
    p
    for split in ("class", "data")
    for p in (SCRIPT_ROOT / "imagenet-100" / split).glob("*.sh")
    if p.stem.split("_")[0] in MORE_22
)


def test_every_issue22_method_has_imagenet100_scripts():
    names = {p.relative_to(SCRIPT_ROOT).as_posix() for p in IN100_22}
    want = {f"imagenet-100/{s}/{m}{v}.sh" for s in ("class", "data") for m in MORE_22 for v in ("", "_distill")}
    assert names == want


@pytest.mark.parametrize("path", IN100_22, ids=[p.relative_to(SCRIPT_ROOT).as_posix() for p in IN100_22])
def test_imagenet100_recipe_of_issue22_methods(path):
    stem = path.stem.split("_")[0]
    opt, scheduler, lr, wd, cls_lr, warmup, min_lr, jitter, blur, solar, min_scale = IN100_RECIPE_22[stem]
    a = _args(path)
    assert (a.optimizer, a.scheduler, a.lr, a.weight_decay, a.classifier_lr) == (opt, scheduler, lr, wd, cls_lr)
    assert (a.warmup_epochs, a.warmup_start_lr, a.min_lr) == (*warmup, min_lr)
    assert [_flat(getattr(a, k))[0] for k in ("brightness", "contrast", "saturation", "hue")] == list(jitter)
    assert _flat(a.gaussian_prob) == blur and _flat(a.solarization_prob) == solar and _flat(a.min_scale) == [min_scale]
    if opt == "lars":
        assert a.eta_lars == 0.02 and a.grad_clip_lars and a.exclude_bias_n_norm
    assert a.dali and a.num_small_crops == 0 and a.backbone == "resnet18"
    assert a.zero_init_residual == (stem == "simsiam") and bool(getattr(a, "momentum_classifier", False)) == (
        stem == "ressl"
    )
    assert "# Source: solo-learn " in path.read_text(), f"{path.name} names no source"
    # the distiller's flags are those of the method's CIFAR CaSSLe script
    if path.stem.endswith("_distill"):
        cifar = SCRIPT_ROOT / "cifar" / f"{stem}_distill.sh"
        mine = [(f, v) for f, v in split_flags(_argv(path)) if f.startswith("--distill")]
        assert mine == [(f, v) for f, v in split_flags(_argv(cifar)) if f.startswith("--distill")]


@pytest.mark.slow
@pytest.mark.parametrize("method", MORE_22B)
def test_more_methods_digits_cassle_through_launcher(method, tmp_path):
    """Issue 22's methods: the digits CaSSLe demo through the launcher, task 0 then task 1 with the
    distiller, 2 epochs each (DeepClusterV2's k-means runs from the second epoch)."""
    env = {k: v for k, v in os.environ.items() if k != "DATA_DIR"}
    exp = tmp_path / "demo"
    _launch(
        SCRIPT_ROOT / "digits" / f"{method}_distill.sh",
        exp,
        ["--num_tasks", "2", "--max_epochs", "2", "--limit_train_batches", "3", "--limit_val_batches", "2"],
        env,
    )
    for t in range(2):
        assert (exp / f"task{t}" / "last.ckpt").is_file()
        recorded = json.loads((exp / f"task{t}" / "args.json").read_text())
        assert recorded["distiller"] == (None if t == 0 else PAPER[method][1])
    rows = list(csv.DictReader(open(exp / "task1" / "logs" / "metrics.csv")))
    losses = [float(r["train/distill_loss"]) for r in rows if r.get("train/distill_loss")]
    assert losses and all(np.isfinite(losses)), "task 1 logged no finite distillation loss"
    _final_val_acc(exp, 1)
