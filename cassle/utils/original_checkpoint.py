"""Checkpoints written by the original cassle code (Lightning 1.5 ``.ckpt``), read by this code.

The original names the parts of a model differently; the weights and their shapes are the same
(torchvision ResNet layout, the same projector / predictor / prototype layers). This is the one
key-mapping table (original prefix -> prefix here); every other key is an error, never dropped:

    encoder.               -> backbone.
    momentum_encoder.      -> momentum_backbone.
    frozen_encoder.        -> frozen_backbone.
    distill_predictor.     -> distiller.predictor.
    distill_prototypes.    -> distiller.prototypes.
    classifier., momentum_classifier., projector., momentum_projector., predictor.,
    prototypes. (SwAV's weight-normalised weight_g / weight_v), frozen_projector.,
    frozen_prototypes., queue, queue_ptr                       -> the same names

The original checkpoints carry no ``hyper_parameters``: the method, backbone and dataset come from
the ``args.json`` the original wrote beside the checkpoint when present, from the weights (backbone
depth, CIFAR stem, classes, method-specific layers) and from the command line's flags
(``--encoder``, ``--dataset``, ``--method``), which must agree with the weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

# original prefix -> prefix here (a key equal to the prefix without the dot is the same rule).
KEY_MAP: tuple[tuple[str, str], ...] = (
    ("encoder.", "backbone."),
    ("momentum_encoder.", "momentum_backbone."),
    ("frozen_encoder.", "frozen_backbone."),
    ("distill_predictor.", "distiller.predictor."),
    ("distill_prototypes.", "distiller.prototypes."),
    ("classifier.", "classifier."),
    ("momentum_classifier.", "momentum_classifier."),
    ("projector.", "projector."),
    ("momentum_projector.", "momentum_projector."),
    ("predictor.", "predictor."),
    ("prototypes.", "prototypes."),
    ("frozen_projector.", "frozen_projector."),
    ("frozen_prototypes.", "frozen_prototypes."),
)
SAME_NAME_KEYS = ("queue", "queue_ptr", "queue_y")  # queue_y: NNCLR's support-set labels


class OriginalCheckpointError(ValueError):
    """An original-format checkpoint that does not fit (unknown keys, another method or backbone)."""


def is_original(state_dict: Mapping[str, Any]) -> bool:
    """The original's layout: ``encoder.*`` weights and none of this code's ``backbone.*``."""
    return any(k.startswith("encoder.") for k in state_dict) and not any(k.startswith("backbone.") for k in state_dict)


def map_key(key: str) -> str | None:
    """The name here of an original key; None when the table has no rule for it."""
    if key in SAME_NAME_KEYS:
        return key
    for old, new in KEY_MAP:
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def translate(state_dict: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The state dict with this code's names; unknown keys are an error that names them."""
    unknown = [k for k in state_dict if map_key(k) is None]
    if unknown:
        raise OriginalCheckpointError(
            f"{path}: original-format checkpoint with keys the mapping table does not know: "
            f"{unknown[:8]}{' ...' if len(unknown) > 8 else ''} (a method this code does not "
            "implement, or another fork's checkpoint); see cassle/utils/original_checkpoint.py"
        )
    return {map_key(k): v for k, v in state_dict.items()}


def _linear_layers(state: Mapping[str, Any], prefix: str) -> list[str]:
    """Indices of the 2-d weights (linear layers) of an nn.Sequential, in order."""
    idx = sorted(
        {
            int(k[len(prefix) :].split(".")[0])
            for k in state
            if k.startswith(prefix) and k.endswith(".weight") and state[k].dim() == 2
        }
    )
    return [str(i) for i in idx]


