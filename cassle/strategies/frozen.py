"""Frozen-model regularisers: Less-Forget (LUCIR), POD-spatial (PODNet), PFR.

They read the previous task's frozen backbone (``model.frozen_backbone``, the snapshot CaSSLe uses
too) and are inactive at task 0, where there is no previous model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cassle.losses.less_forget import less_forget_loss
from cassle.losses.pfr import pfr_loss
from cassle.losses.pod import pod_flat_loss, pod_spatial_loss
from cassle.strategies.base import Strategy, adaptive_factor
from cassle.strategies.stages import PreReluRecorder


def podnet_factor(task_idx: int) -> float:
    """PODNet's sqrt(|C_seen| / |C_task|) with equal-size tasks, the current one counted: sqrt(t + 1)."""
    return math.sqrt(task_idx + 1)


class _FrozenRegularizer(Strategy):
    needs_frozen = True

    def frozen_feats(self, model, views) -> list[torch.Tensor]:
        with torch.no_grad():
            return [model.frozen_backbone(v) for v in views]


class LessForget(_FrozenRegularizer):
    """lambda_base * sqrt(t) * mean(1 - cos(f, f*)) (Hou et al., 2019).

    f, f*: the current and the frozen backbone's features taken, as LUCIR's (its last block has no
    ReLU; the cosine classifier reads the pooled pre-activation map), as the global average of the
    last stage's map before its final ReLU (``--less_forget_features pre_relu``, default); the
    backbone's output after the ReLU with ``post_relu``.
    """

    name = "less_forget"

    def __init__(self, model, args):
        super().__init__(model, args)
        self.lamb = args.less_forget_lamb * adaptive_factor(self.task_idx)
        self.pre_relu = getattr(args, "less_forget_features", "pre_relu") == "pre_relu"
        if self.pre_relu:  # hooks live outside the module tree (not in the state dict)
            self.__dict__["_current"] = PreReluRecorder(model.backbone, stages=[-1])
            self.__dict__["_frozen"] = (
                PreReluRecorder(model.frozen_backbone, stages=[-1]) if model.frozen_active else None
            )

    def batch_hook(self, model, views, ctx):
        if self.pre_relu and model.frozen_active:
            self._current.start()  # the method's own backbone calls of this step
        return views

    def forward_done(self, model, ctx):
        if self.pre_relu and model.frozen_active:
            ctx["less_forget_maps"] = self._current.stop()

    def loss(self, model, views, out, ctx):
        if not model.frozen_active:
            return None, {}
        if not self.pre_relu:
            pairs = zip(out.feats, self.frozen_feats(model, views))
            term = torch.stack([less_forget_loss(f, o) for f, o in pairs]).mean()
            return self.lamb * term, {}
        (new,) = ctx.pop("less_forget_maps")
        with torch.no_grad():
            (old,) = self._frozen.record(lambda: [model.frozen_backbone(v) for v in views])
        check_calls("less_forget", [new], [old])
        n = views[0].shape[0]  # per view, as the method's calls: mean over views of the view's mean
        terms = [less_forget_loss(a.mean(dim=(2, 3)), b.mean(dim=(2, 3))) for a, b in zip(new.split(n), old.split(n))]
        return self.lamb * torch.stack(terms).mean(), {}


class PFR(_FrozenRegularizer):
    """lamb * -cos(p(f), f*) with the temporal projector p: d -> d/2 -> d (Gomez-Villa et al.)."""

    name = "pfr"

    def __init__(self, model, args):
        super().__init__(model, args)
        # Built from task 1 on only: at task 0 nothing uses it (DDP rejects unused parameters) and
        # building it would draw random numbers, so task 0 would differ from the plain method's.
        self.projector = None
        if self.task_idx > 0:
            d = model.features_dim
            hidden = args.pfr_proj_hidden_dim or d // 2
            self.projector = nn.Sequential(
                nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, d)
            )
        self.lamb = args.pfr_lamb

    def loss(self, model, views, out, ctx):
        if not model.frozen_active:
            return None, {}
        old = self.frozen_feats(model, views)
        term = torch.stack([pfr_loss(self.projector(f), o) for f, o in zip(out.feats, old)]).mean()
        return self.lamb * term, {}


def check_calls(name: str, new: list[torch.Tensor], old: list[torch.Tensor]) -> None:
    if [h.shape for h in new] != [h.shape for h in old]:
        raise RuntimeError(
            f"--cl_strategy {name}: the method's backbone calls do not match the views "
            f"({[tuple(h.shape) for h in new]} vs {[tuple(h.shape) for h in old]})"
        )


class POD(_FrozenRegularizer):
    """PODNet's distillation (Douillard et al., 2020) on the backbone stages, before their final ReLU.

    lambda_s * sqrt(t + 1) * POD-spatial + lambda_f * sqrt(t + 1) * POD-flat: PODNet's factor
    sqrt(|C_seen| / |C_task|) counts the current task's classes (sqrt(t + 1) for equal tasks).
    POD-flat (``--pod_flat_lamb``, 0 = off) is 1 - cos of the pooled last-stage features.
    """

    name = "pod"

    def __init__(self, model, args):
        super().__init__(model, args)
        factor = podnet_factor(self.task_idx)
        self.lamb = args.pod_lamb * factor
        self.flat_lamb = getattr(args, "pod_flat_lamb", 0.0) * factor
        # Hooks live outside the module tree (not in the state dict, not deep-copied).
        self.__dict__["_current"] = PreReluRecorder(model.backbone)
        self.__dict__["_frozen"] = PreReluRecorder(model.frozen_backbone) if model.frozen_active else None

    def batch_hook(self, model, views, ctx):
        if model.frozen_active:
            self._current.start()  # records the method's own backbone calls of this step
        return views

    def forward_done(self, model, ctx):
        if model.frozen_active:
            ctx["pod_stages"] = self._current.stop()  # before other strategies call the backbone

    def loss(self, model, views, out, ctx):
        if not model.frozen_active:
            return None, {}
        new = ctx.pop("pod_stages")
        with torch.no_grad():  # per view, like the method's calls (same BatchNorm batches)
            old = self._frozen.record(lambda: [model.frozen_backbone(v) for v in views])
        check_calls("pod", new, old)
        spatial = pod_spatial_loss(new, old)
        term, logs = self.lamb * spatial, {"pod_spatial": spatial.detach()}
        if self.flat_lamb:
            n = views[0].shape[0]
            flat = torch.stack([pod_flat_loss(a, b) for a, b in zip(new[-1].split(n), old[-1].split(n))]).mean()
            term, logs["pod_flat"] = term + self.flat_lamb * flat, flat.detach()
        return term, logs
