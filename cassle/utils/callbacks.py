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
        states = {"python": random.getstate(), "numpy": numpy_state_to_plain(np.random.get_state()),
                  "torch": torch.get_rng_state()}
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
