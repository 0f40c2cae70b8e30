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
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from cassle.eval.knn import DISTANCES, knn_accuracy
from cassle.eval.probe import extract_features, predict, stratified_fraction_indices, train_linear_probe_on_features

__all__ = [
    "LINEAR_LRS", "MODES", "EvalInputError", "reference_lr", "read_checkpoint_file", "checkpoint_hparams",
    "load_backbone_from_checkpoint", "load_online_classifier", "random_backbone", "snapshot_state",
    "assert_unchanged", "LinearProbe", "ProbeConfig", "EvalData", "evaluate_backbone", "evaluate_online",
]

# Reference offline linear-evaluation lr per pretraining method (batch 256, no lr scaling).
LINEAR_LRS = {"barlow_twins": 0.1, "barlow": 0.1, "byol": 3.0, "mocov2plus": 3.0, "simclr": 1.0,
              "supcon": 1.0, "swav": 0.15, "vicreg": 0.3}
MODES = ("fast", "augmented")
SMALL_IMAGE_DATASETS = ("cifar10", "cifar100", "digits", "synthetic")  # same rule as BaseMethod's stem
KNN_K, KNN_T = 20, 0.07


class EvalInputError(ValueError):
    """Bad input to the evaluation (missing file, wrong checkpoint, mismatching data)."""


def reference_lr(method: str | None) -> float:
    """The reference's linear-evaluation lr for ``method``; ValueError naming the valid methods."""
    if method not in LINEAR_LRS:
        raise EvalInputError(f"no reference linear lr for method {method!r}; valid methods: "
                             f"{', '.join(LINEAR_LRS)} (or pass --lr)")
    return LINEAR_LRS[method]


# --------------------------------------------------------------------------- checkpoints
def read_checkpoint_file(path: str, trust: bool = False, hints: dict | None = None) -> dict:
    """A Lightning checkpoint read on the CPU without running code from it (``cassle.utils.checkpoint``;
    ``trust``: ``--trust_checkpoint``), with errors that name the file. A checkpoint of the original
    cassle code comes back in this code's names; ``hints`` (``backbone``, ``dataset`` from the flags)
    describe it where its args.json and weights do not."""
    from cassle.utils.checkpoint import CheckpointError, read_checkpoint

    if not path or not os.path.isfile(path):
        raise EvalInputError(f"checkpoint not found: {path!r}")
    try:
        return read_checkpoint(path, trust=trust, hints=hints)
    except CheckpointError as err:
        raise EvalInputError(str(err)) from None


def checkpoint_hparams(ckpt: dict, path: str) -> dict:
    """The task's resolved args: the checkpoint's ``hyper_parameters``, else ``args.json`` beside it."""
    hp = ckpt.get("hyper_parameters")
    if not hp:
        args_json = os.path.join(os.path.dirname(os.path.abspath(path)), "args.json")
        if not os.path.isfile(args_json):
            raise EvalInputError(f"checkpoint {path!r} has no hyper_parameters and there is no {args_json}: "
                                 "cannot tell which backbone and dataset it was trained with")
        with open(args_json, encoding="utf-8") as f:
            hp = json.load(f)
    hp = dict(hp)
    if not hp.get("backbone"):
        raise EvalInputError(f"checkpoint {path!r} does not record its backbone (hyper_parameters['backbone'])")
    return hp


