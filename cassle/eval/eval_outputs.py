"""What an evaluation writes beside its numbers: the protocol record of ``results.json``
(``_protocol``: the probe's recipe and the per-task rule, tagged by ``eval_protocol``), the atomic
JSON write and the wandb run.
"""

from __future__ import annotations

import json
from typing import Any

from cassle.eval.eval_data import EvalData
from cassle.eval.eval_protocol import tags as protocol_tags
from cassle.eval.knn import DISTANCES
from cassle.eval.linear import KNN_K, KNN_T, ProbeConfig
from cassle.eval.offline_loader import describe as describe_augmentation


def _protocol(opts, cfg: ProbeConfig, data: EvalData, lr_source: str, method: str | None) -> dict[str, Any]:
    online = opts.protocol == "online"
    milestones = (
        list(cfg.milestones) if cfg.milestones is not None else [round(0.6 * cfg.epochs), round(0.8 * cfg.epochs)]
    )
    probe = {
        "mode": cfg.mode,
        "epochs": cfg.epochs,
        "lr": cfg.lr,
        "lr_source": lr_source,
        "optimizer": "sgd",
        "momentum": cfg.momentum,
        "weight_decay": cfg.weight_decay,
        "batch_size": cfg.batch_size,
        "lr_milestones": milestones,
        "lr_gamma": 0.1,
        "train_augmentation": (
            describe_augmentation(data, cfg.dali)
            if cfg.mode == "augmented"
            else "none: features extracted once, probe on cached features"
        ),
        "label_fraction": cfg.label_fraction if cfg.label_fraction is not None else 1.0,
        "feature_standardization": cfg.mode == "fast",
    }
    proto: dict[str, Any] = {
        "name": "online" if online else f"linear-{cfg.mode}",
        "description": (
            "the online classifier trained during pretraining (the reference's CIFAR protocol)"
            if online
            else "one all-class linear classifier on the frozen backbone"
        ),
        "method": method,
        "dataset": data.name,
        "num_classes": data.num_classes,
        "split_strategy": data.split,
        "num_tasks": data.num_tasks,
        "per_task_accuracy": (
            "task-agnostic: predictions over all classes, no masking; "
            + {
                "class": "task j = test images of task j's classes (class order seed 5)",
                "domain": "task j = test images of domain j",
            }.get(data.split, "every task = the whole test set")
        ),
        "test_transform": data.transform_description(),
        "seed": cfg.seed,
    }
    if not online:
        proto.update(probe)
    else:
        proto["random_baseline_probe"] = probe
    if cfg.knn:
        proto["knn"] = {"k": KNN_K, "T": KNN_T, "distances": list(DISTANCES), "weighted": True}
    proto.update(protocol_tags(proto))  # eval_protocol (paper / fast / custom) and its label
    return proto


# --------------------------------------------------------------------------- writing
def _write_json(path: str, payload: dict) -> None:
    from cassle.utils.checkpoint import atomic_write_text

    atomic_write_text(path, json.dumps(payload, indent=2, allow_nan=False) + "\n")


def _wandb_init(opts, name: str, config: dict, out_dir: str):
    """A wandb run whose files (``wandb/``) go into the evaluation's output folder, not the cwd."""
    import wandb  # lazy: optional dependency

    return wandb.init(
        project=opts.project,
        entity=opts.entity,
        name=name,
        config=config,
        dir=out_dir,
        mode="online" if opts.wandb_online else "offline",
    )
