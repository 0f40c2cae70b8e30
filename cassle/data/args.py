"""Command-line flags of the data layer.

Flag names and defaults follow the reference's bash scripts (``--solarization_prob 0.0 0.2``,
``--brightness 0.4`` ...), so those scripts read the same here.

Augmentation flags are *per view*: each takes one value (used for both views) or two values
(view 1, view 2); more than two is an error. ``view_settings(args)`` turns them into one dict per
view, which is what the transform builders (CPU and GPU) consume.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

DATASETS = ("cifar10", "cifar100", "digits", "synthetic", "imagenet100", "imagenet", "domainnet", "custom")
SPLIT_STRATEGIES = ("class", "data", "domain")
DESCRIBED_DATASETS = ("custom", "domainnet")  # image sets by description (custom.py), domains allowed
# Where tensor datasets are augmented (see datamodule.resolve_data_device):
#   auto: on the GPU when CUDA is available (and the trainer may use it), else CPU workers;
#   cpu: torchvision transforms in DataLoader workers; gpu: uint8 set on the GPU, batched aug there;
#   cpu_batched: the GPU path's code on the CPU (tests, debugging; never faster than workers).
DATA_DEVICES = ("auto", "cpu", "gpu", "cpu_batched")
NUM_VIEWS = 2  # CaSSLe always trains on two augmented views
# What the online classifier's labelled whole-train-set batches (--online_eval_batch_size) go
# through: last_view = the SSL augmentation of the last view (the reference), clean = the eval
# transform (opt-in).
ONLINE_EVAL_TRANSFORMS = ("last_view", "clean")

# name -> (type, default, lower bound, upper bound, lower bound inclusive)
# crop_size defaults to None = the dataset's natural size (32 for CIFAR/digits, 224 for folders).
VIEW_SPECS: dict[str, tuple[type, Any, float | None, float | None, bool]] = {
    "crop_size": (int, None, 1, None, True),
    "min_scale": (float, 0.08, 0.0, 1.0, False),  # RandomResizedCrop area fraction, in (0, 1]
    "max_scale": (float, 1.0, 0.0, 1.0, False),
    "brightness": (float, 0.4, 0.0, None, True),
    "contrast": (float, 0.4, 0.0, None, True),
    "saturation": (float, 0.2, 0.0, None, True),
    "hue": (float, 0.1, 0.0, 0.5, True),  # torchvision accepts hue jitter up to 0.5
    "color_jitter_prob": (float, 0.8, 0.0, 1.0, True),
    "gray_scale_prob": (float, 0.2, 0.0, 1.0, True),
    "horizontal_flip_prob": (float, 0.5, 0.0, 1.0, True),
    "gaussian_prob": (float, 0.5, 0.0, 1.0, True),  # the reference's default; CIFAR scripts set 0
    "solarization_prob": (float, 0.0, 0.0, 1.0, True),
}


def _range_error(name: str, value: Any) -> str | None:
    """Return an error message if ``value`` is out of the allowed range of flag ``name``."""
    _, _, low, high, low_inclusive = VIEW_SPECS[name]
    if value is None:
        return None
    if low is not None and (value < low if low_inclusive else value <= low):
        op = ">=" if low_inclusive else ">"
        return f"--{name} must be {op} {low}, got {value}"
    if high is not None and value > high:
        return f"--{name} must be <= {high}, got {value}"
    return None


class _PerViewAction(argparse.Action):
    """Stores 1 or NUM_VIEWS values and range-checks them at parse time."""

    def __call__(self, parser, namespace, values, option_string=None):
        name = self.dest
        if len(values) > NUM_VIEWS:
            parser.error(
                f"--{name} takes 1 value (both views) or {NUM_VIEWS} values (one per view), got {len(values)}: {values}"
            )
        for v in values:
            msg = _range_error(name, v)
            if msg:
                parser.error(msg)
        setattr(namespace, name, list(values))


def _int_at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"int>={low}"
    return parse


def add_user_data_flags(group) -> None:
    """The two flags that widen what a user's data may be (README, "Your own data")."""
    from .image_check import DEFAULT_MAX_IMAGE_PIXELS

    group.add_argument(
        "--allow_paths_outside_data_dir",
        action="store_true",
        default=False,
        help="accept list lines whose image lies outside --data_dir (absolute paths, "
        "../, symbolic links out); refused by default, naming the line",
    )
    group.add_argument(
        "--max_image_pixels",
        type=_int_at_least(0),
        default=DEFAULT_MAX_IMAGE_PIXELS,
        help="an image with more pixels (width x height) is refused naming the file "
        f"(default {DEFAULT_MAX_IMAGE_PIXELS:,}, PIL's; 0 = no limit)",
    )


