"""The two GPU-session scripts start and finish on a simulated lent machine.

The lent GPU machine has PyTorch, Lightning and friends but no wandb and no DALI (and no package
registry). A ``sitecustomize`` on PYTHONPATH simulates that cheaply in every child process:
the path finder answers "not found" for ``wandb`` and ``nvidia.dali`` (and hides their
distributions), so ``import wandb`` raises ImportError and ``importlib.util.find_spec`` returns None,
as when they are not installed. The scripts run on the CPU with smoke flags (``EXTRA``) on a tiny
fake CIFAR-100 in the npz layout, spread over two sub-folders as the carry procedure leaves it
(benchmarks/RESULTS.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("cifar_protocol", REPO / "benchmarks" / "cifar_protocol.py")
protocol = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(protocol)
SMOKE = (
    "--backbone tiny --accelerator cpu --precision 32 --batch_size 16 --online_eval_batch_size 16 "
    "--num_workers 0 --limit_train_batches 2 --limit_val_batches 1 --proj_hidden_dim 32 --output_dim 32 "
    "--distill_proj_hidden_dim 32 --warmup_epochs 0"
)
SITECUSTOMIZE = """# The lent GPU machine: neither wandb nor NVIDIA DALI is installed (simulated for the tests).
import importlib.machinery
import sys

_HIDDEN_MODULES = ("wandb", "nvidia.dali")
_HIDDEN_DISTRIBUTIONS = ("wandb", "nvidia-dali")


def _hidden(name, prefixes):
    return any(name == p or name.startswith(p + ".") or name.startswith(p + "-") for p in prefixes)


