"""A real 2-process DDP run (gloo, CPU) of a CaSSLe task: Lightning launches the processes, the
losses gather across them, and the checkpoint is written once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from main_continual import run_task
from tests.helpers import tiny_args, tiny_argv

REPO = Path(__file__).resolve().parents[1]


def _run(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "main_continual.py", *argv], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("method,distiller", [("mocov2plus", "contrastive"), ("swav", "knowledge")])
def test_two_process_ddp_cassle_task(tmp_path, method, distiller):
    ddp = ["--devices", "2", "--strategy", "ddp", "--synthetic_size", "128"]
    # Task 0 only makes the checkpoint that task 1 starts from: in this process, on one device (a
    # subprocess + a second DDP worker would cost two more interpreter start-ups).
    run_task(tiny_args(method, "--num_tasks", "2", "--synthetic_size", "128", tmp_path=tmp_path / "task0"))
    _run(
        [
            *tiny_argv(
                method,
                "--num_tasks",
                "2",
                "--task_idx",
                "1",
                "--pretrained_model",
                str(tmp_path / "task0" / "last.ckpt"),
                *ddp,
                distiller=distiller,
                tmp_path=tmp_path / "task1",
            )
        ]
    )
    ckpt = torch.load(tmp_path / "task1" / "last.ckpt", map_location="cpu", weights_only=False)
    # Task 1 holds 2 of the 4 classes, 64 of the 128 images: 64 / (16 per device x 2 devices)
    # = 2 steps, so the two processes did split the epoch.
    assert ckpt["global_step"] == 2
    if method == "swav":  # each process keeps queue_size // world_size rows (reference)
        assert ckpt["state_dict"]["queue"].shape == (2, 32 // 2, 16)
    # Each process' RNG states are in the checkpoint that rank 0 wrote (gathered at save time).
    assert len(ckpt["rng_states"]["per_rank"]) == 2
    task0 = torch.load(tmp_path / "task0" / "last.ckpt", map_location="cpu", weights_only=False)
    for key, value in ckpt["state_dict"].items():
        if key.startswith("frozen_backbone.") and "running" not in key and "num_batches" not in key:
            assert torch.equal(value, task0["state_dict"][key.replace("frozen_", "", 1)])
