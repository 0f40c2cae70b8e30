"""Evaluation: continual metrics (A, F, T), reports, the weighted kNN monitor and the fast linear probe.

``report`` imports matplotlib only when a report is written, and wandb only in ``log_to_wandb``.
The linear evaluation (``linear.py``: the protocols; its parts ``eval_data``, ``frozen_backbone``,
``augmented_probe``, ``errors``) and what ``main_linear.py`` runs (``run_eval.py``; its parts
``run_folder``, ``eval_inputs``, ``eval_outputs``) are imported from their modules
(docs/ARCHITECTURE.md, "Evaluation").

Layer: evaluation. Imports backbones, data and utils, and ``cassle.continual.manifest`` to read run
folders; never methods, distillers or strategies (checkpoints are read as weights).
"""

from .knn import KNNMonitor, knn_accuracy, weighted_knn_predict
from .metrics import as_matrix, average_accuracy, forgetting, forward_transfer
from .probe import (
    extract_features,
    per_group_accuracy,
    per_task_accuracy,
    predict,
    probe_accuracy,
    stratified_fraction_indices,
    train_linear_probe_on_features,
)
from .report import log_to_wandb, write_report

__all__ = [
    "as_matrix",
    "average_accuracy",
    "forgetting",
    "forward_transfer",
    "write_report",
    "log_to_wandb",
    "weighted_knn_predict",
    "knn_accuracy",
    "KNNMonitor",
    "extract_features",
    "train_linear_probe_on_features",
    "probe_accuracy",
    "predict",
    "per_group_accuracy",
    "per_task_accuracy",
    "stratified_fraction_indices",
]
