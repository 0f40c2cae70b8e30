"""DINO's centre and teacher-temperature schedule and DeepClusterV2's k-means memory resume
exactly: a task stopped after its second epoch and resumed from its last.ckpt ends with the
weights (and centre, memory, clusters) of the uninterrupted run (CPU, deterministic)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from main_continual import run_task
from tests.helpers import tiny_args

EXTRA = {"dino": ["--warmup_teacher_temperature_epochs", "3", "--freeze_last_layer", "1"], "deepclusterv2": []}


class StopAfter(pl.Callback):
    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 == self.epochs:
            trainer.should_stop = True


def _args(method, folder, *extra):
    args = tiny_args(
        method,
        "--max_epochs",
        "4",
        "--synthetic_size",
        "96",
        "--deterministic",
        "--limit_val_batches",
        "0",
        *EXTRA[method],
        *extra,
        tmp_path=folder,
    )
    return args


def _final(folder):
    ckpt = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt["state_dict"], ckpt.get("deepclusterv2_state"), ckpt["epoch"]


@pytest.mark.parametrize("method", list(EXTRA))
def test_stopped_task_resumes_to_identical_state(method, tmp_path):
    run_task(_args(method, tmp_path / "straight"))
    run_task(_args(method, tmp_path / "stopped"), extra_callbacks=[StopAfter(2)])
    stopped = tmp_path / "stopped" / "last.ckpt"
    assert _final(tmp_path / "stopped")[2] < _final(tmp_path / "straight")[2], "the stop did not stop"
    run_task(_args(method, tmp_path / "stopped", "--resume_from_checkpoint", str(stopped)))
    (a, mem_a, _), (b, mem_b, _) = _final(tmp_path / "straight"), _final(tmp_path / "stopped")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed run differs in {different[:6]}"
    if method == "dino":
        assert a["dino_loss.center"].abs().sum() > 0
    else:
        assert mem_a["assignments_epoch"] == mem_b["assignments_epoch"] == 3
        for key in ("memory_index", "memory_embeddings", "assignments"):
            assert torch.equal(mem_a[key], mem_b[key]), key
        assert (mem_a["assignments"] >= 0).any()