def add_data_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Dataset, split and loader flags."""
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default=None)
    g.add_argument("--data_dir", default=None, help="root folder of the dataset")
    g.add_argument("--train_dir", default=None, help="train image folder inside --data_dir (default: train)")
    g.add_argument("--val_dir", default=None, help="val image folder inside --data_dir (default: val)")
    g.add_argument("--download", action="store_true", help="let torchvision download CIFAR")
    g.add_argument("--batch_size", type=_int_at_least(1), default=128, help="per device")
    g.add_argument("--num_workers", type=_int_at_least(0), default=4)
    g.add_argument("--split_strategy", choices=SPLIT_STRATEGIES, default="class")
    g.add_argument(
        "--num_tasks",
        type=_int_at_least(1),
        default=None,
        help="default: one task per domain for --split_strategy domain, else 1",
    )
    g.add_argument("--task_idx", type=_int_at_least(0), default=0)
    g.add_argument(
        "--num_classes",
        type=_int_at_least(1),
        default=None,
        help="default: from the data; a value that differs from the data is an error "
        "(synthetic: the number of classes generated)",
    )
    g.add_argument(
        "--domains",
        nargs="+",
        default=None,
        help="domains to use, in task order (domain-incremental: one task each). Default: "
        "DomainNet's reference order for domainnet; other data with domains needs it "
        "for --split_strategy domain (the error lists the domains found)",
    )
    g.add_argument(
        "--validate_images",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="before training, check that every listed image exists and its header decodes "
        "(parallel; --no-validate_images skips it for huge sets)",
    )
    add_user_data_flags(g)
    g.add_argument(
        "--synthetic_size",
        type=_int_at_least(1),
        default=1000,
        help="synthetic dataset: training images (test set is a fifth, at least 1/class)",
    )
    g.add_argument("--synthetic_image_size", type=_int_at_least(1), default=32)
    g.add_argument(
        "--data_device",
        choices=DATA_DEVICES,
        default="auto",
        help="tensor datasets (CIFAR, digits, synthetic): auto = on the GPU with batched "
        "GPU augmentation when CUDA is available, else CPU workers; cpu = torchvision "
        "workers; gpu = force the GPU path; cpu_batched = the GPU path's code on CPU",
    )
    g.add_argument(
        "--online_eval_transform",
        choices=ONLINE_EVAL_TRANSFORMS,
        default="last_view",
        help="with --online_eval_batch_size: last_view = the labelled batches get the "
        "last view's SSL augmentation (the reference); clean = eval transform",
    )
    g.add_argument(
        "--dali",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="image folders / DomainNet: decode and augment with NVIDIA DALI when it is "
        "installed (GPU decoding on GPUs); without DALI a notice and torchvision",
    )
    g.add_argument(
        "--dali_device",
        choices=["gpu", "cpu"],
        default="gpu",
        help="with --dali on a GPU run: gpu = nvJPEG decoding and augmentation on the "
        "GPU; cpu = DALI's CPU pipeline, batches copied to the GPU (the original "
        "code's flag, same meaning)",
    )
    return parser


def add_augmentation_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Per-view augmentation flags (1 value = both views, 2 values = view 1, view 2)."""
    g = parser.add_argument_group("augmentation")
    for name, (typ, default, *_rest) in VIEW_SPECS.items():
        g.add_argument(f"--{name}", type=typ, nargs="+", default=default, action=_PerViewAction)
    from .multicrop import add_multicrop_args

    add_multicrop_args(g)  # --num_small_crops ... (DINO's local crops, multicrop.py)
    g.add_argument("--mean", type=float, nargs=3, default=None, help="override normalisation mean")
    g.add_argument("--std", type=float, nargs=3, default=None, help="override normalisation std")
    return parser


def _get(args: Any, name: str, default: Any = None) -> Any:
    if isinstance(args, Mapping):
        return args.get(name, default)
    return getattr(args, name, default)


