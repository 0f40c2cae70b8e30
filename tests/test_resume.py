"""A real kill of the launcher in the middle of a CaSSLe task, then the same command again: the
sequence completes, the manifest is consistent, and (CPU, deterministic) the final weights equal
those of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """#!/usr/bin/env bash
python main_continual.py \\
    --method barlow_twins --backbone tiny --dataset synthetic \\
    --synthetic_size 384 --synthetic_image_size 16 --crop_size 16 --num_classes 4 \\
    --batch_size 16 --num_workers 0 --max_epochs 3 --num_tasks 2 --warmup_epochs 1 \\
    --proj_hidden_dim 32 --output_dim 16 --distill_proj_hidden_dim 32 \\
    --accelerator cpu --devices 1 --precision 32 --deterministic --no_progress_bar \\
    --distiller decorrelative --name resume
"""


def _command(script: Path, exp: Path) -> list[str]:
    return [sys.executable, str(REPO / "job_launcher.py"), "--script", str(script), "--experiment_dir", str(exp)]


def _state(exp: Path, task: int) -> dict:
    return torch.load(exp / f"task{task}" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.slow
def test_killed_run_resumes_to_identical_weights(tmp_path):
    script = tmp_path / "resume.sh"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    reference = tmp_path / "uninterrupted"
    done = subprocess.run(_command(script, reference), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _command(script, killed),
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first_epoch_ckpt = killed / "task1" / "last.ckpt"
    deadline = time.time() + 240
    while not first_epoch_ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert first_epoch_ckpt.exists(), "task 1 never wrote its first epoch checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its trainer, mid task 1
    proc.wait(timeout=30)
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["tasks"]["0"]["status"] == "done"
    assert manifest["tasks"]["1"]["status"] != "done", "the kill came too late to test a resume"

    again = subprocess.run(_command(script, killed), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    manifest = json.loads((killed / "manifest.json").read_text())
    for task in ("0", "1"):
        entry = manifest["tasks"][task]
        assert entry["status"] == "done"
        assert Path(entry["checkpoint"]).resolve() == (killed / f"task{task}" / "last.ckpt").resolve()

    ours, theirs = _state(killed, 1), _state(reference, 1)
    assert ours.keys() == theirs.keys()
    different = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    assert not different, f"resumed weights differ from the uninterrupted run: {different[:5]}"
    # The frozen model of task 1 is task 0's final backbone in both runs.
    task0 = _state(killed, 0)
    for key, value in ours.items():
        if key.startswith("frozen_backbone.") and "running" not in key and "num_batches" not in key:
            assert torch.equal(value, task0[key.replace("frozen_", "", 1)])
