"""Fast linear probe on cached (frozen) backbone features, and the helpers around it.

The fast mode of the linear evaluation (REFERENCE.md section 5): extract the features of the frozen
backbone once (no augmentation), then train one all-class linear classifier on them with the
reference's offline recipe: SGD (momentum 0.9, wd 0, batch 256) for 100 epochs, lr x0.1 at 60% and
80% of training (epochs 60 and 80 of 100). The faithful mode (augmented images, main_linear.py) is
elsewhere. The probe minimises the mean cross-entropy of softmax(W f + b).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "extract_features",
    "train_linear_probe_on_features",
    "probe_accuracy",
    "predict",
    "per_group_accuracy",
    "per_task_accuracy",
    "stratified_fraction_indices",
]


def _check_feats_labels(feats: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> None:
    if feats.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {tuple(feats.shape)}")
    if labels.shape != (feats.shape[0],):
        raise ValueError(
            f"labels must be 1-D with one label per feature ({feats.shape[0]}), got shape {tuple(labels.shape)}"
        )
    if feats.shape[0] == 0:
        raise ValueError("empty feature set")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if num_classes is not None and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{int(labels.min())}, {int(labels.max())}]")


@torch.no_grad()
def extract_features(
    backbone: nn.Module, loader: Iterable, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the frozen ``backbone`` (in eval mode, no grad) over ``loader`` batches ``(x, y)``.

    Returns ``(feats float32 (N, D), labels int64 (N,))`` on the CPU, in loader order. The backbone's
    train/eval mode is restored afterwards, so a caller in the middle of training is not affected.
    """
    was_training = backbone.training
    backbone.eval()
    feats, labels = [], []
    try:
        for batch in loader:
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise ValueError(
                    "extract_features expects the loader to yield (x, y) pairs, got "
                    f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}"
                )
            x, y = batch
            f = backbone(x.to(device, non_blocking=True))
            feats.append(f.flatten(1).float().cpu())
            labels.append(torch.as_tensor(y).long().cpu())
    finally:
        backbone.train(was_training)
    if not feats:
        raise ValueError("extract_features got an empty loader")
    return torch.cat(feats), torch.cat(labels)


