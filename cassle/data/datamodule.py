"""``ContinualDataModule``: the training data of one task and the whole test set.

Batch contract (docs/ARCHITECTURE.md):
* train: ``(indexes, [v1, v2], targets)``; ``indexes`` are positions in the *full* training set,
  ``v1``/``v2`` float (B, 3, crop, crop) augmented and normalised views.
* val: ``(x, y)`` over the whole test set (all classes / domains), eval transform.

The task's samples are chosen by ``task_subset`` as an index tensor over the full training set
(no image is copied). Three data paths (``data_path()``), chosen by ``--data_device`` / ``--dali``:

* ``workers``: torchvision transforms in DataLoader workers (CPU); batches arrive augmented.
* ``batched`` (tensor datasets): the task's uint8 images live on the trainer's device
  (``gpu_loader.DeviceBatchLoader``); the loader yields raw ``(indexes, uint8 (B, H, W, 3),
  targets)`` and ``on_after_batch_transfer`` turns them into the contract with
  ``MultiViewBatchAugment`` (per-sample parameters, one generator per (seed, epoch, rank)).
  Validation and the linear-probe loaders (``eval_loader``) gather normalised batches on the device.
* ``dali`` (image folders, DomainNet, with ``--dali`` and DALI installed): ``dali.py`` pipelines.

``--data_device auto`` picks ``batched`` only when a trainer runs on a CUDA device; without a
trainer (iterating ``train_dataloader()`` by hand) it is the ``workers`` path, whose batches
already satisfy the contract. ``cpu_batched`` forces the batched path on the CPU (tests).
"""

from __future__ import annotations

import argparse
import logging
import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from .args import DESCRIBED_DATASETS, resolve_task_count, validate_data_args
from .args import view_settings as _view_settings
from .batched_path import BatchedPathMixin
from .datasets import TENSOR_DATASETS, TensorImageDataset, dataset_stats, load_dataset
from .gpu_loader import DeviceBatchLoader
from .multicrop import small_crop_settings
from .splits import class_split_tasks
from .task_data import EvalDataset, TaskDataset, _resolve_args, resolve_num_classes, task_subset  # noqa: F401
from .transforms import NViewTransform, build_eval_transform, build_multiview_transform, build_view_transform

log = logging.getLogger(__name__)
DATA_PATHS = ("workers", "batched", "dali")


