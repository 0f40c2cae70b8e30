"""Reading a user's image safely: a pixel limit, and 16-bit images scaled to 8 bits, never clipped.

* ``--max_image_pixels`` (default PIL's own limit, 89,478,485 pixels): an image whose header
  declares more pixels (width x height) is refused naming the file, the limit and the flag, before
  a byte of it is decoded (a decompression bomb is a few KB on disk). 0 turns the limit off.
  PIL's own check (a warning above its limit, an error above twice it) follows the same number.
* 16-bit images (PNG or TIFF greyscale, PIL modes ``I;16*``, and PNG's ``I``) are scaled to 8 bits,
  ``round(v / 257)`` (0 -> 0, 65535 -> 255), then made RGB. PIL's own ``convert("RGB")`` clips
  them (every value above 255 becomes 255). 16-bit RGB PNGs are already scaled by PIL's decoder.
  Images whose value range is not known (32-bit integer ``I`` other than PNG, float ``F``) are
  refused naming the file.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "PIXEL_FLAG",
    "RGBLoader",
    "apply_pixel_limit",
    "header_problem",
    "open_rgb",
    "size_problem",
    "to_rgb",
]

DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS's default (1024 * 1024 * 1024 // 4 // 3)
PIXEL_FLAG = "--max_image_pixels"
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def apply_pixel_limit(limit: int | None) -> None:
    """Make PIL's own bomb check use ``limit`` (None or 0: no limit), so that raising
    ``--max_image_pixels`` lets PIL open what our check allows."""
    from PIL import Image

    value = int(limit) if limit else None
    if Image.MAX_IMAGE_PIXELS != value:
        Image.MAX_IMAGE_PIXELS = value


def size_problem(size: tuple[int, int], limit: int | None) -> str | None:
    """Why an image of ``size`` (width, height) is refused, or None."""
    pixels = int(size[0]) * int(size[1])
    if limit and pixels > limit:
        return (
            f"{size[0]} x {size[1]} = {pixels:,} pixels is above the limit of {int(limit):,} pixels "
            f"(a decompression bomb, or a genuine large image: raise the limit with {PIXEL_FLAG} N, "
            f"0 for none)"
        )
    return None


def _bomb_message(err: Exception, limit: int | None) -> str:
    return (
        f"{err}; the limit is {int(limit or 0):,} pixels (a decompression bomb, or a genuine large image: "
        f"raise the limit with {PIXEL_FLAG} N, 0 for none)"
    )


def _mode_problem(img) -> str | None:
    if img.mode in _SIXTEEN_BIT or img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PNG"):
        return None
    if img.mode in ("I", "F"):
        return (
            f"{'32-bit integer' if img.mode == 'I' else 'floating-point'} pixels (PIL mode {img.mode}) "
            "have no known 8-bit scale; convert the image to 8 or 16 bits per channel"
        )
    return None


def to_rgb(img):
    """``img`` as 8-bit RGB; 16-bit greyscale scaled (``round(v / 257)``), never clipped."""
    from PIL import Image

    problem = _mode_problem(img)
    if problem:
        raise ValueError(problem)
    if img.mode.startswith("I;16") or img.mode == "I":
        import numpy as np

        values = np.asarray(img, dtype=np.uint32)  # I;16 (any byte order) and I read as integers
        eight = ((np.clip(values, 0, 65535) + 128) // 257).astype(np.uint8)
        return Image.fromarray(eight, mode="L").convert("RGB")
    return img.convert("RGB")


def open_rgb(path: str | Path, limit: int | None = DEFAULT_MAX_IMAGE_PIXELS):
    """Decode ``path`` as 8-bit RGB after the pixel limit is checked; ValueError (the reason) else."""
    from PIL import Image

    apply_pixel_limit(limit)
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as err:
        raise ValueError(_bomb_message(err, limit)) from None
    with img:
        problem = size_problem(img.size, limit)
        if problem:
            raise ValueError(problem)
        return to_rgb(img)


def header_problem(path: str | Path, limit: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> str | None:
    """Why ``path`` cannot be trained on, read from its header only; None when it can."""
    from PIL import Image

    apply_pixel_limit(limit)
    try:
        with Image.open(path) as img:
            return size_problem(img.size, limit) or _mode_problem(img)
    except FileNotFoundError:
        return "file not found"
    except Image.DecompressionBombError as err:
        return _bomb_message(err, limit)
    except Exception as err:  # noqa: BLE001 (any decoder failure is a reason, reported with the file)
        return f"{type(err).__name__}: {err}"


class RGBLoader:
    """``open_rgb`` as a torchvision ``ImageFolder`` loader (picklable for worker processes);
    the error names the file."""

    def __init__(self, limit: int | None = DEFAULT_MAX_IMAGE_PIXELS):
        self.limit = limit

    def __call__(self, path: str):
        try:
            return open_rgb(path, self.limit)
        except ValueError as err:
            raise ValueError(f"cannot use image {path}: {err}") from None
