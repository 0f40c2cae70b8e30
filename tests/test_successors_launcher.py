"""Issue 23's "done when" for CaSSLe's four successors (PNR, CroMo-Mixup, Osiris, POCON), all slow:

- a 2-task CIFAR-100 smoke run of one shipped CIFAR script per successor through ``job_launcher.py
  --eval`` on a fake CIFAR-100 (tests/test_bash_scripts.py's ``_fake_cifar100`` and ``TINY``): both
  task checkpoints, the successor recorded in task 1's ``args.json``, a 2 x 2 accuracy matrix (and the
  random-init row) of finite percentages in ``eval/results.json``, and ``--compare``'s row name;
- the 5-task digits demo with ``--eval`` for the two successors without one elsewhere (Osiris: its
  digits test in tests/test_osiris.py runs 2 tasks, no evaluation; CroMo-Mixup: none). PNR's and
  POCON's are in tests/test_scripts_pnr.py and tests/test_scripts_pocon.py.

The expected records and row names are written out here, not read from the code.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_bash_scripts import REPO, SCRIPT_ROOT, TINY, _fake_cifar100


def _with(flags: list[str], **values: str) -> list[str]:
    """``flags`` with the values of some flags replaced (no flag twice on the command line)."""
    out = list(flags)
    for name, value in values.items():
        out[out.index(f"--{name}") + 1] = value
    return out


# id -> (CIFAR script, flags beyond TINY, what task 1's args.json records, --compare's row name)
CIFAR = {
    "pnr": ("simclr_pnr.sh", [], {"distiller": "pnr_contrastive"}, "PNR"),
    "cromo_mixup": (
        "simclr_cromo_mixup.sh",
        # replay batches of the tiny run's size (the scripts' 64 and 192 go with batches of 256)
        ["--buffer_size", "64", "--replay_batch_size", "16"],
        {"distiller": "contrastive", "cl_strategy": ["cromo_mixup"]},
        "CaSSLe + CroMo-Mixup",
    ),
    "osiris": (
        "simclr_osiris.sh",
        ["--buffer_size", "64", "--replay_batch_size", "12"],
        {"distiller": None, "cl_strategy": ["osiris"], "osiris_variant": "r"},
        "Osiris-R",
    ),
    # both phases: one expert epoch, one merge epoch
    "pocon": ("barlow_pocon.sh", ["--pocon_expert_epochs", "1"], {"pocon": True, "distiller": None}, "POCON"),
}
MAX_EPOCHS = {"pocon": "2"}


def _launch_eval(script: Path, exp: Path, extra: list[str], env: dict) -> None:
    cmd = [sys.executable, "job_launcher.py", "--script", str(script), "--experiment_dir", str(exp), "--eval"]
    res = subprocess.run([*cmd, "--", *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{script.name} --eval failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"


def _check_results(exp: Path, num_tasks: int) -> dict:
    """Every task's checkpoint, and eval/results.json: a T x T matrix + random-init row, finite %."""
    ckpts = [exp / f"task{t}" / "last.ckpt" for t in range(num_tasks)]
    assert all(c.is_file() for c in ckpts), [str(c) for c in ckpts if not c.is_file()]
    results = json.loads((exp / "eval" / "results.json").read_text())
    assert [os.path.abspath(c) for c in results["checkpoints"]] == [os.path.abspath(c) for c in ckpts]
    rows = results["accuracy_matrix"] + [results["random_baseline"]]
    assert [len(r) for r in rows] == [num_tasks] * (num_tasks + 1), "not a (T + 1) x T matrix"
    for v in [v for r in rows for v in r] + [results["A"]]:
        assert isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v <= 100.0, v
    for v in (results["F"], results["T"]):  # differences of accuracies
        assert isinstance(v, (int, float)) and math.isfinite(v) and -100.0 <= v <= 100.0, v
    # A: the last row weighted by each task's test images (tests/test_eval_metrics.py: the formulas)
    sizes = results["task_sizes"]
    assert len(sizes) == num_tasks and all(n > 0 for n in sizes)
    last = results["accuracy_matrix"][-1]
    assert results["A"] == pytest.approx(sum(a * n for a, n in zip(last, sizes)) / sum(sizes))
    return results


def _compare_row_name(exp: Path, out: Path) -> set[str]:
    """The rows ``main_linear.py --compare RUN`` makes of the run (its function, in-process)."""
    from cassle.eval.compare import compare_runs

    res = compare_runs([str(exp)], str(out))
    return {r["strategy"] for r in res["rows"]}


@pytest.mark.slow
@pytest.mark.parametrize("successor", list(CIFAR))
def test_cifar_two_task_smoke_through_the_launcher_with_eval(successor, tmp_path):
    script, extra, task1, label = CIFAR[successor]
    data = tmp_path / "cifar"
    data.mkdir()
    _fake_cifar100(data)
    env = {**os.environ, "DATA_DIR": str(data)}
    exp = tmp_path / "exp"
    tiny = _with(TINY, max_epochs=MAX_EPOCHS.get(successor, "1"))
    # --no-wandb: tests/test_bash_scripts.py's CIFAR smoke run checks the scripts' offline wandb path
    _launch_eval(SCRIPT_ROOT / "cifar" / script, exp, [*tiny, *extra, "--num_tasks", "2", "--no-wandb"], env)
    recorded = [json.loads((exp / f"task{t}" / "args.json").read_text()) for t in range(2)]
    assert [(a["task_idx"], a["dataset"], a["num_tasks"]) for a in recorded] == [(0, "cifar100", 2), (1, "cifar100", 2)]
    assert {k: recorded[1].get(k) for k in task1} == task1, f"{script}: task 1 ran without {successor}"
    assert recorded[0]["distiller"] is None  # nothing to distil from at task 0
    _check_results(exp, 2)
    assert _compare_row_name(exp, tmp_path / "compare") == {label}
    assert label in (tmp_path / "compare" / "comparison.md").read_text()


# id -> (digits script, task 1's record, --compare's row name)
DIGITS = {
    "cromo_mixup": (
        "barlow_cromo_mixup.sh",
        {"distiller": "decorrelative", "cl_strategy": ["cromo_mixup"]},
        "CaSSLe + CroMo-Mixup",
    ),
    "osiris": ("barlow_osiris.sh", {"distiller": None, "cl_strategy": ["osiris"]}, "Osiris-R"),
}


@pytest.mark.slow
@pytest.mark.parametrize("successor", list(DIGITS))
def test_digits_five_task_demo_through_the_launcher_with_eval(successor, tmp_path):
    script, task1, label = DIGITS[successor]
    env = {k: v for k, v in os.environ.items() if k != "DATA_DIR"}  # the demo needs no data directory
    exp = tmp_path / "demo"
    # all five tasks as shipped, one epoch of two batches each (as test_digits_demo_end_to_end)
    _launch_eval(SCRIPT_ROOT / "digits" / script, exp, ["--max_epochs", "1", "--limit_train_batches", "2"], env)
    recorded = [json.loads((exp / f"task{t}" / "args.json").read_text()) for t in range(5)]
    assert [a["task_idx"] for a in recorded] == list(range(5))
    assert all({k: a.get(k) for k in task1} == task1 for a in recorded[1:]), f"{script}: tasks 1-4"
    _check_results(exp, 5)
    assert _compare_row_name(exp, tmp_path / "compare") == {label}
