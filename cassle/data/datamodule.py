"""``ContinualDataModule``: the training data of one task and the whole test set.

Batch contract (docs/ARCHITECTURE.md):
* train: ``(indexes, [v1, v2], targets)``; ``indexes`` are positions in the *full* training set,
  ``v1``/``v2`` float (B, 3, crop, crop) augmented and normalised views.
* val: ``(x, y)`` over the whole test set (all classes / domains), eval transform.

The task's samples are chosen by ``task_subset`` as an index tensor over the full training set
(no image is copied). ``train_dataloader`` dispatches on ``self.gpu_augment``; this class only
implements the CPU path (torchvision workers), a GPU-augmentation variant can override
``_gpu_train_dataloader`` / ``on_after_batch_transfer`` and reuse everything else.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Mapping

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from .args import data_defaults, validate_data_args
from .args import view_settings as _view_settings
from .datasets import TENSOR_DATASETS, TensorImageDataset, dataset_stats, load_dataset
from .splits import class_split_indices, class_split_tasks, data_split_indices, domain_split_indices
from .transforms import NViewTransform, build_eval_transform, build_multiview_transform


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
    """``--num_classes`` if given (must cover every label), else the dataset's class count."""
    n = getattr(args, "num_classes", None)
    if n is None:
        return int(dataset.num_classes)
    targets = torch.as_tensor(dataset.targets)
    if len(targets) and int(targets.max()) >= n:
        raise ValueError(f"--num_classes {n} is too small: {args.dataset} has labels up to {int(targets.max())}")
    return int(n)


def task_subset(dataset: Dataset, args: Any) -> torch.Tensor:
    """Indices (into ``dataset``) of the training samples of task ``args.task_idx``.

    ``class``: samples of the task's classes; ``data``: a seeded random chunk; ``domain``: the
    task's DomainNet domain (needs ``dataset.domains``).
    """
    strategy, num_tasks, task_idx = args.split_strategy, args.num_tasks, args.task_idx
    if strategy == "class":
        return class_split_indices(dataset.targets, num_tasks, task_idx, resolve_num_classes(dataset, args))
    if strategy == "data":
        return data_split_indices(len(dataset), num_tasks, task_idx)
    if strategy == "domain":
        domains = getattr(dataset, "domains", None)
        if domains is None:
            raise ValueError(f"--split_strategy domain needs a dataset with domains (domainnet), got {args.dataset}")
        return domain_split_indices(domains, num_tasks, task_idx, len(dataset.domain_names))
    raise ValueError(f"unknown --split_strategy {strategy!r}; choose one of class, data, domain")


class ContinualDataModule(pl.LightningDataModule):
    """Data of one continual task. Build from an argparse namespace, a dict, or keyword flags."""

    gpu_augment: bool = False  # CPU path here; a GPU-augmentation variant flips this

    def __init__(self, args: Any = None, **kwargs):
        super().__init__()
        self.args = _resolve_args(args, **kwargs)
        validate_data_args(self.args)
        self._train_full: Dataset | None = None
        self._val_full: Dataset | None = None
        self._task_indices: torch.Tensor | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ContinualDataModule":
        return cls(args)

    # ------------------------------------------------------------------ loading
    def _load(self, train: bool, download: bool) -> Dataset:
        a = self.args
        return load_dataset(
            a.dataset, a.data_dir, train=train, download=download, train_dir=a.train_dir, val_dir=a.val_dir,
            num_classes=a.num_classes if a.dataset in ("synthetic", "domainnet") else None,
            synthetic_size=a.synthetic_size, image_size=a.synthetic_image_size if a.dataset == "synthetic" else 32,
        )

    def prepare_data(self) -> None:
        # Runs on one process only: the place to download (CIFAR through torchvision).
        if self.args.download and self.args.dataset in ("cifar10", "cifar100"):
            self._load(True, True)
            self._load(False, True)

    def setup(self, stage: str | None = None) -> None:
        if self._train_full is None:
            self._train_full = self._load(True, self.args.download)
            self._val_full = self._load(False, self.args.download)
            self._task_indices = task_subset(self._train_full, self.args)

    @property
    def train_full(self) -> Dataset:
        """The whole training set (all tasks)."""
        self.setup()
        return self._train_full

    @property
    def val_full(self) -> Dataset:
        """The whole test set."""
        self.setup()
        return self._val_full

    @property
    def task_indices(self) -> torch.Tensor:
        """Indices into ``train_full`` of this task's samples (the GPU path indexes ``images`` with it)."""
        self.setup()
        return self._task_indices

    # ------------------------------------------------------------------ facts
    @property
    def num_classes(self) -> int:
        return resolve_num_classes(self.train_full, self.args)

    @property
    def train_size(self) -> int:
        return len(self.task_indices)

    @property
    def task_classes(self) -> list[int] | None:
        """Classes of the current task for a class split, else None (every task has all classes)."""
        if self.args.split_strategy != "class":
            return None
        return class_split_tasks(self.num_classes, self.args.num_tasks)[self.args.task_idx]

    @property
    def is_tensor_dataset(self) -> bool:
        return isinstance(self.train_full, TensorImageDataset)

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.args.mean) if self.args.mean is not None else dataset_stats(self.args.dataset)[0]

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.args.std) if self.args.std is not None else dataset_stats(self.args.dataset)[1]

    @property
    def default_crop_size(self) -> int:
        """Natural crop: the image side for tensor sets, 224 for image folders."""
        if self.args.dataset in TENSOR_DATASETS:
            return self.train_full.image_size[0]
        return 224

    @property
    def view_settings(self) -> list[dict[str, Any]]:
        return _view_settings(self.args, default_crop_size=self.default_crop_size)

    def steps_per_epoch(self, world_size: int = 1) -> int:
        """Optimizer steps per epoch: each of ``world_size`` ranks gets ceil(N / W) samples
        (DistributedSampler pads) and drops its last incomplete batch."""
        return math.ceil(self.train_size / world_size) // self.args.batch_size

    # ------------------------------------------------------------------ datasets / loaders
    def train_transform(self) -> NViewTransform:
        return build_multiview_transform(self.view_settings, self.mean, self.std)

    def val_transform(self):
        folder = not self.is_tensor_dataset
        image_size = None if folder else self.train_full.image_size[0]
        # Tensor sets are evaluated at the crop size used by view 1 (32 for CIFAR: no resize).
        return build_eval_transform(self.mean, self.std, folder=folder,
                                    crop_size=self.view_settings[0]["crop_size"], image_size=image_size)

    @property
    def train_dataset(self) -> TaskDataset:
        return TaskDataset(self.train_full, self.task_indices, self.train_transform())

    @property
    def val_dataset(self) -> EvalDataset:
        return EvalDataset(self.val_full, self.val_transform())

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        workers = self.args.num_workers
        return DataLoader(
            dataset,
            batch_size=self.args.batch_size,
            shuffle=train,
            drop_last=train,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        if self.gpu_augment:
            return self._gpu_train_dataloader()
        world = getattr(getattr(self, "trainer", None), "world_size", 1) or 1
        if self.steps_per_epoch(world) == 0:
            raise ValueError(
                f"task {self.args.task_idx} has {self.train_size} training samples, fewer than "
                f"--batch_size {self.args.batch_size} x {world} device(s): with drop_last there is no step"
            )
        return self._loader(self.train_dataset, train=True)

    def _gpu_train_dataloader(self) -> DataLoader:
        raise NotImplementedError("GPU augmentation is not part of the CPU data module; "
                                  "use the GPU-augment variant (cassle.data.gpu_augment)")

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, train=False)
