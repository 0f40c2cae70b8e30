"""The real trainer (main_continual.py) stopped by a signal exits 128 + signal, never 0.

Lightning turns SIGTERM during fit into a SystemExit without a code: the process used to exit 0
with last epoch's checkpoint, and the launcher recorded the truncated task as done. Both runs start
together (one torch import each, in parallel) and are signalled once their first epoch is saved.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cassle.continual.progress import task_complete
from tests.helpers import tiny_argv

REPO = Path(__file__).resolve().parents[1]


def test_sigterm_and_sigint_stop_the_trainer_with_128_plus_signal(tmp_path):
    procs = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        folder = tmp_path / sig.name
        argv = tiny_argv(
            "barlow_twins",
            "--max_epochs",
            "200",
            "--synthetic_size",
            "32",
            "--num_tasks",
            "1",
            "--task_idx",
            "0",
            tmp_path=folder,
        )
        procs[sig] = (
            folder,
            subprocess.Popen(
                [sys.executable, str(REPO / "main_continual.py"), *argv],
                cwd=REPO,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
    try:
        deadline = time.monotonic() + 120
        for sig, (folder, proc) in procs.items():
            while not (folder / "last.ckpt").exists():  # mid-task: an epoch is saved, more follow
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "no epoch checkpoint within 120 s"
                time.sleep(0.05)
            proc.send_signal(sig)
        for sig, (folder, proc) in procs.items():
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 128 + sig, out[-3000:]
            assert f"stopped by {sig.name}" in out
            done, why = task_complete(str(folder / "last.ckpt"), 0, 200)
            assert not done and "of 200 epochs" in why
    finally:
        for _, proc in procs.values():
            if proc.poll() is None:
                proc.kill()
