"""Lightning callbacks of the task runner: atomic last.ckpt and exact-resume RNG state."""
from __future__ import annotations

import os
import random

import numpy as np
import pytorch_lightning as pl
import torch

from cassle.utils.checkpoint import save_trainer_checkpoint


class AtomicLastCheckpoint(pl.Callback):
    """Writes `<dirpath>/last.ckpt` at every epoch end and when training ends.

    Written to a temporary file and renamed, so a kill during the write leaves the previous
    checkpoint intact (Lightning's own writer truncates the target in place).
    """

    def __init__(self, dirpath: str, filename: str = "last.ckpt"):
        self.path = os.path.join(dirpath, filename)

    def save(self, trainer: pl.Trainer) -> None:
        # Never write weights that a NaN loss has already corrupted.
        check = getattr(trainer.lightning_module, "check_finite_loss", None)
        if check is not None:
            check()
        save_trainer_checkpoint(trainer, self.path)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        # A run stopped by max_steps ends mid-epoch; save its final state too.
        self.save(trainer)


class RNGStateCheckpoint(pl.Callback):
    """Saves and restores the Python, NumPy and torch RNG states with the checkpoint, so a task
    resumed from an epoch-end checkpoint draws the same shuffles and augmentations as an
    uninterrupted run (exact on CPU with --deterministic and num_workers 0).

    The states are stored as tensors and plain Python values, so the checkpoint loads with
    ``torch.load(weights_only=True)`` (``cassle.utils.checkpoint``)."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        states = {"python": random.getstate(), "numpy": numpy_state_to_plain(np.random.get_state()),
                  "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            states["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["rng_states"] = states

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        states = checkpoint.get("rng_states")
        if not states:
            return
        random.setstate(states["python"])
        np.random.set_state(numpy_state_from_plain(states["numpy"]))
        torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])


def numpy_state_to_plain(state: tuple) -> dict:
    """``np.random.get_state()`` as a dict of a tensor and plain values (no numpy objects)."""
    name, keys, pos, has_gauss, cached = state
    return {"bit_generator": str(name), "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def numpy_state_from_plain(state) -> tuple:
    """Inverse of ``numpy_state_to_plain``; a legacy tuple (numpy array keys) passes through."""
    if not isinstance(state, dict):
        return tuple(state)
    keys = state["keys"].numpy().astype(np.uint32)
    return (state["bit_generator"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
