"""The replay buffer: reservoir sampling over the training stream, images kept as indices.

``ReservoirBuffer`` (an ``nn.Module`` whose state is in the model's ``state_dict``, hence in every
checkpoint: a killed task resumes with the same buffer, and task t starts from task t-1's buffer)
holds, per slot, the *index* of the image in the full training set, its label (for monitoring
only), the task it came from and, for DER, the projection the model gave it when it was inserted.
Every training image is offered once per step it appears in (Vitter's algorithm R, vectorised on
the device): the n-th image of the stream replaces a uniformly chosen slot with probability
capacity / n, so every image seen so far is in the buffer with the same probability and equal-size
tasks get equal shares in expectation. Nothing here reads a device value on the host.

``ReplaySource`` turns buffer indices into augmented views on the training device:

* tensor datasets (CIFAR, digits, synthetic): the uint8 images are gathered on the device and
  augmented by the datamodule's batched augmentation (the on-device path's own; on the worker path
  the CPU pipeline and this one draw from the same distribution);
* image folders (torchvision workers or DALI): buffer images are decoded once with the dataset's
  reader, resized (shorter side) and centre-cropped to a square of 8/7 of the crop (256 for 224),
  cached as uint8 on the device, and augmented by the same batched augmentation. Reading which
  images to decode costs one host sync per step on that path.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ReservoirBuffer(nn.Module):
    """``capacity`` slots filled by reservoir sampling. Slot ``capacity`` is an internal sink that
    absorbs rejected samples, so insertion has no data-dependent shapes (no host sync)."""

    def __init__(self, capacity: int, z_dim: int | None = None):
        super().__init__()
        if capacity < 1:
            raise ValueError(f"--buffer_size must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        size = self.capacity + 1
        self.register_buffer("indices", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("labels", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("tasks", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("num_seen", torch.zeros((), dtype=torch.long))
        self.z_dim = z_dim
        if z_dim is not None:
            self.register_buffer("z", torch.zeros(size, z_dim))

    def num_filled(self) -> torch.Tensor:
        """min(num_seen, capacity), a device tensor."""
        return self.num_seen.clamp(max=self.capacity)

    @torch.no_grad()
    def add(
        self, indexes: torch.Tensor, labels: torch.Tensor, task: int, z: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Offer a batch to the reservoir (algorithm R, vectorised); returns each item's slot
        (``capacity``: not kept)."""
        n = indexes.shape[0]
        pos = self.num_seen + torch.arange(n, device=indexes.device)  # stream position, 0-based
        # Uniform integer in [0, pos]: the slot it would replace; kept only when < capacity.
        draw = (torch.rand(n, device=indexes.device, dtype=torch.float64) * (pos + 1)).long()
        draw = torch.minimum(draw, pos)  # guard against rounding up to pos + 1
        slot = torch.where(pos < self.capacity, pos, draw)
        slot = torch.where(slot < self.capacity, slot, torch.full_like(slot, self.capacity))
        self.indices.index_put_((slot,), indexes.to(self.indices.dtype))
        self.labels.index_put_((slot,), labels.to(self.labels.dtype))
        self.tasks.index_put_((slot,), torch.full_like(slot, int(task)))
        if self.z_dim is not None:
            if z is None:
                raise ValueError("this buffer stores projections (DER): pass z")
            self.z.index_put_((slot,), z.detach().to(self.z.dtype))
        self.num_seen += n
        return slot

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """``n`` slots drawn uniformly among the filled ones, without replacement while the buffer
        holds at least ``n`` images (cycling through a random order otherwise)."""
        device = self.indices.device
        keys = torch.rand(self.capacity, device=device)
        filled = self.num_filled()
        keys = torch.where(torch.arange(self.capacity, device=device) < filled, keys, keys + 2)
        order = keys.argsort()  # filled slots first, in random order
        return order[torch.arange(n, device=device) % filled.clamp(min=1)]

    def extra_repr(self) -> str:
        return f"capacity={self.capacity}, z_dim={self.z_dim}"


def can_return_past_images(dataset: Any) -> bool:
    """Tensor datasets and map-style datasets (``__getitem__`` + ``__len__``) can."""
    return hasattr(dataset, "images") or (
        hasattr(dataset, "__getitem__")
        and hasattr(dataset, "__len__")
        and not isinstance(dataset, torch.utils.data.IterableDataset)
    )


class ReplaySource:
    """Buffer indices -> augmented, normalised views on ``device`` (see the module docstring)."""

    def __init__(self, datamodule, device: torch.device | str):
        self.device = torch.device(device)
        self.dataset = datamodule.train_full
        if not can_return_past_images(self.dataset):
            raise ValueError(
                f"--cl_strategy replay/der/lump need a dataset that returns past images by "
                f"index; {type(self.dataset).__name__} cannot"
            )
        self.augment = datamodule.augmenter(self.device)
        self.images = None
        self.cache: dict[int, torch.Tensor] = {}
        if hasattr(self.dataset, "images"):
            self.images = self.dataset.images.to(self.device)  # uint8 (N, H, W, 3), once
        else:
            crop = datamodule.view_settings[0]["crop_size"]
            self.side = int(round(crop * 8 / 7))

    def _decode(self, index: int) -> torch.Tensor:
        from torchvision.transforms import v2

        image = self.dataset[index][0]
        image = v2.functional.to_image(image)
        image = v2.functional.center_crop(
            v2.functional.resize(image, [self.side], antialias=True), [self.side, self.side]
        )
        return image.permute(1, 2, 0).contiguous().to(self.device)  # uint8 (S, S, 3)

    def gather(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 (n, H, W, 3) images of ``indices`` (dataset positions) on the device."""
        if self.images is not None:
            return self.images.index_select(0, indices.to(self.device))
        wanted = [int(i) for i in indices.tolist()]  # image folders: decode on the host
        for i in wanted:
            if i not in self.cache:
                self.cache[i] = self._decode(i)
        if len(self.cache) > 4 * max(len(wanted), 1) + 4096:  # drop images no longer asked for
            keep = set(wanted)
            self.cache = {k: v for k, v in self.cache.items() if k in keep}
        return torch.stack([self.cache[i] for i in wanted])

    def views(self, indices: torch.Tensor) -> list[torch.Tensor]:
        return self.augment(self.gather(indices))