def infer_from_weights(state: Mapping[str, Any]) -> dict[str, Any]:
    """What the weights (already translated) say: backbone, stem, classes, output dim, method."""
    hp: dict[str, Any] = {}
    if "backbone.layer1.0.conv3.weight" in state:
        hp["backbone"] = "resnet50"
    elif "backbone.layer4.1.conv2.weight" in state:
        hp["backbone"] = "resnet18"
    conv1 = state.get("backbone.conv1.weight")
    if conv1 is not None:
        hp["cifar_stem"] = conv1.shape[-1] == 3
    if "classifier.weight" in state:
        hp["num_classes"] = int(state["classifier.weight"].shape[0])
    layers = _linear_layers(state, "projector.")
    if layers:
        hp["output_dim"] = int(state[f"projector.{layers[-1]}.weight"].shape[0])
    momentum = "momentum_backbone.conv1.weight" in state
    if "prototypes.weight_v" in state:
        hp["method"] = "swav"
    elif momentum and "predictor.0.weight" in state:
        hp["method"] = "byol"
    elif "queue_y" in state:  # the support set's labels
        hp["method"] = "nnclr"
    elif (
        "momentum_projector.0.weight" in state and "queue" in state and state["queue"].dim() == 2
    ):  # (K, D) keys; MoCo's queue is (2, D, K)
        hp["method"] = "ressl"
    elif momentum and "queue" in state:
        hp["method"] = "mocov2plus"
    elif len(layers) == 2 and "projector.1.weight" not in state:
        hp["method"] = "simclr"
    # 3 linear layers with BatchNorm: Barlow Twins or VICReg (the weights cannot tell them apart).
    return hp


def _args_json(path: str) -> dict[str, Any]:
    """The original's ``args.json`` beside the checkpoint, translated to this code's names."""
    file = os.path.join(os.path.dirname(os.path.abspath(path)), "args.json")
    if not os.path.isfile(file):
        return {}
    try:
        with open(file, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError):
        return {}
    names = {"encoder": "backbone", "cifar": "cifar_stem"}
    keep = (
        "method",
        "encoder",
        "dataset",
        "num_classes",
        "num_tasks",
        "split_strategy",
        "task_idx",
        "cifar",
        "zero_init_residual",
        "output_dim",
        "distiller",
        "name",
    )
    return {names.get(k, k): raw[k] for k in keep if k in raw and raw[k] is not None and raw[k] != "<not serializable>"}


def original_hparams(state: Mapping[str, Any], path: str, hints: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Hyperparameters of a translated original checkpoint. ``hints``: the command line's
    ``backbone`` / ``method`` (must fit the weights) and ``dataset`` (used when nothing says)."""
    weights = infer_from_weights(state)
    hp = {**_args_json(path)}
    for key, value in weights.items():
        if key in hp and hp[key] != value:
            raise OriginalCheckpointError(
                f"{path}: args.json says {key}={hp[key]!r} but the weights say {key}={value!r}"
            )
        hp.setdefault(key, value)
    hints = dict(hints or {})
    if hp.get("dataset") is None and hints.get("dataset"):  # a default only: transfer is allowed
        hp["dataset"] = hints["dataset"]
    for key, flag in (("backbone", "--encoder/--backbone"), ("method", "--method")):
        wanted = hints.get(key)
        if wanted is None:
            continue
        if hp.get(key) is not None and hp[key] != wanted:
            raise OriginalCheckpointError(
                f"{path} holds a {key} {hp[key]!r} checkpoint (original format), but "
                f"{flag} {wanted} was given: use a checkpoint of the same {key}"
            )
        hp[key] = wanted
    hp["original_format"] = True
    return hp


def convert(ckpt: dict, path: str, hints: Mapping[str, Any] | None = None) -> dict:
    """An original checkpoint as this code's: translated ``state_dict`` and ``hyper_parameters``."""
    state = translate(ckpt["state_dict"], path)
    hp = original_hparams(state, path, hints)
    return {
        "state_dict": state,
        "hyper_parameters": hp,
        "epoch": ckpt.get("epoch"),
        "original_format": True,
        "pytorch-lightning_version": ckpt.get("pytorch-lightning_version"),
    }


def describe(keys) -> str:
    """``backbone.* (120), projector.* (9)``: a short account of a set of keys."""
    groups: dict[str, int] = {}
    for key in keys:
        head = key.split(".")[0] if "." in key else key
        head = "distiller." + key.split(".")[1] if head == "distiller" else head
        groups[head] = groups.get(head, 0) + 1
    return ", ".join(f"{g}.* ({n})" if n > 1 or g not in SAME_NAME_KEYS else g for g, n in groups.items()) or "none"
