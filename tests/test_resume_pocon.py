"""POCON resumes exactly: a task stopped in its expert phase, or right at the switch to the merge
phase, and resumed from its last.ckpt ends with the weights of the uninterrupted run (CPU,
deterministic); the phase comes back from the checkpoint's epoch, recorded beside it (``pocon``).
A checkpoint holding only the expert phase is not a finished task (the launcher's manifest test),
and a resume with another phase split is refused. The slow test kills the launcher mid-task."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from cassle.continual.progress import task_complete
from main_continual import run_task
from tests.helpers import tiny_args

REPO = Path(__file__).resolve().parents[1]
E, M = 2, 4


class StopAfter(pl.Callback):
    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 == self.epochs:
            trainer.should_stop = True


def _args(folder, task, *extra):
    argv = ["--num_tasks", "2", "--task_idx", str(task), "--max_epochs", str(M), "--pocon"]
    argv += ["--pocon_expert_epochs", str(E), "--synthetic_size", "48", "--deterministic", "--limit_val_batches", "0"]
    return tiny_args("barlow_twins", *argv, *extra, tmp_path=folder)


def _ckpt(folder):
    return torch.load(folder / "last.ckpt", map_location="cpu", weights_only=False)


@pytest.mark.parametrize("stop", [1, E], ids=["mid-expert", "at-the-switch"])
def test_stopped_pocon_task_resumes_to_identical_state(stop, tmp_path):
    run_task(_args(tmp_path / "task0", 0))
    pre = ("--pretrained_model", str(tmp_path / "task0" / "last.ckpt"))
    run_task(_args(tmp_path / "straight", 1, *pre))
    run_task(_args(tmp_path / "stopped", 1, *pre), extra_callbacks=[StopAfter(stop)])
    stopped = tmp_path / "stopped" / "last.ckpt"
    record = _ckpt(tmp_path / "stopped")["pocon"]
    assert record["epochs_done"] == stop and record["next_phase"] == ("expert" if stop < E else "merge")
    done, why = task_complete(str(stopped), 1, M, None)
    assert not done, "a task stopped before its merge phase ended must not count as done"
    run_task(_args(tmp_path / "stopped", 1, *pre, "--resume_from_checkpoint", str(stopped)))
    a, b = _ckpt(tmp_path / "straight")["state_dict"], _ckpt(tmp_path / "stopped")["state_dict"]
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed run differs in {different[:6]}"
    assert task_complete(str(stopped), 1, M, None)[0]


def test_resume_with_another_phase_split_is_refused(tmp_path):
    run_task(_args(tmp_path / "t0", 0), extra_callbacks=[StopAfter(1)])
    ckpt = str(tmp_path / "t0" / "last.ckpt")
    with pytest.raises(ValueError, match="POCON phases"):
        run_task(_args(tmp_path / "t0", 0, "--resume_from_checkpoint", ckpt, "--pocon_expert_epochs", "3"))


SCRIPT = """#!/usr/bin/env bash
python main_continual.py \\
    --method barlow_twins --backbone tiny --dataset synthetic \\
    --synthetic_size 384 --synthetic_image_size 16 --crop_size 16 --num_classes 4 \\
    --batch_size 16 --num_workers 0 --max_epochs 4 --num_tasks 2 \\
    --optimizer sgd --lr 0.05 --scheduler none --proj_hidden_dim 32 --output_dim 16 \\
    --accelerator cpu --devices 1 --precision 32 --deterministic --no_progress_bar \\
    --pocon --pocon_expert_epochs 2 --name resume-pocon
"""


@pytest.mark.slow
def test_killed_pocon_run_resumes_to_identical_weights(tmp_path):
    script = tmp_path / "resume.sh"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def command(exp):
        return [sys.executable, str(REPO / "job_launcher.py"), "--script", str(script), "--experiment_dir", str(exp)]

    reference = tmp_path / "uninterrupted"
    done = subprocess.run(command(reference), cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        command(killed), cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpt = killed / "task1" / "last.ckpt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert ckpt.exists(), "task 1 never wrote its first epoch checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its trainer, in task 1's expert phase
    proc.wait(timeout=30)
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["tasks"]["0"]["status"] == "done"
    assert manifest["tasks"]["1"]["status"] != "done", "the kill came too late to test a resume"
    again = subprocess.run(command(killed), cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    manifest = json.loads((killed / "manifest.json").read_text())
    assert all(manifest["tasks"][t]["status"] == "done" for t in ("0", "1"))
    ours = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    theirs = torch.load(reference / "task1" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    different = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    assert not different, f"resumed weights differ from the uninterrupted run: {different[:5]}"
