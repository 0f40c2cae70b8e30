"""The settings of `throughput.py`: its modes, recipes, smoke flags, command line and the argv it builds.

Kept apart so that `throughput.py` holds the measurements only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# strategy: strategy_cost.py, pocon: pocon_cost.py (CaSSLe's successors; not in the default)
MODES = ("step", "gpu", "workers", "finetune", "augment", "optim", "strategy", "pocon")
DEFAULT_MODES = MODES[:6]  # the Speed issue's figures
# The optimiser variants of the "optim" mode (flags after the recipe's, so they win).
OPTIMIZER_FLAGS = {"lars": ["--lars"], "sgd": ["--no-lars", "--optimizer", "sgd"]}
TARGETS = {"e2e_gpu_vs_step": 0.85, "e2e_gpu_vs_workers": 2.0}
# CIFAR recipe of the reference (REFERENCE.md section 4) for the method being measured: the
# optimiser (LARS) and augmentation settings change the cost of a step, so use the real ones.
RECIPES = {
    "barlow_twins": [
        "--lr",
        "0.3",
        "--classifier_lr",
        "0.1",
        "--weight_decay",
        "1e-4",
        "--lars",
        "--eta_lars",
        "0.02",
        "--grad_clip_lars",
        "--exclude_bias_n_norm",
        "--brightness",
        "0.4",
        "--contrast",
        "0.4",
        "--saturation",
        "0.2",
        "--hue",
        "0.1",
        "--solarization_prob",
        "0.0",
        "0.2",
        "--scale_loss",
        "0.1",
    ]
}
SMOKE_FLAGS = [
    "--dataset",
    "synthetic",
    "--synthetic_size",
    "192",
    "--synthetic_image_size",
    "16",
    "--crop_size",
    "16",
    "--num_classes",
    "4",
    "--accelerator",
    "cpu",
    "--devices",
    "1",
    "--proj_hidden_dim",
    "32",
    "--output_dim",
    "16",
    "--distill_proj_hidden_dim",
    "32",
]


def parse_bench_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Arguments after `--` go to cassle's own parser unchanged."
    )
    p.add_argument("--method", default="barlow_twins")
    p.add_argument("--distiller", default="decorrelative")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--dataset", default="cifar100")
    p.add_argument("--data_dir", default=None)
    p.add_argument("--num_tasks", type=int, default=5)
    p.add_argument("--steps", type=int, default=100, help="timed iterations per mode")
    p.add_argument("--warmup_steps", type=int, default=20, help="untimed iterations first (>= 1)")
    p.add_argument("--precision", default="auto", help="as main_continual: auto = bf16-mixed on bf16 GPUs")
    p.add_argument("--channels_last", default="auto", choices=["auto", "on", "off"])
    p.add_argument(
        "--num_workers",
        type=int,
        default=None,
        help="workers of the torchvision mode (default: the CPU count, at most 16)",
    )
    p.add_argument("--modes", default=",".join(DEFAULT_MODES), help=f"comma list out of {', '.join(MODES)}, or all")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument(
        "--pnr_distiller",
        default="auto",
        help="strategy mode: PNR's distiller measured beside CaSSLe's (auto: the method's; none: skip)",
    )
    p.add_argument(
        "--cl_strategies",
        default="auto",
        help="strategy mode: comma list of --cl_strategy values (auto: strategy_cost.STRATEGY_COST, the "
        "method's: CroMo-Mixup added to CaSSLe, Osiris without a distiller)",
    )
    p.add_argument(
        "--smoke", action="store_true", help="tiny sizes on the CPU: tiny backbone, synthetic data, a few steps"
    )
    p.add_argument("--output", default=None, help="JSON file to write")
    p.add_argument("--matrix", action="store_true", help="every method x {resnet18, vit_small} (throughput_matrix.py)")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    b = p.parse_args(argv)
    b.extra = extra
    b.modes = [m.strip() for m in b.modes.split(",") if m.strip()]
    if b.modes == ["all"]:
        b.modes = list(MODES)
    bad = [m for m in b.modes if m not in MODES]
    if bad:
        p.error(f"unknown mode(s) {bad}; valid: {', '.join(MODES)}")
    if b.smoke:
        b.backbone, b.dataset = "tiny", "synthetic"
        b.batch_size = min(b.batch_size, 16)
        b.num_tasks, b.steps, b.warmup_steps = 2, min(b.steps, 4), min(b.warmup_steps, 2)
        if b.num_workers is None:
            b.num_workers = 1
    if b.num_workers is None:
        b.num_workers = min(16, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    if b.warmup_steps < 1 or b.steps < 1:
        p.error("--steps and --warmup_steps must be >= 1")
    return b


def cassle_argv(
    b: argparse.Namespace, *, distiller: str | None, data_device: str, checkpoint_dir: str, more: tuple[str, ...] = ()
) -> list[str]:
    """The main_continual command line this benchmark measures."""
    argv = [
        "--method",
        b.method,
        "--backbone",
        b.backbone,
        "--batch_size",
        str(b.batch_size),
        "--num_tasks",
        str(b.num_tasks),
        "--task_idx",
        "1",
        "--num_workers",
        str(b.num_workers),
        "--precision",
        b.precision,
        "--channels_last",
        b.channels_last,
        "--seed",
        str(b.seed),
        "--data_device",
        data_device,
        "--no_progress_bar",
        "--checkpoint_dir",
        checkpoint_dir,
        *RECIPES.get(b.method, []),
    ]
    if not b.smoke:
        argv += ["--dataset", b.dataset]
    if b.data_dir:
        argv += ["--data_dir", b.data_dir]
    if distiller:
        argv += ["--distiller", distiller]
    if b.smoke:
        argv += SMOKE_FLAGS
    return argv + list(b.extra) + list(more)