class _LentMachinePathFinder(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        return None if _hidden(fullname, _HIDDEN_MODULES) else super().find_spec(fullname, path, target)

    @classmethod
    def find_distributions(cls, *args, **kwargs):
        for dist in super().find_distributions(*args, **kwargs):
            if not _hidden((dist.metadata["Name"] or "").lower(), _HIDDEN_DISTRIBUTIONS):
                yield dist


sys.meta_path[:] = [_LentMachinePathFinder if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
"""
CHECK = """import importlib.metadata as md, importlib.util as u, sys
assert u.find_spec("wandb") is None and u.find_spec("nvidia.dali") is None
for name in ("wandb", "nvidia.dali"):
    try:
        __import__(name)
        sys.exit(name + " imported")
    except ImportError:
        pass
for dist in ("wandb", "nvidia-dali-cuda120"):
    try:
        md.version(dist)
        sys.exit(dist + " metadata visible")
    except md.PackageNotFoundError:
        pass
assert u.find_spec("torch") is not None and md.version("torch")  # the rest is there
"""


def _lent_env(tmp_path: Path, extra: str, **more: str) -> dict:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
        "PYTHON": sys.executable,
        "EXTRA": extra,
        "OMP_NUM_THREADS": "1",
        **more,
    }
    check = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True)
    assert check.returncode == 0, f"the simulation does not hide wandb / DALI:\n{check.stderr}"
    return env


def _fake_cifar100(root: Path) -> Path:
    """train_0..4.npz (40 images each) and test.npz (100), in two sub-folders; every class in test."""
    rng = np.random.default_rng(0)
    for name, n, part in (
        ("train_0", 40, "a"),
        ("train_1", 40, "a"),
        ("train_2", 40, "b"),
        ("train_3", 40, "b"),
        ("train_4", 40, "b"),
        ("test", 100, "b"),
    ):
        (root / part).mkdir(parents=True, exist_ok=True)
        x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        np.savez(root / part / f"{name}.npz", x=x, y=np.arange(n, dtype=np.int64) % 100)
    return root


def _bash(args: list[str], env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return done


@pytest.mark.slow
def test_gpu_check_runs_without_a_gpu_wandb_or_dali(tmp_path):
    data, out = _fake_cifar100(tmp_path / "data"), tmp_path / "check"
    env = _lent_env(tmp_path, SMOKE, STEPS="2", WARMUP="1", NUM_WORKERS="1")
    done = _bash(["benchmarks/gpu_check.sh", str(data), str(out)], env)
    tests_log = (out / "gpu_tests.log").read_text()
    assert "skipped" in tests_log and not re.search(r"\d+ (failed|errors?)\b", tests_log), tests_log[-2000:]
    assert "needs a GPU" in tests_log and "DALI not installed" in tests_log  # skipped, and why
    result = json.loads((out / "throughput_gpu_bs256.json").read_text())
    assert result["machine"]["device"] == "cpu" and result["machine"]["nvidia_dali"] is None
    assert result["settings"]["backbone"] == "tiny" and result["settings"]["train_size"] > 0
    views = result["views_per_s"]
    assert {"step_premade", "e2e_gpu_augment", "e2e_torchvision_workers", "finetune_step_premade"} <= set(views)
    assert all(v > 0 for v in views.values())
    assert "no CUDA" in done.stdout


@pytest.mark.slow
def test_cifar_protocol_the_gpu_command_runs_without_a_gpu_wandb_or_dali(tmp_path):
    """The README's GPU command (EPOCHS=auto: probe, plan, three concurrent runs, table), with CPU
    smoke flags, 2 tasks, and MAX_EPOCHS=1 so the budget picks exactly one epoch."""
    data, out = _fake_cifar100(tmp_path / "data"), tmp_path / "protocol"
    env = _lent_env(tmp_path, SMOKE + " --num_tasks 2", BUDGET_S="100000", MAX_EPOCHS="1")
    done = _bash(["benchmarks/cifar_protocol.sh", str(data), str(out), "auto"], env)

    assert "largest EPOCHS that fits in 100000 s:" in done.stdout and "EPOCHS=auto: 1 epochs" in done.stdout
    plan = json.loads((out / "plan.json").read_text())
    assert plan["largest_epochs"] >= 1 and plan["plan"]["planned_s"] > plan["plan"]["gpu_work_s"] > 0
    assert plan["measured"]["views_per_s"]["finetune"] > 0 and plan["measured"]["views_per_s"]["cassle"] > 0

    result = json.loads((out / "protocol.json").read_text())
    rows = result["rows"]
    assert list(rows) == ["random_init", "finetune", "cassle", "offline"] and result["epochs"] == 1
    for name in ("finetune", "cassle", "offline"):
        r = rows[name]
        assert 0 <= r["A"] <= 100 and r["wall_s"] > 0 and r["views_per_s"] > 0
        assert r["train_views"] == 2 * 2 * 16 * r["num_tasks"]  # 2 views x 2 steps x batch 16 per task
        args = json.loads((out / name / "task0" / "args.json").read_text())
        assert args["wandb"] is False and args["max_epochs"] == 1
    assert (rows["finetune"]["num_tasks"], rows["cassle"]["num_tasks"], rows["offline"]["num_tasks"]) == (2, 2, 1)
    assert json.loads((out / "cassle" / "task1" / "args.json").read_text())["distiller"] == "decorrelative"
    assert json.loads((out / "finetune" / "task1" / "args.json").read_text())["distiller"] is None
    assert rows["finetune"]["F"] is not None and rows["offline"]["F"] is None
    assert 0 <= rows["random_init"]["A"] <= 100
    assert result["machine"]["wandb"] is None and result["machine"]["nvidia_dali"] is None
    md = (out / "protocol.md").read_text()
    assert "| run | A | F | T | wall time (s) | views/s |" in md and "| CaSSLe |" in md
    assert "| CaSSLe |" in done.stdout  # the table is printed too


# --------------------------------------------------------------------------- the plan's arithmetic
MEASURED = {  # hand-made probe figures: seconds per step, per validation pass, per start-up, ...
    "step_s": {"finetune": 0.1, "cassle": 0.2},
    "val_s": 1.0,
    "checkpoint_s": 0.5,
    "startup_s": {"finetune": 5.0, "cassle": 6.0},
    "eval_s": {"finetune": 10.0, "cassle": 10.0, "offline": 8.0},
    "runs": {
        "finetune": {"tasks": [(10, "finetune"), (10, "finetune")]},
        "cassle": {"tasks": [(10, "finetune"), (10, "cassle")]},
        "offline": {"tasks": [(20, "finetune")]},
    },
}


def test_planned_time_sums_gpu_work_and_takes_the_longest_process_chain():
    plan = protocol.plan_time(MEASURED, 3)
    # GPU work per task and epoch: steps x step time + a validation pass
    assert plan["runs"]["finetune"]["gpu_s"] == pytest.approx(2 * 3 * (10 * 0.1 + 1))  # 12
    assert plan["runs"]["cassle"]["gpu_s"] == pytest.approx(3 * (10 * 0.1 + 1) + 3 * (10 * 0.2 + 1))  # 15
    assert plan["runs"]["offline"]["gpu_s"] == pytest.approx(3 * (20 * 0.1 + 1))  # 9
    assert plan["gpu_work_s"] == pytest.approx(36)
    # per process: start-up and an epoch-end checkpoint per task, then the evaluation
    assert plan["runs"]["cassle"]["process_s"] == pytest.approx((5 + 1.5) + (6 + 1.5) + 10)  # 24
    assert plan["per_process_s"] == pytest.approx(24) and plan["planned_s"] == pytest.approx(60)


def test_largest_epochs_is_the_last_one_within_the_budget():
    at = {e: protocol.plan_time(MEASURED, e)["planned_s"] for e in (1, 3, 4)}
    assert protocol.largest_epochs(MEASURED, at[3]) == 3
    assert protocol.largest_epochs(MEASURED, at[3] - 0.01) == 2
    assert protocol.largest_epochs(MEASURED, at[4] - 0.01) == 3
    assert protocol.largest_epochs(MEASURED, at[1] - 0.01) == 0


@pytest.mark.parametrize(
    "steps,limit,expected", [(10, None, 10), (10, 2.0, 2), (10, "3", 3), (10, 0.5, 5), (10, 1.0, 10), (1, 5.0, 1)]
)
def test_batches_per_epoch_follow_lightnings_limit(steps, limit, expected):
    assert protocol._limited(steps, limit) == expected


def test_the_three_runs_share_the_overrides_and_offline_is_one_task():
    cifar = REPO / "bash_files" / "continual" / "cifar"
    argvs = protocol.protocol_argvs(
        str(cifar / "byol.sh"),
        str(cifar / "byol_distill.sh"),
        "/data",
        ["--max_epochs", "7", "--no-wandb"],
        ["--num_tasks", "1"],
    )
    from cassle.continual.plan import get_flag

    for name, argv in argvs.items():
        assert get_flag(argv, "--max_epochs") == "7" and get_flag(argv, "--no-wandb") is True, name
        assert get_flag(argv, "--wandb") is None and get_flag(argv, "--data_dir") == "/data", name
    assert [get_flag(argvs[n], "--num_tasks") for n in ("finetune", "cassle", "offline")] == ["5", "5", "1"]
    assert (
        get_flag(argvs["cassle"], "--distiller") == "predictive" and get_flag(argvs["offline"], "--distiller") is None
    )


def test_dry_run_plan_measures_and_picks_the_largest_epochs_within_the_budget(tmp_path, capsys):
    """What ``cifar_protocol.sh --dry_run`` runs (in-process here: the same code, no new interpreter)."""
    data = tmp_path / "data"
    for part in _fake_cifar100(tmp_path / "parts").iterdir():
        for f in part.iterdir():
            data.mkdir(exist_ok=True)
            f.rename(data / f.name)
    cifar = REPO / "bash_files" / "continual" / "cifar"
    rc = protocol.main(
        [
            "plan",
            "--finetune_script",
            str(cifar / "barlow.sh"),
            "--cassle_script",
            str(cifar / "barlow_distill.sh"),
            "--data_dir",
            str(data),
            "--epochs",
            "2",
            "--budget_s",
            "1000",
            "--json",
            str(tmp_path / "plan.json"),
            "--",
            "--max_epochs",
            "2",
            "--no_progress_bar",
            "--no-wandb",
            *SMOKE.split(),
            "--num_tasks",
            "2",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "planned time at EPOCHS=2:" in out and "largest EPOCHS that fits in 1000 s:" in out
    saved = json.loads((tmp_path / "plan.json").read_text())
    m, best, room = saved["measured"], saved["largest_epochs"], 1000 - saved["spent_s"]
    assert saved["spent_s"] == 0  # a dry run plans a later run: the probe's time is not spent
    assert m["step_s"]["cassle"] > 0 and m["step_s"]["finetune"] > 0 and m["forward_images_per_s"] > 0
    assert [n for n, _ in m["runs"]["cassle"]["tasks"]] == [2, 2]  # 2 tasks, limit_train_batches 2
    assert [kind for _, kind in m["runs"]["cassle"]["tasks"]] == ["finetune", "cassle"]
    assert m["task_sizes"] == [100, 100] and m["train_size"] == 200
    assert saved["plan"]["planned_s"] == pytest.approx(protocol.plan_time(m, 2)["planned_s"])
    if best:
        assert protocol.plan_time(m, best)["planned_s"] <= room
    assert protocol.plan_time(m, best + 1)["planned_s"] > room
