"""Never evaluate, or build on, an unfinished task: the launcher's rule, applied by ``--run_dir``.

A task is finished when its process exited 0 *and* its ``last.ckpt`` shows the whole planned
schedule (``cassle.continual.progress.task_complete``); ``main_continual.py`` exits 0 only then.
``main_linear.py --run_dir`` reads that from the checkpoint's own progress record and the task's own
``args.json`` (the schedule it was started with), never from ``manifest.json`` alone: a manifest
that says "done", or none at all, does not make a task interrupted at epoch 1 of 3 a row of the
accuracy matrix.
"""

from __future__ import annotations

import json
import os

from cassle.continual.progress import read_checkpoint_record, task_complete
from cassle.eval.errors import EvalInputError

__all__ = ["planned_schedule", "check_task_finished", "check_not_symlink"]


def _int_or_none(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def planned_schedule(path: str) -> tuple[int | None, int | None]:
    """(max_epochs, max_steps) the task was planned with: its ``args.json`` next to the checkpoint,
    else the checkpoint's hyperparameters; None where neither says (the progress record decides)."""
    args_path = os.path.join(os.path.dirname(path), "args.json")
    sources = []
    try:
        with open(args_path, encoding="utf-8") as f:
            sources.append(json.load(f))
    except (OSError, ValueError):
        pass
    try:
        sources.append(read_checkpoint_record(path).get("hyper_parameters"))
    except ValueError:
        pass
    epochs = steps = None
    for source in sources:
        if isinstance(source, dict):
            epochs = epochs if epochs is not None else _int_or_none(source.get("max_epochs"))
            steps = steps if steps is not None else _int_or_none(source.get("max_steps"))
    return epochs, steps


def check_task_finished(path: str, task_idx: int) -> None:
    """Raise ``EvalInputError`` naming the task and its epochs unless ``path`` shows its whole schedule."""
    done, why = task_complete(path, task_idx, *planned_schedule(path))
    if not done:
        raise EvalInputError(
            f"task {task_idx} is not finished: {why} ({path}); only a task whose last.ckpt "
            "shows its whole planned schedule is evaluated: rerun the launcher to finish it"
        )


def check_not_symlink(path: str) -> None:
    """An output folder inside a run folder is never written through a symbolic link."""
    if os.path.islink(path):
        raise EvalInputError(
            f"{path} is a symbolic link (to {os.readlink(path)}); the evaluation is never "
            "written through a link inside the run folder: replace it by a real folder, "
            "or pass --output_dir"
        )
