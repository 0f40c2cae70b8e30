"""Replay strategies: ER, DER (Buzzega et al., 2020) and LUMP (Madaan et al., 2022).

All keep a ``ReservoirBuffer`` of past training images (indices into the training set) that the
current batch is offered to after every step, and a ``ReplaySource`` that turns buffer indices into
augmented views on the device.
"""

from __future__ import annotations

import torch

from cassle.data.buffer import ReplaySource, ReservoirBuffer
from cassle.losses.der import der_loss
from cassle.losses.lump import mixup, sample_mixup_lambda
from cassle.strategies.base import Strategy


class _Replay(Strategy):
    kind = "replay"
    default_buffer_size = 500
    stores_z = False

    def __init__(self, model, args):
        super().__init__(model, args)
        size = args.buffer_size or self.default_buffer_size
        self.buffer = ReservoirBuffer(size, z_dim=self.stored_dim(model, args) if self.stores_z else None)
        self.replay_batch_size = args.replay_batch_size or args.batch_size
        self.__dict__["source"] = None
        self.__dict__["has_data"] = False

    def stored_dim(self, model, args) -> int:
        return args.output_dim

    def stored(self, model, out, n: int) -> torch.Tensor:
        """What the buffer keeps of the current batch (DER: the target of its term)."""
        return out.z[0][:n]

    def on_train_start(self, model) -> None:
        dm = model.trainer.datamodule
        self.__dict__["source"] = ReplaySource(dm, model.device)
        self.__dict__["has_data"] = bool(self.buffer.num_seen > 0)  # one host read per task start

    def sample_slots(self, n: int) -> torch.Tensor:
        slots = self.buffer.sample(n)
        self.__dict__["step_replayed"] = self.__dict__.get("step_replayed", 0) + n  # monitor.step_logs
        return slots

    def replay_views(self, n: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        slots = self.sample_slots(n)
        return self.source.views(self.buffer.indices[slots]), slots

    def after_step(self, model, indexes, targets, out, ctx) -> None:
        n = ctx["n"]
        z = self.stored(model, out, n).detach() if self.stores_z else None
        self.buffer.add(indexes, targets, self.task_idx, z=z)
        self.__dict__["has_data"] = True


class Replay(_Replay):
    """ER: the SSL loss on the current batch joined with a batch of replayed buffer images."""

    name = "replay"
    default_buffer_size = 500  # Buzzega et al. (2020), the mid-size buffer of their CIFAR benchmarks

    def batch_hook(self, model, views, ctx):
        if not self.has_data:
            return views
        replayed, _ = self.replay_views(self.replay_batch_size)
        return [torch.cat([v, model._memory_format(r).to(v.dtype)]) for v, r in zip(views, replayed)]


class DER(_Replay):
    """alpha * MSE between today's output for buffer images and the one stored at insertion.

    ``--der_target backbone`` (default, as UCL's SSL DER, Madaan et al. 2022, whose alpha 0.4 was
    tuned with it): the backbone features f(x) of the first view. ``projector``: the method's ``z``
    (``model.project(f(x))``, e.g. L2-normalised for MoCoV2+). The stored and the recomputed
    quantity are the same function of the weights, so the term is 0 while the weights do not move.
    """

    name = "der"
    stores_z = True

    def __init__(self, model, args):
        self.target = getattr(args, "der_target", "backbone")
        super().__init__(model, args)
        self.alpha = args.der_alpha
        self.ucl_views = getattr(args, "der_views", "ssl") == "ucl"
        self.__dict__["crop_flip"] = None

    def on_train_start(self, model) -> None:
        super().on_train_start(model)
        if self.ucl_views:  # UCL: transform(buffered image) = a fresh crop + flip, no colour
            from cassle.strategies.lump_views import crop_flip_augment

            dm = model.trainer.datamodule
            self.__dict__["crop_flip"] = crop_flip_augment(dm, dm.view_settings[0]["crop_size"], model.device)

    def replay_input(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A buffered batch as DER sees it: view 1 of the SSL augmentation, or UCL's crop + flip."""
        if self.crop_flip is None:
            replayed, slots = self.replay_views(n)
            return replayed[0], slots
        slots = self.sample_slots(n)
        return self.crop_flip(self.source.gather(self.buffer.indices[slots])), slots

    def stored_dim(self, model, args) -> int:
        return model.features_dim if self.target == "backbone" else args.output_dim

    def stored(self, model, out, n):
        return (out.feats if self.target == "backbone" else out.z)[0][:n]

    def recompute(self, model, x: torch.Tensor) -> torch.Tensor:
        feats = model.backbone(x)
        return feats if self.target == "backbone" else model.project(feats)

    def loss(self, model, views, out, ctx):
        if not self.has_data:
            return None, {}
        x, slots = self.replay_input(self.replay_batch_size)
        x = model._memory_format(x)
        return self.alpha * der_loss(self.recompute(model, x), self.buffer.z[slots]), {}


class LUMP(_Replay):
    """Each view mixed with a view of buffer images, lambda ~ Beta(alpha, alpha) per step.

    ``--lump_views ssl`` (default): both buffer views are fresh views of the method's own SSL
    augmentation. ``ucl``: UCL's ``mixup.py`` (Madaan et al. 2022's code): view 1 a fresh
    RandomResizedCrop(scale 0.08-1, bicubic) + flip of the buffered image, view 2 the second view
    the image had when it was buffered (kept in the buffer, ``cassle.strategies.lump_views``).
    """

    name = "lump"
    default_buffer_size = 256  # Madaan et al. (2022), CIFAR / Tiny-ImageNet configs

    def __init__(self, model, args):
        super().__init__(model, args)
        self.alpha = args.lump_alpha
        self.replay_batch_size = args.batch_size  # mixes one buffer image into each current one
        self.ucl = getattr(args, "lump_views", "ssl") == "ucl"
        if self.ucl:
            from cassle.strategies.lump_views import StoredViews

            self.stored_views = StoredViews(self.buffer.capacity, args)

    def on_train_start(self, model) -> None:
        super().on_train_start(model)
        if self.ucl:
            self.stored_views.on_train_start(model.trainer.datamodule, model.device)

    def batch_hook(self, model, views, ctx):
        if self.ucl:
            ctx["lump_view2"] = views[1][: views[0].shape[0]]  # buffered with the image, unmixed
        if not self.has_data:
            return views
        if self.ucl:
            slots = self.sample_slots(views[0].shape[0])
            replayed = self.stored_views.views(self.source.gather(self.buffer.indices[slots]), slots)
        else:
            replayed, _ = self.replay_views(views[0].shape[0])
        lam = sample_mixup_lambda(self.alpha, views[0].device)
        ctx["lump_lambda"] = lam
        return [mixup(v, model._memory_format(r).to(v.dtype), lam) for v, r in zip(views, replayed)]

    def after_step(self, model, indexes, targets, out, ctx) -> None:
        slot = self.buffer.add(indexes, targets, self.task_idx)
        if self.ucl:
            self.stored_views.add(slot, ctx["lump_view2"])
        self.__dict__["has_data"] = True