def _backbone_state(ckpt: dict, path: str) -> dict[str, torch.Tensor]:
    state = {k[len("backbone."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("backbone.")}
    if not state:
        raise EvalInputError(f"checkpoint {path} has no backbone.* weights (keys start with: "
                             f"{sorted({k.split('.')[0] for k in ckpt['state_dict']})[:8]})")
    return state


def _cifar_stem(hp: dict) -> bool:
    return hp["cifar_stem"] if hp.get("cifar_stem") is not None else hp.get("dataset") in SMALL_IMAGE_DATASETS


def _build_backbone(hp: dict) -> tuple[nn.Module, int]:
    from cassle.backbones import BACKBONES, build_backbone, vit_kwargs

    if hp["backbone"] not in BACKBONES:
        raise EvalInputError(f"unknown backbone {hp['backbone']!r}; valid: {', '.join(BACKBONES)}")
    return build_backbone(hp["backbone"], cifar=_cifar_stem(hp), zero_init_residual=bool(hp.get("zero_init_residual")),
                          **vit_kwargs(hp["backbone"], hp.get("crop_size"), hp.get("patch_size"),
                                       small_images=hp.get("dataset") in SMALL_IMAGE_DATASETS))


def _freeze(backbone: nn.Module) -> nn.Module:
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone.eval()


def load_backbone_from_checkpoint(path: str, num_classes: int | None = None, ckpt: dict | None = None,
                                  trust: bool = False) -> tuple[nn.Module, int, dict]:
    """Frozen backbone of a cassle checkpoint: ``(backbone (eval, no grad), feat_dim, hparams)``.

    ``num_classes`` (the evaluation data's class count) is checked against the checkpoint's when
    given; pass None where the data differ on purpose (transfer). ``ckpt`` skips re-reading the file.
    """
    ckpt = read_checkpoint_file(path, trust) if ckpt is None else ckpt
    hp = checkpoint_hparams(ckpt, path)
    state = _backbone_state(ckpt, path)
    if num_classes is not None and hp.get("num_classes") is not None and int(hp["num_classes"]) != num_classes:
        raise EvalInputError(f"num_classes mismatch: checkpoint {path} was pretrained with num_classes="
                             f"{hp['num_classes']} but the evaluation data has {num_classes} classes")
    backbone, feat_dim = _build_backbone(hp)
    own = backbone.state_dict()
    shapes = [f"{k} {tuple(v.shape)} (here: {tuple(own[k].shape)})" for k, v in state.items()
              if k in own and v.shape != own[k].shape]
    if shapes:
        raise EvalInputError(f"checkpoint {path}: backbone.* weights do not fit a {hp['backbone']} "
                             f"(cifar_stem={_cifar_stem(hp)}): {shapes[:3]}")
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise EvalInputError(f"checkpoint {path}: backbone.* weights do not fit a {hp['backbone']} "
                             f"(cifar_stem={_cifar_stem(hp)}): missing {missing[:5]}, unexpected {unexpected[:5]}")
    if ckpt.get("original_format"):
        from cassle.utils.original_checkpoint import describe

        rest = [k for k in ckpt["state_dict"] if not k.startswith("backbone.")]
        print(f"[checkpoint] {path}: original cassle checkpoint ({hp['backbone']}, "
              f"cifar_stem={_cifar_stem(hp)}); loaded: backbone.* ({len(state)}, from encoder.*); "
              f"ignored: {describe(rest)}", flush=True)
    return _freeze(backbone), feat_dim, hp


def load_online_classifier(ckpt: dict, path: str, feat_dim: int, num_classes: int) -> nn.Linear:
    """The online classifier (``classifier.*``) trained during pretraining, for ``--protocol online``."""
    w, b = ckpt["state_dict"].get("classifier.weight"), ckpt["state_dict"].get("classifier.bias")
    if w is None or b is None:
        raise EvalInputError(f"checkpoint {path} has no classifier.* weights: --protocol online needs the "
                             "online classifier trained during pretraining")
    if tuple(w.shape) != (num_classes, feat_dim):
        raise EvalInputError(f"num_classes mismatch: the online classifier of {path} has shape {tuple(w.shape)}, "
                             f"expected ({num_classes}, {feat_dim}) for the evaluation data")
    linear = nn.Linear(feat_dim, num_classes)
    linear.load_state_dict({"weight": w, "bias": b})
    return linear.eval()


def random_backbone(hp: dict, seed: int) -> tuple[nn.Module, int]:
    """Randomly initialised backbone of the same architecture (the forward-transfer baseline).

    Seeded with a forked RNG, so the global RNG state is unchanged.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone, feat_dim = _build_backbone(hp)
    return _freeze(backbone), feat_dim


def snapshot_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copies of every parameter and buffer (BN running stats included)."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def assert_unchanged(module: nn.Module, before: dict[str, torch.Tensor], what: str = "backbone") -> None:
    """RuntimeError when any weight or buffer of ``module`` differs from the snapshot ``before``."""
    now = module.state_dict()
    changed = [k for k, v in before.items() if k not in now or not torch.equal(now[k].detach().cpu(), v)]
    if changed or set(now) != set(before):
        raise RuntimeError(f"linear evaluation changed the frozen {what}: {changed[:5] or sorted(set(now) ^ set(before))[:5]}"
                           " (weights or BatchNorm running statistics); this is a bug")


# --------------------------------------------------------------------------- the Lightning probe
class LinearProbe(pl.LightningModule):
    """Linear classifier on a frozen backbone, trained on augmented images (``--mode augmented``)."""

    def __init__(self, backbone: nn.Module, feat_dim: int, num_classes: int, *, lr: float, max_epochs: int,
                 milestones: Sequence[int] | None = None, momentum: float = 0.9, weight_decay: float = 0.0,
                 seed: int = 0):
        super().__init__()
        self.backbone = _freeze(backbone)
        self.classifier = nn.Linear(feat_dim, num_classes)
        gen = torch.Generator().manual_seed(seed)
        bound = 1.0 / math.sqrt(feat_dim)  # nn.Linear's default init, seeded
        with torch.no_grad():
            self.classifier.weight.uniform_(-bound, bound, generator=gen)
            self.classifier.bias.uniform_(-bound, bound, generator=gen)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.milestones = list(milestones) if milestones is not None else [round(0.6 * max_epochs), round(0.8 * max_epochs)]

    def train(self, mode: bool = True):
        # Lightning calls .train() on the whole module; the backbone must stay in eval mode so
        # BatchNorm keeps using (and never updates) its running statistics.
        super().train(mode)
        self.backbone.eval()
        return self

    def on_train_batch_start(self, batch, batch_idx):
        self.backbone.eval()  # belt and braces: a callback may have toggled modes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feats = self.backbone(x).flatten(1)
        return self.classifier(feats)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        # Step values stay off the progress bar (Lightning reads them with .item() after every
        # batch, a GPU sync); the bar shows the epoch mean.
        self.log("train/loss", loss)
        self.log("train/loss_epoch", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc1", (logits.argmax(1) == y).float().mean() * 100)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.classifier.parameters(), lr=self.lr, momentum=self.momentum,
                              weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=self.milestones, gamma=0.1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


# --------------------------------------------------------------------------- data
class _Transformed(Dataset):
    def __init__(self, base: Dataset, indices: torch.Tensor, transform):
        self.base, self.indices, self.transform = base, indices, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        image, target = self.base[int(self.indices[i])]
        return self.transform(image), target


@dataclass
class EvalData:
    """The whole training and test sets of one dataset plus the per-task grouping of test images.

    ``split`` in {"class", "data", "domain", None}; ``task_names`` / ``task_sizes`` describe the
    columns of a row of the accuracy matrix; ``test_groups[n]`` is the task of test image n (None
    when every task is the whole test set).
    """

    name: str
    train_set: Dataset
    test_set: Dataset
    num_classes: int
    split: str | None
    num_tasks: int
    mean: Sequence[float]
    std: Sequence[float]
    crop_size: int
    task_names: list[str] = field(default_factory=list)
    task_sizes: list[int] = field(default_factory=list)
    test_groups: torch.Tensor | None = None
    # File-backed sets: the deterministic test transform's uint8 output is kept in memory after the
    # first pass when it fits in ``cache_bytes`` (every checkpoint of a run reuses the decoded images).
    cache_bytes: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, name: str, train_set: Dataset, test_set: Dataset, *, num_classes: int, split: str | None,
              num_tasks: int, mean, std, crop_size: int | None = None, cache_bytes: int = 0) -> "EvalData":
        from cassle.data.datasets import TensorImageDataset
        from cassle.data.splits import class_split_tasks

        tensor = isinstance(train_set, TensorImageDataset)
        crop = crop_size or (train_set.image_size[0] if tensor else 224)
        data = cls(name, train_set, test_set, num_classes, split, num_tasks, mean, std, crop, cache_bytes=cache_bytes)
        labels = torch.as_tensor(test_set.targets).long()
        if split == "class" and num_tasks > 1:
            tasks = class_split_tasks(num_classes, num_tasks)  # the seed-5 order of pretraining
            task_of = torch.full((num_classes,), -1, dtype=torch.long)
            for t, classes in enumerate(tasks):
                task_of[classes] = t
            data.test_groups = task_of[labels]
            data.task_names = [f"task{t}" for t in range(num_tasks)]
        elif split == "domain":
            domains = getattr(test_set, "domains", None)
            if domains is None:
                raise EvalInputError(f"split_strategy domain needs a dataset with domains (custom with domains, "
                                     f"domainnet), got {name}")
            names = list(test_set.domain_names)
            if num_tasks != len(names):
                raise EvalInputError(f"domain split needs one task per domain: num_tasks={num_tasks}, domains {names}")
            data.test_groups, data.task_names = domains.long(), names
        else:  # data split (or one task): every task is evaluated on the whole test set
            one_domain = list(getattr(test_set, "domain_names", []))
            data.task_names = one_domain if num_tasks == 1 and len(one_domain) == 1 else [f"task{t}" for t in range(num_tasks)]
        if data.test_groups is None:
            data.task_sizes = [len(labels)] * num_tasks
        else:
            data.task_sizes = torch.bincount(data.test_groups, minlength=num_tasks).tolist()
            empty = [data.task_names[t] for t, n in enumerate(data.task_sizes) if n == 0]
            if empty:
                raise EvalInputError(f"{name}: no test images for {empty}: their accuracy is undefined")
        return data

    # -------------------------------------------------------------- indices
    @property
    def is_tensor(self) -> bool:
        from cassle.data.datasets import TensorImageDataset

        return isinstance(self.train_set, TensorImageDataset)

    def train_labels(self) -> torch.Tensor:
        return torch.as_tensor(self.train_set.targets).long()

    def train_indices(self, label_fraction: float | None = None, seed: int = 0, domain: int | None = None) -> torch.Tensor:
        """Training images of the probe: all (or one domain's), optionally a stratified label fraction."""
        idx = torch.arange(len(self.train_set))
        if domain is not None:
            idx = torch.nonzero(self.train_set.domains == domain).reshape(-1)
        if label_fraction is not None and label_fraction < 1.0:
            idx = idx[stratified_fraction_indices(self.train_labels()[idx], label_fraction, seed)]
        if len(idx) == 0:
            raise EvalInputError(f"{self.name}: no training images for the probe (domain {domain})")
        return idx

    # -------------------------------------------------------------- transforms / loaders
    def eval_transform(self, normalise: bool = True):
        """The deterministic test transform; ``normalise=False`` stops at uint8 (the image cache)."""
        from cassle.data.transforms import build_eval_transform

        image = None if not self.is_tensor else self.train_set.image_size[0]
        return build_eval_transform(self.mean, self.std, folder=not self.is_tensor, crop_size=self.crop_size,
                                    image_size=image, normalise=normalise)

    def transform_description(self) -> str:
        """The test transform in words (for the report)."""
        if not self.is_tensor:
            return f"resize {round(self.crop_size * 256 / 224)} (bicubic) + centre crop {self.crop_size}"
        if self.train_set.image_size[0] != self.crop_size:
            return f"resize to {self.crop_size}px + normalise"
        return f"normalise only ({self.crop_size}px)"

    def _cached(self, split: str, num_workers: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """uint8 (N, 3, crop, crop) test-transformed images of a whole file-backed split, or None
        when they would not fit in ``cache_bytes``. Decoded once, by ``num_workers`` workers."""
        base = self.train_set if split == "train" else self.test_set
        if self.is_tensor or len(base) * 3 * self.crop_size ** 2 > self.cache_bytes:
            return None
        if split not in self._cache:
            ds = _Transformed(base, torch.arange(len(base)), self.eval_transform(normalise=False))
            xs, ys = [], []
            for x, y in DataLoader(ds, batch_size=256, num_workers=num_workers):
                xs.append(x)
                ys.append(torch.as_tensor(y))
            self._cache[split] = (torch.cat(xs), torch.cat(ys).long())
        return self._cache[split]

    def train_transform(self):
        from cassle.eval.offline_loader import train_transform

        return train_transform(self)  # the reference's: bicubic crop for folders (offline_loader.py)

    def loader(self, split: str, indices: torch.Tensor, *, augment: bool, batch_size: int, num_workers: int,
               shuffle: bool = False, seed: int = 0) -> DataLoader:
        base = self.train_set if split == "train" else self.test_set
        ds = _Transformed(base, indices, self.train_transform() if augment else self.eval_transform())
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                          pin_memory=torch.cuda.is_available(), persistent_workers=shuffle and num_workers > 0,
                          generator=torch.Generator().manual_seed(seed) if shuffle else None)

    def plain_batches(self, split: str, indices: torch.Tensor, batch_size: int, num_workers: int,
                      device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Un-augmented ``(x, y)`` batches; tensor sets at their own size are normalised batch-wise on
        ``device`` (no per-image transform), anything else goes through a DataLoader."""
        base = self.train_set if split == "train" else self.test_set
        cached = self._cached(split, num_workers)
        if cached is not None or (self.is_tensor and base.image_size[0] == self.crop_size):
            # uint8 images in memory: (N, 3, H, W) from the cache or (N, H, W, 3) tensor-set images
            images, targets = cached if cached is not None else (base.images.permute(0, 3, 1, 2), base.targets)
            mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
            std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
            for s in range(0, len(indices), batch_size):
                idx = indices[s:s + batch_size]
                x = images[idx].to(device).float().div_(255)
                yield (x - mean) / std, targets[idx]
        else:
            yield from self.loader(split, indices, augment=False, batch_size=batch_size, num_workers=num_workers)

    def row(self, linear: nn.Module, test_feats: torch.Tensor, test_labels: torch.Tensor) -> tuple[float, list[float]]:
        """(top-1 on the whole test set, top-1 per task): one all-class classifier, no masking."""
        correct = (predict(linear, test_feats) == test_labels.cpu().long()).double()
        acc = 100.0 * correct.mean().item()
        if self.test_groups is None:
            return acc, [acc] * self.num_tasks
        return acc, [100.0 * correct[self.test_groups == t].mean().item() for t in range(self.num_tasks)]


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
            raise EvalInputError(f"need max_epochs >= 1, batch_size >= 1, lr > 0; got {self.epochs}, "
                                 f"{self.batch_size}, {self.lr}")

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
        return extract_features(backbone, data.plain_batches(split, indices, cfg.batch_size, cfg.num_workers,
                                                              cfg.device), cfg.device)


def _train_augmented(backbone: nn.Module, feat_dim: int, data: EvalData, indices: torch.Tensor,
                     cfg: ProbeConfig) -> nn.Linear:
    probe = LinearProbe(backbone, feat_dim, data.num_classes, lr=cfg.lr, max_epochs=cfg.epochs,
                        milestones=cfg.milestones, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                        seed=cfg.seed)
    trainer = pl.Trainer(
        max_epochs=cfg.epochs, accelerator="gpu" if cfg.device.type == "cuda" else "cpu", devices=1,
        precision=cfg.precision if cfg.device.type == "cuda" else "32-true", logger=cfg.logger or False,
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=cfg.progress_bar,
        num_sanity_val_steps=0, log_every_n_steps=10,
    )
    from cassle.eval.offline_loader import probe_train_loader

    loader = probe_train_loader(data, indices, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                                seed=cfg.seed, dali=cfg.dali, device=cfg.device)
    with warnings.catch_warnings():  # the frozen backbone is in eval mode on purpose
        warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")
        trainer.fit(probe, train_dataloaders=loader)
    if trainer.interrupted:
        raise KeyboardInterrupt("linear evaluation interrupted")
    backbone.to(cfg.device)  # Lightning's teardown moves the module back to the CPU
    return probe.classifier.to(cfg.device).eval()


def _train_probe(backbone, feat_dim, data, cfg, train_idx, cache) -> nn.Module:
    """One all-class probe on the training images ``train_idx`` (features from ``cache`` in fast mode)."""
    if cfg.mode == "augmented":
        return _train_augmented(backbone, feat_dim, data, train_idx, cfg)
    feats, labels = cache
    return train_linear_probe_on_features(
        feats, labels, data.num_classes, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
        weight_decay=cfg.weight_decay, momentum=cfg.momentum, milestones=cfg.milestones, device=cfg.device,
        seed=cfg.seed)


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
        out["knn"] = {d: knn_accuracy(tf.to(cfg.device), tl.to(cfg.device), test_feats.to(cfg.device), test_labels,
                                      data.num_classes, k=KNN_K, T=KNN_T, distance=d) for d in DISTANCES}
    if cfg.domain_aware and data.split == "domain":
        # One probe per domain, trained and tested on that domain only (the reference's --domain runs).
        aware = {}
        for d, name in enumerate(data.task_names):
            d_idx = data.train_indices(cfg.label_fraction, cfg.seed, domain=d)
            cache = None
            if cfg.mode == "fast":
                keep = torch.isin(train_idx, d_idx) if cfg.label_fraction is None else None
                cache = ((train_cache[0][keep], train_cache[1][keep]) if keep is not None
                         else _features(backbone, data, "train", d_idx, cfg))
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
