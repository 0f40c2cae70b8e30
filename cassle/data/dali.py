"""NVIDIA DALI pipelines for file-backed datasets (image folders, DomainNet file lists).

Optional: DALI is imported only inside the functions below, never when ``cassle`` is imported,
so machines without it run the torchvision path (``ContinualDataModule`` prints a one-line notice
when ``--dali`` is asked for and DALI is missing). ``device_id=None`` runs the pipeline on the CPU
(DALI's CPU mode, how the tests run); an int decodes with nvJPEG (``device="mixed"``) and augments
on that GPU.

How samples are named: the reader gets an explicit ``files`` list (paths relative to the dataset
root) with the sample's *index in the full dataset* as its DALI "label". The loader maps indexes
back to class targets (``dataset.targets[index]``), so batches carry true dataset indexes (the
``indexes`` of the batch contract) and class, data and domain splits all reduce to "the task's
indices", for image folders and DomainNet alike (the DomainNet ``{domain}_{split}.txt`` lines
``relative/path label`` are already parsed into ``ImageListDataset.samples``).

Augmentation per view, from ``view_settings(args)`` (the same flags as the other paths):
RandomResizedCrop(crop, scale=(min_scale, max_scale), ratio=(3/4, 4/3), bicubic)
-> colour jitter with p = color_jitter_prob -> grayscale (p) -> Gaussian blur (p, sigma in [0.1, 2])
-> solarize (p, threshold 128) -> horizontal flip (p) -> normalise. Each "with probability p" is a
per-sample ``fn.random.coin_flip``. Differences from torchvision, all DALI's own operators:
jitter uses ``fn.color_twist`` (fixed op order, contrast around mid-grey instead of the image
mean, hue in degrees = 360 * hue factor); grayscale is ``color_twist(saturation=0)`` (luma);
blur is computed for every sample and blended in by the coin (no per-sample skip).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .gpu_loader import stream_seed

CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
_DECODE_FAILURE = re.compile(r"Failed to decode sample[^:\n]*:\s*(?P<file>[^\n]+)")
BLUR_SIGMA = (0.1, 2.0)


def dali_available() -> bool:
    """True when ``nvidia.dali`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("nvidia.dali") is not None
    except (ImportError, ValueError):
        return False


def _require_dali():
    if not dali_available():
        raise ImportError(
            "NVIDIA DALI is not installed: pip install nvidia-dali-cuda120 "
            "(or run without --dali to use torchvision workers)"
        )
    import nvidia.dali  # noqa: F401


def file_samples(dataset) -> tuple[str, list[str]]:
    """(root, relative paths) of a file-backed dataset, in dataset order.

    Accepts torchvision ``ImageFolder`` (``samples`` = (absolute path, class)) and
    ``custom.ImageListDataset`` (``samples`` = (relative path, class, domain); DomainNet and
    ``--dataset custom``).
    """
    samples = getattr(dataset, "samples", None)
    root = getattr(dataset, "root", None)
    if samples is None or root is None:
        raise TypeError(f"DALI needs a file-backed dataset (image folder or DomainNet), got {type(dataset).__name__}")
    root = Path(root)
    files = []
    for sample in samples:
        path = Path(sample[0])
        files.append(str(path.relative_to(root)) if path.is_absolute() else str(path))
    return str(root), files


def blur_kernel_size(crop_size: int) -> int:
    """Odd window near 10% of the crop (23 for 224), as the other two paths."""
    return 2 * int(0.05 * crop_size) + 1


def _coin(p: float):
    from nvidia.dali import fn, types

    return fn.cast(fn.random.coin_flip(probability=float(p)), dtype=types.FLOAT)


def augment_view(images, s: dict[str, Any], mean: Sequence[float], std: Sequence[float]):
    """One view's DALI graph on decoded HWC uint8 ``images`` (see the module docstring)."""
    from nvidia.dali import fn, types

    crop = int(s["crop_size"])
    x = fn.random_resized_crop(
        images,
        size=(crop, crop),
        random_area=(s["min_scale"], s["max_scale"]),
        random_aspect_ratio=CROP_RATIO,
        interp_type=types.INTERP_CUBIC,
    )
    jitter = (s["brightness"], s["contrast"], s["saturation"], s["hue"])
    if s["color_jitter_prob"] > 0 and any(j > 0 for j in jitter):
        on = _coin(s["color_jitter_prob"])

        def factor(v: float):  # torchvision's range [max(0, 1 - v), 1 + v]; 1 when the coin is off
            if v <= 0:  # no jitter of this kind (an empty range is an error in DALI)
                return 1.0
            return fn.random.uniform(range=(max(0.0, 1 - v), 1 + v)) * on + (1.0 - on)

        hue = fn.random.uniform(range=(-s["hue"], s["hue"])) * on * 360.0 if s["hue"] > 0 else 0.0
        x = fn.color_twist(
            x,
            brightness=factor(s["brightness"]),
            contrast=factor(s["contrast"]),
            saturation=factor(s["saturation"]),
            hue=hue,
        )
    if s["gray_scale_prob"] > 0:
        x = fn.color_twist(x, saturation=1.0 - _coin(s["gray_scale_prob"]))
    x = fn.cast(x, dtype=types.FLOAT)  # 0..255 floats from here on
    if s["gaussian_prob"] > 0:
        on = _coin(s["gaussian_prob"])
        blurred = fn.gaussian_blur(x, window_size=blur_kernel_size(crop), sigma=fn.random.uniform(range=BLUR_SIGMA))
        x = blurred * on + x * (1.0 - on)
    if s["solarization_prob"] > 0:
        on = _coin(s["solarization_prob"]) * fn.cast(x >= 128.0, dtype=types.FLOAT)
        x = x + on * (255.0 - 2.0 * x)  # x -> 255 - x where on
    return fn.crop_mirror_normalize(
        x,
        dtype=types.FLOAT,
        output_layout="CHW",
        mean=[255.0 * m for m in mean],
        std=[255.0 * v for v in std],
        mirror=fn.random.coin_flip(probability=float(s["horizontal_flip_prob"])),
    )


def _reader(
    root: str, files: list[str], labels: list[int], *, shuffle: bool, shard_id: int, num_shards: int, seed: int
):
    from nvidia.dali import fn

    return fn.readers.file(
        file_root=root,
        files=files,
        labels=labels,
        shuffle_after_epoch=shuffle,
        shard_id=shard_id,
        num_shards=num_shards,
        pad_last_batch=True,
        seed=seed,
        name="Reader",
    )


def build_train_pipeline(
    root: str,
    files: list[str],
    indexes: list[int],
    view_settings: Sequence[dict],
    mean: Sequence[float],
    std: Sequence[float],
    *,
    batch_size: int,
    num_threads: int = 2,
    device_id: int | None = None,
    seed: int = 0,
    shard_id: int = 0,
    num_shards: int = 1,
):
    """Pipeline with outputs (view_1, ..., view_n, index): decoded once, augmented per view.

    The reader's shuffle uses ``seed`` on every shard (the shards must agree on the order to stay
    disjoint); the augmentations draw from a per-shard stream.
    """
    _require_dali()
    from nvidia.dali import fn, pipeline_def, types

    aug_seed = stream_seed(seed, shard_id) % (2**31)

    @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=device_id, seed=aug_seed)
    def pipe():
        jpegs, index = _reader(root, files, indexes, shuffle=True, shard_id=shard_id, num_shards=num_shards, seed=seed)
        images = fn.decoders.image(jpegs, device="cpu" if device_id is None else "mixed", output_type=types.RGB)
        views = [augment_view(images, s, mean, std) for s in view_settings]
        return (*views, index)

    return pipe()


def build_eval_pipeline(
    root: str,
    files: list[str],
    indexes: list[int],
    mean: Sequence[float],
    std: Sequence[float],
    *,
    crop_size: int = 224,
    batch_size: int,
    num_threads: int = 2,
    device_id: int | None = None,
):
    """Resize the shorter side to crop * 256/224, centre crop, normalise (the folder eval protocol)."""
    _require_dali()
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=device_id, seed=0)
    def pipe():
        jpegs, index = _reader(root, files, indexes, shuffle=False, shard_id=0, num_shards=1, seed=0)
        images = fn.decoders.image(jpegs, device="cpu" if device_id is None else "mixed", output_type=types.RGB)
        images = fn.resize(images, resize_shorter=round(crop_size * 256 / 224), interp_type=types.INTERP_CUBIC)
        x = fn.crop_mirror_normalize(
            images,
            dtype=types.FLOAT,
            output_layout="CHW",
            crop=(crop_size, crop_size),
            mean=[255.0 * m for m in mean],
            std=[255.0 * v for v in std],
        )
        return x, index

    return pipe()


@contextlib.contextmanager
def _named_decode_errors(root: str, files: Sequence[str]):
    """DALI's decoder failure (a long RuntimeError that names the file only sometimes) as one
    ``ImageDecodeError`` naming the image: from DALI's message, else by decoding ``files`` again
    with PIL until one fails (on this error path only)."""
    try:
        yield
    except RuntimeError as err:
        text = str(err)
        if "decoders" not in text and "decode" not in text:
            raise
        from .custom import ImageDecodeError, first_undecodable

        found = _DECODE_FAILURE.search(text)
        path = Path(root) / found["file"].strip() if found else first_undecodable(root, files)
        if path is None:
            raise
        raise ImageDecodeError(f"cannot decode image {path} (DALI decoder)") from None


class _DaliLoader:
    """Shared plumbing: a DALI iterator behind a sized Python iterable."""

    def __init__(self, dataset, indices, output_map: list[str], pipeline_fn, *, policy: str, **kwargs):
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        root, files = file_samples(dataset)
        indices = torch.arange(len(files)) if indices is None else torch.as_tensor(indices)
        if len(indices) == 0:
            raise ValueError("DALI loader: no samples")
        self.targets = torch.as_tensor(dataset.targets, dtype=torch.long)
        self.num_samples = len(indices)
        order = indices.tolist()
        seed = kwargs.get("seed")
        if seed is not None:  # DALI reshuffles *after* each epoch: shuffle epoch 0 ourselves
            perm = torch.randperm(len(order), generator=torch.Generator().manual_seed(seed)).tolist()
            order = [order[i] for i in perm]
        self.files = [files[i] for i in order]
        self.pipe = pipeline_fn(root, self.files, order, **kwargs)
        self.pipe.build()
        self.batch_size = kwargs["batch_size"]
        self.root = root
        with _named_decode_errors(root, self.files):  # the iterator decodes its first batch right away
            self._iter = DALIGenericIterator(
                [self.pipe],
                output_map,
                reader_name="Reader",
                auto_reset=True,
                last_batch_policy=getattr(LastBatchPolicy, policy),
            )
        self._pending = False  # an epoch left unfinished (max_steps / limit_train_batches)

    def __len__(self) -> int:
        return len(self._iter)

    def _batches(self):
        if self._pending:  # DALI cannot reset mid-epoch: drain what is left of the old one
            for _ in self._iter:
                pass
        self._pending = True
        with _named_decode_errors(self.root, self.files):
            for out in self._iter:
                yield out[0]
        self._pending = False

    def _targets(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = index.view(-1).long()
        return index, self.targets[index.cpu()].to(index.device)


class DaliTrainLoader(_DaliLoader):
    """Training batches ``(indexes, [v1, v2], targets)`` of ``dataset[indices]`` through DALI.

    Sharded by DALI (``shard_id``/``num_shards``, padded so every rank has the same length); each
    rank drops its last incomplete batch. Epoch 0's order is a ``seed``-ed permutation, later epochs
    are reshuffled by DALI. ``len`` = steps per epoch. Not bit-reproducible across resumes (DALI's
    RNG state is not checkpointed).
    """

    def __init__(
        self,
        dataset,
        indices,
        view_settings: Sequence[dict],
        mean,
        std,
        *,
        batch_size: int,
        num_threads: int = 2,
        device_id: int | None = None,
        seed: int = 0,
        shard_id: int = 0,
        num_shards: int = 1,
    ):
        _require_dali()
        self.num_views = len(view_settings)
        names = [f"v{i}" for i in range(self.num_views)] + ["index"]
        super().__init__(
            dataset,
            indices,
            names,
            build_train_pipeline,
            policy="DROP",
            view_settings=list(view_settings),
            mean=tuple(mean),
            std=tuple(std),
            batch_size=batch_size,
            num_threads=num_threads,
            device_id=device_id,
            seed=int(seed),
            shard_id=shard_id,
            num_shards=num_shards,
        )

    def __iter__(self):
        for data in self._batches():
            indexes, targets = self._targets(data["index"])
            yield indexes, [data[f"v{i}"] for i in range(self.num_views)], targets


class DaliEvalLoader(_DaliLoader):
    """Evaluation batches ``(x, y)`` over the whole ``dataset`` (every rank sees all of it)."""

    def __init__(
        self,
        dataset,
        mean,
        std,
        *,
        crop_size: int = 224,
        batch_size: int,
        num_threads: int = 2,
        device_id: int | None = None,
    ):
        _require_dali()
        super().__init__(
            dataset,
            None,
            ["x", "index"],
            build_eval_pipeline,
            policy="PARTIAL",
            mean=tuple(mean),
            std=tuple(std),
            crop_size=crop_size,
            batch_size=batch_size,
            num_threads=num_threads,
            device_id=device_id,
        )

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self):
        for data in self._batches():
            _, targets = self._targets(data["index"])
            yield data["x"], targets