class ContinualDataModule(BatchedPathMixin, pl.LightningDataModule):
    """Data of one continual task. Build from an argparse namespace, a dict, or keyword flags."""

    def __init__(self, args: Any = None, **kwargs):
        super().__init__()
        self.args = resolve_task_count(_resolve_args(args, **kwargs))
        validate_data_args(self.args)
        self._train_full: Dataset | None = None
        self._val_full: Dataset | None = None
        self._task_indices: torch.Tensor | None = None
        self._train_loader: DeviceBatchLoader | None = None  # batched path, built on first use
        self._train_loader_key: tuple | None = None
        self._augmenters: dict = {}
        self._noticed: set[str] = set()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ContinualDataModule:
        return cls(args)

    # ------------------------------------------------------------------ loading
    def _load(self, train: bool, download: bool) -> Dataset:
        a = self.args
        return load_dataset(
            a.dataset,
            a.data_dir,
            train=train,
            download=download,
            train_dir=a.train_dir,
            val_dir=a.val_dir,
            num_classes=a.num_classes if a.dataset in ("synthetic", *DESCRIBED_DATASETS) else None,
            synthetic_size=a.synthetic_size,
            image_size=a.synthetic_image_size if a.dataset == "synthetic" else 32,
            domains=a.domains,
            split_strategy=a.split_strategy,
            allow_outside=a.allow_paths_outside_data_dir,
            max_image_pixels=a.max_image_pixels,
        )

    def prepare_data(self) -> None:
        # Runs on one process only: the place to download (CIFAR through torchvision).
        if self.args.download and self.args.dataset in ("cifar10", "cifar100"):
            self._load(True, True)
            self._load(False, True)

    def setup(self, stage: str | None = None) -> None:
        if self._train_full is None:
            train, val = self._load(True, self.args.download), self._load(False, self.args.download)
            if self.args.validate_images and not isinstance(train, TensorImageDataset):
                from .custom import validate_images

                workers = max(8, 2 * self.args.num_workers)
                validate_images(train, "training", workers)
                validate_images(val, "test", workers)
            if self.args.num_tasks is None:  # a domain split: one task per domain of the data
                self.args.num_tasks = len(getattr(train, "domain_names", []) or [None])
            self._train_full, self._val_full = train, val
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
        """The two global views (what buffers, the online-eval stream and evaluation read)."""
        return _view_settings(self.args, default_crop_size=self.default_crop_size)

    @property
    def train_view_settings(self) -> list[dict[str, Any]]:
        """Every training view: the global ones, then ``--num_small_crops`` small ones (multicrop.py)."""
        views = self.view_settings
        return views + small_crop_settings(self.args, views[0])

    def steps_per_epoch(self, world_size: int = 1) -> int:
        """Optimizer steps per epoch: each of ``world_size`` ranks gets ceil(N / W) samples
        (DistributedSampler pads) and drops its last incomplete batch."""
        return math.ceil(self.train_size / world_size) // self.args.batch_size

    # ------------------------------------------------------------------ datasets / loaders
    def train_transform(self) -> NViewTransform:
        return build_multiview_transform(self.train_view_settings, self.mean, self.std)

    def val_transform(self):
        folder = not self.is_tensor_dataset
        image_size = None if folder else self.train_full.image_size[0]
        # Tensor sets are evaluated at the crop size used by view 1 (32 for CIFAR: no resize).
        return build_eval_transform(
            self.mean, self.std, folder=folder, crop_size=self.view_settings[0]["crop_size"], image_size=image_size
        )

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

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self):
        world = self._rank_world()[1]
        if self.steps_per_epoch(world) == 0:
            raise ValueError(
                f"task {self.args.task_idx} has {self.train_size} training samples, fewer than "
                f"--batch_size {self.args.batch_size} x {world} device(s): with drop_last there is no step"
            )
        path = self.data_path()
        if path == "batched":
            ssl = self._gpu_train_dataloader()
        elif path == "dali":
            ssl = self._dali_loader(train=True)
        else:
            ssl = self._loader(self.train_dataset, train=True)
        if not getattr(self.args, "online_eval_batch_size", None):
            return ssl
        from pytorch_lightning.utilities import CombinedLoader

        # The epoch is the task's SSL data; the online-eval stream is reshuffled every epoch.
        return CombinedLoader({"ssl": ssl, "online_eval": self.online_eval_loader()}, mode="min_size")

    @property
    def online_eval_clean(self) -> bool:
        return getattr(self.args, "online_eval_transform", "last_view") == "clean"

    def online_eval_loader(self):
        """Shuffled labelled batches ``(x, y)`` of the *whole* training set (all tasks).

        The reference's CIFAR protocol trains the online classifier on these during pretraining,
        each image through the SSL augmentation of the last view (a fresh draw per batch; the
        model is in train mode, so they also update the BatchNorm running statistics).
        ``--online_eval_transform clean`` gives the eval transform instead.
        """
        base, batch_size = self.train_full, self.args.online_eval_batch_size
        last_view = {**self.view_settings[-1], "interpolation": "bicubic"}
        if self.data_path() == "batched" and hasattr(base, "images"):
            rank, world = self._rank_world()
            loader = DeviceBatchLoader(
                base.images,
                base.targets,
                batch_size,
                device=self.batched_device(),
                indexes=None,
                shuffle=True,
                drop_last=False,
                seed=self.seed + 1,
                rank=rank,
                world_size=world,
            )
            mean, std = self.mean, self.std
            if self.online_eval_clean:
                from .gpu_augment import EvalTransform

                loader.transform = EvalTransform(mean, std, size=self._eval_size())
            else:
                from .gpu_augment import BatchAugment

                augment = BatchAugment(last_view, mean, std).to(loader.device)
                # the loader's per-epoch generator (seeded from seed + 1, epoch, rank)
                loader.transform = lambda x: augment(x, loader.generator)
            return loader
        transform = (
            self.val_transform() if self.online_eval_clean else build_view_transform(last_view, self.mean, self.std)
        )
        workers = self.args.num_workers
        # drop_last=False: a training set smaller than the batch still yields a batch.
        return DataLoader(
            EvalDataset(base, transform),
            batch_size=batch_size,
            shuffle=True,
            drop_last=False,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
        )

    def val_dataloader(self):
        return self.eval_loader(train=False)

    def eval_loader(self, train: bool = False, indices: torch.Tensor | None = None):
        """Normalised, unaugmented ``(x, y)`` batches through the current data path.

        ``train=False``: the test set (the online eval); ``train=True``: the *whole* training set,
        all tasks (the linear probe's features), or its ``indices`` subset. On the batched path the
        images are gathered on the device like the training batches.
        """
        base = self.train_full if train else self.val_full
        path = self.data_path()
        if path == "batched":
            images, targets = base.images, base.targets
            if indices is not None:
                images, targets = images[indices], targets[indices]
            return self._device_loader(
                images, targets, None, train=False, device=self.batched_device(), eval_size=self._eval_size()
            )
        if path == "dali" and indices is None:
            return self._dali_loader(train=False, split_train=train)
        dataset = EvalDataset(base, self.val_transform())
        if indices is not None:
            dataset = torch.utils.data.Subset(dataset, indices.tolist())
        return self._loader(dataset, train=False)

    # ------------------------------------------------------------------ DALI path
    def _dali_loader(self, train: bool, split_train: bool = True):
        from .dali import DaliEvalLoader, DaliTrainLoader

        device = self._trainer_device()
        device_id = device.index if device is not None and device.type == "cuda" else None
        if device_id is None and device is None and self.args.data_device == "gpu" and torch.cuda.is_available():
            device_id = torch.cuda.current_device()
        if self.args.dali_device == "cpu":
            device_id = None  # decode + augment on the CPU; Lightning moves the batches to the GPU
        rank, world = self._rank_world()
        threads = max(1, self.args.num_workers)
        self._notice(f"data: DALI pipelines on {'GPU ' + str(device_id) if device_id is not None else 'the CPU'}")
        if train:
            return DaliTrainLoader(
                self.train_full,
                self.task_indices,
                self.train_view_settings,
                self.mean,
                self.std,
                batch_size=self.args.batch_size,
                num_threads=threads,
                device_id=device_id,
                seed=self.seed,
                shard_id=rank,
                num_shards=world,
            )
        base = self.train_full if split_train else self.val_full
        return DaliEvalLoader(
            base,
            self.mean,
            self.std,
            crop_size=self.view_settings[0]["crop_size"],
            batch_size=self.args.batch_size,
            num_threads=threads,
            device_id=device_id,
        )

    def teardown(self, stage: str | None = None) -> None:
        # Free the device copies; a later call rebuilds them.
        self._train_loader = None
        self._augmenters = {}
