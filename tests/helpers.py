"""Tiny configurations shared by the tests: a small backbone, small heads, synthetic data."""

from __future__ import annotations

import torch

from cassle.utils.args import parse_args

# Small sizes per method so each trains in a fraction of a second per step on CPU.
TINY_METHOD_FLAGS = {
    "simclr": ["--proj_hidden_dim", "32", "--output_dim", "16"],
    "mocov2plus": ["--proj_hidden_dim", "32", "--output_dim", "16", "--queue_size", "64"],
    "byol": ["--proj_hidden_dim", "32", "--output_dim", "16", "--pred_hidden_dim", "32"],
    "barlow_twins": ["--proj_hidden_dim", "32", "--output_dim", "16"],
    "swav": [
        "--proj_hidden_dim",
        "32",
        "--output_dim",
        "16",
        "--num_prototypes",
        "20",
        "--queue_size",
        "32",
        "--epoch_queue_starts",
        "0",
        "--freeze_prototypes_epochs",
        "0",
    ],
    "vicreg": ["--proj_hidden_dim", "32", "--output_dim", "16"],
    "simsiam": ["--proj_hidden_dim", "32", "--output_dim", "16", "--pred_hidden_dim", "32"],
    "nnclr": ["--proj_hidden_dim", "32", "--output_dim", "16", "--pred_hidden_dim", "32", "--queue_size", "64"],
    "ressl": ["--proj_hidden_dim", "32", "--output_dim", "16", "--queue_size", "64"],
    # whitening needs slices longer than the output (a full-rank covariance); 8 divides the
    # tests' batches of 8 and 16
    "wmse": ["--proj_hidden_dim", "32", "--output_dim", "4", "--whitening_size", "8"],
}
TINY_METHOD_FLAGS.update(
    {
        "dino": ["--proj_hidden_dim", "32", "--output_dim", "16", "--num_prototypes", "20"],
        "deepclusterv2": ["--proj_hidden_dim", "32", "--output_dim", "16", "--num_prototypes", "4", "4"],
        "mocov3": ["--proj_hidden_dim", "32", "--output_dim", "16", "--pred_hidden_dim", "32"],
    }
)


def tiny_argv(method: str, *extra: str, distiller: str | None = None, tmp_path=None) -> list[str]:
    argv = [
        "--method",
        method,
        "--backbone",
        "tiny",
        "--dataset",
        "synthetic",
        "--synthetic_size",
        "64",
        "--synthetic_image_size",
        "16",
        "--crop_size",
        "16",
        "--num_classes",
        "4",
        "--batch_size",
        "16",
        "--num_workers",
        "0",
        "--max_epochs",
        "1",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--distill_proj_hidden_dim",
        "32",
        "--accelerator",
        "cpu",
        "--devices",
        "1",
        "--no_progress_bar",
        "--precision",
        "32",
        *TINY_METHOD_FLAGS[method],
    ]
    if distiller:
        argv += ["--distiller", distiller]
    if tmp_path is not None:
        argv += ["--checkpoint_dir", str(tmp_path)]
    return argv + list(extra)


def tiny_args(method: str, *extra: str, distiller: str | None = None, tmp_path=None):
    args = parse_args(tiny_argv(method, *extra, distiller=distiller, tmp_path=tmp_path))
    return args


def fake_batch(batch_size: int = 8, size: int = 16, num_classes: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    views = [torch.randn(batch_size, 3, size, size, generator=g) for _ in range(2)]
    targets = torch.randint(0, num_classes, (batch_size,), generator=g)
    return torch.arange(batch_size), views, targets
