"""CPU thread settings for shared machines (cassle/utils/cpu_threads.py)."""

from __future__ import annotations

import sys

import pytest
import torch

from cassle.continual import task_process
from cassle.utils.args import parse_args
from cassle.utils.cpu_threads import apply_cpu_threads

PRINT_POLICY = [sys.executable, "-c", "import os; print('policy=' + os.environ.get('OMP_WAIT_POLICY', 'unset'))"]


def _child_policy(tmp_path, env=None) -> str:
    tail: list[str] = []
    rc = task_process.run_task(PRINT_POLICY, str(tmp_path / "log.txt"), env=env, tail=tail)
    assert rc == 0
    return (tmp_path / "log.txt").read_text().strip().splitlines()[-1]


def test_launched_tasks_wait_passively_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert _child_policy(tmp_path) == "policy=PASSIVE"


def test_the_users_wait_policy_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert _child_policy(tmp_path) == "policy=ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert _child_policy(tmp_path, env={"OMP_WAIT_POLICY": "ACTIVE"}) == "policy=ACTIVE"


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_cpu_threads_flag_sets_torch_threads(restore_threads):
    torch.set_num_threads(2)
    args = parse_args(["--method", "simclr", "--dataset", "cifar100", "--cpu_threads", "1"])
    assert args.cpu_threads == 1
    apply_cpu_threads(args.cpu_threads)
    assert torch.get_num_threads() == 1
    apply_cpu_threads(parse_args(["--method", "simclr", "--dataset", "cifar100"]).cpu_threads)  # 0: unchanged
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="--cpu_threads -1"):
        apply_cpu_threads(-1)


def test_main_linear_takes_cpu_threads():
    import main_linear

    assert main_linear.parse_args(["--run_dir", "x", "--cpu_threads", "1"]).cpu_threads == 1