def train_linear_probe_on_features(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    num_classes: int,
    *,
    epochs: int = 100,
    lr: float = 0.1,
    batch_size: int = 256,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    milestones: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    standardize: bool = True,
) -> nn.Linear:
    """Train an all-class ``nn.Linear(D, num_classes)`` on cached features; returned in eval mode on ``device``.

    - ``lr`` (absolute, for ``batch_size``): the reference's per-method values (at batch 256) are
      Barlow 0.1, BYOL 3.0, MoCoV2+ 3.0, SimCLR 1.0, SwAV 0.15, VICReg 0.3; pass the method's value.
      The default 0.1 is Barlow's.
    - ``milestones``: epochs at which lr is multiplied by 0.1 (stepped at epoch ends); None = the
      reference's (60, 80) scaled to ``epochs``, i.e. ``round(0.6 * epochs), round(0.8 * epochs)``.
    - ``device``: None = the features' device. ``seed`` fixes the initialisation and the batch order
      through a private generator (the global RNG is not touched). Mini-batches are reshuffled each
      epoch and the last partial batch is kept.
    - ``standardize``: train on features standardised with the training set's per-dimension mean
      and std, then fold that affine map into the returned layer (so it applies to raw features).
      The classifier family is unchanged (still linear in the features); only SGD's conditioning
      improves, which matters on cached features whose scale varies between backbones (a random
      network's features are tiny and would otherwise leave the probe underfitted).
    """
    _check_feats_labels(train_feats, train_labels, num_classes)
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got epochs={epochs}, batch_size={batch_size}")
    if not torch.isfinite(train_feats).all():
        raise ValueError("train_feats hold NaN or inf (a diverged or broken backbone?)")
    if milestones is None:
        milestones = (round(0.6 * epochs), round(0.8 * epochs))
    device = torch.device(device) if device is not None else train_feats.device

    x = train_feats.to(device, torch.float32)
    y = train_labels.to(device, torch.long)
    n, dim = x.shape
    mean = x.mean(0) if standardize else torch.zeros(dim, device=device)
    std = x.std(0, unbiased=False).clamp_min(1e-6) if standardize else torch.ones(dim, device=device)
    x = (x - mean) / std
    gen = torch.Generator().manual_seed(seed)

    linear = nn.Linear(dim, num_classes).to(device)
    bound = 1.0 / math.sqrt(dim)  # nn.Linear's default U(-1/sqrt(D), 1/sqrt(D)), but seeded
    with torch.no_grad():
        linear.weight.copy_(torch.empty(num_classes, dim).uniform_(-bound, bound, generator=gen))
        linear.bias.copy_(torch.empty(num_classes).uniform_(-bound, bound, generator=gen))

    opt = torch.optim.SGD(linear.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=0.1)
    linear.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen).to(device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(linear(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    with torch.no_grad():  # W ((x - m) / s) + b  ==  (W / s) x + (b - W (m / s))
        linear.bias.sub_(linear.weight @ (mean / std))
        linear.weight.div_(std)
    return linear.eval()


@torch.no_grad()
def predict(linear: nn.Module, feats: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """Argmax class (int64, CPU) of ``linear`` over all classes, in chunks on the probe's device."""
    dev = next(linear.parameters()).device
    out = [
        linear(feats[s : s + batch_size].to(dev, torch.float32)).argmax(1).cpu()
        for s in range(0, feats.shape[0], batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def probe_accuracy(linear: nn.Module, feats: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy (percent) of the probe over all classes."""
    _check_feats_labels(feats, labels)
    return 100.0 * (predict(linear, feats) == labels.cpu().long()).double().mean().item()


def per_group_accuracy(
    linear: nn.Module, feats: torch.Tensor, labels: torch.Tensor, group_of_sample: torch.Tensor, num_groups: int
) -> list[float]:
    """Top-1 (percent) of the all-class probe on each group of test samples (e.g. DomainNet domains).

    ``group_of_sample[n]`` in [0, num_groups) says which group sample n belongs to. Predictions are
    never masked to the group's classes. An empty group raises ValueError (its accuracy is undefined).
    """
    _check_feats_labels(feats, labels)
    groups = torch.as_tensor(group_of_sample).long().cpu()
    if groups.shape != labels.shape:
        raise ValueError(
            f"group_of_sample must have one entry per sample ({labels.shape[0]}), got shape {tuple(groups.shape)}"
        )
    if int(groups.min()) < 0 or int(groups.max()) >= num_groups:
        raise ValueError(
            f"group_of_sample must lie in [0, {num_groups}), got range [{int(groups.min())}, {int(groups.max())}]"
        )
    correct = predict(linear, feats) == labels.cpu().long()
    accs = []
    for g in range(num_groups):
        mask = groups == g
        if not mask.any():
            raise ValueError(f"group {g} has no test samples: its accuracy is undefined")
        accs.append(100.0 * correct[mask].double().mean().item())
    return accs


def per_task_accuracy(
    linear: nn.Module, feats: torch.Tensor, labels: torch.Tensor, task_of_class: Sequence[Sequence[int]]
) -> list[float]:
    """Row of the accuracy matrix: top-1 (percent) on the test images of each task (class-incremental).

    Task-agnostic: one all-class classifier, predictions over all classes (no masking to the task's
    classes). ``task_of_class[t]`` lists the classes of task t; tasks must be disjoint and every test
    label must belong to some task (a label outside all tasks means the split is wrong).
    """
    _check_feats_labels(feats, labels)
    label_np = labels.cpu().long().numpy()
    size = max(int(label_np.max()), max((max(c) for c in task_of_class if len(c)), default=-1)) + 1
    task_id = np.full(size, -1, dtype=np.int64)
    if int(label_np.min()) < 0:
        raise ValueError(f"labels must be non-negative class indices, got {int(label_np.min())}")
    for t, classes in enumerate(task_of_class):
        for c in classes:
            if int(c) < 0:
                raise ValueError(f"task {t} lists a negative class {c}")
            if task_id[c] != -1:
                raise ValueError(f"class {c} is in task {task_id[c]} and task {t}: tasks must be disjoint")
            task_id[c] = t
    missing = sorted(set(np.unique(label_np[task_id[label_np] == -1]).tolist()))
    if missing:
        raise ValueError(f"test labels {missing[:10]} belong to no task of task_of_class")
    return per_group_accuracy(linear, feats, labels, torch.from_numpy(task_id[label_np]), len(task_of_class))


def stratified_fraction_indices(labels, fraction: float, seed: int = 0) -> torch.Tensor:
    """Indices (sorted, int64) of a stratified ``fraction`` of the samples, for 1% / 10% label runs.

    Per class c with n_c samples it keeps ``max(1, floor(fraction * n_c + 0.5))`` samples chosen
    uniformly at random (numpy generator seeded with ``seed``), so every class present keeps at
    least one labelled sample. ``fraction`` must be in (0, 1].
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1] (e.g. 0.01 or 0.1), got {fraction}")
    y = labels.cpu().numpy() if hasattr(labels, "cpu") else np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):  # sorted classes: the draw is reproducible for a given seed and labels
        idx = np.flatnonzero(y == c)
        m = max(1, int(math.floor(fraction * len(idx) + 0.5)))
        keep.append(rng.choice(idx, size=m, replace=False))
    return (
        torch.from_numpy(np.sort(np.concatenate(keep)).astype(np.int64)) if keep else torch.empty(0, dtype=torch.long)
    )