def view_settings(args: Any, default_crop_size: int | None = None) -> list[dict[str, Any]]:
    """Per-view augmentation settings from a namespace or dict.

    Each flag may be a scalar, a 1-element list (broadcast to both views) or a 2-element list.
    ``crop_size`` None resolves to ``default_crop_size`` (the dataset's natural size).
    Returns ``NUM_VIEWS`` dicts with the keys of ``VIEW_SPECS``. Raises ValueError on bad values.
    """
    views: list[dict[str, Any]] = [{} for _ in range(NUM_VIEWS)]
    for name, (typ, default, *_rest) in VIEW_SPECS.items():
        value = _get(args, name, default)
        if name == "crop_size" and value is None:
            value = default_crop_size
            if value is None:
                raise ValueError("--crop_size is not set and the dataset gives no default")
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if len(values) == 1:
            values = values * NUM_VIEWS
        if len(values) != NUM_VIEWS:
            raise ValueError(
                f"--{name} takes 1 value (both views) or {NUM_VIEWS} values (one per view), got {len(values)}: {values}"
            )
        for i, v in enumerate(values):
            msg = _range_error(name, v)
            if msg:
                raise ValueError(f"view {i + 1}: {msg}")
            views[i][name] = typ(v)
    for i, s in enumerate(views):
        if s["min_scale"] > s["max_scale"]:
            raise ValueError(f"view {i + 1}: --min_scale ({s['min_scale']}) must be <= --max_scale ({s['max_scale']})")
    return views


def task_count(args: Any) -> int | None:
    """The number of tasks: ``--num_tasks``, which for a domain split follows the domains.

    Domain split: ``len(--domains)``, or 6 for DomainNet's reference order; an explicit
    ``--num_tasks`` that differs is an error. None when only the data can tell (a domain split of
    other data without ``--domains``: the loader then fails listing the domains found).
    Other splits: ``--num_tasks`` or 1.
    """
    from .splits import DOMAINNET_DOMAINS

    given = _get(args, "num_tasks")
    if _get(args, "split_strategy", "class") != "domain":
        return 1 if given is None else int(given)
    domains = _get(args, "domains")
    order = domains or (DOMAINNET_DOMAINS if _get(args, "dataset") == "domainnet" else None)
    if order is None:
        return None if given is None else int(given)
    if given is not None and int(given) != len(order):
        source = "--domains" if domains else "DomainNet's reference order"
        raise ValueError(
            f"--num_tasks {given} does not match the {len(order)} domains of {source} "
            f"({', '.join(order)}): a domain split has one task per domain; drop --num_tasks "
            "(it follows the domains)"
        )
    return len(order)


def resolve_task_count(args: Any) -> Any:
    """Set ``args.num_tasks`` to ``task_count(args)`` (a namespace, in place); returns ``args``."""
    args.num_tasks = task_count(args)
    return args


def validate_data_args(args: Any) -> None:
    """Cross-flag checks that argparse cannot do on its own; raises ValueError."""
    dataset = _get(args, "dataset")
    if dataset is None:
        raise ValueError(f"--dataset is required; choose one of {', '.join(DATASETS)}")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    data_device = _get(args, "data_device", "auto")
    if data_device not in DATA_DEVICES:
        raise ValueError(f"unknown --data_device {data_device!r}; choose one of {', '.join(DATA_DEVICES)}")
    online_eval = _get(args, "online_eval_transform", "last_view")
    if online_eval not in ONLINE_EVAL_TRANSFORMS:
        raise ValueError(
            f"unknown --online_eval_transform {online_eval!r}; choose one of {', '.join(ONLINE_EVAL_TRANSFORMS)}"
        )
    strategy = _get(args, "split_strategy", "class")
    if strategy not in SPLIT_STRATEGIES:
        raise ValueError(f"unknown --split_strategy {strategy!r}; choose one of {', '.join(SPLIT_STRATEGIES)}")
    num_tasks, task_idx = task_count(args), _get(args, "task_idx", 0)
    if num_tasks is not None and num_tasks < 1:
        raise ValueError(f"--num_tasks must be >= 1, got {num_tasks}")
    domains = _get(args, "domains")
    if domains and dataset not in DESCRIBED_DATASETS:
        raise ValueError(
            f"--domains is for data with domains (--dataset {' or '.join(DESCRIBED_DATASETS)}), not {dataset}"
        )
    if num_tasks is not None and not 0 <= task_idx < num_tasks:
        raise ValueError(f"--task_idx must be in [0, {num_tasks - 1}] for --num_tasks {num_tasks}, got {task_idx}")
    for name in ("mean", "std"):
        value = _get(args, name)
        if value is not None and len(value) != 3:
            raise ValueError(f"--{name} takes 3 values (R G B), got {list(value)}")
    std = _get(args, "std")
    if std is not None and min(std) <= 0:
        raise ValueError(f"--std values must be > 0, got {list(std)}")
    view_settings(args, default_crop_size=32)  # value checks; crop default irrelevant here


def data_defaults() -> dict[str, Any]:
    """Defaults of every data / augmentation flag (used when building from kwargs)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_data_args(parser)
    add_augmentation_args(parser)
    return vars(parser.parse_args([]))
