"""Execute a plan here, task after task: one ``main_continual.py`` process per task, strictly in order.

Before each task the manifest says "running"; everything the trainer prints goes to
``<exp>/task{t}/train.log`` (``cassle.continual.task_process``). A task counts as done only when it
exits 0 *and* its ``last.ckpt`` shows the whole planned schedule (``cassle.continual.progress``).
The first failure stops the sequence (the reference fed a crashed task's stale checkpoint to the
next task; this never does); a signal to the launcher is recorded as an interruption of the
running task. Rerunning the same command resumes.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import datetime

from cassle.continual import manifest as mf
from cassle.continual import recovery, task_process
from cassle.continual.console import format_duration
from cassle.continual.plan import TaskRun, task_schedule
from cassle.continual.progress import task_complete
from cassle.continual.stop_signals import Interrupted
from cassle.continual.task_process import exit_reason, show_tail
from cassle.utils.diskfull import is_disk_full, message

__all__ = ["run_local"]


def _set_aside(path: str) -> None:
    """A checkpoint left by an attempt that is being redone must not be resumed later."""
    if os.path.exists(path):
        os.replace(path, path + ".stale")
        print(f"[launcher] moved stale {path} to {path}.stale (its predecessor task is being redone)")


def run_local(
    plan: Sequence[TaskRun],
    experiment_dir: str,
    python: str = sys.executable,
    main_script: str = "main_continual.py",
    prefix: Sequence[str] = (),
    env: dict | None = None,
    verbose: bool = False,
    lock_fd: int | None = None,
) -> int:
    """Execute ``plan`` in order, recording each task in ``<experiment_dir>/manifest.json``.

    A task is recorded "done" only when it exited 0 and its checkpoint shows the whole schedule
    (``task_complete`` against the task's own ``--max_epochs`` / ``--max_steps``). ``env`` holds
    the script's exported variables, passed to every task. Returns 0 when every task is done, 1
    after the first failed task (later tasks never start), 128 + signal number when the launcher
    itself was interrupted.
    """
    manifest = mf.load_manifest(experiment_dir)
    if manifest is None:
        raise FileNotFoundError(f"{experiment_dir} has no {mf.MANIFEST_NAME}; create it before run_local")
    total = len(plan)
    for run in plan:
        t = run.task_idx
        if run.action == "skip":
            print(f"[launcher] task {t}: done, skipping ({run.checkpoint})")
            continue
        if run.action == "run":
            _set_aside(run.checkpoint)
        elif run.action != "resume":
            raise ValueError(f"unknown action {run.action!r} for task {t}; valid: run, resume, skip")
        command = [*prefix, python, main_script, *run.argv]
        verb = f"resuming from {run.resume_from}" if run.action == "resume" else "starting"
        note = f" ({run.note})" if run.note else ""
        print(
            f"[launcher] task {t} ({t + 1 - plan[0].task_idx}/{total}): {verb}{note}; log: {run.log_path}", flush=True
        )
        header = f"\n=== [launcher {datetime.now():%Y-%m-%d %H:%M:%S}] task {t} {run.action}: {shlex.join(command)}\n"
        started, tail = time.monotonic(), []
        try:
            mf.update_task(experiment_dir, manifest, t, "running", checkpoint=None)
            rc = task_process.run_task(
                command, run.log_path, header, env=env, verbose=verbose, tail=tail, lock_fd=lock_fd
            )
        except OSError as err:
            if not is_disk_full(err):
                raise
            return recovery.disk_full(message(err, run.log_path), experiment_dir, manifest, t)
        except Interrupted as stop:
            mf.update_task(experiment_dir, manifest, t, "failed", returncode=-stop.signum, interrupted=True)
            print(
                f"[launcher] interrupted by {stop} during task {t}; rerun the same command to resume", file=sys.stderr
            )
            return 128 + stop.signum
        if rc != 0:
            mf.update_task(experiment_dir, manifest, t, "failed", returncode=rc)
            show_tail(tail, run.log_path)
            if recovery.disk_full_in(tail):  # the task's own line names the file
                return recovery.disk_full(recovery.disk_full_in(tail), experiment_dir, None, t)
            print(
                f"[launcher] task {t} {exit_reason(rc)}; see {run.log_path}; rerun the same command to resume",
                file=sys.stderr,
            )
            return 1
        if not os.path.exists(run.checkpoint):
            mf.update_task(experiment_dir, manifest, t, "failed", returncode=rc)
            show_tail(tail, run.log_path)
            print(
                f"[launcher] task {t} exited 0 but wrote no {run.checkpoint}; see {run.log_path}; "
                f"treating it as failed (rerun the same command to retry)",
                file=sys.stderr,
            )
            return 1
        done, why = task_complete(run.checkpoint, t, *task_schedule(run.argv))
        if not done:
            mf.update_task(experiment_dir, manifest, t, "failed", returncode=rc, truncated=why)
            show_tail(tail, run.log_path)
            print(
                f"[launcher] task {t} exited 0 but {why}: not done (a truncated task never feeds "
                f"the next one); rerun the same command to resume it",
                file=sys.stderr,
            )
            return 1
        mf.update_task(experiment_dir, manifest, t, "done", returncode=0, checkpoint=run.checkpoint)
        print(
            f"[launcher] task {t}: done ({why}) in {format_duration(time.monotonic() - started)} -> {run.checkpoint}",
            flush=True,
        )
    return 0
