"""PNR resumes exactly: a task-1 run stopped after an epoch and resumed from its last.ckpt ends with
the weights, the predictor and PNR's queue of frozen projections (pnr_moco) of the uninterrupted
run (CPU, deterministic). The queue lives in the state dict, so a mid-task resume restores it."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from main_continual import run_task
from tests.helpers import tiny_args

PAIRS = [("mocov2plus", "pnr_moco"), ("byol", "pnr_predictive")]


class StopAfter(pl.Callback):
    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 == self.epochs:
            trainer.should_stop = True


def _args(method, folder, task, distiller=None, *extra):
    argv = [
        "--num_tasks",
        "2",
        "--task_idx",
        str(task),
        "--max_epochs",
        "3" if task else "1",
        "--synthetic_size",
        "48",
        "--deterministic",
        "--limit_val_batches",
        "0",
        *extra,
    ]
    if method == "mocov2plus":
        argv += ["--queue_size", "64"]
    return tiny_args(method, *argv, distiller=distiller, tmp_path=folder)


def _final(folder):
    ckpt = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt["state_dict"], ckpt["epoch"]


@pytest.mark.parametrize("method,distiller", PAIRS)
def test_stopped_pnr_task_resumes_to_identical_state(method, distiller, tmp_path):
    run_task(_args(method, tmp_path / "task0", 0))
    pre = ("--pretrained_model", str(tmp_path / "task0" / "last.ckpt"))
    run_task(_args(method, tmp_path / "straight", 1, distiller, *pre))
    run_task(_args(method, tmp_path / "stopped", 1, distiller, *pre), extra_callbacks=[StopAfter(1)])
    stopped = tmp_path / "stopped" / "last.ckpt"
    assert _final(tmp_path / "stopped")[1] < _final(tmp_path / "straight")[1], "the stop did not stop"
    if distiller == "pnr_moco":  # the queue has moved away from its random start and is saved
        assert "distiller.pnr_queue" in _final(tmp_path / "stopped")[0]
    run_task(_args(method, tmp_path / "stopped", 1, distiller, *pre, "--resume_from_checkpoint", str(stopped)))
    a, b = _final(tmp_path / "straight")[0], _final(tmp_path / "stopped")[0]
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed run differs in {different[:6]}"
    assert any(k.startswith("distiller.predictor.") for k in a)
