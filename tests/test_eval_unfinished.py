"""``main_linear.py --run_dir`` never evaluates an unfinished task (issue 18, section 3), and never
writes through a symlinked ``RUN/eval`` (section 2): the launcher's rule, read from the checkpoint
and the task's own args.json, whatever the manifest says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import main_linear
from cassle.continual import manifest as mf
from cassle.continual.progress import PROGRESS_KEY
from tests.test_eval_workflows import fine_tuned  # noqa: F401  (the module-scoped 2-task run)


def _interrupt_task1(run: Path) -> None:
    """Task 1 as a launcher left it after a stop at epoch 1 of its 3 planned epochs."""
    path = run / "task1" / "last.ckpt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt[PROGRESS_KEY].update(epochs_done=1, max_epochs=3)
    ckpt["epoch"] = 0
    ckpt["hyper_parameters"]["max_epochs"] = 3
    torch.save(ckpt, path)
    args = json.loads((run / "task1" / "args.json").read_text())
    (run / "task1" / "args.json").write_text(json.dumps({**args, "max_epochs": 3}))


@pytest.fixture
def interrupted(fine_tuned, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(fine_tuned, run)
    _interrupt_task1(run)
    return run


@pytest.mark.parametrize("manifest", ["done", "missing"])
def test_run_dir_refuses_a_task_interrupted_at_epoch_1_of_3(interrupted, tmp_path, capsys, manifest):
    if manifest == "missing":
        (interrupted / "manifest.json").unlink()
    else:  # the manifest claims every task is done (edited, or a launcher of another version)
        assert all(t["status"] == "done" for t in mf.load_manifest(str(interrupted))["tasks"].values())
    rc = main_linear.main(
        [
            "--run_dir",
            str(interrupted),
            "--mode",
            "fast",
            "--max_epochs",
            "1",
            "--num_workers",
            "0",
            "--accelerator",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "task 1 is not finished" in err and "1 of 3 epochs" in err
    assert str(interrupted / "task1" / "last.ckpt") in err
    assert not (interrupted / "eval").exists()


def test_run_dir_refuses_a_symlinked_eval_folder(fine_tuned, tmp_path, capsys):  # noqa: F811
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    shutil.copytree(fine_tuned, run, ignore=shutil.ignore_patterns("eval"))
    elsewhere.mkdir()
    (run / "eval").symlink_to(elsewhere)
    rc = main_linear.main(
        ["--run_dir", str(run), "--mode", "fast", "--max_epochs", "1", "--num_workers", "0", "--accelerator", "cpu"]
    )
    assert rc == 2 and "eval is a symbolic link" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []
