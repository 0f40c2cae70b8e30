"""A real 2-process DDP task 1 (gloo, CPU) with POCON: both phases run under DDP (built with
find_unused_parameters, since each phase leaves the other's parameters without gradient), the
checkpoint records the finished merge phase, F_(t-1) is task 0's main network, and each trained
part has moved. Globally unused parameters keep no gradient under DDP, so the idle phase's
weights are not moved by momentum or weight decay (checked on one process in tests/test_pocon.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from main_continual import run_task
from tests.helpers import tiny_args, tiny_argv

REPO = Path(__file__).resolve().parents[1]


def _part(state, prefix):
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _same(a, b):
    assert a.keys() == b.keys() and a
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_process_ddp_pocon_task1(tmp_path):
    flags = [
        "--num_tasks",
        "2",
        "--synthetic_size",
        "128",
        "--max_epochs",
        "2",
        "--pocon",
        "--pocon_expert_epochs",
        "1",
    ]
    run_task(tiny_args("barlow_twins", *flags, tmp_path=tmp_path / "task0"))
    argv = tiny_argv(
        "barlow_twins",
        *flags,
        "--task_idx",
        "1",
        "--pretrained_model",
        str(tmp_path / "task0" / "last.ckpt"),
        "--devices",
        "2",
        "--strategy",
        "ddp",
        tmp_path=tmp_path / "task1",
    )
    proc = subprocess.run(
        [sys.executable, "main_continual.py", *argv], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    t0 = torch.load(tmp_path / "task0" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    ckpt = torch.load(tmp_path / "task1" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["pocon"] == {"expert_epochs": 1, "max_epochs": 2, "epochs_done": 2, "next_phase": "merge"}
    # 64 task-1 images / (16 per device x 2 devices) = 2 steps per epoch, 2 epochs
    assert ckpt["global_step"] == 4
    s = ckpt["state_dict"]
    assert _same(_part(s, "frozen_backbone."), _part(t0, "backbone."))
    for part in ("backbone.", "projector.", "pocon.retro_proj."):
        assert not _same(_part(s, part), _part(t0, part)), f"{part} did not train under DDP"
    assert not _same(_part(s, "pocon.expert."), _part(t0, "backbone.")), "the expert did not train under DDP"
