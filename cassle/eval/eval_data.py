"""The probe's data: the whole training and test sets of one dataset and the per-task grouping of
the test images (``EvalData``), with the un-augmented batches the features are computed from.

Class split: the test images of each task's classes (seed-5 class order); data split: every task is
the whole test set; domain split: the test images of each domain. The augmented training batches
are ``offline_loader.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from cassle.eval.errors import EvalInputError
from cassle.eval.probe import predict, stratified_fraction_indices

__all__ = ["EvalData"]


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
    def build(
        cls,
        name: str,
        train_set: Dataset,
        test_set: Dataset,
        *,
        num_classes: int,
        split: str | None,
        num_tasks: int,
        mean,
        std,
        crop_size: int | None = None,
        cache_bytes: int = 0,
    ) -> EvalData:
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
                raise EvalInputError(
                    f"split_strategy domain needs a dataset with domains (custom with domains, domainnet), got {name}"
                )
            names = list(test_set.domain_names)
            if num_tasks != len(names):
                raise EvalInputError(f"domain split needs one task per domain: num_tasks={num_tasks}, domains {names}")
            data.test_groups, data.task_names = domains.long(), names
        else:  # data split (or one task): every task is evaluated on the whole test set
            one_domain = list(getattr(test_set, "domain_names", []))
            data.task_names = (
                one_domain if num_tasks == 1 and len(one_domain) == 1 else [f"task{t}" for t in range(num_tasks)]
            )
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

    def train_indices(
        self, label_fraction: float | None = None, seed: int = 0, domain: int | None = None
    ) -> torch.Tensor:
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
        return build_eval_transform(
            self.mean,
            self.std,
            folder=not self.is_tensor,
            crop_size=self.crop_size,
            image_size=image,
            normalise=normalise,
        )

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
        if self.is_tensor or len(base) * 3 * self.crop_size**2 > self.cache_bytes:
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

    def loader(
        self,
        split: str,
        indices: torch.Tensor,
        *,
        augment: bool,
        batch_size: int,
        num_workers: int,
        shuffle: bool = False,
        seed: int = 0,
    ) -> DataLoader:
        base = self.train_set if split == "train" else self.test_set
        ds = _Transformed(base, indices, self.train_transform() if augment else self.eval_transform())
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=shuffle and num_workers > 0,
            generator=torch.Generator().manual_seed(seed) if shuffle else None,
        )

    def plain_batches(
        self, split: str, indices: torch.Tensor, batch_size: int, num_workers: int, device
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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
                idx = indices[s : s + batch_size]
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
