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
        self.buffer = ReservoirBuffer(size, z_dim=args.output_dim if self.stores_z else None)
        self.replay_batch_size = args.replay_batch_size or args.batch_size
        self.__dict__["source"] = None
        self.__dict__["has_data"] = False

    def on_train_start(self, model) -> None:
        dm = model.trainer.datamodule
        self.__dict__["source"] = ReplaySource(dm, model.device)
        self.__dict__["has_data"] = bool(self.buffer.num_seen > 0)  # one host read per task start

    def replay_views(self, n: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        slots = self.buffer.sample(n)
        self.__dict__["step_replayed"] = self.__dict__.get("step_replayed", 0) + n  # monitor.step_logs
        return self.source.views(self.buffer.indices[slots]), slots

    def after_step(self, model, indexes, targets, out, ctx) -> None:
        n = ctx["n"]
        z = out.z[0][:n] if self.stores_z else None
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
    """alpha * MSE between today's projection of buffer images and the one stored at insertion."""

    name = "der"
    stores_z = True

    def __init__(self, model, args):
        super().__init__(model, args)
        self.alpha = args.der_alpha

    def loss(self, model, views, out, ctx):
        if not self.has_data:
            return None, {}
        replayed, slots = self.replay_views(self.replay_batch_size)
        x = model._memory_format(replayed[0])
        z = model.projector(model.backbone(x))
        return self.alpha * der_loss(z, self.buffer.z[slots]), {}


class LUMP(_Replay):
    """Each view mixed with a view of buffer images, lambda ~ Beta(alpha, alpha) per step."""

    name = "lump"
    default_buffer_size = 256  # Madaan et al. (2022), CIFAR / Tiny-ImageNet configs

    def __init__(self, model, args):
        super().__init__(model, args)
        self.alpha = args.lump_alpha
        self.replay_batch_size = args.batch_size  # mixes one buffer image into each current one

    def batch_hook(self, model, views, ctx):
        if not self.has_data:
            return views
        replayed, _ = self.replay_views(views[0].shape[0])
        lam = sample_mixup_lambda(self.alpha, views[0].device)
        ctx["lump_lambda"] = lam
        return [mixup(v, model._memory_format(r).to(v.dtype), lam) for v, r in zip(views, replayed)]
