"""Dataset loading.

Two kinds of dataset come out of ``load_dataset``:

* ``TensorImageDataset`` (cifar10, cifar100, digits, synthetic): the whole set held as one uint8
  tensor ``images`` (N, H, W, 3) HWC plus ``targets`` int64 (N,). Subsets are index tensors, so a
  task never copies images, and the same tensor can later be moved to the GPU and augmented there.
* file-backed datasets yielding PIL images: ImageNet-style ``train/`` + ``val/`` folders
  (torchvision ``ImageFolder``) and the described datasets of ``custom.py`` (``--dataset custom``
  on a class or domain tree or on file lists; DomainNet's file lists).

Every dataset exposes ``targets``, ``num_classes`` and ``classes``; ``__getitem__`` returns
``(image, target)`` with image a uint8 CHW tensor (tensor sets) or a PIL RGB image (file sets).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .args import DATASETS
from .custom import ImageListDataset, load_described
from .image_check import DEFAULT_MAX_IMAGE_PIXELS, RGBLoader
from .splits import DOMAINNET_DOMAINS

__all__ = [
    "DATASET_STATS",
    "DOMAINNET_DOMAINS",
    "DOMAINNET_NUM_CLASSES",
    "TENSOR_DATASETS",
    "TensorImageDataset",
    "DomainNetDataset",
    "ImageListDataset",
    "load_dataset",
    "dataset_stats",
]

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.228, 0.224, 0.225))  # values used by the reference
# The reference normalises both CIFAR sets with these CIFAR-10 statistics (std rounded to three
# digits), in pretraining and linear evaluation; CIFAR-100's own statistics are opt-in:
# --mean 0.5071 0.4865 0.4409 --std 0.2673 0.2564 0.2762.
CIFAR_REFERENCE_STATS = ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))
DATASET_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": CIFAR_REFERENCE_STATS,
    "cifar100": CIFAR_REFERENCE_STATS,
    # digits / synthetic: no published statistics; 0.5/0.5 maps [0, 1] to [-1, 1].
    "digits": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "synthetic": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "imagenet100": IMAGENET_STATS,
    "imagenet": IMAGENET_STATS,
    "domainnet": IMAGENET_STATS,
    "custom": IMAGENET_STATS,
}
TENSOR_DATASETS = ("cifar10", "cifar100", "digits", "synthetic")
FOLDER_DATASETS = ("imagenet100", "imagenet")
DOMAINNET_NUM_CLASSES = 345  # of the official lists; the count used always comes from the data
_CIFAR_CLASSES = {"cifar10": 10, "cifar100": 100}
_TORCHVISION_FOLDER = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")


def dataset_stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per RGB channel used to normalise ``name``."""
    if name not in DATASET_STATS:
        raise _unknown(name)
    return DATASET_STATS[name]


