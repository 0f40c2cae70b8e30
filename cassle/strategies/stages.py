"""The backbone stages the feature-distillation strategies read, taken before their final ReLU.

PODNet (Douillard et al. 2020) pools each stage's output *before* the stage's last ReLU (its
ResNets' blocks have ``last_relu=False``: ``attention = [stage_1[-1], ..., stage_4]``), and LUCIR
(Hou et al. 2019) and POD-flat compare the pooled features of the last stage before its ReLU
(``raw_features``). Our backbones apply that ReLU inside the stage, so a forward pre-hook on the
stage's final ReLU module copies its input (the pre-activation map) while a recording is active:

* torchvision ResNets (resnet18, resnet50): stage = ``layerK``, its last block's ``relu`` is called
  last on ``out + identity``;
* the tiny net: stage = ``features[i]`` (conv, BN, ReLU), the ReLU is its last module.

Any other backbone is an error naming it (there is no stage whose pre-ReLU map we can name). The
copy costs one activation map per stage and call while recording (only from task 1 on).
"""

from __future__ import annotations

import torch
from torch import nn


def stage_relus(backbone: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """(stage, the ReLU applied last inside it) per stage, in order."""
    if all(hasattr(backbone, f"layer{i}") for i in range(1, 5)):
        stages = [getattr(backbone, f"layer{i}") for i in range(1, 5)]
        return [(stage, stage[-1].relu) for stage in stages]
    if (
        hasattr(backbone, "features")
        and isinstance(backbone.features, nn.Sequential)
        and all(isinstance(s, nn.Sequential) and isinstance(s[-1], nn.ReLU) for s in backbone.features)
    ):
        return [(stage, stage[-1]) for stage in backbone.features]
    raise ValueError(
        f"the backbone {type(backbone).__name__} has no known stages before a final ReLU "
        "(--cl_strategy pod / less_forget support the ResNets and the tiny net)"
    )


class PreReluRecorder:
    """Hooks that append each stage's pre-ReLU output while ``active`` (autograd kept)."""

    def __init__(self, backbone: nn.Module, stages: list[int] | None = None):
        pairs = stage_relus(backbone)
        self.which = list(range(len(pairs))) if stages is None else [i % len(pairs) for i in stages]
        self.active = False
        self.outputs: list[list[torch.Tensor]] = [[] for _ in self.which]
        self._last: list[torch.Tensor | None] = [None for _ in self.which]
        for k, i in enumerate(self.which):
            stage, relu = pairs[i]
            relu.register_forward_pre_hook(self._pre_hook(k))
            stage.register_forward_hook(self._stage_hook(k))

    def _pre_hook(self, k):
        def hook(module, inputs):
            if self.active:  # the ReLU may be in place: copy its input before it runs
                self._last[k] = inputs[0].clone()

        return hook

    def _stage_hook(self, k):
        def hook(module, inputs, output):
            if self.active:  # the last ReLU call inside the stage is the stage's final one
                self.outputs[k].append(self._last[k])
                self._last[k] = None

        return hook

    def start(self) -> None:
        self.outputs = [[] for _ in self.which]
        self.active = True

    def stop(self) -> list[torch.Tensor]:
        """Per stage, the pre-ReLU maps of all calls since start() concatenated along the batch."""
        self.active = False
        out = [torch.cat(o) for o in self.outputs if o]
        self.outputs = [[] for _ in self.which]
        self._last = [None for _ in self.which]
        return out

    def record(self, fn) -> list[torch.Tensor]:
        """Run ``fn()`` while recording; the stages' pre-ReLU maps."""
        self.start()
        try:
            fn()
        finally:
            out = self.stop()
        return out
