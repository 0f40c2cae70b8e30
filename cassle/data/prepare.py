"""Write the file lists of an image folder tree: a seeded train/test split per (domain, class).

    python -m cassle.data.prepare DATA_DIR [--test_fraction 0.2] [--seed 0] [--force]

``DATA_DIR`` holds ``<domain>/<class>/...`` or ``<class>/...`` image folders. Written into
``DATA_DIR`` (each file atomically, after every image header was checked):

* ``{domain}_train.txt`` / ``{domain}_test.txt`` (``train.txt`` / ``test.txt`` without domains),
  one image per line: ``relative/path label`` (path relative to DATA_DIR, label = line of
  ``classes.txt``, counted from 0);
* ``classes.txt``: the class names, sorted, one per line.

The split is ``custom.split_samples``: within every (domain, class), ``round(test_fraction * n)``
images go to test (at least one when the group has two or more), chosen by a shuffle seeded with
``seed``, the domain and the class, so it is reproducible and one group's split never depends on
another. Training on the same folder without lists makes exactly this split in memory (fraction
0.2, seed 0); the lists fix it in files that can be read, edited and shared. Prints the counts
per domain and class. Existing lists are only replaced with ``--force``.

Before anything is written: a file or folder name that is not valid UTF-8 is an error naming it
(the lists are UTF-8 text); an image that leads outside DATA_DIR through a symbolic link is
refused (``--allow_paths_outside_data_dir`` accepts it, and training then needs the flag too);
class folders without any image file are left out and reported.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .args import _int_at_least
from .custom import (
    CLASSES_FILE,
    DEFAULT_SPLIT_SEED,
    DEFAULT_TEST_FRACTION,
    DataError,
    ImageListDataset,
    describe,
    list_name,
    scan_tree,
    split_samples,
    validate_images,
)
from .image_check import DEFAULT_MAX_IMAGE_PIXELS
from .list_check import OUTSIDE_FLAG, check_inside


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cassle.data.prepare",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("data_dir", help="folder of <domain>/<class>/... or <class>/... images")
    p.add_argument(
        "--test_fraction",
        type=float,
        default=DEFAULT_TEST_FRACTION,
        help="fraction of every (domain, class) that goes to the test list (default 0.2)",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SPLIT_SEED, help="split seed (default 0)")
    p.add_argument("--force", action="store_true", help="replace existing lists")
    p.add_argument(
        "--validate_images",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check that every image header decodes before writing anything",
    )
    p.add_argument(
        OUTSIDE_FLAG, action="store_true", help="accept images that lead outside DATA_DIR through symbolic links"
    )
    p.add_argument(
        "--max_image_pixels",
        type=_int_at_least(0),
        default=DEFAULT_MAX_IMAGE_PIXELS,
        help="larger images are refused naming the file (default PIL's 89,478,485; 0 = none)",
    )
    return p


def count_table(domains: list[str] | None, classes: list[str], train, test) -> str:
    """``train/test`` image counts per class (rows) and domain (columns), with totals."""
    cols = domains or ["images"]
    counts = {(d, c, part): 0 for d in range(len(cols)) for c in range(len(classes)) for part in (0, 1)}
    for part, samples in enumerate((train, test)):
        for s in samples:
            counts[(s.domain, s.label, part)] += 1

    def cell(d, c):
        return f"{counts[(d, c, 0)]}/{counts[(d, c, 1)]}"

    def total(d):
        train = sum(counts[(d, c, 0)] for c in range(len(classes)))
        return f"{train}/{sum(counts[(d, c, 1)] for c in range(len(classes)))}"

    rows = [["class (train/test)", *cols]]
    rows += [[name, *(cell(d, c) for d in range(len(cols)))] for c, name in enumerate(classes)]
    rows.append(["total", *(total(d) for d in range(len(cols)))])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in rows
    )


def _shown(name: str) -> str:
    """A file name as bytes that are not UTF-8 can be shown: ``\\xff`` for a bad byte."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def check_names(root: Path, names) -> None:
    """Every name encodes as UTF-8 (a list line is UTF-8 text); an error naming the first that does not."""
    bad = []
    for name in names:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            bad.append(_shown(str(root / name)))
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise DataError(
            f"file name {bad[0]} is not valid UTF-8{': also ' + ', '.join(bad[1:5]) if bad[1:] else ''}"
            f"{more}; rename it (e.g. convmv -f latin1 -t utf8), nothing was written"
        )


def empty_class_folders(desc) -> list[str]:
    """Class folders (``<class>/`` or ``<domain>/<class>/``) holding no image file, relative to the root."""
    from .custom import _has_images, _subdirs

    tops = [desc.root] if desc.kind == "class_tree" else _subdirs(desc.root)
    return [
        c.relative_to(desc.root).as_posix() + "/"
        for top in tops
        for c in _subdirs(top)
        if not _has_images(c, recursive=True)
    ]


def prepare(
    data_dir: str,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = DEFAULT_SPLIT_SEED,
    force: bool = False,
    validate: bool = True,
    allow_outside: bool = False,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
) -> dict:
    """Scan, split, check and write; returns ``{"files": [...], "table": str, "empty": [...], ...}``."""
    from cassle.utils.checkpoint import atomic_write_text

    root = Path(data_dir)
    existing = describe(root)
    if existing.kind == "lists" and not force:
        names = ", ".join(sorted(p.name for p in existing.list_files.values()))
        raise DataError(f"{root} already has file lists ({names}); pass --force to rewrite them from the folder tree")
    desc = describe(root, ignore_lists=True)
    samples = scan_tree(desc)
    check_names(root, [*(desc.domains or []), *desc.classes, *(s.path for s in samples)])
    check_inside(root, samples, allow_outside)
    train, test = split_samples(samples, test_fraction, seed, desc.domains)
    if validate:
        validate_images(
            ImageListDataset(root, samples, len(desc.classes)), "", workers=16, max_image_pixels=max_image_pixels
        )
    texts: dict[str, str] = {CLASSES_FILE: "".join(f"{c}\n" for c in desc.classes)}
    for d, domain in enumerate(desc.domains or [None]):
        for split, part in (("train", train), ("test", test)):
            texts[list_name(domain, split)] = "".join(f"{s.path} {s.label}\n" for s in part if s.domain == d)
    for name, text in texts.items():
        atomic_write_text(root / name, text)
    return {
        "files": [str(root / n) for n in texts],
        "domains": desc.domains,
        "classes": desc.classes,
        "empty": empty_class_folders(desc),
        "train": len(train),
        "test": len(test),
        "table": count_table(desc.domains, desc.classes, train, test),
    }


def main(argv=None) -> int:
    opts = build_parser().parse_args(argv)
    try:
        res = prepare(
            opts.data_dir,
            opts.test_fraction,
            opts.seed,
            opts.force,
            opts.validate_images,
            opts.allow_paths_outside_data_dir,
            opts.max_image_pixels,
        )
    except (DataError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    domains = res["domains"]
    what = f"{len(domains)} domains ({', '.join(domains)}) x " if domains else ""
    print(
        f"{opts.data_dir}: {what}{len(res['classes'])} classes; {res['train']} train / {res['test']} test images "
        f"(test fraction {opts.test_fraction} per domain and class, seed {opts.seed})"
    )
    print(res["table"])
    if res["empty"]:
        print(
            f"note: {len(res['empty'])} class folder(s) hold no image file, so nothing of them is listed "
            "(a class without images anywhere is not in classes.txt): " + ", ".join(_shown(e) for e in res["empty"])
        )
    print("wrote " + ", ".join(Path(f).name for f in res["files"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
