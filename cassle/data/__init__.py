"""Data layer: datasets, continual splits, CPU augmentations and the Lightning data module.

``gpu_augment`` (batched on-device augmentation) is imported on demand, not here.

Layer: lowest. Imports torch, torchvision, PIL, numpy and the leaf utilities
(``cassle.utils.checkpoint`` for atomic writes) only; never methods, distillers, strategies,
continual or eval (tests/test_house.py checks it).
"""

from .args import (
    DATASETS,
    NUM_VIEWS,
    SPLIT_STRATEGIES,
    add_augmentation_args,
    add_data_args,
    validate_data_args,
    view_settings,
)
from .datamodule import ContinualDataModule, EvalDataset, TaskDataset, task_subset
from .datasets import (
    DATASET_STATS,
    DOMAINNET_DOMAINS,
    DomainNetDataset,
    TensorImageDataset,
    dataset_stats,
    load_dataset,
)
from .splits import (
    class_order,
    class_split_indices,
    class_split_tasks,
    data_split_indices,
    domain_split_indices,
    task_of_class,
)
from .transforms import NViewTransform, build_eval_transform, build_multiview_transform, build_view_transform

__all__ = [
    "DATASETS",
    "NUM_VIEWS",
    "SPLIT_STRATEGIES",
    "add_augmentation_args",
    "add_data_args",
    "validate_data_args",
    "view_settings",
    "ContinualDataModule",
    "EvalDataset",
    "TaskDataset",
    "task_subset",
    "DATASET_STATS",
    "DOMAINNET_DOMAINS",
    "DomainNetDataset",
    "TensorImageDataset",
    "dataset_stats",
    "load_dataset",
    "class_order",
    "class_split_indices",
    "class_split_tasks",
    "data_split_indices",
    "domain_split_indices",
    "task_of_class",
    "NViewTransform",
    "build_eval_transform",
    "build_multiview_transform",
    "build_view_transform",
]
