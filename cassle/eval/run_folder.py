"""The run folder's plan: every task checkpoint of a continual run (``check_run_dir`` -> ``RunPlan``),
found, read and checked before anything is computed.

Checkpoints sit at ``<run>/task{t}/last.ckpt`` (the manifest's recorded paths are not followed); a
run started at task s > 0 from PRETRAINED_PATH finds rows 0..s-1 through the ``--pretrained_model``
each checkpoint recorded. All tasks must be finished (the launcher's rule, ``finished.py``) and
agree on ``RUN_CONSISTENT_KEYS``.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
from dataclasses import dataclass

from cassle.eval.errors import EvalInputError
from cassle.eval.eval_inputs import _trust
from cassle.eval.finished import check_task_finished
from cassle.eval.frozen_backbone import (
    checkpoint_hparams,
    load_backbone_from_checkpoint,
    load_online_classifier,
    read_checkpoint_file,
)

__all__ = ["RunPlan", "check_run_dir", "RUN_CONSISTENT_KEYS"]

# Keys every task checkpoint of one run must share.
RUN_CONSISTENT_KEYS = ("method", "backbone", "dataset", "num_classes", "num_tasks", "split_strategy", "seed")


@dataclass
class RunPlan:
    run_dir: str
    checkpoints: list[str]
    hparams: list[dict]

    @property
    def num_tasks(self) -> int:
        return len(self.checkpoints)


def _task_checkpoint(run_dir: str, t: int, entry: dict | None) -> str:
    """``<run>/task{t}/last.ckpt``: where the launcher always writes it. The manifest's recorded path
    is not followed: in a copied or moved run folder it points at the original run's files."""
    path = os.path.join(run_dir, f"task{t}", "last.ckpt")
    if os.path.isfile(path):
        return path
    why = "the manifest says the task is done but " if entry and entry.get("status") == "done" else ""
    raise EvalInputError(
        f"task {t} of {run_dir}: {why}its checkpoint {path} is missing; rerun the launcher to finish the run"
    )


def _first_task(run_dir: str, manifest: dict | None) -> int:
    """The task the run started at: 0, or the ``--task_idx`` of a run started from PRETRAINED_PATH."""
    if manifest is not None and manifest.get("tasks"):
        return min(int(t) for t in manifest["tasks"])
    found = [
        int(m.group(1))
        for d in glob.glob(os.path.join(run_dir, "task*"))
        if (m := re.fullmatch(r"task(\d+)", os.path.basename(d))) and os.path.isfile(os.path.join(d, "last.ckpt"))
    ]
    return min(found) if found else 0


def _predecessor(path: str, hp: dict, t: int) -> str:
    """The checkpoint task ``t`` (at ``path``) was built on: the ``--pretrained_model`` it recorded.
    For a run started at task t from PRETRAINED_PATH this is how rows 0..t-1 of the matrix are found."""
    prev = hp.get("pretrained_model")
    if not prev:
        raise EvalInputError(
            f"{path} (task {t}) records no --pretrained_model, so the checkpoint of task "
            f"{t - 1} that the accuracy matrix needs is unknown"
        )
    if not os.path.isfile(prev):
        raise EvalInputError(
            f"task {t - 1} of the accuracy matrix is the checkpoint task {t} started from "
            f"({prev}, recorded in {path}), and it is missing; put it back at that path"
        )
    return prev


def check_run_dir(run_dir: str, opts: argparse.Namespace | None = None) -> RunPlan:
    """Every task checkpoint of the run, present, readable, with backbone weights and consistent hparams.

    A run started at task s > 0 from PRETRAINED_PATH (the reference workflow) holds tasks s..T-1;
    the rows before s come from the checkpoint it started from and, going back, from the
    ``--pretrained_model`` each of those recorded.
    """
    from cassle.continual.manifest import load_manifest

    if not os.path.isdir(run_dir):
        raise EvalInputError(f"run folder {run_dir!r} does not exist")
    manifest = load_manifest(run_dir)
    tasks = (manifest or {}).get("tasks", {})
    start = _first_task(run_dir, manifest)
    first = _task_checkpoint(run_dir, start, tasks.get(str(start)))
    hp0 = checkpoint_hparams(read_checkpoint_file(first, _trust(opts)), first)
    num_tasks = int(hp0.get("num_tasks") or 1)
    task_dirs = sorted(
        d for d in glob.glob(os.path.join(run_dir, "task*")) if re.fullmatch(r"task\d+", os.path.basename(d))
    )
    if manifest is not None:
        problems = [
            f"task {t}: {tasks[str(t)]['status'] if str(t) in tasks else 'not in the manifest'}"
            for t in range(start, num_tasks)
            if tasks.get(str(t), {}).get("status") != "done"
        ]
        if problems:
            raise EvalInputError(
                f"run {run_dir} is not finished (num_tasks={num_tasks}): {'; '.join(problems)}; "
                "rerun the launcher to finish it before evaluating"
            )
    elif len(task_dirs) < num_tasks - start:
        raise EvalInputError(
            f"run {run_dir} has {len(task_dirs)} task folder(s) ({', '.join(map(os.path.basename, task_dirs))}) "
            f"but its checkpoints say num_tasks={num_tasks}"
        )
    paths = {t: _task_checkpoint(run_dir, t, tasks.get(str(t))) for t in range(start, num_tasks)}
    for t in range(start - 1, -1, -1):  # the lineage before the run's first task
        nxt = paths[t + 1]
        paths[t] = _predecessor(nxt, checkpoint_hparams(read_checkpoint_file(nxt, _trust(opts)), nxt), t + 1)
    checkpoints, hparams = [], []
    for t in range(num_tasks):
        path = paths[t]
        ckpt = read_checkpoint_file(path, _trust(opts))
        hp = checkpoint_hparams(ckpt, path)
        for key in RUN_CONSISTENT_KEYS:
            if key in hp and key in hp0 and hp[key] != hp0[key]:
                raise EvalInputError(
                    f"{path} has {key}={hp[key]!r} but task {start} has {key}={hp0[key]!r}: "
                    "the checkpoints are not from one run"
                )
        if hp.get("task_idx") is not None and int(hp["task_idx"]) != t:
            raise EvalInputError(f"{path} was trained as task_idx={hp['task_idx']}, expected {t}")
        if t >= start and not ckpt.get("original_format"):
            check_task_finished(path, t)  # the launcher's rule, from the checkpoint and the task's records
        _, feat_dim, _ = load_backbone_from_checkpoint(path, None, ckpt)  # backbone.* present and loadable
        if opts is not None and opts.protocol == "online":
            load_online_classifier(ckpt, path, feat_dim, int(hp["num_classes"]))
        checkpoints.append(path)
        hparams.append(hp)
    return RunPlan(run_dir, checkpoints, hparams)
