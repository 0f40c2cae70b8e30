"""Frozen-model regularisers: Less-Forget (LUCIR), POD-spatial (PODNet), PFR.

They read the previous task's frozen backbone (``model.frozen_backbone``, the snapshot CaSSLe uses
too) and are inactive at task 0, where there is no previous model.
"""
from __future__ import annotations

import torch
from torch import nn

from cassle.losses.less_forget import less_forget_loss
from cassle.losses.pfr import pfr_loss
from cassle.losses.pod import pod_spatial_loss
from cassle.strategies.base import Strategy, adaptive_factor


class _FrozenRegularizer(Strategy):
    needs_frozen = True

    def frozen_feats(self, model, views) -> list[torch.Tensor]:
        with torch.no_grad():
            return [model.frozen_backbone(v) for v in views]


class LessForget(_FrozenRegularizer):
    """lambda_base * sqrt(t) * mean(1 - cos(f, f*)) on backbone features (Hou et al., 2019)."""

    name = "less_forget"

    def __init__(self, model, args):
        super().__init__(model, args)
        self.lamb = args.less_forget_lamb * adaptive_factor(self.task_idx)

    def loss(self, model, views, out, ctx):
        if not model.frozen_active:
            return None, {}
        old = self.frozen_feats(model, views)
        term = torch.stack([less_forget_loss(f, o) for f, o in zip(out.feats, old)]).mean()
        return self.lamb * term, {}


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
            self.projector = nn.Sequential(nn.Linear(d, hidden), nn.BatchNorm1d(hidden),
                                           nn.ReLU(inplace=True), nn.Linear(hidden, d))
        self.lamb = args.pfr_lamb

    def loss(self, model, views, out, ctx):
        if not model.frozen_active:
            return None, {}
        old = self.frozen_feats(model, views)
        term = torch.stack([pfr_loss(self.projector(f), o) for f, o in zip(out.feats, old)]).mean()
        return self.lamb * term, {}


def backbone_stages(backbone: nn.Module) -> list[nn.Module]:
    """The stages POD pools: ResNet's layer1..layer4, the tiny net's three conv blocks."""
    if all(hasattr(backbone, f"layer{i}") for i in range(1, 5)):
        return [getattr(backbone, f"layer{i}") for i in range(1, 5)]
    if hasattr(backbone, "features") and isinstance(backbone.features, nn.Sequential):
        return list(backbone.features)
    raise ValueError(f"--cl_strategy pod does not know the stages of {type(backbone).__name__} "
                     "(ResNets and the tiny net are supported)")


class _StageRecorder:
    """Forward hooks that append each stage's output while ``active``."""

    def __init__(self, stages):
        self.active = False
        self.outputs: list[list[torch.Tensor]] = [[] for _ in stages]
        for i, stage in enumerate(stages):
            stage.register_forward_hook(self._hook(i))

    def _hook(self, i):
        def hook(module, inputs, output):
            if self.active:
                self.outputs[i].append(output)
        return hook

    def start(self):
        self.outputs = [[] for _ in self.outputs]
        self.active = True

    def stop(self) -> list[torch.Tensor]:
        """Per stage, the outputs of all calls since start() concatenated along the batch."""
        self.active = False
        out = [torch.cat(o) for o in self.outputs if o]
        self.outputs = [[] for _ in self.outputs]
        return out


class POD(_FrozenRegularizer):
    """lambda * sqrt(t) * POD-spatial over the backbone stages (Douillard et al., 2020)."""

    name = "pod"

    def __init__(self, model, args):
        super().__init__(model, args)
        self.lamb = args.pod_lamb * adaptive_factor(self.task_idx)
        # Hooks live outside the module tree (not in the state dict, not deep-copied).
        self.__dict__["_current"] = _StageRecorder(backbone_stages(model.backbone))
        self.__dict__["_frozen"] = (_StageRecorder(backbone_stages(model.frozen_backbone))
                                    if model.frozen_active else None)

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
        self._frozen.start()
        with torch.no_grad():
            for v in views:  # per view, like the method's calls (same BatchNorm batches)
                model.frozen_backbone(v)
        old = self._frozen.stop()
        if [h.shape for h in new] != [h.shape for h in old]:
            raise RuntimeError("--cl_strategy pod: the method's backbone calls do not match the views "
                               f"({[tuple(h.shape) for h in new]} vs {[tuple(h.shape) for h in old]})")
        return self.lamb * pod_spatial_loss(new, old), {}
