"""Cost of EWC's per-sample Fisher (``--ewc_fisher sample``) against one training step.

    python benchmarks/ewc_fisher_cost.py [--backbone resnet18] [--batch 32] [--device cpu]

Times, on one batch of CIFAR-sized views, a forward + backward of the method's SSL loss and the
per-sample Fisher pass of ``cassle.strategies.fisher.sample_fisher`` (a forward + backward plus the
vectorised per-sample weight gradients), and prints both and their ratio. The Fisher runs once per
task over ``--ewc_fisher_samples`` images (default 1024), i.e. about ratio x 1024 / B steps.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cassle.strategies.ewc import ssl_parameters
from cassle.strategies.fisher import sample_fisher
from main_continual import build_model
from tests.helpers import tiny_args


def _timed(fn, device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--method", default="barlow_twins")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    device = torch.device(a.device)
    args = tiny_args(a.method, "--num_tasks", "2", "--cl_strategy", "ewc")
    args.backbone, args.num_classes, args.proj_hidden_dim, args.output_dim = a.backbone, 4, 512, 512
    model = build_model(args).to(device).train()
    views = [torch.randn(a.batch, 3, 32, 32, device=device) for _ in range(2)]
    named = dict(ssl_parameters(model))
    params = list(named.values())

    def step():
        torch.autograd.grad(model.plain_ssl_loss(views, None), params)

    def fisher():
        sample_fisher(model, named, [(a.batch, lambda: model.plain_ssl_loss(views, None))])

    t_step, t_fisher = _timed(step, device), _timed(fisher, device)
    print(
        f"{a.method} {a.backbone} batch {a.batch} on {device}: forward+backward {t_step:.3f}s, "
        f"per-sample Fisher {t_fisher:.3f}s, ratio {t_fisher / t_step:.1f}; 1024 images ~ "
        f"{t_fisher / t_step * 1024 / a.batch:.0f} training steps of batch {a.batch}, once per task"
    )


if __name__ == "__main__":
    main()
