"""Linear evaluation of a frozen backbone (REFERENCE.md section 5).

One all-class linear classifier ``softmax(W f(x) + b)`` on the frozen backbone ``f``, trained with
cross-entropy, SGD (momentum 0.9, weight decay 0, batch 256), lr x0.1 at 60% and 80% of the epochs
(60 and 80 of 100), with the reference's per-method lr (``LINEAR_LRS``). Two modes:

- ``augmented`` (the faithful reference protocol): ``LinearProbe``, a Lightning module, trained for
  the full schedule on augmented images (RandomResizedCrop + horizontal flip, last partial batch
  dropped; crop 32 for CIFAR-size images, 224 and bicubic for image folders: ``offline_loader.py``).
- ``fast``: features are extracted once without augmentation and the probe is trained on the cached
  features (``cassle.eval.probe``), on the GPU when there is one.

Both evaluate on the test set without augmentation, at the run's crop size (CIFAR-size: normalise
only; folders: resize crop * 256/224 + centre crop, i.e. the reference's resize 256 + centre crop
224 for 224 px runs) and both leave the backbone bit-identical: it stays in eval mode (BatchNorm uses
and never updates its running statistics), its parameters do not require grad, features are
computed under ``no_grad``, and ``assert_unchanged`` checks weights and buffers after training.

Accuracy per task is task-agnostic: predictions over all classes, no masking. Class split: the test
images of each task's classes (seed-5 class order); data split: every task is the whole test set;
domain split: the test images of each domain.

Where the parts live: ``eval_data.py`` (the data), ``frozen_backbone.py`` (checkpoint -> frozen
backbone, the random baseline, the unchanged check), ``augmented_probe.py`` (the Lightning probe),
``probe.py`` (the probe on cached features); this module holds the recipe (``ProbeConfig``) and the
two protocols, ``evaluate_backbone`` and ``evaluate_online``, and re-exports the parts' names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

# Also re-exported from here, their home before the split: _Transformed, SMALL_IMAGE_DATASETS,
# _backbone_state, _build_backbone, _cifar_stem, stratified_fraction_indices.
from cassle.eval.augmented_probe import LinearProbe, _train_augmented
from cassle.eval.errors import EvalInputError
from cassle.eval.eval_data import EvalData, _Transformed  # noqa: F401
from cassle.eval.frozen_backbone import (  # noqa: F401
    SMALL_IMAGE_DATASETS,
    _backbone_state,
    _build_backbone,
    _cifar_stem,
    _freeze,
    assert_unchanged,
    checkpoint_hparams,
    load_backbone_from_checkpoint,
    load_online_classifier,
    random_backbone,
    read_checkpoint_file,
    snapshot_state,
)
from cassle.eval.knn import DISTANCES, knn_accuracy
from cassle.eval.probe import (  # noqa: F401
    extract_features,
    predict,
    stratified_fraction_indices,
    train_linear_probe_on_features,
)

__all__ = [
    "LINEAR_LRS",
    "MODES",
    "EvalInputError",
    "reference_lr",
    "read_checkpoint_file",
    "checkpoint_hparams",
    "load_backbone_from_checkpoint",
    "load_online_classifier",
    "random_backbone",
    "snapshot_state",
    "assert_unchanged",
    "LinearProbe",
    "ProbeConfig",
    "EvalData",
    "evaluate_backbone",
    "evaluate_online",
]

# Reference offline linear-evaluation lr per pretraining method (batch 256, no lr scaling).
LINEAR_LRS = {
    "barlow_twins": 0.1,
    "barlow": 0.1,
    "byol": 3.0,
    "mocov2plus": 3.0,
    "simclr": 1.0,
    "supcon": 1.0,
    "swav": 0.15,
    "vicreg": 0.3,
}
# Issue 22's methods (ImageNet-100 ResNet-18, batch 256, 100 epochs, x0.1 at 60 and 80): solo-learn's
# bash_files/linear/imagenet-100/<method>_linear.sh (Nov 2021, commit 95886b6; SimSiam's 30 also the
# original cassle code's simsiam_linear.sh); MoCo v3 from solo-learn's scripts/linear/imagenet-100/
# mocov3.yaml; W-MSE has no linear script there: its generic general_linear.sh's 0.1.
LINEAR_LRS.update(
    {"simsiam": 30.0, "nnclr": 0.3, "ressl": 3.0, "wmse": 0.1, "dino": 0.3, "deepclusterv2": 0.15, "mocov3": 0.3}
)
MODES = ("fast", "augmented")
KNN_K, KNN_T = 20, 0.07


def reference_lr(method: str | None) -> float:
    """The reference's linear-evaluation lr for ``method``; ValueError naming the valid methods."""
    if method not in LINEAR_LRS:
        raise EvalInputError(
            f"no reference linear lr for method {method!r}; valid methods: {', '.join(LINEAR_LRS)} (or pass --lr)"
        )
    return LINEAR_LRS[method]


