"""A dataset of listed images: ``Sample`` rows (path, label, domain, list line) read as PIL RGB on access.

``custom.py`` builds these from a user's folder or file lists; the rules on list lines, labels and
paths are ``list_check``'s, reading one image (pixel limit, 16-bit scaling) is ``image_check``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .data_errors import DataError, ImageDecodeError
from .image_check import DEFAULT_MAX_IMAGE_PIXELS, open_rgb

_MAX_REPORTED = 10  # problems listed in one error message


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the dataset root
    label: int
    domain: int  # index into the description's domain names (0 without domains)
    source: str = ""  # "list file:line" for listed images, "" for scanned folders


def _check_labels(samples: Sequence[Sample], num_classes: int, why: str) -> None:
    bad = [s for s in samples if s.label >= num_classes]
    if bad:
        lines = "; ".join(
            f"{s.source + ': ' if s.source else ''}image {s.path} has label {s.label}" for s in bad[:_MAX_REPORTED]
        )
        more = f" (and {len(bad) - _MAX_REPORTED} more)" if len(bad) > _MAX_REPORTED else ""
        raise DataError(
            f"label out of range: {why} gives {num_classes} classes (labels 0..{num_classes - 1}), but {lines}{more}"
        )


class ImageListDataset(Dataset):
    """Images listed as ``(relative path, label, domain index)``, read as PIL RGB on access.

    ``domains`` is a long tensor (the domain index of each sample) when the data has domains,
    else None; ``domain_names`` the names in task order. ``sources[i]`` is ``"list:line"`` or "".
    """

    def __init__(
        self,
        root: str | Path,
        samples: Sequence,
        num_classes: int | None = None,
        domains: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    ):
        self.root = Path(root)
        self.max_image_pixels = max_image_pixels  # image_check: larger images are refused
        rows = [
            s if isinstance(s, Sample) else Sample(str(s[0]), int(s[1]), int(s[2]) if len(s) > 2 else 0)
            for s in samples
        ]
        self.samples = [(s.path, s.label, s.domain) for s in rows]
        self.sources = [s.source for s in rows]
        self.targets = torch.tensor([s.label for s in rows], dtype=torch.long)
        self.domain_names = list(domains) if domains else []
        self.domains = torch.tensor([s.domain for s in rows], dtype=torch.long) if domains else None
        if num_classes is None:
            num_classes = len(classes) if classes else (int(self.targets.max()) + 1 if len(rows) else 0)
        self.num_classes = int(num_classes)
        self.classes = list(classes) if classes else [str(i) for i in range(self.num_classes)]
        _check_labels(rows, self.num_classes, "the dataset")

    def __len__(self) -> int:
        return len(self.samples)

    def where(self, i: int) -> str:
        """The image's path and, for listed images, its list line."""
        path = self.root / self.samples[i][0]
        return f"{path} (listed at {self.sources[i]})" if self.sources[i] else str(path)

    def __getitem__(self, i: int):
        path, label, _ = self.samples[i]
        try:  # the pixel limit, and 16-bit images scaled to 8 bits (image_check)
            return open_rgb(self.root / path, self.max_image_pixels), label
        except Exception as err:  # truncated, corrupt or vanished file: name it, not a PIL traceback
            raise ImageDecodeError(f"cannot decode image {self.where(i)}: {type(err).__name__}: {err}") from None
