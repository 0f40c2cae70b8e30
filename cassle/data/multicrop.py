"""Multi-crop (DINO's local crops): extra small views after the two global ones.

``--num_small_crops N`` adds N views to every training sample, each a RandomResizedCrop of
``--small_crop_size`` px with area fraction in [``--small_crop_min_scale``, ``--small_crop_max_scale``]
and the first view's colour jitter, grayscale and flip, Gaussian blur with probability
``--small_crop_gaussian_prob`` and no solarisation: DINO's ``local_transfo`` (Caron et al. 2021;
facebookresearch/dino main_dino.py ``DataAugmentationDINO``: 96 px, scale (0.05, 0.4), blur p 0.5,
8 crops by default). The batch then carries ``2 + N`` views, the global ones first, on every data
path (CPU workers, the batched GPU path, DALI: they all build one pipeline per settings dict).

Which views a method sees: DINO's student all, its teacher the global ones (as main_dino.py);
the online classifier, the kNN monitor and CaSSLe's distiller the global ones. Only methods that
declare ``supports_small_crops`` accept the flag (DINO), and no continual strategy does (their
buffers hold two views).
"""

from __future__ import annotations

from typing import Any

# name -> (type, default, help); DINO's local crops (main_dino.py defaults) except the count
SMALL_CROP_SPECS: dict[str, tuple[type, Any, str]] = {
    "num_small_crops": (int, 0, "extra small crops per image (DINO's local crops; DINO uses 8; 0 = off)"),
    "small_crop_size": (int, 96, "side of the small crops in px (DINO: 96 for 224 px global crops)"),
    "small_crop_min_scale": (float, 0.05, "smallest area fraction of a small crop (DINO: 0.05)"),
    "small_crop_max_scale": (float, 0.4, "largest area fraction of a small crop (DINO: 0.4)"),
    "small_crop_gaussian_prob": (float, 0.5, "Gaussian blur probability of a small crop (DINO: 0.5)"),
}


def add_multicrop_args(group) -> None:
    for name, (typ, default, text) in SMALL_CROP_SPECS.items():
        group.add_argument(f"--{name}", type=typ, default=default, help=text)


def _get(args: Any, name: str) -> Any:
    value = args.get(name) if isinstance(args, dict) else getattr(args, name, None)
    return SMALL_CROP_SPECS[name][1] if value is None else value


def num_small_crops(args: Any) -> int:
    return int(_get(args, "num_small_crops"))


def small_crop_settings(args: Any, first_view: dict[str, Any]) -> list[dict[str, Any]]:
    """The settings dicts of the small crops (``num_small_crops`` of them; see the module doc)."""
    n = num_small_crops(args)
    if n < 0:
        raise ValueError(f"--num_small_crops must be >= 0, got {n}")
    if n == 0:
        return []
    size = int(_get(args, "small_crop_size"))
    low, high = float(_get(args, "small_crop_min_scale")), float(_get(args, "small_crop_max_scale"))
    blur = float(_get(args, "small_crop_gaussian_prob"))
    if size < 1:
        raise ValueError(f"--small_crop_size must be >= 1, got {size}")
    if not 0.0 < low <= high <= 1.0:
        raise ValueError(
            f"--small_crop_min_scale / --small_crop_max_scale must satisfy 0 < min <= max <= 1, got {low}, {high}"
        )
    if not 0.0 <= blur <= 1.0:
        raise ValueError(f"--small_crop_gaussian_prob must be in [0, 1], got {blur}")
    small = {
        **first_view,
        "crop_size": size,
        "min_scale": low,
        "max_scale": high,
        "gaussian_prob": blur,
        "solarization_prob": 0.0,
    }
    return [dict(small) for _ in range(n)]
