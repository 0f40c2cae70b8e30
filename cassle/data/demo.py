"""The demo image sets, written as image files: scikit-learn's digits in fixed styles, or procedural shapes.

    python -m cassle.data.demo DATA_DIR [--styles plain inverted colour noisy] [--per_class N]
    python -m cassle.data.demo DATA_DIR --set shapes [--styles textured] [--per_class 300] [--seed 0]

``--set shapes`` (``cassle.data.shapes``) writes ``DATA_DIR/<style>/<shape>/<n>.png`` and its lists
the same way: ten shapes with random colour, position, size, background texture and noise, one
domain per style (default: ``textured`` only, the class-incremental demo; ``--styles textured plain
outline noisy`` for the domain-incremental one). 300 per class and style, 32x32: 3000 PNGs per
style in a few seconds; the same seed always writes the same pixels.

writes ``DATA_DIR/<style>/<digit>/<n>.png`` (a domain tree, one domain per style) and its lists
(``cassle.data.prepare``: test fraction 0.2 per style and digit, seed 0). The digits come with
scikit-learn, so nothing is downloaded; all 1797 digits in 4 styles are 7188 PNGs of 32x32
(about 4 MB), written in a few seconds. Each style is a fixed, deterministic function of the grey
digit (the noise is seeded by the image), so the same command always writes the same files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .prepare import prepare


def _plain(grey: np.ndarray, n: int) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def _inverted(grey: np.ndarray, n: int) -> np.ndarray:
    return 255 - _plain(grey, n)


def _colour(grey: np.ndarray, n: int) -> np.ndarray:
    ink, paper = np.array([255.0, 170.0, 30.0]), np.array([20.0, 40.0, 120.0])  # orange on dark blue
    a = grey[..., None] / 255.0
    return (a * ink + (1 - a) * paper).round().astype(np.uint8)


def _noisy(grey: np.ndarray, n: int) -> np.ndarray:
    rng = np.random.default_rng(n)  # fixed per image
    x = 40.0 + 0.6 * grey + rng.normal(0.0, 30.0, grey.shape)
    return _plain(x.clip(0, 255).round().astype(np.uint8), n)


STYLES: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "plain": _plain,
    "inverted": _inverted,
    "colour": _colour,
    "noisy": _noisy,
}


def write_digit_domains(
    root: str | Path,
    styles: Sequence[str] = tuple(STYLES),
    per_class: int | None = None,
    image_size: int = 32,
    prepare_lists: bool = True,
) -> int:
    """Write the digits in ``styles`` under ``root`` (and the lists); returns the images written.

    ``per_class`` keeps the first n digits of every class (tests use a handful).
    """
    from PIL import Image

    from .datasets import digit_images

    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        raise ValueError(f"unknown style(s) {', '.join(unknown)}; valid: {', '.join(STYLES)}")
    grey, labels = digit_images(image_size)
    keep = np.arange(len(labels))
    if per_class is not None:
        keep = np.concatenate([np.flatnonzero(labels.numpy() == c)[:per_class] for c in range(10)])
    root = Path(root)
    for style in styles:
        for n in keep:
            path = root / style / str(int(labels[n])) / f"{n:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(STYLES[style](grey[n].numpy(), int(n))).save(path)
    if prepare_lists:
        prepare(str(root), force=True, validate=False)
    return len(keep) * len(styles)


def write_shape_domains(
    root: str | Path,
    styles: Sequence[str] = ("textured",),
    per_class: int = 300,
    image_size: int = 32,
    seed: int = 0,
    prepare_lists: bool = True,
) -> int:
    """Write the procedural shapes in ``styles`` under ``root`` (and the lists); returns the images written."""
    from PIL import Image

    from .shapes import SHAPES, shape_images
    from .shapes import STYLES as SHAPE_STYLES

    unknown = [s for s in styles if s not in SHAPE_STYLES]
    if unknown:
        raise ValueError(f"unknown shape style(s) {', '.join(unknown)}; valid: {', '.join(SHAPE_STYLES)}")
    if per_class < 2:
        raise ValueError(f"--per_class {per_class}: the train/test split needs at least 2 images per class")
    root = Path(root)
    for style in styles:
        images, labels = shape_images(per_class, style, seed, image_size)
        for n, (image, label) in enumerate(zip(images, labels)):
            path = root / style / SHAPES[label] / f"{n % per_class:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
    if prepare_lists:
        prepare(str(root), force=True, validate=False)
    return len(labels) * len(styles)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m cassle.data.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("data_dir")
    p.add_argument(
        "--set",
        dest="image_set",
        choices=("digits", "shapes"),
        default="digits",
        help="digits (scikit-learn's, in fixed styles) or shapes (procedural; cassle.data.shapes)",
    )
    p.add_argument(
        "--styles",
        nargs="+",
        default=None,
        help=f"digits: any of {', '.join(STYLES)} (default: all); "
        "shapes: any of textured plain outline noisy (default: textured)",
    )
    p.add_argument("--per_class", type=int, default=None, help="images per class (digits: all; shapes: 300)")
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="shapes: the generator's seed")
    opts = p.parse_args(argv)
    try:
        if opts.image_set == "shapes":
            opts.styles = opts.styles or ["textured"]
            n = write_shape_domains(opts.data_dir, opts.styles, opts.per_class or 300, opts.image_size, opts.seed)
        else:
            opts.styles = opts.styles or list(STYLES)
            n = write_digit_domains(opts.data_dir, opts.styles, opts.per_class, opts.image_size)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {n} {opts.image_set} images in {len(opts.styles)} style(s) ({', '.join(opts.styles)}) "
        f"and their lists to {opts.data_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
