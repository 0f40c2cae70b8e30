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
from typing import Callable, Iterator

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

    def __init__(self, num_samples: int, batch_size: int, *, shuffle: bool, drop_last: bool,
                 seed: int = 0, rank: int = 0, world_size: int = 1, pad: bool = True):
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
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[Tensor]:
        idx = self.rank_indices()
        for b in range(len(self)):
            yield idx[b * self.batch_size:(b + 1) * self.batch_size]


class DeviceBatchLoader:
    """A sized iterable of batches gathered from tensors that live on ``device``.

    images: uint8 (N, H, W, 3); targets: int64 (N,); indexes: int64 (N,) the samples' positions in
    the full dataset (the ``indexes`` of the training batch contract). They are moved to ``device``
    once. Each batch is ``(indexes, images, targets)``, or ``(transform(images), targets)`` when
    ``transform`` is given (evaluation: the normalised ``(x, y)`` contract).

    ``generator`` is a ``torch.Generator`` on ``device``, re-seeded at the start of every epoch
    from ``stream_seed(seed, epoch, rank)``: the augmentation stream of the datamodule's hook.
    """

    def __init__(self, images: Tensor, targets: Tensor, batch_size: int, *, device="cpu",
                 indexes: Tensor | None = None, shuffle: bool = True, drop_last: bool = True,
                 seed: int = 0, rank: int = 0, world_size: int = 1,
                 transform: Callable[[Tensor], Tensor] | None = None, pad: bool = True):
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
        self.sampler = EpochShardSampler(len(images), batch_size, shuffle=shuffle, drop_last=drop_last,
                                         seed=seed, rank=rank, world_size=world_size, pad=pad)
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
        for pos in self.sampler:
            pos = pos.to(self.device, non_blocking=True)
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
    return (isinstance(batch, (tuple, list)) and len(batch) == 3 and isinstance(batch[1], Tensor)
            and batch[1].dtype == torch.uint8 and batch[1].ndim == 4)
