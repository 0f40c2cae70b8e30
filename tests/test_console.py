"""The console of a run: one line per epoch from the trainer, nothing else from the launcher's tasks,
and no warning caused by the project's own code (tiny run, CPU)."""

from __future__ import annotations

import logging
import warnings

from cassle.continual.console import epoch_line, for_console, format_duration, task_line
from main_continual import run_task
from tests.helpers import tiny_args


def test_console_filter_and_formats():
    line = epoch_line(1, 3, 10, {"ssl_loss": 12.345678, "val/acc1": 71.25}, 2.9, 20.4)
    assert line == "[cassle] task 1 | epoch 3/10 | ssl_loss 12.35 | val/acc1 71.25 | 3s | ETA 20s"
    assert for_console(line + "\n") == line
    assert for_console("tqdm 10%\rtqdm 50%\r" + line) == line  # a bar's last segment counts
    assert for_console("[eval] A = 90.00") == "[eval] A = 90.00"
    for noise in (
        "GPU available: False, used: False",
        "  | Name | Type",
        "UserWarning: something",
        "💡 Tip: try installing litlogger",
    ):
        assert for_console(noise) is None
    assert task_line(0, 10, 95, {}) == "[cassle] task 0 finished: 10 epochs in 1m35s"
    assert [format_duration(s) for s in (0.4, 59, 61, 3725)] == ["0s", "59s", "1m01s", "1h02m"]


def test_tiny_run_prints_epoch_lines_and_no_warning_of_ours(tmp_path, capsys, caplog):
    args = tiny_args(
        "byol",
        "--max_epochs",
        "2",
        "--synthetic_size",
        "32",
        "--online_eval_batch_size",
        "8",
        "--num_tasks",
        "1",
        tmp_path=tmp_path,
    )
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        run_task(args)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if for_console(line)]
    assert [line.split(" | ")[1] for line in lines[:2]] == ["epoch 1/2", "epoch 2/2"]
    assert "ssl_loss" in lines[0] and "val/acc1" in lines[0] and "ETA" in lines[0]
    assert lines[2].startswith("[cassle] task 0 finished: 2 epochs")
    messages = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    ours = [m for m in messages if "infer the `batch_size`" in m or "`weights_only` was not set" in m]
    assert not ours, ours
