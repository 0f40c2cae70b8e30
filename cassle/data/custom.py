"""Datasets by description: a user's image folder or file lists, with or without domains.

A dataset here is a set of images with labels and, optionally, domains. ``describe(root)`` finds
which of these layouts ``root`` (``--data_dir``) holds, in this order:

* file lists ``{domain}_train.txt`` / ``{domain}_test.txt`` (one pair per domain), or
  ``train.txt`` / ``test.txt`` (no domains). A line is ``relative/path label``: the image path
  relative to ``root`` (spaces allowed; the label is the last word) and an integer label >= 0.
  An optional ``classes.txt`` names the classes, one per line, line k = label k; it also fixes
  the number of classes (otherwise: the largest label + 1). DomainNet's official lists are this
  layout (domains ``real``, ``quickdraw``, ...).
* a domain tree ``root/<domain>/<class>/...`` or a class tree ``root/<class>/...`` of image files
  (any depth below the class folder). Classes are the sorted union of the class folder names;
  domains the sorted domain folder names. With no lists, the train/test split is made in memory
  by ``split_samples`` (test fraction 0.2, seed 0): exactly the split that
  ``python -m cassle.data.prepare root`` writes as lists.

DomainNet is this same description with its reference domain order
(``splits.DOMAINNET_DOMAINS``). For any other data a domain-incremental run must name the task
order (``--domains``); the error lists the domains found.

Every listed image is checked before training (``validate_images``: the file exists, its
header decodes and is within the pixel limit; threads, a few seconds for 10k images); an image
that still fails to decode later raises ``ImageDecodeError`` naming the file (and its list line).
The rules on list files, labels, paths and class/domain coverage are ``list_check``'s; reading
an image (pixel limit, 16-bit scaling) is ``image_check``'s.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .data_errors import DataError, ImageDecodeError
from .image_check import DEFAULT_MAX_IMAGE_PIXELS
from .image_list import ImageListDataset, Sample, _check_labels  # noqa: F401  (re-exported)
from .image_validation import first_undecodable, validate_images  # noqa: F401  (re-exported)
from .list_check import (
    check_class_coverage,
    check_domain_coverage,
    check_inside,
    parse_label,
    read_class_names,
    read_text_lines,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "CLASSES_FILE",
    "DEFAULT_TEST_FRACTION",
    "DEFAULT_SPLIT_SEED",
    "DataError",
    "ImageDecodeError",
    "Sample",
    "Description",
    "ImageListDataset",
    "describe",
    "read_list",
    "scan_tree",
    "split_samples",
    "resolve_domains",
    "load_described",
    "validate_images",
    "first_undecodable",
    "list_name",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CLASSES_FILE = "classes.txt"
DEFAULT_TEST_FRACTION = 0.2
DEFAULT_SPLIT_SEED = 0
_LIST = re.compile(r"^(?P<domain>.+)_(?P<split>train|test)\.txt$")
_MAX_REPORTED = 10  # problems listed in one error message
log = logging.getLogger(__name__)
_noticed: set[str] = set()  # one notice per folder and process


@dataclass
class Description:
    """What ``describe`` found in a folder."""

    root: Path
    kind: str  # "lists", "domain_tree" or "class_tree"
    domains: list[str] | None  # found (lists: in name order; trees: sorted); None = no domains
    classes: list[str] | None  # class names when known (trees, classes.txt)
    list_files: dict = field(default_factory=dict)  # (domain or None, split) -> Path

    @property
    def what(self) -> str:
        return {
            "lists": "file lists",
            "domain_tree": "a <domain>/<class>/ image tree",
            "class_tree": "a <class>/ image tree",
        }[self.kind]


def list_name(domain: str | None, split: str) -> str:
    """``{domain}_{split}.txt``, or ``{split}.txt`` without domains."""
    return f"{domain}_{split}.txt" if domain else f"{split}.txt"


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _has_images(folder: Path, recursive: bool) -> bool:
    files = folder.rglob("*") if recursive else folder.iterdir()
    return any(p.is_file() and _is_image(p) for p in files)


# ----------------------------------------------------------------------------- describing a folder
def describe(root: str | os.PathLike, ignore_lists: bool = False) -> Description:
    """The layout of ``root`` (see the module docstring); DataError when it is none of them.

    ``ignore_lists`` describes the folder tree even where lists exist (``prepare --force``).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    lists: dict = {}
    for p in [] if ignore_lists else sorted(root.iterdir()):
        m = _LIST.match(p.name)
        if p.is_file() and m:
            lists[(m["domain"], m["split"])] = p
        elif p.is_file() and p.name in ("train.txt", "test.txt"):
            lists[(None, p.stem)] = p
    if lists:
        return _describe_lists(root, lists)
    subdirs = _subdirs(root)
    if not subdirs:
        raise DataError(
            f"{root} holds neither file lists ({{domain}}_train.txt / {{domain}}_test.txt or "
            "train.txt / test.txt) nor image folders (<class>/... or <domain>/<class>/...)"
        )
    direct = [d for d in subdirs if _has_images(d, recursive=False)]
    if direct:
        if len(direct) != len(subdirs) and any(_subdirs(d) for d in subdirs if d not in direct):
            raise DataError(
                f"{root} mixes class folders with images ({direct[0].name}/) and folders of folders "
                f"({next(d.name for d in subdirs if d not in direct)}/); use <class>/... or "
                "<domain>/<class>/... throughout"
            )
        classes = [d.name for d in subdirs if _has_images(d, recursive=True)]
        return Description(root, "class_tree", None, classes)
    classes: set[str] = set()
    domains = []
    for d in subdirs:
        inner = [c.name for c in _subdirs(d) if _has_images(c, recursive=True)]
        if inner:
            domains.append(d.name)
            classes.update(inner)
    if not domains:
        raise DataError(f"{root} has folders but no image files ({', '.join(IMAGE_EXTENSIONS)}) inside them")
    return Description(root, "domain_tree", domains, sorted(classes))


