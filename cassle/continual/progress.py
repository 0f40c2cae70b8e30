"""How far a task's schedule got, as its checkpoint says: the rule for "this task is done".

The trainer's checkpoint callback stores ``checkpoint[PROGRESS_KEY] = progress_record(...)`` in every
``last.ckpt``. The launcher reads it back with ``read_progress`` *without importing torch*: a torch
checkpoint is a zip archive whose ``<archive>/data.pkl`` holds the top-level dict; it is unpickled
with an unpickler that builds only plain Python values (tensors, arrays and library objects become
inert placeholders, no class from the file is ever imported or called), so reading costs
milliseconds and no code from the file runs.

A task is done when its process exited 0 **and** ``task_complete`` agrees: the checkpoint belongs to
that task and shows the whole planned schedule (every epoch, or ``max_steps`` optimizer steps).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from typing import Any

__all__ = ["PROGRESS_KEY", "progress_record", "read_checkpoint_record", "read_progress", "task_complete"]

PROGRESS_KEY = "cassle_progress"

# Classes the reader may really build (plain containers); everything else becomes a placeholder.
_SAFE = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("builtins", "bytearray"),
}


def progress_record(
    task_idx: int, epochs_done: int, max_epochs: int, global_step: int, max_steps: int
) -> dict[str, int]:
    """What the trainer stores with each checkpoint (plain ints only, so the launcher can read it)."""
    return {
        "task_idx": int(task_idx),
        "epochs_done": int(epochs_done),
        "max_epochs": int(max_epochs),
        "global_step": int(global_step),
        "max_steps": int(max_steps),
    }


class _Opaque:
    """Stands for any non-plain object of the pickle; keeps the items set on it (dict subclasses)."""

    def __init__(self, *args, **kwargs):
        self.items: dict = {}

    def __setitem__(self, key, value):
        self.items[key] = value

    def __setstate__(self, state):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE:
            return super().find_class(module, name)
        return _Opaque

    def persistent_load(self, pid):  # tensor storages of a torch checkpoint
        return _Opaque()


def read_checkpoint_record(path: str) -> dict[str, Any]:
    """The top-level dict of a torch (zip) checkpoint with plain values; raises ValueError."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if not names:
                raise ValueError(f"{path} has no data.pkl record: not a torch checkpoint")
            data = archive.read(names[0])
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read checkpoint {path}: {err}") from None
    try:
        record = _PlainUnpickler(io.BytesIO(data)).load()
    except Exception as err:  # truncated or foreign pickle
        raise ValueError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} does not hold a checkpoint dict")
    return record


def read_progress(path: str) -> dict[str, int]:
    """The checkpoint's progress record; for checkpoints written before it existed, Lightning's own
    ``epoch`` / ``global_step`` (an epoch-end save there counts one epoch less: conservative)."""
    record = read_checkpoint_record(path)
    progress = record.get(PROGRESS_KEY)
    if isinstance(progress, dict):
        return progress
    epoch, step = record.get("epoch"), record.get("global_step")
    if not isinstance(epoch, int) or not isinstance(step, int):
        raise ValueError(f"{path} records no epoch / global step: not a task checkpoint")
    return {"epochs_done": epoch, "global_step": step}


def task_complete(
    path: str, task_idx: int, max_epochs: int | None = None, max_steps: int | None = None
) -> tuple[bool, str]:
    """(done?, why) for the checkpoint of task ``task_idx`` planned with ``max_epochs`` epochs
    (``max_steps`` > 0: or that many steps). Planned values the caller does not know (flags absent
    from the script: the trainer's defaults) are taken from the record."""
    try:
        progress = read_progress(path)
    except ValueError as err:
        return False, str(err)
    if progress.get("task_idx", task_idx) != task_idx:
        return False, f"{path} belongs to task {progress['task_idx']}, not task {task_idx}"
    recorded_epochs = progress.get("max_epochs")
    if max_epochs is not None and recorded_epochs is not None and recorded_epochs != max_epochs:
        return False, f"{path} was trained for max_epochs {recorded_epochs}, the plan says {max_epochs}"
    epochs = max_epochs if max_epochs is not None else recorded_epochs
    steps = max_steps if max_steps is not None else progress.get("max_steps", -1)
    done_epochs, done_steps = progress["epochs_done"], progress["global_step"]
    if steps is not None and steps > 0 and done_steps >= steps:
        return True, f"{done_steps}/{steps} steps"
    if epochs is None:
        return False, f"{path} does not say how many epochs were planned"
    if done_epochs >= epochs:
        return True, f"{done_epochs}/{epochs} epochs"
    return False, f"its checkpoint shows {done_epochs} of {epochs} epochs (step {done_steps})"
