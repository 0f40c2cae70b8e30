"""Loggers: a CSV log always, wandb offline (no network) when asked."""
from __future__ import annotations

import csv

from main_continual import run_task
from tests.helpers import tiny_args


def test_csv_and_offline_wandb_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_task(tiny_args("simclr", "--wandb", "--name", "logcheck", tmp_path=tmp_path))
    rows = list(csv.DictReader(open(tmp_path / "logs" / "metrics.csv")))
    assert any(row.get("val/acc1") for row in rows) and any(row.get("train/ssl_loss") for row in rows)
    offline_runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert offline_runs, "wandb did not write an offline run"
