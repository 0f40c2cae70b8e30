"""numpy's RNG state as plain values (a tensor, str, ints, a float): checkpoints hold no numpy objects."""

from __future__ import annotations

import numpy as np
import torch


def numpy_state_to_plain(state: tuple) -> dict:
    """``np.random.get_state()`` as a dict of a tensor and plain values (no numpy objects)."""
    name, keys, pos, has_gauss, cached = state
    return {
        "bit_generator": str(name),
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def numpy_state_from_plain(state) -> tuple:
    """Inverse of ``numpy_state_to_plain``; a legacy tuple (numpy array keys) passes through."""
    if not isinstance(state, dict):
        return tuple(state)
    keys = state["keys"].numpy().astype(np.uint32)
    return (state["bit_generator"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
