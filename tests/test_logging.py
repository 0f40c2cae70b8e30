"""Loggers: a CSV log always, wandb offline (no network) when asked."""

from __future__ import annotations

import csv

from main_continual import run_task
from tests.helpers import tiny_args


def test_csv_and_offline_wandb_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    trainer = run_task(tiny_args("simclr", "--wandb", "--name", "logcheck", tmp_path=tmp_path))
    rows = list(csv.DictReader(open(tmp_path / "logs" / "metrics.csv")))
    assert any(row.get("val/acc1") for row in rows) and any(row.get("train/ssl_loss") for row in rows)
    # the loss users see: its epoch mean in the logs and on the progress bar (the per-step value
    # goes to the logs every --log_every_n_steps, more than this run has)
    assert any(row.get("train/loss_epoch") for row in rows)
    assert "train/loss_epoch" in trainer.progress_bar_metrics and "train/loss" in trainer.callback_metrics
    offline_runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert offline_runs, "wandb did not write an offline run"


def test_resumed_task_keeps_the_first_attempts_log(tmp_path):
    run_task(tiny_args("barlow_twins", "--max_epochs", "2", "--max_steps", "3", tmp_path=tmp_path))
    first = (tmp_path / "logs" / "metrics.csv").read_text()
    run_task(
        tiny_args(
            "barlow_twins",
            "--max_epochs",
            "2",
            "--resume_from_checkpoint",
            str(tmp_path / "last.ckpt"),
            tmp_path=tmp_path,
        )
    )
    assert (tmp_path / "logs" / "metrics.csv").read_text() == first
    assert (tmp_path / "logs" / "resume1" / "metrics.csv").exists()