def _describe_lists(root: Path, lists: dict) -> Description:
    named = sorted({d for d, _ in lists if d is not None})
    if named and any(d is None for d, _ in lists):
        raise DataError(
            f"{root} has both train.txt/test.txt and {{domain}}_train.txt lists ({', '.join(named)}); keep one kind"
        )
    for domain in named or [None]:
        for split in ("train", "test"):
            if (domain, split) not in lists:
                other = "test" if split == "train" else "train"
                raise FileNotFoundError(
                    f"{root / list_name(domain, other)} has no partner {list_name(domain, split)}: "
                    "every list needs its train and test file"
                )
    classes = None
    classes_file = root / CLASSES_FILE
    if classes_file.is_file():
        classes = read_class_names(classes_file)  # line k = label k: no gaps, no repeats
        if not classes:
            raise DataError(f"{classes_file} is empty; one class name per line (line k = label k)")
    return Description(root, "lists", named or None, classes, lists)


def read_list(path: Path, domain: int = 0) -> list[Sample]:
    """Samples of one list file; DataError naming ``path:line`` for a malformed line."""
    samples = []
    for n, line in enumerate(read_text_lines(path), 1):  # UTF-8, else an error naming the line
        if not line.strip():
            continue
        parts = line.strip().rsplit(maxsplit=1)  # paths may contain spaces
        if len(parts) != 2:
            raise DataError(f"{path}:{n}: expected 'relative/path label', got {line!r}")
        label = parse_label(parts[1], f"{path}:{n}", parts[0])  # ASCII digits only
        samples.append(Sample(parts[0], label, domain, f"{path}:{n}"))
    return samples


def scan_tree(desc: Description, domains: Sequence[str] | None = None) -> list[Sample]:
    """Every image of a class or domain tree, sorted by path; label = index in ``desc.classes``."""
    index = {c: i for i, c in enumerate(desc.classes or [])}
    tops = [(None, desc.root)] if desc.kind == "class_tree" else [(d, desc.root / d) for d in (domains or desc.domains)]
    samples = []
    for d, (_, top) in enumerate(tops):
        for class_dir in _subdirs(top):
            if class_dir.name not in index:
                continue
            for path in sorted(p for p in class_dir.rglob("*") if p.is_file() and _is_image(p)):
                rel = path.relative_to(desc.root).as_posix()
                if "\n" in rel:
                    raise DataError(f"image path {rel!r} contains a newline; rename it")
                samples.append(Sample(rel, index[class_dir.name], d))
    return samples