class TensorImageDataset(Dataset):
    """A whole image set as one uint8 tensor: ``images`` (N, H, W, 3), ``targets`` int64 (N,)."""

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        classes: Sequence[str] | None = None,
        num_classes: int | None = None,
    ):
        images = torch.as_tensor(images)
        targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        if num_classes is None:
            num_classes = len(classes) if classes is not None else int(targets.max()) + 1
        self.images = images
        self.targets = targets
        self.num_classes = int(num_classes)
        self.classes = list(classes) if classes is not None else [str(i) for i in range(self.num_classes)]

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        # HWC -> CHW view; the transforms accept uint8 CHW tensors, no PIL round trip.
        return self.images[i].permute(2, 0, 1), int(self.targets[i])

    def subset(self, indices: Sequence[int] | torch.Tensor) -> TensorImageDataset:
        """A new dataset holding ``images[indices]`` (a copy; same classes)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return TensorImageDataset(self.images[idx], self.targets[idx], self.classes, self.num_classes)


# DomainNet's lists are one instance of the described datasets (custom.py).
DomainNetDataset = ImageListDataset


# ----------------------------------------------------------------------------- CIFAR
def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _load_cifar_npz(name: str, root: Path, train: bool) -> TensorImageDataset:
    """Numpy layout: ``train_*.npz`` parts (concatenated in numeric order) and ``test.npz``."""
    files = sorted(root.glob("train_*.npz"), key=_natural_key) if train else [root / "test.npz"]
    xs, ys, classes = [], [], None
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            xs.append(z["x"])
            ys.append(z["y"])
            if classes is None and "fine_names" in z.files:
                classes = [str(c) for c in z["fine_names"]]
    x, y = np.concatenate(xs), np.concatenate(ys).astype(np.int64)
    n_cls = _CIFAR_CLASSES[name]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{files[0]}: 'x' must be uint8 (N, H, W, 3), got {x.dtype} {x.shape}")
    if len(y) and (y.min() < 0 or y.max() >= n_cls):
        raise ValueError(f"{root}: labels span [{y.min()}, {y.max()}] but {name} has {n_cls} classes")
    if classes is not None and len(classes) != n_cls:
        classes = None
    return TensorImageDataset(torch.from_numpy(x), torch.from_numpy(y), classes, n_cls)


def _load_cifar(name: str, data_dir: str | Path | None, train: bool, download: bool) -> TensorImageDataset:
    hint = (
        f"pass --download to fetch {name} through torchvision, or point --data_dir at a folder "
        f"containing {_TORCHVISION_FOLDER[name]}/ or train_*.npz + test.npz"
    )
    if data_dir is None:
        raise FileNotFoundError(f"{name}: --data_dir is not set; {hint}")
    root = Path(data_dir)
    if root.is_dir() and any(root.glob("train_*.npz")):
        if not (root / "test.npz").is_file():
            raise FileNotFoundError(f"{root} holds train_*.npz but no test.npz; {hint}")
        return _load_cifar_npz(name, root, train)
    if not download and not (root / _TORCHVISION_FOLDER[name]).is_dir():
        what = "does not exist" if not root.exists() else f"has neither {_TORCHVISION_FOLDER[name]}/ nor train_*.npz"
        raise FileNotFoundError(f"{name} data directory {root} {what}; {hint}")
    from torchvision import datasets as tvd

    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    ds = cls(root=str(root), train=train, download=download)
    return TensorImageDataset(
        torch.from_numpy(np.ascontiguousarray(ds.data)),
        torch.tensor(ds.targets, dtype=torch.long),
        ds.classes,
        _CIFAR_CLASSES[name],
    )


# ----------------------------------------------------------------------------- digits / synthetic
def digit_images(image_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1797 digits as uint8 grey (N, image_size, image_size), bilinearly upsampled
    from 8x8 (0..16 -> 0..255), and their labels (N,)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images).float().div(16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return (x * 255).round().clamp(0, 255).to(torch.uint8)[:, 0], torch.from_numpy(bunch.target).long()


def _load_digits(train: bool, image_size: int = 32) -> TensorImageDataset:
    """scikit-learn's 8x8 digits (bundled, no download): grey 0..16 -> uint8 RGB, upsampled.

    Stratified 80/20 train/test split with ``random_state=0``.
    """
    from sklearn.model_selection import train_test_split

    grey, y = digit_images(image_size)
    x = grey.unsqueeze(-1).repeat(1, 1, 1, 3)
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y.numpy(), random_state=0)
    idx = torch.from_numpy(np.sort(train_idx if train else test_idx))
    return TensorImageDataset(x[idx].contiguous(), y[idx], [str(i) for i in range(10)], 10)


def _load_synthetic(
    train: bool, num_classes: int = 10, size: int | None = None, image_size: int = 32, seed: int = 0
) -> TensorImageDataset:
    """Deterministic, learnable toy images: each class has its own base colour and stripe pattern.

    Class parameters come from ``seed`` (shared by train and test so that test is in-distribution);
    per-image phase and noise from ``seed + 1`` (train) or ``seed + 2`` (test). Labels are balanced.
    """
    size = size if size is not None else 1000
    if not train:
        size = max(size // 5, num_classes)
    g_cls = torch.Generator().manual_seed(seed)
    colour = 0.2 + 0.6 * torch.rand(num_classes, 3, generator=g_cls)  # (C, 3)
    angle = torch.rand(num_classes, generator=g_cls) * torch.pi  # stripe orientation
    freq = 1.0 + 3.0 * torch.rand(num_classes, generator=g_cls)  # stripes per image

    g = torch.Generator().manual_seed(seed + (1 if train else 2))
    y = torch.arange(size) % num_classes
    y = y[torch.randperm(size, generator=g)]
    coords = torch.linspace(0, 1, image_size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")  # (H, W)
    proj = xx * torch.cos(angle[y])[:, None, None] + yy * torch.sin(angle[y])[:, None, None]  # (N, H, W)
    phase = 2 * torch.pi * torch.rand(size, 1, 1, generator=g)
    stripes = torch.sin(2 * torch.pi * freq[y][:, None, None] * proj + phase)  # (N, H, W)
    img = colour[y][:, None, None, :] + 0.2 * stripes[..., None]  # (N, H, W, 3)
    img = img + 0.05 * torch.randn(img.shape, generator=g)
    img = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return TensorImageDataset(img, y, [f"class_{i}" for i in range(num_classes)], num_classes)


# ----------------------------------------------------------------------------- folders
def _load_image_folder(
    name: str,
    data_dir: str | Path | None,
    train: bool,
    train_dir: str | None,
    val_dir: str | None,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
):
    from torchvision.datasets import ImageFolder

    if data_dir is None:
        raise FileNotFoundError(
            f"{name}: --data_dir is not set; point it at the folder holding the "
            f"train/ and val/ image folders (or set --train_dir / --val_dir)"
        )
    sub = (train_dir or "train") if train else (val_dir or "val")
    path = Path(data_dir) / sub
    if not path.is_dir():
        flag = "--train_dir" if train else "--val_dir"
        raise FileNotFoundError(
            f"{name}: image folder {path} does not exist; check --data_dir and {flag} (one sub-folder per class)"
        )
    ds = ImageFolder(str(path), loader=RGBLoader(max_image_pixels))  # pixel limit, 16-bit scaled
    ds.num_classes = len(ds.classes)
    ds.max_image_pixels = max_image_pixels
    return ds


def _is_split_folder(data_dir: str | Path, train_dir: str | None, val_dir: str | None) -> bool:
    """ImageNet-style ``train/`` + ``val/`` class folders (or --train_dir / --val_dir given)."""
    root = Path(data_dir)
    return bool(train_dir or val_dir) or ((root / "train").is_dir() and (root / "val").is_dir())


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    train: bool = True,
    download: bool = False,
    *,
    train_dir: str | None = None,
    val_dir: str | None = None,
    num_classes: int | None = None,
    synthetic_size: int | None = None,
    image_size: int = 32,
    seed: int = 0,
    domains: Sequence[str] | None = None,
    split_strategy: str | None = None,
    allow_outside: bool = False,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
):
    """Load the train (``train=True``) or test split of dataset ``name``.

    ``num_classes``/``synthetic_size``/``image_size``/``seed`` shape the synthetic set (``image_size``
    also sets the digits upsampling). ``custom`` and ``domainnet`` are described datasets
    (``custom.py``): ``domains`` (``--domains``) picks the domains and their task order (DomainNet
    default: the reference order), ``num_classes`` is checked against the data, and
    ``split_strategy`` "domain" without ``domains`` on other data fails listing the domains found.
    ``allow_outside`` (``--allow_paths_outside_data_dir``) and ``max_image_pixels`` are the
    user-data rules of ``list_check`` / ``image_check``.
    Raises ValueError for an unknown name and FileNotFoundError (naming the path) for missing data.
    """
    if name in _CIFAR_CLASSES:
        return _load_cifar(name, data_dir, train, download)
    if name == "digits":
        return _load_digits(train, image_size)
    if name == "synthetic":
        return _load_synthetic(train, num_classes or 10, synthetic_size, image_size, seed)
    if name in FOLDER_DATASETS or (
        name == "custom" and data_dir is not None and _is_split_folder(data_dir, train_dir, val_dir)
    ):
        return _load_image_folder(name, data_dir, train, train_dir, val_dir, max_image_pixels)
    if name in ("custom", "domainnet"):
        if data_dir is None:
            raise FileNotFoundError(
                f"{name}: --data_dir is not set; point it at the folder holding the images "
                "(<class>/... or <domain>/<class>/...) or the file lists {domain}_train.txt / "
                "{domain}_test.txt"
            )
        return load_described(
            data_dir,
            train,
            domains=domains,
            split_strategy=split_strategy,
            reference_order=DOMAINNET_DOMAINS if name == "domainnet" else None,
            num_classes=num_classes,
            name=name,
            allow_outside=allow_outside,
            max_image_pixels=max_image_pixels,
        )
    raise _unknown(name)
