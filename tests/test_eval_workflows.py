"""Evaluation of the documented workflows: a run started at task 1 from PRETRAINED_PATH, the online
protocol's forward transfer, and where --wandb writes (tiny 2-task run, CPU)."""

from __future__ import annotations

import importlib.machinery
import json
import shutil
import sys
import types
from pathlib import Path

import pytest

import main_linear
from cassle.continual import manifest as mf
from main_continual import run_task
from tests.helpers import tiny_args


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory) -> Path:
    """A 2-task run (task 0 plain, task 1 with the decorrelative distiller), manifest complete."""
    root = tmp_path_factory.mktemp("ft")
    manifest = mf.new_manifest("tiny", None, [], range(2))
    mf.save_manifest(str(root), manifest)
    for t in range(2):
        extra = ["--num_tasks", "2", "--task_idx", str(t), "--synthetic_size", "48"]
        if t:
            extra += ["--pretrained_model", str(root / "task0" / "last.ckpt")]
        run_task(
            tiny_args("barlow_twins", *extra, distiller="decorrelative" if t else None, tmp_path=root / f"task{t}")
        )
        mf.update_task(str(root), manifest, t, "done", returncode=0, checkpoint=str(root / f"task{t}" / "last.ckpt"))
    return root


def _eval(run: Path, *extra: str) -> dict:
    assert main_linear.main(["--run_dir", str(run), "--max_epochs", "5", *extra]) == 0
    return json.loads((run / "eval" / "results.json").read_text())


def test_run_started_at_task1_from_pretrained_path_takes_row0_from_it(fine_tuned, tmp_path):
    """The reference workflow: PRETRAINED_PATH=<fine-tuning run>/task0/last.ckpt, --task_idx 1."""
    started = tmp_path / "from_task1"
    shutil.copytree(fine_tuned / "task1", started / "task1")
    pretrained = str(fine_tuned / "task0" / "last.ckpt")
    manifest = mf.new_manifest("tiny", None, ["--task_idx", "1", "--pretrained_model", pretrained], [1])
    mf.save_manifest(str(started), manifest)
    mf.update_task(str(started), manifest, 1, "done", returncode=0, checkpoint=str(started / "task1" / "last.ckpt"))

    ours = _eval(started)
    assert ours["checkpoints"] == [pretrained, str((started / "task1" / "last.ckpt").resolve())]
    whole = _eval(fine_tuned)  # the same two checkpoints evaluated in the run that made both
    assert ours["accuracy_matrix"] == whole["accuracy_matrix"] and ours["T"] == whole["T"]

    (fine_tuned / "task0" / "last.ckpt").rename(tmp_path / "moved.ckpt")
    try:
        rc = main_linear.main(["--run_dir", str(started)])
    finally:
        (tmp_path / "moved.ckpt").rename(fine_tuned / "task0" / "last.ckpt")
    assert rc == 2  # a clear error naming the missing starting checkpoint, not "rerun the launcher"


def test_run_started_at_task1_error_names_the_starting_checkpoint(fine_tuned, tmp_path, capsys):
    started = tmp_path / "from_task1"
    shutil.copytree(fine_tuned / "task1", started / "task1")
    missing = str(tmp_path / "gone" / "last.ckpt")
    ckpt_path = started / "task1" / "last.ckpt"
    import torch

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    ckpt["hyper_parameters"]["pretrained_model"] = missing
    torch.save(ckpt, ckpt_path)
    manifest = mf.new_manifest("tiny", None, [], [1])
    mf.save_manifest(str(started), manifest)
    mf.update_task(str(started), manifest, 1, "done", returncode=0)
    assert main_linear.main(["--run_dir", str(started)]) == 2
    err = capsys.readouterr().err
    assert "task 0 of the accuracy matrix is the checkpoint task 1 started from" in err and missing in err
    assert "rerun the launcher" not in err


def test_online_protocol_reports_forward_transfer_as_undefined(fine_tuned, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fine_tuned, run, ignore=shutil.ignore_patterns("eval", "logs"))
    res = _eval(run, "--protocol", "online")
    assert res["T"] is None and res["random_baseline"] is None
    assert "not defined for --protocol online" in res["extra"]["T_undefined"]
    assert "not defined for --protocol online" in (run / "eval" / "summary.md").read_text()
    assert res["A"] is not None and res["F"] is not None


def test_wandb_files_go_to_the_output_folder(fine_tuned, tmp_path, monkeypatch):
    calls = []

    class FakeRun:
        def log(self, data):
            pass

        def finish(self):
            pass

    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)  # "installed" for the --wandb check
    fake.init, fake.run = (lambda **kw: calls.append(kw) or FakeRun()), None
    fake.Table, fake.Image = (lambda **kw: kw), (lambda path: path)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(fine_tuned, run, ignore=shutil.ignore_patterns("eval", "logs"))
    _eval(run, "--wandb", "--protocol", "online")
    assert calls and Path(calls[0]["dir"]) == run / "eval"
