"""The frozen backbone a linear probe sits on: read from a checkpoint, or randomly initialised.

A checkpoint is data: read on the CPU without running code from it (``cassle.utils.checkpoint``),
every error names the file. The backbone comes back in eval mode with no gradients;
``snapshot_state`` / ``assert_unchanged`` prove the evaluation left its weights and BatchNorm
buffers bit-identical. ``load_online_classifier`` reads the checkpoint's own online classifier
(``--protocol online``).
"""

from __future__ import annotations

import json
import os

import torch
import torch.nn as nn

from cassle.eval.errors import EvalInputError

__all__ = [
    "read_checkpoint_file",
    "checkpoint_hparams",
    "load_backbone_from_checkpoint",
    "load_online_classifier",
    "random_backbone",
    "snapshot_state",
    "assert_unchanged",
]

SMALL_IMAGE_DATASETS = ("cifar10", "cifar100", "digits", "synthetic")  # same rule as BaseMethod's stem


def read_checkpoint_file(path: str, trust: bool = False, hints: dict | None = None) -> dict:
    """A Lightning checkpoint read on the CPU without running code from it (``cassle.utils.checkpoint``;
    ``trust``: ``--trust_checkpoint``), with errors that name the file. A checkpoint of the original
    cassle code comes back in this code's names; ``hints`` (``backbone``, ``dataset`` from the flags)
    describe it where its args.json and weights do not."""
    from cassle.utils.checkpoint import CheckpointError, read_checkpoint

    if not path or not os.path.isfile(path):
        raise EvalInputError(f"checkpoint not found: {path!r}")
    try:
        return read_checkpoint(path, trust=trust, hints=hints)
    except CheckpointError as err:
        raise EvalInputError(str(err)) from None


def checkpoint_hparams(ckpt: dict, path: str) -> dict:
    """The task's resolved args: the checkpoint's ``hyper_parameters``, else ``args.json`` beside it."""
    hp = ckpt.get("hyper_parameters")
    if not hp:
        args_json = os.path.join(os.path.dirname(os.path.abspath(path)), "args.json")
        if not os.path.isfile(args_json):
            raise EvalInputError(
                f"checkpoint {path!r} has no hyper_parameters and there is no {args_json}: "
                "cannot tell which backbone and dataset it was trained with"
            )
        with open(args_json, encoding="utf-8") as f:
            hp = json.load(f)
    hp = dict(hp)
    if not hp.get("backbone"):
        raise EvalInputError(f"checkpoint {path!r} does not record its backbone (hyper_parameters['backbone'])")
    return hp


