"""scripts/fault_injection.py on a real PNR run (issue 23): the PNR digits demo, shortened to 2 tasks
x 2 epochs (task 1 runs PNR's distiller with its frozen snapshot and predictor), killed at points
drawn with a fixed seed, relaunched; every task's weights and the accuracy matrix must equal an
uninterrupted run's, exactly. The full demo (5 tasks x 10 epochs, 4 kills) is in
benchmarks/RESULTS.md."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.test_launcher import REPO

SCRIPT = "bash_files/continual/digits/barlow_pnr.sh"


def test_the_pnr_digits_script_is_there_and_runs_pnr():
    text = (REPO / SCRIPT).read_text()
    assert "--distiller pnr_decorrelative" in text and "--dataset digits" in text


@pytest.mark.slow  # about 2-4 min on 2 shared cores: two real launcher runs, relaunched after each kill
def test_killed_pnr_run_resumes_to_the_same_weights(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PRETRAINED_PATH"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    # Seed 0 draws kill points that wait for console lines (between tasks 0 and 1, mid-epoch of task 1
    # where PNR is active, the evaluation), none a checkpoint write: a tiny model's checkpoint is on
    # disk for well under a millisecond, and a run that finishes before the write is seen leaves
    # nothing to kill (seed 1 did so on a quiet machine: every point "skipped (point passed)").
    argv = ["--kills", "3", "--seed", "0", "--script", SCRIPT, "--workdir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "scripts/fault_injection.py", *argv, "--", "--num_tasks", "2", "--max_epochs", "2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "final run complete: yes" in out
    assert "all 2 tasks' weights and the accuracy matrix equal the uninterrupted run's: yes" in out
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit() and line.rstrip().endswith("yes")]
    assert rows, out[-3000:]  # at least one kill landed (and recovered, weights identical)
    # the chaos run's task 1 is a PNR task (the distiller's logs in its metrics)
    metrics = (tmp_path / "chaos" / "task1").rglob("metrics.csv")
    assert any("pnr_negative_loss" in m.read_text().splitlines()[0] for m in metrics)
