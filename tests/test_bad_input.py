"""Bad input to the task runner: one clear error each, a non-zero exit, nothing overwritten."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from cassle.utils.args import parse_args
from main_continual import main, run_task
from tests.helpers import tiny_args, tiny_argv

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def task0_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("task0")
    run_task(tiny_args("barlow_twins", "--num_tasks", "2", tmp_path=out))
    return out / "last.ckpt"


@pytest.fixture
def precious(tmp_path):
    """A task folder holding results that a failed run must leave alone."""
    folder = tmp_path / "task1"
    folder.mkdir()
    (folder / "last.ckpt").write_bytes(b"precious weights")
    (folder / "args.json").write_text('{"precious": true}')
    return folder


def _unchanged(folder: Path) -> bool:
    return (folder / "last.ckpt").read_bytes() == b"precious weights" and (
        folder / "args.json"
    ).read_text() == '{"precious": true}'


CASES = {
    "unknown distiller": (["--distiller", "nope"], "unknown distiller 'nope'"),
    "classes not divisible": (["--num_tasks", "3"], "divisible"),
    "task_idx out of range": (["--num_tasks", "2", "--task_idx", "2"], "out of range"),
    "missing pretrained": (
        [
            "--num_tasks",
            "2",
            "--task_idx",
            "1",
            "--distiller",
            "decorrelative",
            "--pretrained_model",
            "/nonexistent/last.ckpt",
        ],
        "checkpoint not found: '/nonexistent/last.ckpt'",
    ),
    "distiller without pretrained": (
        ["--num_tasks", "2", "--task_idx", "1", "--distiller", "decorrelative"],
        "needs --pretrained_model",
    ),
    "gpu without a gpu": (["--accelerator", "gpu"], "no CUDA GPU is visible"),
    "missing data dir": (["--dataset", "cifar100", "--data_dir", "/nonexistent/cifar"], "/nonexistent/cifar"),
    "per-step interval of an epoch scheduler": (
        ["--scheduler", "step", "--lr_decay_steps", "1", "--scheduler_interval", "step"],
        "--scheduler_interval step applies to warmup_cosine and cosine",
    ),
    "fractional warmup per epoch": (["--warmup_epochs", "0.5"], "not a whole number of epochs"),
}


if torch.cuda.is_available():  # the case only exists on machines without a GPU
    del CASES["gpu without a gpu"]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_error_and_writes_nothing(case, precious):
    extra, message = CASES[case]
    argv = tiny_argv("barlow_twins", *extra, tmp_path=precious)
    with pytest.raises((ValueError, FileNotFoundError, SystemExit)) as err:
        main(argv)
    text = str(err.value.code) if isinstance(err.value, SystemExit) else str(err.value)
    assert message in text
    assert _unchanged(precious)


def test_pretrained_from_another_method_or_backbone(task0_ckpt, precious):
    argv = tiny_argv(
        "simclr",
        "--num_tasks",
        "2",
        "--task_idx",
        "1",
        "--pretrained_model",
        str(task0_ckpt),
        distiller="contrastive",
        tmp_path=precious,
    )
    with pytest.raises(ValueError, match="method='barlow_twins', but this run uses method='simclr'"):
        main(argv)
    argv = tiny_argv(
        "barlow_twins",
        "--num_tasks",
        "2",
        "--task_idx",
        "1",
        "--pretrained_model",
        str(task0_ckpt),
        "--backbone",
        "resnet18",
        distiller="decorrelative",
        tmp_path=precious,
    )
    with pytest.raises(ValueError, match="backbone='tiny', but this run uses backbone='resnet18'"):
        main(argv)
    garbage = precious.parent / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    argv = tiny_argv(
        "barlow_twins",
        "--num_tasks",
        "2",
        "--task_idx",
        "1",
        "--pretrained_model",
        str(garbage),
        distiller="decorrelative",
        tmp_path=precious,
    )
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        main(argv)
    assert _unchanged(precious)


def test_resume_with_another_schedule_interval_is_refused(task0_ckpt, precious):
    """The checkpoint's scheduler counter counts epochs; continuing it per step would be wrong."""
    argv = tiny_argv(
        "barlow_twins",
        "--num_tasks",
        "2",
        "--resume_from_checkpoint",
        str(task0_ckpt),
        "--scheduler_interval",
        "step",
        tmp_path=precious,
    )
    with pytest.raises(ValueError, match="--scheduler_interval epoch, this run uses --scheduler_interval step"):
        main(argv)
    assert _unchanged(precious)


def test_cli_exit_codes_are_non_zero(precious):
    for argv, message in ((["--num_tasks", "3"], "divisible"), (["--not_a_flag"], "unrecognized arguments")):
        proc = subprocess.run(
            [sys.executable, "main_continual.py", *tiny_argv("byol", *argv, tmp_path=precious)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0 and message in proc.stderr
    assert _unchanged(precious)


def test_nan_loss_stops_with_clear_error_and_keeps_last_checkpoint(tmp_path):
    args = tiny_args("barlow_twins", "--max_epochs", "3", tmp_path=tmp_path)
    snapshots = {}

    class PoisonSecondEpoch(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch == 1:
                snapshots["before"] = (tmp_path / "last.ckpt").read_bytes()
                ssl_step = module.ssl_step

                def nan_step(views, targets):
                    out = ssl_step(views, targets)
                    out.loss = out.loss * float("nan")
                    return out

                module.ssl_step = nan_step

    with pytest.raises(FloatingPointError, match="non-finite SSL loss"):
        run_task(args, extra_callbacks=[PoisonSecondEpoch()])
    assert (tmp_path / "last.ckpt").read_bytes() == snapshots["before"]
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert ckpt["epoch"] == 0


def test_args_json_records_resolved_arguments(tmp_path):
    import json

    run_task(tiny_args("vicreg", tmp_path=tmp_path))
    recorded = json.loads((tmp_path / "args.json").read_text())
    assert recorded["method"] == "vicreg" and recorded["num_classes"] == 4
    assert parse_args(tiny_argv("vicreg")).sim_loss_weight == recorded["sim_loss_weight"]
