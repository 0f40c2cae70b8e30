"""On-device batch loading of tensor datasets (CIFAR, digits, synthetic).

The whole task's uint8 images (N, H, W, 3) sit on the accelerator once; an epoch is a seeded
permutation sliced into index batches, and a batch is one gather on the device. No worker
processes, no host-to-device copies per step. Augmentation is *not* done here: the loader yields
raw uint8 training batches and ``ContinualDataModule.on_after_batch_transfer`` augments them with
``gpu_augment.MultiViewBatchAugment`` and the loader's per-epoch ``generator``.

Why not a ``torch.utils.data.DataLoader``: Lightning re-instantiates DataLoaders under DDP to
inject a ``DistributedSampler`` (and warns about workers). ``DeviceBatchLoader`` is a plain sized
iterable, so Lightning leaves it alone (``use_distributed_sampler`` needs no change) and the
sharding is done here, with ``DistributedSampler``'s exact semantics:

    perm = randperm(N, generator seeded with seed + epoch)      (shuffle) or arange(N)
    pad perm to ceil(N / W) * W by repeating its head             (every rank the same length)
    rank r takes perm[r::W]; batches of B, the last incomplete one dropped (drop_last)

so ``len(loader) = ceil(N / W) // B`` matches ``ContinualDataModule.steps_per_epoch``. Lightning
calls ``loader.sampler.set_epoch(epoch)`` before every epoch (also after a resume), and the
permutation is drawn lazily at the first ``next()``, so a resumed epoch replays identically.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor


def stream_seed(*parts: int) -> int:
    """A 63-bit seed from integers (seed, epoch, rank, ...), stable across runs and machines.

    Hashing keeps nearby tuples (seed 5 epoch 1 vs seed 6 epoch 0) on unrelated streams, which a
    plain ``seed + epoch`` would not.
    """
    text = ":".join(str(int(p)) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


class EpochShardSampler:
    """Per-epoch index batches for one rank; ``DistributedSampler`` + ``BatchSampler`` semantics.

    Yields int64 tensors of positions in ``[0, num_samples)`` (on the CPU). ``set_epoch`` picks the
    permutation (seed + epoch, like ``DistributedSampler``); ``drop_last`` drops each rank's last
    incomplete batch (training), otherwise it is yielded (evaluation).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        shuffle: bool,
        drop_last: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ):
        if num_samples < 0 or batch_size < 1:
            raise ValueError(f"need num_samples >= 0 and batch_size >= 1, got {num_samples}, {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank {rank}, world_size {world_size}")
        self.num_samples, self.batch_size = int(num_samples), int(batch_size)
        self.shuffle, self.drop_last, self.pad = shuffle, drop_last, pad
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def samples_per_rank(self) -> int:
        if self.pad:  # DistributedSampler(drop_last=False): pad to a multiple of world_size
            return math.ceil(self.num_samples / self.world_size)
        return len(range(self.rank, self.num_samples, self.world_size))

    def __len__(self) -> int:
        n = self.samples_per_rank
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def rank_indices(self) -> Tensor:
        """This rank's positions for the current epoch, in order."""
        n = self.num_samples
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        if self.pad and n > 0:
            total = math.ceil(n / self.world_size) * self.world_size
            if total > n:  # repeat the head as often as needed, like DistributedSampler
                reps = math.ceil((total - n) / n)
                order = torch.cat([order, order.repeat(reps)[: total - n]])
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[Tensor]:
        idx = self.rank_indices()
        for b in range(len(self)):
            yield idx[b * self.batch_size : (b + 1) * self.batch_size]


