"""How a ``ContinualDataModule`` feeds the trainer: the data path and the batched (on-device) path.

``data_path()`` picks ``workers`` (torchvision transforms in DataLoader workers), ``batched`` (tensor
datasets: the task's uint8 images on the trainer's device, augmented in ``on_after_batch_transfer``
by ``MultiViewBatchAugment``) or ``dali`` from ``--data_device`` / ``--dali``, the data set and the
trainer; see ``datamodule.py``'s docstring for the contract. ``BatchedPathMixin`` is mixed into
``ContinualDataModule`` and reads its ``args``, ``view_settings``, ``mean`` / ``std``, ``train_full``
and ``task_indices``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from .datasets import TENSOR_DATASETS
from .gpu_loader import DeviceBatchLoader, FusedViewsAugment, is_raw_train_batch

log = logging.getLogger("cassle.data.datamodule")  # the notices keep the logger name users filter on


class BatchedPathMixin:
    """The data-path choice and the batched path of ``ContinualDataModule``."""

    # ------------------------------------------------------------------ data path
    def _trainer_device(self) -> torch.device | None:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return None
        return torch.device(trainer.strategy.root_device)

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size or 1)

    @property
    def seed(self) -> int:
        return int(getattr(self.args, "seed", 0) or 0)

    def data_path(self) -> str:
        """``workers``, ``batched`` or ``dali`` for the current flags, data set and trainer."""
        mode = self.args.data_device
        if not self.is_tensor_dataset:
            if mode in ("gpu", "cpu_batched"):
                raise ValueError(
                    f"--data_device {mode} needs a tensor dataset ({', '.join(TENSOR_DATASETS)}); "
                    f"{self.args.dataset} is read from files: use --data_device auto or cpu "
                    "(and --dali for GPU decoding)"
                )
            if self.args.dali:
                from .dali import dali_available

                if dali_available():
                    return "dali"
                self._notice(
                    "--dali: NVIDIA DALI is not installed (pip install nvidia-dali-cuda120); using torchvision workers"
                )
            return "workers"
        if self.args.dali:
            self._notice(
                f"--dali is ignored for {self.args.dataset}: tensor datasets use the batched path (--data_device)"
            )
        if mode == "cpu":
            return "workers"
        if mode in ("gpu", "cpu_batched"):
            return "batched"
        device = self._trainer_device()  # auto: batched when training on a CUDA device
        return "batched" if device is not None and device.type == "cuda" else "workers"

    @property
    def gpu_augment(self) -> bool:
        """True when training batches are augmented on the device (batched path)."""
        return self.data_path() == "batched"

    def batched_device(self) -> torch.device:
        """Device holding the images on the batched path."""
        if self.args.data_device == "cpu_batched":
            return torch.device("cpu")
        device = self._trainer_device()
        if device is not None and device.type == "cuda":
            return device
        if self.args.data_device == "gpu":
            if not torch.cuda.is_available():
                raise ValueError(
                    "--data_device gpu needs CUDA, which is not available; valid choices here: auto, cpu, cpu_batched"
                )
            if device is not None:
                raise ValueError(
                    f"--data_device gpu but the trainer runs on {device}; use --accelerator gpu or --data_device auto"
                )
            return torch.device("cuda", torch.cuda.current_device())
        raise ValueError(f"no batched device for --data_device {self.args.data_device}")

    def _notice(self, message: str) -> None:
        """One line on stderr (logging's default handler), once per data module."""
        if message not in self._noticed:
            self._noticed.add(message)
            log.warning(message)

    # ------------------------------------------------------------------ batched path
    def augmenter(self, device: torch.device | str, small_crops: bool = False):
        """The per-view settings' augmentation on ``device`` (cached): ``MultiViewBatchAugment``,
        run as one fused pass over both views (``FusedViewsAugment``, same output).
        ``small_crops``: the training views, with multi-crop's small ones after the global two.

        Bicubic crop resizing, as the reference's (and the CPU path's) RandomResizedCrop.
        """
        from .gpu_augment import MultiViewBatchAugment

        device = torch.device(device)
        key = (device, small_crops)
        if key not in self._augmenters:
            settings = self.train_view_settings if small_crops else self.view_settings
            views = [{**v, "interpolation": "bicubic"} for v in settings]
            multi = MultiViewBatchAugment(views, self.mean, self.std)
            self._augmenters[key] = FusedViewsAugment(multi).to(device)
        return self._augmenters[key]

    def _device_loader(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        indexes: torch.Tensor | None,
        train: bool,
        device: torch.device,
        eval_size: int | None = None,
    ) -> DeviceBatchLoader:
        rank, world = self._rank_world()
        transform = None
        if not train:
            from .gpu_augment import EvalTransform

            transform = EvalTransform(self.mean, self.std, size=eval_size)
        return DeviceBatchLoader(
            images,
            targets,
            self.args.batch_size,
            device=device,
            indexes=indexes,
            shuffle=train,
            drop_last=train,
            seed=self.seed,
            rank=rank,
            world_size=world,
            transform=transform,
        )

    def _eval_size(self) -> int | None:
        """Eval resize for tensor sets: view 1's crop when it differs from the image side."""
        crop = self.view_settings[0]["crop_size"]
        return None if crop == self.train_full.image_size[0] else crop

    def _gpu_train_dataloader(self) -> DeviceBatchLoader:
        device = self.batched_device()
        rank, world = self._rank_world()
        key = (device, rank, world, self.args.batch_size)
        if self._train_loader is None or self._train_loader_key != key:
            idx = self.task_indices
            # Only the task's images go to the device, once.
            self._train_loader = self._device_loader(
                self.train_full.images[idx], self.train_full.targets[idx], idx, train=True, device=device
            )
            self._train_loader_key = key
        return self._train_loader

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int = 0) -> Any:
        """Batched path: augment a raw uint8 training batch into ``(indexes, [v1, v2], targets)``.

        Lightning calls this hook (the module defines none), after moving the batch to the device.
        Other batches (augmented, eval) pass through unchanged; in a dict batch (a CombinedLoader
        of ``{"ssl": ..., "online_eval": ...}``) the ``"ssl"`` entry is augmented. The augmentation
        draws from the train loader's per-epoch generator, so a fixed seed reproduces every view.
        """
        if isinstance(batch, dict) and "ssl" in batch:
            return {**batch, "ssl": self.on_after_batch_transfer(batch["ssl"], dataloader_idx)}
        if not is_raw_train_batch(batch):
            return batch
        indexes, images, targets = batch
        loader = self._train_loader
        generator = loader.generator if loader is not None else None
        if generator is not None and generator.device.type != images.device.type:
            raise ValueError(
                f"training batch on {images.device} but the augmentation generator is on "
                f"{generator.device}: the trainer and --data_device disagree"
            )
        views = self.augmenter(images.device, small_crops=True)(images, generator)
        return indexes, views, targets