# --------------------------------------------------------------------------- evaluation
@dataclass
class ProbeConfig:
    mode: str = "fast"
    epochs: int = 100
    lr: float = 0.1
    batch_size: int = 256
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: Sequence[int] | None = None  # None = 60% and 80% of the epochs
    label_fraction: float | None = None
    seed: int = 5
    num_workers: int = 4
    accelerator: str = "auto"  # auto / cpu / gpu
    precision: str = "32"  # 32, bf16-mixed, 16-mixed (autocast of the backbone forward)
    knn: bool = False
    domain_aware: bool = False
    progress_bar: bool = False
    dali: bool = False  # augmented mode, image folders: batches through NVIDIA DALI when installed
    logger: Any = None  # a Lightning logger for the augmented mode (wandb)

    def __post_init__(self):
        if self.mode not in MODES:
            raise EvalInputError(f"unknown --mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.label_fraction is not None and not 0.0 < self.label_fraction <= 1.0:
            raise EvalInputError(f"--label_fraction must be in (0, 1] (e.g. 0.01 or 0.1), got {self.label_fraction}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise EvalInputError(
                f"need max_epochs >= 1, batch_size >= 1, lr > 0; got {self.epochs}, {self.batch_size}, {self.lr}"
            )

    @property
    def device(self) -> torch.device:
        gpu = torch.cuda.is_available() and self.accelerator in ("auto", "gpu", "cuda")
        return torch.device("cuda" if gpu else "cpu")

    def autocast(self):
        if self.precision in ("bf16-mixed", "16-mixed") and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16 if self.precision.startswith("bf16") else torch.float16)
        return contextlib.nullcontext()


def _features(backbone: nn.Module, data: EvalData, split: str, indices: torch.Tensor, cfg: ProbeConfig):
    with cfg.autocast():
        return extract_features(
            backbone, data.plain_batches(split, indices, cfg.batch_size, cfg.num_workers, cfg.device), cfg.device
        )


def _train_probe(backbone, feat_dim, data, cfg, train_idx, cache) -> nn.Module:
    """One all-class probe on the training images ``train_idx`` (features from ``cache`` in fast mode)."""
    if cfg.mode == "augmented":
        return _train_augmented(backbone, feat_dim, data, train_idx, cfg)
    feats, labels = cache
    return train_linear_probe_on_features(
        feats,
        labels,
        data.num_classes,
        epochs=cfg.epochs,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        weight_decay=cfg.weight_decay,
        momentum=cfg.momentum,
        milestones=cfg.milestones,
        device=cfg.device,
        seed=cfg.seed,
    )


def evaluate_backbone(backbone: nn.Module, feat_dim: int, data: EvalData, cfg: ProbeConfig) -> dict[str, Any]:
    """Train and test the linear probe on ``backbone``; asserts the backbone is left unchanged.

    Returns ``{"acc1", "per_task", "knn" (optional), "domain_aware" (optional)}`` (percent) and
    ``"probe"``, the trained all-class ``nn.Linear`` (not JSON: callers pop it).
    """
    before = snapshot_state(backbone)
    backbone = _freeze(backbone).to(cfg.device)
    train_idx = data.train_indices(cfg.label_fraction, cfg.seed)
    test_idx = torch.arange(len(data.test_set))
    test_feats, test_labels = _features(backbone, data, "test", test_idx, cfg)
    need_train_feats = cfg.mode == "fast" or cfg.knn
    train_cache = _features(backbone, data, "train", train_idx, cfg) if need_train_feats else None

    linear = _train_probe(backbone, feat_dim, data, cfg, train_idx, train_cache)
    acc, per_task = data.row(linear, test_feats, test_labels)
    out: dict[str, Any] = {"acc1": acc, "per_task": per_task, "probe": linear}

    if cfg.knn:
        tf, tl = train_cache
        out["knn"] = {
            d: knn_accuracy(
                tf.to(cfg.device),
                tl.to(cfg.device),
                test_feats.to(cfg.device),
                test_labels,
                data.num_classes,
                k=KNN_K,
                T=KNN_T,
                distance=d,
            )
            for d in DISTANCES
        }
    if cfg.domain_aware and data.split == "domain":
        # One probe per domain, trained and tested on that domain only (the reference's --domain runs).
        aware = {}
        for d, name in enumerate(data.task_names):
            d_idx = data.train_indices(cfg.label_fraction, cfg.seed, domain=d)
            cache = None
            if cfg.mode == "fast":
                keep = torch.isin(train_idx, d_idx) if cfg.label_fraction is None else None
                cache = (
                    (train_cache[0][keep], train_cache[1][keep])
                    if keep is not None
                    else _features(backbone, data, "train", d_idx, cfg)
                )
            lin = _train_probe(backbone, feat_dim, data, cfg, d_idx, cache)
            mask = data.test_groups == d
            aware[name] = 100.0 * (predict(lin, test_feats[mask]) == test_labels[mask]).double().mean().item()
        out["domain_aware"] = aware
    backbone.cpu()
    assert_unchanged(backbone, before)
    return out


def evaluate_online(backbone: nn.Module, classifier: nn.Linear, data: EvalData, cfg: ProbeConfig) -> dict[str, Any]:
    """``--protocol online``: the checkpoint's own online classifier on the test set (no training)."""
    before = snapshot_state(backbone)
    backbone = _freeze(backbone).to(cfg.device)
    test_feats, test_labels = _features(backbone, data, "test", torch.arange(len(data.test_set)), cfg)
    acc, per_task = data.row(classifier.to(cfg.device), test_feats, test_labels)
    backbone.cpu()
    assert_unchanged(backbone, before)
    return {"acc1": acc, "per_task": per_task}
