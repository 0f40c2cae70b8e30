"""Loading a previous task's checkpoint into a new task's model, with checks that name problems."""
from __future__ import annotations

import os

import torch

# Keys a checkpoint may lack or carry beyond the model: the CaSSLe parts exist only from task 1 on;
# continual strategies (buffer, Fisher, PFR projector) only in runs that use them.
DISTILL_PREFIXES = ("frozen_", "distiller.", "strategies.")


def read_checkpoint(path: str) -> dict:
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path!r} (for --pretrained_model pass the "
                                "previous task's last.ckpt, e.g. experiments/<run>/task0/last.ckpt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # truncated or foreign file
        raise ValueError(f"cannot read checkpoint {path!r}: {err}") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path!r} is not a cassle/Lightning checkpoint (no state_dict)")
    return ckpt


def check_compatible(ckpt: dict, path: str, args) -> None:
    """The checkpoint must come from the same method and backbone."""
    hp = ckpt.get("hyper_parameters", {})
    for key in ("method", "backbone"):
        theirs, ours = hp.get(key), getattr(args, key)
        if theirs is not None and theirs != ours:
            raise ValueError(f"checkpoint {path!r} was trained with {key}={theirs!r}, but this "
                             f"run uses {key}={ours!r}")
    for key in ("output_dim", "num_classes"):
        theirs, ours = hp.get(key), getattr(args, key, None)
        if theirs is not None and ours is not None and theirs != ours:
            raise ValueError(f"checkpoint {path!r} has {key}={theirs}, this run {key}={ours}")


def load_pretrained(model: torch.nn.Module, ckpt: dict, path: str) -> None:
    """Load all weights; only CaSSLe parts (frozen copies, predictor) may be missing or extra."""
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    bad_missing = [k for k in missing if not k.startswith(DISTILL_PREFIXES)]
    bad_unexpected = [k for k in unexpected if not k.startswith(DISTILL_PREFIXES)]
    if bad_missing or bad_unexpected:
        raise ValueError(f"checkpoint {path!r} does not match the model: missing "
                         f"{bad_missing[:5]}, unexpected {bad_unexpected[:5]}")