class DeviceBatchLoader:
    """A sized iterable of batches gathered from tensors that live on ``device``.

    images: uint8 (N, H, W, 3); targets: int64 (N,); indexes: int64 (N,) the samples' positions in
    the full dataset (the ``indexes`` of the training batch contract). They are moved to ``device``
    once. Each batch is ``(indexes, images, targets)``, or ``(transform(images), targets)`` when
    ``transform`` is given (evaluation: the normalised ``(x, y)`` contract).

    ``generator`` is a ``torch.Generator`` on ``device``, re-seeded at the start of every epoch
    from ``stream_seed(seed, epoch, rank)``: the augmentation stream of the datamodule's hook.
    """

    def __init__(
        self,
        images: Tensor,
        targets: Tensor,
        batch_size: int,
        *,
        device="cpu",
        indexes: Tensor | None = None,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        transform: Callable[[Tensor], Tensor] | None = None,
        pad: bool = True,
    ):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {tuple(images.shape)}")
        if targets.shape != (len(images),):
            raise ValueError(f"targets must have shape ({len(images)},), got {tuple(targets.shape)}")
        if indexes is None:
            indexes = torch.arange(len(images))
        if indexes.shape != (len(images),):
            raise ValueError(f"indexes must have shape ({len(images)},), got {tuple(indexes.shape)}")
        self.device = torch.device(device)
        self.images = images.to(self.device).contiguous()
        self.targets = targets.to(self.device, torch.long)
        self.indexes = indexes.to(self.device, torch.long)
        self.transform = transform
        self.sampler = EpochShardSampler(
            len(images),
            batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            seed=seed,
            rank=rank,
            world_size=world_size,
            pad=pad,
        )
        self.batch_sampler = None  # Lightning's duck typing reads both attributes
        self.generator: torch.Generator | None = None

    # Lightning's _set_sampler_epoch looks for `loader.sampler.set_epoch`.
    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    @property
    def batch_size(self) -> int:
        return self.sampler.batch_size

    def __len__(self) -> int:
        return len(self.sampler)

    def new_generator(self) -> torch.Generator:
        s = self.sampler
        return torch.Generator(device=self.device).manual_seed(stream_seed(s.seed, s.epoch, s.rank))

    def __iter__(self) -> Iterator[tuple]:
        # A generator function: nothing runs until the first next(), i.e. after set_epoch.
        self.generator = self.new_generator()
        # One host-to-device copy per epoch: a per-batch copy from pageable memory would
        # synchronise the stream every step and stop the CPU from queueing work ahead.
        order = self.sampler.rank_indices().to(self.device)
        size = self.sampler.batch_size
        for b in range(len(self.sampler)):
            pos = order[b * size : (b + 1) * size]
            images = self.images.index_select(0, pos)
            targets = self.targets.index_select(0, pos)
            if self.transform is not None:
                yield self.transform(images), targets
            else:
                yield self.indexes.index_select(0, pos), images, targets


def is_raw_train_batch(batch) -> bool:
    """True for a ``DeviceBatchLoader`` training batch, ``(indexes, uint8 (B, H, W, 3), targets)``.

    Augmented batches carry a *list* of float views, eval batches are pairs, so the structure tells
    the three apart without looking at the trainer's state.
    """
    return (
        isinstance(batch, (tuple, list))
        and len(batch) == 3
        and isinstance(batch[1], Tensor)
        and batch[1].dtype == torch.uint8
        and batch[1].ndim == 4
    )


class FusedViewsAugment:
    """``MultiViewBatchAugment`` with the views of a batch augmented in one pass.

    Each view draws its own per-sample parameters (``BatchAugment.sample_params``, in view order,
    from the same generator, exactly as ``MultiViewBatchAugment.forward`` does), then the n views
    go through ``BatchAugment.apply`` as one (n*B)-sample batch: every op is per sample, so the
    result is the same, with n times fewer kernel launches (what bounds small-image augmentation
    on a GPU). Ops are skipped only when every view has probability 0; a view whose probability
    is 0 has all its coins off, and an op with its coin off is an exact identity.

    Views can share a pass when they agree on what ``apply`` reads from the settings beyond
    probabilities: crop size, interpolation and whether hue jitter is on; otherwise this falls
    back to the per-view module.
    """

    def __init__(self, multi):
        from .gpu_augment import PROB_KEYS, BatchAugment

        self.multi = multi
        self.views = list(multi.views)
        first = self.views[0].settings

        def key(s):
            return s["crop_size"], s["interpolation"], float(s["hue"]) > 0

        self.fused = len(self.views) > 1 and all(key(v.settings) == key(first) for v in self.views)
        self.applier = None
        if self.fused:
            settings = dict(first)
            for k in PROB_KEYS:  # skip an op only when no view can take it
                settings[k] = max(float(v.settings[k]) for v in self.views)
            view = self.views[0]
            self.applier = BatchAugment(settings, view.mean.flatten().tolist(), view.std.flatten().tolist())

    def to(self, device):
        self.multi.to(device)
        if self.applier is not None:
            self.applier.to(device)
        return self

    @torch.no_grad()
    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        from dataclasses import fields

        from .gpu_augment import AugmentParams, to_float_nchw

        if not self.fused:
            return self.multi(images, generator)
        x = to_float_nchw(images)
        if generator is not None and generator.device.type != x.device.type:
            raise ValueError(
                f"generator is on {generator.device} but images are on {x.device}; "
                "create the generator on the images' device"
            )
        b, _, height, width = x.shape
        n = len(self.views)
        with torch.autocast(device_type=x.device.type, enabled=False):
            params = [v.sample_params(b, height, width, generator, x.device) for v in self.views]
            merged = AugmentParams(
                **{f.name: torch.cat([getattr(p, f.name) for p in params]) for f in fields(AugmentParams)}
            )
            out = self.applier.apply(x.repeat(n, 1, 1, 1), merged)
        return list(out.split(b))
