"""The task loop as pure functions: bash script + manifest state -> one command per task.

Nothing here starts a process or writes a file (``plan_tasks`` only *looks* whether checkpoints
exist), so every rule of the continual protocol is unit-tested without running anything:

* ``parse_script`` (``cassle.continual.bash_script``): the reference bash script (comments,
  ``VAR=value`` lines, one ``python main_continual.py --flag value \\`` command) -> the argv after
  ``main_continual.py``.
* ``merge_args`` (``cassle.continual.flags``, argv as ordered flag groups): override the script's
  flags with extra ones (``-- --max_epochs 1``).
* ``plan_tasks`` (here): argv + manifest -> ``TaskRun`` per task, each ``run``, ``resume`` or ``skip``.

The names of ``bash_script`` and ``flags`` are importable from here too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cassle.continual.bash_script import OPTIONAL_VARS, parse_script, script_exports
from cassle.continual.flags import (
    PlanError,
    diff_args,
    drop_flags,
    flag_key,
    get_flag,
    join_flags,
    merge_args,
    set_flag,
    split_flags,
)

__all__ = [
    "OPTIONAL_VARS",
    "PlanError",
    "TaskRun",
    "parse_script",
    "script_exports",
    "split_flags",
    "join_flags",
    "get_flag",
    "set_flag",
    "drop_flags",
    "merge_args",
    "diff_args",
    "flag_key",
    "plan_tasks",
    "task_schedule",
    "task_dir",
    "CHECKPOINT_NAME",
]

CHECKPOINT_NAME = "last.ckpt"
# Flags the launcher owns per task: whatever the script says is replaced.
_PER_TASK_FLAGS = ("--task_idx", "--checkpoint_dir", "--name", "--pretrained_model", "--resume_from_checkpoint")


# --------------------------------------------------------------------------- the task plan
@dataclass(frozen=True)
class TaskRun:
    """One task of the sequence. ``argv`` is the full argv for ``main_continual.py``."""

    task_idx: int
    argv: list[str]
    checkpoint_dir: str
    action: str  # "run" (from scratch), "resume" (from resume_from), "skip" (already done)
    resume_from: str | None = None
    note: str = ""  # why the plan chose this action, when it is not the obvious one

    @property
    def checkpoint(self) -> str:
        return os.path.join(self.checkpoint_dir, CHECKPOINT_NAME)

    @property
    def log_path(self) -> str:
        return os.path.join(self.checkpoint_dir, "train.log")


def task_dir(experiment_dir: str, task_idx: int) -> str:
    return os.path.join(experiment_dir, f"task{task_idx}")


def _int_flag(argv: Sequence[str], flag: str, default: int | None) -> int:
    value = get_flag(argv, flag, default)
    if value is None:
        raise PlanError(f"{flag} is missing from the script arguments; it is required")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PlanError(f"{flag} must be one integer, got {value!r}") from None


def task_schedule(argv: Sequence[str]) -> tuple[int | None, int | None]:
    """(max_epochs, max_steps) the argv plans for each task; None where the flag is absent (the
    trainer's default applies, and the checkpoint records it)."""
    epochs, steps = get_flag(argv, "--max_epochs"), get_flag(argv, "--max_steps")
    try:
        return (None if epochs is None else int(epochs)), (None if steps is None else int(steps))
    except (TypeError, ValueError):
        raise PlanError(f"--max_epochs / --max_steps must be integers, got {epochs!r} / {steps!r}") from None


def _num_tasks(argv: Sequence[str]) -> int:
    """``--num_tasks``; in a domain split with ``--domains``: one task per domain (a differing
    ``--num_tasks`` is an error)."""
    domains = get_flag(argv, "--domains")
    if get_flag(argv, "--split_strategy") == "domain" and isinstance(domains, (str, list)):
        count = 1 if isinstance(domains, str) else len(domains)
        given = get_flag(argv, "--num_tasks")
        if given is not None and _int_flag(argv, "--num_tasks", None) != count:
            raise PlanError(
                f"--num_tasks {given} does not match the {count} domains of --domains: a domain split "
                "has one task per domain; drop --num_tasks (it follows the domains)"
            )
        return count
    return _int_flag(argv, "--num_tasks", None)


def plan_tasks(
    argv: Sequence[str],
    manifest_state: Mapping | None,
    experiment_dir: str,
    exists: Callable[[str], bool] = os.path.exists,
    complete: Callable[[str, int], tuple[bool, str]] | None = None,
) -> list[TaskRun]:
    """The per-task commands for tasks ``task_idx .. num_tasks - 1`` of the (merged) script argv.

    Rules (REFERENCE.md, section 2 and the task-loop defects):
    * task t gets ``--task_idx t --checkpoint_dir <exp>/task{t} --name <name>-task{t}``;
    * task 0 has nothing to distil: every ``--distiller`` / ``--distill_*`` flag is dropped;
    * task t > start learns from ``--pretrained_model <exp>/task{t-1}/last.ckpt`` (the previous
      task's *final* checkpoint; the launcher runs t only after t-1 is done);
    * a start task s > 0 (the reference workflow) uses the script's ``--pretrained_model``
      (``$PRETRAINED_PATH``), which must then be given and exist;
    * ``--pretrained_model`` (``PRETRAINED_PATH``) with start task 0 is an error;
    * manifest status "done" + checkpoint on disk (+ ``complete(checkpoint, t)`` when given: the
      checkpoint shows the whole schedule) -> skip; otherwise an existing
      ``<exp>/task{t}/last.ckpt`` (a killed or failed attempt) -> resume from it; otherwise run;
    * once a task is not skipped, later tasks are never skipped or resumed: their old state (if
      any) was built on a predecessor that is being redone, so they run from scratch.
    ``exists`` is only there so tests can fake the filesystem; a task skipped or resumed for a
    reason worth telling carries it in ``TaskRun.note``.
    """
    argv = merge_args(argv, [])
    num_tasks = _num_tasks(argv)
    start = _int_flag(argv, "--task_idx", 0)
    if num_tasks < 1:
        raise PlanError(f"--num_tasks must be >= 1, got {num_tasks}")
    if not 0 <= start < num_tasks:
        raise PlanError(f"--task_idx {start} is out of range: valid start tasks are 0..{num_tasks - 1}")
    name = get_flag(argv, "--name")
    if not isinstance(name, str) or not name:
        raise PlanError("--name is missing from the script arguments (it names the run and its folder)")
    pretrained = get_flag(argv, "--pretrained_model")
    if start > 0 and not isinstance(pretrained, str):
        raise PlanError(
            f"--task_idx {start} starts after task 0, so it needs the checkpoint of task {start - 1}: "
            f"set PRETRAINED_PATH (or --pretrained_model) to it"
        )
    if start == 0 and pretrained is not None:
        # Task 0 trains from scratch: a leftover PRETRAINED_PATH would silently start it from
        # another run's weights.
        raise PlanError(
            f"PRETRAINED_PATH / --pretrained_model is set ({pretrained}) but the run starts at task 0, "
            f"which trains from scratch; unset PRETRAINED_PATH (or drop --pretrained_model), or start "
            f"after task 0 with `-- --task_idx N` to build on that checkpoint"
        )

    base = drop_flags(argv, lambda f: f in _PER_TASK_FLAGS)
    tasks_state = (manifest_state or {}).get("tasks", {})
    runs: list[TaskRun] = []
    redoing = False  # a task before this one is being (re)run
    for t in range(start, num_tasks):
        ckpt_dir = task_dir(experiment_dir, t)
        ckpt = os.path.join(ckpt_dir, CHECKPOINT_NAME)
        prev = pretrained if t == start else os.path.join(task_dir(experiment_dir, t - 1), CHECKPOINT_NAME)
        task_argv = base if t > 0 and prev else drop_flags(base, lambda f: flag_key(f).startswith("--distill"))
        task_argv = task_argv + ["--task_idx", str(t), "--checkpoint_dir", ckpt_dir, "--name", f"{name}-task{t}"]
        if prev:
            task_argv += ["--pretrained_model", prev]

        status = tasks_state.get(str(t), {}).get("status", "pending")
        note = ""
        if not redoing and status == "done" and exists(ckpt):
            verdict = complete(ckpt, t) if complete is not None else (True, "")
            if verdict[0]:
                runs.append(TaskRun(t, task_argv, ckpt_dir, "skip"))
                continue
            note = f"recorded done, but {verdict[1]}"
        if t == start and prev and not exists(prev):
            raise PlanError(
                f"pretrained model for task {t} not found: {prev} (from PRETRAINED_PATH / --pretrained_model)"
            )
        if not redoing and exists(ckpt):
            runs.append(TaskRun(t, task_argv + ["--resume_from_checkpoint", ckpt], ckpt_dir, "resume", ckpt, note))
        else:
            runs.append(TaskRun(t, task_argv, ckpt_dir, "run"))
        redoing = True
    return runs
