"""Issue 22's SimSiam, NNCLR, ReSSL and W-MSE scripts through the launcher (slow smoke runs; the
fast checks of every script are in tests/test_bash_scripts.py)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from tests.script_table_22a import MORE_22A
from tests.test_bash_scripts import PAPER, SCRIPT_ROOT, _final_val_acc, _launch


@pytest.mark.slow
@pytest.mark.parametrize("method", MORE_22A)
def test_digits_cassle_demo_through_launcher(method, tmp_path):
    """The digits CaSSLe demo through the launcher: task 0 plain, task 1 with the distiller."""
    env = {k: v for k, v in os.environ.items() if k != "DATA_DIR"}
    exp = tmp_path / "demo"
    _launch(
        SCRIPT_ROOT / "digits" / f"{method}_distill.sh",
        exp,
        ["--num_tasks", "2", "--max_epochs", "1", "--limit_train_batches", "3", "--limit_val_batches", "2"],
        env,
    )
    for t in range(2):
        assert (exp / f"task{t}" / "last.ckpt").is_file()
        recorded = json.loads((exp / f"task{t}" / "args.json").read_text())
        assert recorded["distiller"] == (None if t == 0 else PAPER[method][1])
    rows = list(csv.DictReader(open(exp / "task1" / "logs" / "metrics.csv")))
    losses = [float(r["train/distill_loss"]) for r in rows if r.get("train/distill_loss")]
    assert losses and all(np.isfinite(losses)), "task 1 logged no finite distillation loss"
    _final_val_acc(exp, 1)
