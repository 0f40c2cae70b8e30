"""The rules a user's file lists and image paths must follow, each broken one named by file and line.

* A list file (and ``classes.txt``) is UTF-8 text (a leading byte-order mark is allowed); other
  bytes are an error naming the file and the line that holds them. ``classes.txt`` has one name
  per line (line k = label k): an empty line between names, or a name twice, names its line.
* A label is a plain ASCII decimal integer (``[0-9]+``): ``--1``, ``+3``, ``3.0`` or ``٣`` (an
  Arabic-Indic three) are errors naming the list file and line; a negative label too.
* Every image lies inside the data folder: a path that is absolute, climbs out with ``..``, or
  reaches outside through a symbolic link is refused naming its list line (or the file of a
  folder tree), unless ``--allow_paths_outside_data_dir`` says the user means it.
* Every class below the class count has a training image. Without ``classes.txt`` the count is
  the largest label + 1, so a label of 1001 in a 4-class list would make 998 empty classes: an
  error listing them. Classes that ``classes.txt`` (or a class folder) names are allowed to have
  none, with one line saying so.
* Every domain used has training and test images (a domain without test images would train every
  task and fail only at evaluation).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "OUTSIDE_FLAG",
    "check_class_coverage",
    "check_domain_coverage",
    "check_inside",
    "outside_problems",
    "parse_label",
    "ranges",
    "read_class_names",
    "read_text_lines",
]

OUTSIDE_FLAG = "--allow_paths_outside_data_dir"
_LABEL = re.compile(r"-?[0-9]+", re.ASCII)
_MAX_REPORTED = 10
log = logging.getLogger(__name__)
_noticed: set[str] = set()  # one notice per message and process


def _error(message: str) -> Exception:
    # DataError lives with the datasets; imported here, as custom.py imports this module
    from .custom import DataError

    return DataError(message)


def read_text_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file; an error naming the file and line of the first bad byte."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        start = err.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data[:start].count(b"\n") + 1
        bad = data[start : start + 4]
        raise _error(
            f"{path}:{line}: not UTF-8 text (byte {bad[:1]!r} at offset {start}); save the list as UTF-8"
        ) from None
    return text.splitlines()


def read_class_names(path: Path) -> list[str]:
    """The class names of ``classes.txt`` (line k = label k); an empty line between names or a name
    given twice is an error naming the line (either would shift or merge labels silently)."""
    lines = [ln.strip() for ln in read_text_lines(path)]
    while lines and not lines[-1]:
        lines.pop()
    first: dict[str, int] = {}
    for n, name in enumerate(lines, 1):
        if not name:
            raise _error(
                f"{path}:{n}: empty line between class names; line k names label k, so every line "
                "up to the last name must hold one"
            )
        if name in first:
            raise _error(f"{path}:{n}: class name {name!r} is already on line {first[name]}; each class once")
        first[name] = n
    return lines


def parse_label(token: str, where: str, path_part: str) -> int:
    """``token`` as a label >= 0; an error naming ``where`` (``file:line``) otherwise."""
    if not _LABEL.fullmatch(token):
        raise _error(
            f"{where}: expected 'relative/path label' with a plain decimal integer label "
            f"(ASCII digits 0-9 only), got label {token!r} of image {path_part}"
        )
    label = int(token)
    if label < 0:
        raise _error(f"{where}: label {label} of image {path_part} is negative; labels are 0..C-1")
    return label


class _Inside:
    """Whether paths under ``root`` stay in ``root`` once symbolic links are followed (cached per folder)."""

    def __init__(self, root: Path):
        self.root = os.path.realpath(root)
        self.dirs: dict[str, tuple[str, set[str]]] = {}  # folder -> (its real path, names of its links)

    def _folder(self, head: str) -> tuple[str, set[str]]:
        if head not in self.dirs:
            real = os.path.realpath(os.path.join(self.root, head))
            try:  # one directory listing finds the links of a folder (no stat per image)
                with os.scandir(real) as entries:
                    links = {e.name for e in entries if e.is_symlink()}
            except OSError:
                links = set()
            self.dirs[head] = (real, links)
        return self.dirs[head]

    def problem(self, rel: str) -> str | None:
        if os.path.isabs(rel):
            return "is an absolute path"
        norm = os.path.normpath(rel)
        if norm == ".." or norm.startswith(".." + os.sep):
            return "climbs out of the data folder (..)"
        head, name = os.path.split(norm)
        real_dir, links = self._folder(head)
        if name not in links and self._within(real_dir):
            return None
        target = os.path.realpath(os.path.join(real_dir, name))
        if not self._within(target):
            return f"leads outside the data folder through a symbolic link (to {target})"
        return None

    def _within(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)


def outside_problems(root: Path, samples: Iterable) -> list[str]:
    """``"where: path problem"`` for every sample whose image is not inside ``root``."""
    inside = _Inside(root)
    found = []
    for s in samples:
        why = inside.problem(s.path)
        if why:
            found.append(f"{s.source or root / s.path}: image path {s.path} {why}")
    return found


def check_inside(root: Path, samples: Sequence, allow: bool) -> None:
    """Refuse images outside ``root`` (see the module docstring), unless ``allow``."""
    if allow:
        return
    found = outside_problems(root, samples)
    if found:
        more = f" (and {len(found) - _MAX_REPORTED} more)" if len(found) > _MAX_REPORTED else ""
        raise _error(
            f"{len(found)} image path(s) leave the data folder {root}: "
            + "; ".join(found[:_MAX_REPORTED])
            + more
            + f". Keep the images inside it, or pass {OUTSIDE_FLAG} if you mean it"
        )


def ranges(values: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``."""
    out, values = [], sorted(values)
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        out.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ", ".join(out)


def check_class_coverage(train: Sequence, count: int, named: Sequence[str] | None, why: str, where: Path) -> None:
    """Every class 0..count-1 has a training image, or is named (``named``: classes.txt / folders)."""
    seen = {s.label for s in train}
    empty = [c for c in range(count) if c not in seen]
    if not empty:
        return
    if named is None:
        top = max(seen) if seen else 0
        example = next((s for s in train if s.label == top), None)
        at = f" (label {top} at {example.source or example.path})" if example is not None else ""
        raise _error(
            f"{where}: {len(empty)} of {count} classes have no training image: {ranges(empty)}. "
            f"The class count comes from {why}{at}; renumber the labels 0..C-1, or name every "
            f"class in classes.txt (line k = label k) if the empty ones are meant"
        )
    message = (
        f"{where}: {len(empty)} of {count} classes named in {why} have no training image: "
        + ", ".join(f"{c} ({named[c]})" for c in empty[:_MAX_REPORTED])
        + (f" and {len(empty) - _MAX_REPORTED} more" if len(empty) > _MAX_REPORTED else "")
    )
    if message not in _noticed:
        _noticed.add(message)
        log.warning(message)


def check_domain_coverage(train: Sequence, test: Sequence, order: Sequence[str] | None, where: str) -> None:
    """Every domain used has training and test images (found before any task trains)."""
    if not order:
        return
    for split, samples in (("training", train), ("test", test)):
        have = {s.domain for s in samples}
        missing = [name for d, name in enumerate(order) if d not in have]
        if missing:
            raise _error(
                f"{where}: domain(s) {', '.join(missing)} have no {split} images; every domain is "
                f"trained on and evaluated, so each needs both (drop it from --domains, or add "
                f"{split} images)"
            )