def split_samples(
    samples: Sequence[Sample],
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = DEFAULT_SPLIT_SEED,
    domain_names: Sequence[str] | None = None,
) -> tuple[list[Sample], list[Sample]]:
    """Seeded train/test split, separately for every (domain, class).

    Each group's paths are sorted and shuffled by ``random.Random(f"{seed}/{domain}/{label}")``
    (``domain``: the domain's name from ``domain_names``, "" without domains), so a group's split
    depends only on its own files, names and the seed (adding a domain or a class, or another
    domain order, changes no group). ``round(test_fraction * n)`` images go to test, at least 1 when n >= 2 and at
    most n - 1 (a group of one image stays in train).
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"--test_fraction must be in [0, 1), got {test_fraction}")
    groups: dict[tuple[int, int], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.domain, s.label), []).append(s)
    train, test = [], []
    for (domain, label), group in sorted(groups.items()):
        group = sorted(group, key=lambda s: s.path)
        name = domain_names[domain] if domain_names else ""
        random.Random(f"{seed}/{name}/{label}").shuffle(group)
        n = len(group)
        k = round(test_fraction * n)
        if test_fraction > 0 and n >= 2:
            k = min(max(k, 1), n - 1)
        test += group[:k]
        train += group[k:]
    key = lambda s: (s.domain, s.path)  # noqa: E731
    return sorted(train, key=key), sorted(test, key=key)


# ----------------------------------------------------------------------------- domains and classes
def resolve_domains(
    desc: Description,
    requested: Sequence[str] | None,
    split_strategy: str | None,
    reference_order: Sequence[str] | None = None,
) -> list[str] | None:
    """The domains used, in task order; None when the data has no domains.

    ``requested`` (``--domains``) must be domains of the data; without it a domain-incremental run
    uses ``reference_order`` (DomainNet's) or fails listing the domains found; other splits pool
    every domain found.
    """
    found = desc.domains
    if found is None:
        if requested:
            raise DataError(
                f"--domains {' '.join(requested)}: {desc.root} has no domains ({desc.what}); "
                "domains are <domain>/<class>/ folders or {domain}_train.txt lists"
            )
        if split_strategy == "domain":
            raise DataError(
                f"--split_strategy domain needs data with domains, but {desc.root} is {desc.what}; "
                "arrange it as <domain>/<class>/... or {domain}_train.txt / {domain}_test.txt lists"
            )
        return None
    if requested:
        dupes = sorted({d for d in requested if list(requested).count(d) > 1})
        if dupes:
            raise DataError(f"--domains names {', '.join(dupes)} twice; each domain is one task")
        unknown = [d for d in requested if d not in found]
        if unknown:
            raise DataError(f"unknown domain(s) {', '.join(unknown)} in --domains; {desc.root} has: {', '.join(found)}")
        return list(requested)
    if reference_order is not None:
        missing = [d for d in reference_order if d not in found]
        if missing:
            raise FileNotFoundError(
                f"{desc.root} lacks the lists of domain(s) {', '.join(missing)} "
                f"({', '.join(list_name(d, 'train') for d in missing)}); found domains: {', '.join(found)}. "
                f"Pass --domains to run on some of them"
            )
        return list(reference_order)
    if split_strategy == "domain":
        raise DataError(
            f"--split_strategy domain needs the task order: pass --domains with the domains of "
            f"{desc.root} in the order to learn them; found: {', '.join(found)} "
            f"(e.g. --domains {' '.join(found)})"
        )
    return list(found)


# ----------------------------------------------------------------------------- loading
def load_described(
    root: str | Path,
    train: bool,
    *,
    domains: Sequence[str] | None = None,
    split_strategy: str | None = None,
    reference_order: Sequence[str] | None = None,
    num_classes: int | None = None,
    name: str = "custom",
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = DEFAULT_SPLIT_SEED,
    allow_outside: bool = False,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
) -> ImageListDataset:
    """The train or test set of the data in ``root`` (lists, or a tree split in memory).

    ``num_classes`` (``--num_classes``) is checked against the data: every label must be below it
    (else the error names the list line and image) and it must equal the data's class count.
    The rules of ``list_check`` apply (images inside ``root`` unless ``allow_outside``, every
    class and domain covered); ``max_image_pixels`` goes to the dataset.
    """
    desc = describe(root)
    order = resolve_domains(desc, domains, split_strategy, reference_order)
    split = "train" if train else "test"
    if desc.kind == "lists":
        every = {}
        for s in ("train", "test"):
            every[s] = [x for d, dom in enumerate(order or [None]) for x in read_list(desc.list_files[(dom, s)], d)]
        samples = every[split]
        everything = every["train"] + every["test"]
        pair = (every["train"], every["test"])
    else:
        everything = scan_tree(desc, order)
        pair = split_samples(everything, test_fraction, seed, order)
        if str(desc.root) not in _noticed:
            _noticed.add(str(desc.root))
            log.warning(
                f"{desc.root} has no file lists: train/test split made in memory (test fraction "
                f"{test_fraction} per domain and class, seed {seed}), the split that "
                f"`python -m cassle.data.prepare {desc.root}` writes"
            )
        samples = pair[0] if train else pair[1]
    if desc.classes is not None:
        count, why = len(desc.classes), (f"{desc.root / CLASSES_FILE}" if desc.kind == "lists" else "the class folders")
    else:
        count, why = (max(s.label for s in everything) + 1 if everything else 0), "the largest label + 1"
    if num_classes is not None:
        if desc.kind == "lists":  # a label beyond the flag: name its list line
            _check_labels(everything, num_classes, f"--num_classes {num_classes}")
        if num_classes != count:
            raise DataError(
                f"--num_classes {num_classes} does not match the data: {desc.root} has {count} classes "
                f"({why}); drop --num_classes (it comes from the data)"
                + ("" if desc.classes is not None else f" or list the class names in {CLASSES_FILE}")
            )
    _check_labels(everything, count, why)
    check_inside(desc.root, everything, allow_outside)
    check_class_coverage(pair[0], count, desc.classes, why, desc.root)
    check_domain_coverage(pair[0], pair[1], order, f"{name} data {desc.root}")
    if not samples:
        raise DataError(
            f"{name}: no {split} images in {desc.root}" + (f" for domains {', '.join(order)}" if order else "")
        )
    return ImageListDataset(desc.root, samples, count, order, desc.classes, max_image_pixels)