def _backbone_state(ckpt: dict, path: str) -> dict[str, torch.Tensor]:
    state = {k[len("backbone.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("backbone.")}
    if not state:
        raise EvalInputError(
            f"checkpoint {path} has no backbone.* weights (keys start with: "
            f"{sorted({k.split('.')[0] for k in ckpt['state_dict']})[:8]})"
        )
    return state


def _cifar_stem(hp: dict) -> bool:
    return hp["cifar_stem"] if hp.get("cifar_stem") is not None else hp.get("dataset") in SMALL_IMAGE_DATASETS


def _build_backbone(hp: dict) -> tuple[nn.Module, int]:
    from cassle.backbones import BACKBONES, build_backbone, vit_kwargs

    if hp["backbone"] not in BACKBONES:
        raise EvalInputError(f"unknown backbone {hp['backbone']!r}; valid: {', '.join(BACKBONES)}")
    return build_backbone(
        hp["backbone"],
        cifar=_cifar_stem(hp),
        zero_init_residual=bool(hp.get("zero_init_residual")),
        **vit_kwargs(
            hp["backbone"],
            hp.get("crop_size"),
            hp.get("patch_size"),
            small_images=hp.get("dataset") in SMALL_IMAGE_DATASETS,
        ),
    )


def _freeze(backbone: nn.Module) -> nn.Module:
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone.eval()


def load_backbone_from_checkpoint(
    path: str, num_classes: int | None = None, ckpt: dict | None = None, trust: bool = False
) -> tuple[nn.Module, int, dict]:
    """Frozen backbone of a cassle checkpoint: ``(backbone (eval, no grad), feat_dim, hparams)``.

    ``num_classes`` (the evaluation data's class count) is checked against the checkpoint's when
    given; pass None where the data differ on purpose (transfer). ``ckpt`` skips re-reading the file.
    """
    ckpt = read_checkpoint_file(path, trust) if ckpt is None else ckpt
    hp = checkpoint_hparams(ckpt, path)
    state = _backbone_state(ckpt, path)
    if num_classes is not None and hp.get("num_classes") is not None and int(hp["num_classes"]) != num_classes:
        raise EvalInputError(
            f"num_classes mismatch: checkpoint {path} was pretrained with num_classes="
            f"{hp['num_classes']} but the evaluation data has {num_classes} classes"
        )
    backbone, feat_dim = _build_backbone(hp)
    own = backbone.state_dict()
    shapes = [
        f"{k} {tuple(v.shape)} (here: {tuple(own[k].shape)})"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if shapes:
        raise EvalInputError(
            f"checkpoint {path}: backbone.* weights do not fit a {hp['backbone']} "
            f"(cifar_stem={_cifar_stem(hp)}): {shapes[:3]}"
        )
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise EvalInputError(
            f"checkpoint {path}: backbone.* weights do not fit a {hp['backbone']} "
            f"(cifar_stem={_cifar_stem(hp)}): missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    if ckpt.get("original_format"):
        from cassle.utils.original_checkpoint import describe

        rest = [k for k in ckpt["state_dict"] if not k.startswith("backbone.")]
        print(
            f"[checkpoint] {path}: original cassle checkpoint ({hp['backbone']}, "
            f"cifar_stem={_cifar_stem(hp)}); loaded: backbone.* ({len(state)}, from encoder.*); "
            f"ignored: {describe(rest)}",
            flush=True,
        )
    return _freeze(backbone), feat_dim, hp


def load_online_classifier(ckpt: dict, path: str, feat_dim: int, num_classes: int) -> nn.Linear:
    """The online classifier (``classifier.*``) trained during pretraining, for ``--protocol online``."""
    w, b = ckpt["state_dict"].get("classifier.weight"), ckpt["state_dict"].get("classifier.bias")
    if w is None or b is None:
        raise EvalInputError(
            f"checkpoint {path} has no classifier.* weights: --protocol online needs the "
            "online classifier trained during pretraining"
        )
    if tuple(w.shape) != (num_classes, feat_dim):
        raise EvalInputError(
            f"num_classes mismatch: the online classifier of {path} has shape {tuple(w.shape)}, "
            f"expected ({num_classes}, {feat_dim}) for the evaluation data"
        )
    linear = nn.Linear(feat_dim, num_classes)
    linear.load_state_dict({"weight": w, "bias": b})
    return linear.eval()


def random_backbone(hp: dict, seed: int) -> tuple[nn.Module, int]:
    """Randomly initialised backbone of the same architecture (the forward-transfer baseline).

    Seeded with a forked RNG, so the global RNG state is unchanged.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone, feat_dim = _build_backbone(hp)
    return _freeze(backbone), feat_dim


def snapshot_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copies of every parameter and buffer (BN running stats included)."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def assert_unchanged(module: nn.Module, before: dict[str, torch.Tensor], what: str = "backbone") -> None:
    """RuntimeError when any weight or buffer of ``module`` differs from the snapshot ``before``."""
    now = module.state_dict()
    changed = [k for k, v in before.items() if k not in now or not torch.equal(now[k].detach().cpu(), v)]
    if changed or set(now) != set(before):
        raise RuntimeError(
            f"linear evaluation changed the frozen {what}: {changed[:5] or sorted(set(now) ^ set(before))[:5]}"
            " (weights or BatchNorm running statistics); this is a bug"
        )
