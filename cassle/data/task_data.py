"""The datasets of one task: the task's sample indices and the two views of the batch contract.

``task_subset`` picks a task's samples as an index tensor over the full training set (class-, data-
or domain-incremental); ``TaskDataset`` / ``EvalDataset`` wrap a base dataset with the train views or
the eval transform. Used by ``ContinualDataModule`` (``datamodule.py``), the strategies' buffers and
the benchmarks.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import Dataset

from .args import data_defaults
from .splits import class_split_indices, data_split_indices, domain_split_indices
from .transforms import NViewTransform


class TaskDataset(Dataset):
    """Samples ``indices`` of ``base``, each returned as ``(index, views, target)``."""

    def __init__(self, base: Dataset, indices: torch.Tensor, transform: NViewTransform):
        self.base, self.indices, self.transform = base, indices, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        idx = int(self.indices[i])
        image, target = self.base[idx]
        return idx, self.transform(image), target


class EvalDataset(Dataset):
    """``base`` with a deterministic transform, returned as ``(x, y)``."""

    def __init__(self, base: Dataset, transform):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        image, target = self.base[i]
        return self.transform(image), target


def _resolve_args(args: Any = None, **kwargs) -> argparse.Namespace:
    """Flag defaults, overridden by ``args`` (namespace or mapping), then by ``kwargs``."""
    cfg = data_defaults()
    if args is not None:
        cfg.update(dict(args) if isinstance(args, Mapping) else vars(args))
    cfg.update(kwargs)
    return argparse.Namespace(**cfg)


def resolve_num_classes(dataset: Dataset, args: Any) -> int:
    """The dataset's class count; ``--num_classes``, when given, must equal it."""
    n = getattr(args, "num_classes", None)
    if n is not None and int(n) != int(dataset.num_classes):
        targets = torch.as_tensor(dataset.targets)
        top = f", labels up to {int(targets.max())}" if len(targets) else ""
        raise ValueError(
            f"--num_classes {n} does not match the data: {args.dataset} has {dataset.num_classes} "
            f"classes{top}; drop --num_classes (it comes from the data)"
        )
    return int(dataset.num_classes)


def task_subset(dataset: Dataset, args: Any) -> torch.Tensor:
    """Indices (into ``dataset``) of the training samples of task ``args.task_idx``.

    ``class``: samples of the task's classes; ``data``: a seeded random chunk; ``domain``: the
    task's domain (needs ``dataset.domains``; task t = ``dataset.domain_names[t]``).
    """
    strategy, num_tasks, task_idx = args.split_strategy, args.num_tasks, args.task_idx
    if strategy == "class":
        return class_split_indices(dataset.targets, num_tasks, task_idx, resolve_num_classes(dataset, args))
    if strategy == "data":
        return data_split_indices(len(dataset), num_tasks, task_idx)
    if strategy == "domain":
        domains = getattr(dataset, "domains", None)
        if domains is None:
            raise ValueError(
                f"--split_strategy domain needs a dataset with domains (--dataset custom on "
                f"<domain>/<class>/ folders or lists, or domainnet), got {args.dataset}"
            )
        return domain_split_indices(domains, num_tasks, task_idx, len(dataset.domain_names), dataset.domain_names)
    raise ValueError(f"unknown --split_strategy {strategy!r}; choose one of class, data, domain")
