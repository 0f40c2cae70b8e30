"""The task loop ends every failure with one clear line and a true record.

* ``set_aside_unreadable``: a ``task*/last.ckpt`` that the plan would resume from but that cannot be
  read (truncated, not a zip archive, a failing CRC, no checkpoint record) would make every rerun
  fail the same way. It is moved aside (renamed ``last.ckpt.unreadable-<time>``, never deleted)
  and the task restarts from its start; the launcher says what it found and what it did.
* ``disk_full``: ENOSPC while the launcher or a task writes: the task is recorded "failed" (never
  left "running"; best effort, the disk is full), the stray temporary files of the run are
  removed, and one line says which file could not be written.
"""

from __future__ import annotations

import os
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from cassle.continual import manifest as mf
from cassle.continual.plan import TaskRun, drop_flags
from cassle.continual.progress import read_checkpoint_record
from cassle.utils.diskfull import is_disk_full, remove_stray_tmp

__all__ = ["unreadable_reason", "set_aside_unreadable", "disk_full", "disk_full_in", "DISK_FULL_LINE"]

DISK_FULL_LINE = "no space left on device while writing"


def unreadable_reason(path: str) -> str | None:
    """Why ``path`` cannot be resumed from (None: it reads). Reads every byte (CRC check), runs nothing."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        if bad is not None:
            return f"its entry {bad} fails its CRC check"
        read_checkpoint_record(path)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as err:
        return str(err).replace(f"cannot read checkpoint {path}: ", "") or type(err).__name__
    return None


def set_aside_unreadable(plan: Sequence[TaskRun], dry_run: bool = False) -> list[TaskRun]:
    """The plan with every resume from an unreadable checkpoint turned into a fresh start of that
    task (the file renamed, never deleted; nothing is renamed when ``dry_run``)."""
    out = []
    for run in plan:
        why = unreadable_reason(run.resume_from) if run.action == "resume" and run.resume_from else None
        if why is None:
            out.append(run)
            continue
        aside = f"{run.resume_from}.unreadable-{datetime.now():%Y%m%d-%H%M%S}"
        if dry_run:
            print(
                f"# task {run.task_idx}: {run.resume_from} cannot be read ({why}); the run will move it to "
                f"{aside} and restart the task from its start"
            )
        else:
            os.replace(run.resume_from, aside)
            print(
                f"[launcher] task {run.task_idx}: {run.resume_from} cannot be read ({why}); moved it to "
                f"{aside} (kept, not deleted) and restarting task {run.task_idx} from its start",
                flush=True,
            )
        argv = drop_flags(run.argv, lambda f: f == "--resume_from_checkpoint")
        out.append(replace(run, argv=argv, action="run", resume_from=None, note=""))
    return out


def disk_full_in(tail: Sequence[str]) -> str | None:
    """The task's own disk-full line among its last output lines, if any."""
    return next((line.split("error:", 1)[-1].strip() for line in reversed(tail) if DISK_FULL_LINE in line), None)


def disk_full(line: str, experiment_dir: str, manifest: dict | None, key) -> int:
    """Record ``key`` (a task index or "eval") as failed (``manifest`` None: already recorded), remove
    the run's stray temporary files, print ``line``; returns 1."""
    if manifest is not None:
        try:
            mf.update_task(experiment_dir, manifest, key, "failed", returncode=None, disk_full=line)
        except OSError as again:
            if not is_disk_full(again):
                raise
            line += f" (and {mf.MANIFEST_NAME} could not be updated either)"
    folders = [experiment_dir, *(os.path.join(experiment_dir, d) for d in _subfolders(experiment_dir))]
    remove_stray_tmp(*folders)
    print(f"[launcher] {line}; free some space and rerun the same command to resume", file=sys.stderr, flush=True)
    return 1


def _subfolders(folder: str) -> list[str]:
    try:
        return [
            d
            for d in os.listdir(folder)
            if os.path.isdir(os.path.join(folder, d)) and not os.path.islink(os.path.join(folder, d))
        ]
    except OSError:
        return []
