"""Lightning callbacks of the task runner: atomic last.ckpt, exact-resume RNG state, console lines."""

from __future__ import annotations

import os
import random
import time

import numpy as np
import pytorch_lightning as pl
import torch

from cassle.continual.console import epoch_line, task_line
from cassle.continual.progress import PROGRESS_KEY, progress_record
from cassle.utils.checkpoint import save_trainer_checkpoint
from cassle.utils.rng_state import numpy_state_from_plain, numpy_state_to_plain  # noqa: F401  (re-exported)


class AtomicLastCheckpoint(pl.Callback):
    """Writes `<dirpath>/last.ckpt` at every epoch end and when training ends.

    Written to a temporary file and renamed, so a kill during the write leaves the previous
    checkpoint intact (Lightning's own writer truncates the target in place). Each checkpoint
    carries a progress record (`cassle.continual.progress`): how many epochs and steps of the
    planned schedule it holds, which is what the launcher checks before calling a task done.
    """

    def __init__(self, dirpath: str, filename: str = "last.ckpt", task_idx: int = 0):
        self.path = os.path.join(dirpath, filename)
        self.task_idx = task_idx
        self._epochs_done = 0

    def save(self, trainer: pl.Trainer, epochs_done: int) -> None:
        # Never write weights that a NaN loss has already corrupted.
        check = getattr(trainer.lightning_module, "check_finite_loss", None)
        if check is not None:
            check()
        self._epochs_done = epochs_done  # read by on_save_checkpoint (the progress record)
        # Full training state (optimizer, schedule, loops), atomically: what an exact resume needs.
        save_trainer_checkpoint(trainer, self.path)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        checkpoint[PROGRESS_KEY] = progress_record(
            self.task_idx, self._epochs_done, trainer.max_epochs, trainer.global_step, trainer.max_steps
        )

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:  # the loop counts this epoch as completed right after
            self.save(trainer, trainer.current_epoch + 1)

    def on_train_end(self, trainer, pl_module) -> None:
        # Reached only when fit ran to its end (not after an interrupt). A run stopped by
        # max_steps ends mid-epoch; save its final state too.
        self.save(trainer, trainer.current_epoch)


def _gather_objects(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...]; [obj] without a process group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


class RNGStateCheckpoint(pl.Callback):
    """Saves and restores the Python, NumPy, torch and CUDA RNG states with the checkpoint, so a
    task resumed from an epoch-end checkpoint draws the same shuffles and augmentations as an
    uninterrupted run (exact on CPU with --deterministic and num_workers 0).

    Per process: every rank's states are gathered into the checkpoint (Lightning calls this hook on
    every rank; rank 0 writes the file) and rank r restores rank r's, so under DDP no rank takes
    rank 0's streams. The CUDA state is that of the process's own device only: all visible GPUs'
    states would tie the checkpoint to the machine (resuming on fewer GPUs failed). A rank without
    a saved counterpart (a resume on more processes) keeps its seeded state. Checkpoints of the
    earlier layout (one set of states, CUDA for every visible GPU) still load.

    The states are stored as tensors and plain Python values, so the checkpoint loads with
    ``torch.load(weights_only=True)`` (``cassle.utils.checkpoint``).
    """

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        states = {
            "python": random.getstate(),
            "numpy": numpy_state_to_plain(np.random.get_state()),
            "torch": torch.get_rng_state(),
        }
        device = trainer.strategy.root_device
        if device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(device)
        checkpoint["rng_states"] = {"per_rank": _gather_objects(states)}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        saved = checkpoint.get("rng_states")
        if not saved:
            return
        device = trainer.strategy.root_device
        if "per_rank" in saved:
            if trainer.global_rank >= len(saved["per_rank"]):
                return
            states = saved["per_rank"][trainer.global_rank]
        else:  # earlier layout: "cuda" lists the states of all GPUs of the saving machine
            states = {k: v for k, v in saved.items() if k != "cuda"}
            all_gpus = saved.get("cuda") or []
            if device.type == "cuda" and (device.index or 0) < len(all_gpus):
                states["cuda"] = all_gpus[device.index or 0]
        random.setstate(states["python"])
        np.random.set_state(numpy_state_from_plain(states["numpy"]))
        torch.set_rng_state(states["torch"])
        if "cuda" in states and device.type == "cuda":
            torch.cuda.set_rng_state(states["cuda"], device)


class ConsoleProgress(pl.Callback):
    """One compact line per epoch (epoch, SSL loss, val accuracy, time, ETA) and one at the end of
    the task, marked for the launcher's console (`cassle.continual.console`). Reads the metrics once
    per epoch (one device sync per epoch, not per step)."""

    METRICS = {"train/ssl_loss": "ssl_loss", "val/acc1": "val/acc1"}

    def __init__(self, task_idx: int):
        self.task_idx = task_idx
        self._start = self._epoch_start = 0.0
        self._epochs_run = 0

    def _values(self, trainer) -> dict[str, float]:
        metrics = trainer.callback_metrics
        # The continual strategies' loss terms and activity (replay share, LUMP's lambda) too.
        keys = {**self.METRICS, **getattr(trainer.lightning_module, "console_metrics", {})}
        return {short: float(metrics[key]) for key, short in keys.items() if key in metrics}

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = time.monotonic()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        now = time.monotonic()
        self._epochs_run += 1
        epoch = trainer.current_epoch + 1
        eta = (now - self._start) / self._epochs_run * max(0, trainer.max_epochs - epoch)
        print(
            epoch_line(self.task_idx, epoch, trainer.max_epochs, self._values(trainer), now - self._epoch_start, eta),
            flush=True,
        )

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            print(
                task_line(self.task_idx, trainer.current_epoch, time.monotonic() - self._start, self._values(trainer)),
                flush=True,
            )
