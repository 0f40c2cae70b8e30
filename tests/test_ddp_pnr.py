"""A real 2-process DDP task 1 (gloo, CPU) with PNR's queue distiller: every parameter gets a
gradient (DDP finds none unused), and the queue of frozen projections is filled with the keys
gathered from both processes (the same queue on each, as MoCo's own)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from main_continual import run_task
from tests.helpers import tiny_args, tiny_argv

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_process_ddp_pnr_task(tmp_path):
    method, queue = "mocov2plus", ["--queue_size", "256"]
    run_task(tiny_args(method, "--num_tasks", "2", "--synthetic_size", "128", *queue, tmp_path=tmp_path / "task0"))
    argv = tiny_argv(
        method,
        "--num_tasks",
        "2",
        "--task_idx",
        "1",
        "--pretrained_model",
        str(tmp_path / "task0" / "last.ckpt"),
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--synthetic_size",
        "128",
        *queue,
        distiller="pnr_moco",
        tmp_path=tmp_path / "task1",
    )
    proc = subprocess.run(
        [sys.executable, "main_continual.py", *argv], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / "task1" / "last.ckpt", map_location="cpu", weights_only=False)
    # 64 task-1 images / (16 per device x 2 devices) = 2 steps; each enqueues the gathered 2 x 16
    # frozen projections per view: the pointer is at 64, not 32 (a local enqueue)
    assert ckpt["global_step"] == 2
    state = ckpt["state_dict"]
    assert int(state["distiller.pnr_queue_ptr"]) == 64
    filled = state["distiller.pnr_queue"][:, :, :64]
    torch.testing.assert_close(filled.norm(dim=1), torch.ones(2, 64))
