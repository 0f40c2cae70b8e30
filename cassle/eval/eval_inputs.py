"""What the flags and the checkpoint's recorded args make of an evaluation: its data
(``resolve_data``: what is not given comes from the pretraining run) and the probe's recipe
(``probe_config``: lr, schedule, precision, workers), plus the checks of flags against the checkpoint.
"""

from __future__ import annotations

import argparse

import torch

from cassle.eval.errors import EvalInputError
from cassle.eval.eval_data import EvalData
from cassle.eval.linear import ProbeConfig, reference_lr

__all__ = ["resolve_data", "probe_config"]


def _trust(opts: argparse.Namespace | None) -> bool:
    """--trust_checkpoint: unpickle checkpoints fully (code in them runs); off unless asked for."""
    return bool(getattr(opts, "trust_checkpoint", False))


def _trained_crop(hp: dict) -> int | None:
    """View 1's crop size of the pretraining run (what its own validation used), if recorded."""
    crop = hp.get("crop_size")
    if isinstance(crop, (list, tuple)):
        crop = crop[0] if crop else None
    return int(crop) if crop is not None else None


def resolve_data(opts: argparse.Namespace, hp: dict) -> EvalData:
    """Evaluation data from the flags; what is not given comes from the checkpoint's hparams
    (only when evaluating on the pretraining dataset: a different --dataset starts from defaults).

    The test transform follows the run's own crop size (``--crop_size`` overrides it), so a 64 px
    run is evaluated at 64 px, not at the 224 px of the reference's ImageNet-size protocol.
    """
    from cassle.data.args import DESCRIBED_DATASETS
    from cassle.data.datasets import DOMAINNET_DOMAINS, dataset_stats, load_dataset
    from cassle.data.image_check import DEFAULT_MAX_IMAGE_PIXELS

    dataset = opts.dataset or hp.get("dataset")
    if dataset is None:
        raise EvalInputError("--dataset is not given and the checkpoint does not record one")
    same = dataset == hp.get("dataset")

    def pick(name: str, default=None):
        value = getattr(opts, name, None)
        if value is not None:
            return value
        return hp.get(name, default) if same and hp.get(name) is not None else default

    split, num_tasks = pick("split_strategy"), pick("num_tasks")
    domains = pick("domains")
    if getattr(opts, "domain", None):  # the reference's per-domain run: train and test on one domain
        valid = domains or (DOMAINNET_DOMAINS if dataset == "domainnet" else None)
        if valid is not None and opts.domain not in valid:
            raise EvalInputError(f"unknown --domain {opts.domain!r}; valid: {', '.join(valid)}")
        domains, split, num_tasks = [opts.domain], None, 1
    elif split == "domain" and dataset not in DESCRIBED_DATASETS:
        raise EvalInputError(
            f"split_strategy domain needs data with domains (--dataset "
            f"{' or '.join(DESCRIBED_DATASETS)}), got {dataset}"
        )
    num_classes = pick("num_classes")
    kwargs = dict(
        data_dir=pick("data_dir"),
        download=bool(getattr(opts, "download", False)),
        train_dir=pick("train_dir"),
        val_dir=pick("val_dir"),
        num_classes=num_classes if dataset in ("synthetic", *DESCRIBED_DATASETS) else None,
        synthetic_size=pick("synthetic_size", 1000),
        image_size=pick("synthetic_image_size", 32) if dataset == "synthetic" else 32,
        domains=domains,
        split_strategy=split,
        allow_outside=bool(
            getattr(opts, "allow_paths_outside_data_dir", False) or pick("allow_paths_outside_data_dir")
        ),  # given, or the run's
        max_image_pixels=pick("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS),
    )
    train_set = load_dataset(dataset, train=True, **kwargs)
    test_set = load_dataset(dataset, train=False, **kwargs)
    if split == "domain" and num_tasks is None:  # one task per domain
        num_tasks = len(train_set.domain_names)
    num_tasks = int(num_tasks or 1)
    if getattr(opts, "validate_images", True) and hasattr(train_set, "samples"):
        from cassle.data.custom import validate_images

        validate_images(train_set, "training")
        validate_images(test_set, "test")
    n_cls = int(num_classes or train_set.num_classes)
    top = max(int(torch.as_tensor(train_set.targets).max()), int(torch.as_tensor(test_set.targets).max()))
    if top >= n_cls:
        raise EvalInputError(f"--num_classes {n_cls} is too small: {dataset} has labels up to {top}")
    mean, std = pick("mean"), pick("std")
    stats = dataset_stats(dataset)
    crop = getattr(opts, "crop_size", None) or (_trained_crop(hp) if same else None)
    return EvalData.build(
        dataset,
        train_set,
        test_set,
        num_classes=n_cls,
        split=split,
        num_tasks=num_tasks,
        mean=mean or stats[0],
        std=std or stats[1],
        crop_size=crop,
        cache_bytes=int(float(getattr(opts, "image_cache_gb", 0) or 0) * 2**30),
    )


def _precision(opts) -> str:
    p = str(getattr(opts, "precision", "auto") or "auto")
    if p == "auto":  # the rule of cassle.utils.precision (native bf16 only)
        from cassle.utils.precision import native_bf16

        return "bf16-mixed" if native_bf16() else "32"
    return {"16": "16-mixed", "bf16": "bf16-mixed", "32-true": "32"}.get(p, p)


FAST_PROBE_LR = 0.1


def probe_config(opts: argparse.Namespace, hp: dict, mode: str) -> tuple[ProbeConfig, str]:
    """The probe's recipe and where its lr came from."""
    method = getattr(opts, "method", None) or hp.get("method")
    if opts.lr is not None:
        lr, lr_source = float(opts.lr), "--lr"
    elif mode == "fast":
        # Cached features are standardised before the probe (see probe.py), which makes the lr
        # independent of each method's feature scale: one value serves every method.
        lr, lr_source = FAST_PROBE_LR, "fast-mode lr on standardised features"
    else:
        lr, lr_source = reference_lr(method), f"reference lr of {method}"
    seed = opts.seed if opts.seed is not None else int(hp.get("seed", 5))
    cfg = ProbeConfig(
        mode=mode,
        epochs=opts.max_epochs,
        lr=lr,
        batch_size=opts.batch_size,
        momentum=opts.momentum,
        weight_decay=opts.weight_decay,
        milestones=opts.lr_decay_steps,
        label_fraction=opts.label_fraction,
        seed=seed,
        num_workers=opts.num_workers if opts.num_workers is not None else int(hp.get("num_workers", 4)),
        accelerator=opts.accelerator,
        precision=_precision(opts),
        knn=opts.knn,
        domain_aware=opts.domain_eval in ("aware", "both"),
        progress_bar=opts.progress_bar,
        dali=bool(getattr(opts, "dali", False)),
    )
    return cfg, lr_source


def _check_backbone_flag(opts, hp: dict, path: str) -> None:
    wanted = getattr(opts, "backbone", None)
    if wanted and wanted != hp.get("backbone"):
        raise EvalInputError(
            f"--encoder/--backbone {wanted} does not match checkpoint {path} "
            f"(trained with {hp.get('backbone')}); the architecture comes from the checkpoint"
        )
