"""Every image of a file-backed dataset checked before training, and the first undecodable one found.

``validate_images`` reads every header in threads (exists, decodes, within the pixel limit, a known
8-bit scale: ``image_check.header_problem``) and raises one ``DataError`` listing the first problems,
each with its path and list line; ``first_undecodable`` names the image behind a decoder error that
named none (DALI).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .data_errors import DataError
from .image_check import DEFAULT_MAX_IMAGE_PIXELS, header_problem

_MAX_REPORTED = 10  # problems listed in one error message


def _full_decode_fails(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
    except Exception:
        return True
    return False


def first_undecodable(root: str | Path, files: Sequence[str], workers: int = 16) -> Path | None:
    """The first of ``files`` (relative to ``root``) that PIL cannot fully decode, or None.

    For error messages only (a decoder that failed without naming its file): decodes in
    parallel, in chunks, and stops at the chunk holding the first failure.
    """
    paths = [Path(root) / f for f in files]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(paths), 1024):
            chunk = paths[start : start + 1024]
            for path, bad in zip(chunk, pool.map(_full_decode_fails, chunk)):
                if bad:
                    return path
    return None


def validate_images(dataset, what: str = "", workers: int = 16, max_image_pixels: int | None = None) -> int:
    """Every image of a file-backed ``dataset`` exists, its header decodes, it is within the pixel
    limit (``max_image_pixels``, default the dataset's own or PIL's) and its pixels have a known
    8-bit scale (``image_check.header_problem``); returns the count.

    Threads read the headers in parallel (I/O bound). DataError lists the first problems, each with
    its image path and, for listed images, the list file and line.
    """
    samples = getattr(dataset, "samples", None)
    root = Path(getattr(dataset, "root", "."))
    if samples is None:
        return 0
    paths = [Path(s[0]) if Path(s[0]).is_absolute() else root / s[0] for s in samples]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        limit = (
            max_image_pixels
            if max_image_pixels is not None
            else getattr(dataset, "max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS)
        )
        problems = list(pool.map(lambda p: header_problem(p, limit), paths, chunksize=64))
    bad = [(i, p) for i, p in enumerate(problems) if p]
    if bad:
        sources = getattr(dataset, "sources", None)

        def where(i):
            return f"{sources[i]}: {paths[i]}" if sources and sources[i] else str(paths[i])

        listed = "; ".join(f"{where(i)}: {p}" for i, p in bad[:_MAX_REPORTED])
        more = f" (and {len(bad) - _MAX_REPORTED} more)" if len(bad) > _MAX_REPORTED else ""
        raise DataError(
            f"{len(bad)} of {len(paths)} {what + ' ' if what else ''}images cannot be read: "
            f"{listed}{more}. Fix or remove them (python -m cassle.data.prepare rewrites lists "
            "from a folder tree)"
        )
    return len(paths)
