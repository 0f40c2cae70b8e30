"""A grid of runs in one launcher call: several ``--script`` x ``--seeds``.

Each (script, seed) pair is one ordinary run in its own folder ``<root>/<name>-seed<k>`` (``<name>``
without ``--seeds``), where ``<root>`` is ``--experiment_dir`` (default ``experiments``). The
folder names do not depend on the date, so rerunning the same call finds every run again: finished
ones are skipped, unfinished ones resume (the manifest of each folder decides, as for one run).
Locally the runs go one after another (a failed run does not stop the others; the call exits
non-zero if any failed); with ``--mode slurm`` each run is submitted as its own job.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cassle.continual.plan import PlanError, get_flag, merge_args, parse_script


@dataclass
class GridRun:
    script: str
    seed: int | None
    name: str
    experiment_dir: str
    extra: list[str]


def plan_grid(
    scripts: Sequence[str], seeds: Sequence[int] | None, extra: Sequence[str], root: str | None, env=os.environ
) -> list[GridRun]:
    """The runs of the grid, checked before anything runs (missing scripts, clashing names)."""
    root = root or "experiments"
    runs, folders = [], {}
    for script in scripts:
        if not os.path.isfile(script):
            raise FileNotFoundError(f"--script {script} does not exist")
        with open(script, encoding="utf-8") as f:
            argv = merge_args(parse_script(f.read(), env), extra)
        name = get_flag(argv, "--name")
        if not isinstance(name, str) or not name:
            raise PlanError(f"{script}: --name is missing (it names the run and its folder)")
        for seed in seeds or [None]:
            run_name = name if seed is None else f"{name}-seed{seed}"
            if run_name in (".", "..") or any(sep and sep in run_name for sep in ("/", os.sep, os.altsep, "\0")):
                raise PlanError(
                    f"{script}: --name {run_name!r} cannot name a run folder of a grid (it is '.' "
                    "or '..' or holds a path separator); give a plain name"
                )
            run_extra = list(extra) if seed is None else [*extra, "--seed", str(seed), "--name", run_name]
            folder = os.path.abspath(os.path.join(root, run_name.replace(os.sep, "_")))
            if folder in folders:
                raise PlanError(
                    f"{script} and {folders[folder]} would share the run folder {folder} "
                    "(same --name); give the scripts different names"
                )
            folders[folder] = script
            runs.append(GridRun(script, seed, run_name, folder, run_extra))
    return runs


def run_grid(opts, extra: Sequence[str], run_one: Callable[[object, list[str]], int]) -> int:
    """Run (or submit) every run of the grid with ``run_one(opts_for_that_run, extra)``."""
    runs = plan_grid(opts.script, opts.seeds, extra, opts.experiment_dir)
    print(f"[grid] {len(runs)} run(s): " + ", ".join(r.name for r in runs), flush=True)
    results = []
    for i, run in enumerate(runs, 1):
        one = copy.copy(opts)
        one.script, one.seeds, one.experiment_dir = run.script, None, run.experiment_dir
        print(f"[grid] run {i}/{len(runs)}: {run.name} -> {run.experiment_dir}", flush=True)
        results.append(run_one(one, run.extra))
    failed = [r.name for r, rc in zip(runs, results) if rc != 0]
    for run, rc in zip(runs, results):
        print(f"[grid] {'ok    ' if rc == 0 else f'FAILED ({rc})'} {run.name}  {run.experiment_dir}")
    if failed:
        print(f"[grid] {len(failed)} run(s) failed; rerun the same command to resume them", file=sys.stderr)
        return 1
    return 0
