"""Calls per LARS step: the foreach LARS against the per-parameter loop it replaced.

    python benchmarks/lars_calls.py            # ResNet-18 (CIFAR stem) + 3-layer projector + predictor

Counts the top-level aten calls of one optimiser step with torch's profiler (on a GPU each is at
least one kernel launch) and times a few steps on this machine's CPU. The per-parameter loop is the
reference implementation kept in tests/test_optim.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from cassle.backbones import build_backbone  # noqa: E402
from cassle.methods.base import mlp  # noqa: E402
from cassle.utils.lars import LARS, exclude_bias_and_norm_param_groups  # noqa: E402
from tests.test_optim import PerParameterLARS  # noqa: E402


def main() -> None:
    torch.manual_seed(0)
    backbone, dim = build_backbone("resnet18", cifar=True)
    net = nn.ModuleList([backbone, mlp(dim, 2048, 2048, layers=3), mlp(2048, 2048, 2048)])
    groups = exclude_bias_and_norm_param_groups(net, 1e-4)
    for p in net.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    print(f"{sum(1 for _ in net.parameters())} parameters")
    for cls in (PerParameterLARS, LARS):
        opt = cls(groups, lr=0.3, momentum=0.9, weight_decay=1e-4, eta=0.02, clip_lr=True)
        opt.step()  # momentum buffers exist from here on, as in training
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            opt.step()
        calls = [
            e
            for e in prof.events()
            if e.name.startswith("aten::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))
        ]
        t0 = time.perf_counter()
        for _ in range(5):
            opt.step()
        ms = (time.perf_counter() - t0) / 5 * 1000
        print(f"{cls.__name__:18s} {len(calls):5d} top-level aten calls per step, {ms:7.1f} ms per step (CPU)")


if __name__ == "__main__":
    main()
