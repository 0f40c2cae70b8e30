"""``manifest.json``: the experiment folder's record of what ran, the single source of truth for resume.

Layout::

    {"name": str, "script": str, "argv": [...merged script argv...], "created": iso time,
     "tasks": {"0": {"status": "pending|running|done|failed", "checkpoint": path | null,
                     "returncode": int | null, "started": iso | null, "finished": iso | null}, ...},
     "eval": {...same fields...}  (only with --eval), "slurm_jobs": [...]  (only with --mode slurm)}

Every save is atomic (tmp file + rename), so a launcher killed at any moment leaves either the old
or the new manifest. ``lock`` keeps two launchers from driving the same folder at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from datetime import datetime

from cassle.utils.checkpoint import atomic_write_text

__all__ = [
    "MANIFEST_NAME",
    "STATUSES",
    "now",
    "empty_task",
    "new_manifest",
    "load_manifest",
    "save_manifest",
    "update_task",
    "lock",
    "ExperimentLocked",
]

MANIFEST_NAME = "manifest.json"
STATUSES = ("pending", "running", "done", "failed")


class ExperimentLocked(RuntimeError):
    """Another launcher holds the experiment folder."""


def now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def empty_task() -> dict:
    return {"status": "pending", "checkpoint": None, "returncode": None, "started": None, "finished": None}


def new_manifest(name: str, script: str | None, argv: list[str], task_ids: Iterable[int]) -> dict:
    return {
        "name": name,
        "script": script,
        "argv": list(argv),
        "created": now(),
        "tasks": {str(t): empty_task() for t in task_ids},
    }


def load_manifest(experiment_dir: str) -> dict | None:
    """The manifest of ``experiment_dir``, or None when the folder has none yet."""
    path = os.path.join(experiment_dir, MANIFEST_NAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); fix or remove it") from None
    for key in ("argv", "tasks"):
        if key not in manifest:
            raise ValueError(f"{path} has no {key!r} entry; it was not written by this launcher")
    return manifest


def save_manifest(experiment_dir: str, manifest: dict) -> None:
    atomic_write_text(os.path.join(experiment_dir, MANIFEST_NAME), json.dumps(manifest, indent=2) + "\n")


def update_task(experiment_dir: str, manifest: dict, key: int | str, status: str, **fields) -> dict:
    """Set ``manifest["tasks"][key]`` (or ``manifest["eval"]`` for key "eval") and save at once.

    ``running`` stamps ``started`` and clears the previous outcome; ``done``/``failed`` stamp
    ``finished``. Extra ``fields`` (``checkpoint``, ``returncode``, ...) are stored as given.
    """
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; valid: {', '.join(STATUSES)}")
    if key == "eval":
        entry = manifest.setdefault("eval", empty_task())
    else:
        entry = manifest["tasks"].setdefault(str(key), empty_task())
    entry["status"] = status
    if status == "running":  # a new attempt: forget the previous attempt's outcome
        entry.clear()
        entry.update(empty_task(), status=status, started=now())
    elif status in ("done", "failed"):
        entry["finished"] = now()
    entry.update(fields)
    save_manifest(experiment_dir, manifest)
    return manifest


@contextlib.contextmanager
def lock(experiment_dir: str) -> Iterator[int]:
    """Exclusive lock on the folder for this process (released by the kernel even on SIGKILL).

    Yields the lock's file descriptor: a task started with it (``pass_fds``) keeps the folder
    locked until it has exited too, so a relaunch never runs beside a task that is still stopping.
    """
    os.makedirs(experiment_dir, exist_ok=True)
    path = os.path.join(experiment_dir, ".launcher.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise ExperimentLocked(
                f"{experiment_dir} is in use by another launcher (pid {holder}) or by a task it started "
                f"that is still stopping; wait for it to finish (or stop it) before rerunning"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield fd
    finally:
        os.close(fd)
