"""Procedural shapes: an image set where the class is an object's shape and everything else is a nuisance.

Ten shapes (circle, ring, triangle, square, frame, plus, cross, star, half_disk, crescent) drawn at a
random position, size and small tilt (+-15 degrees, so plus and cross stay distinct), light (random
hue and saturation, value 0.7-1) on a dark background of another random hue (value 0.05-0.45),
overlaid with a random texture (stripes, checks or smooth blobs) and pixel noise. A randomly
initialised conv net's features are dominated by colour and texture, so its linear probe separates
the shapes poorly; the SSL augmentations (crops, colour jitter, greyscale) teach invariance to
exactly those nuisances, so a few minutes of SSL on a CPU make the probe clearly better
(``benchmarks/RESULTS.md``, "Learning on the shapes set"). That is the point of the set: learning
shows.

Styles (one domain each, for the domain-incremental demo; ``STYLE_PARAMS`` holds the numbers):

* ``textured`` (default): filled shape, textured background (and faintly textured shape), mild noise;
* ``plain``: filled shape on a flat background, little noise;
* ``outline``: only the shape's outline, textured background;
* ``noisy``: filled shape, lower contrast, heavy pixel noise.

Everything is a pure function of (seed, style, class, index): each image has its own
``numpy.random.default_rng`` seeded by those, so the same call always returns the same pixels and
one image never depends on how many others are drawn. 10 x 300 images of 32x32 take about a
second. ``python -m cassle.data.demo DIR --set shapes`` writes them as PNG files with their lists.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

SHAPES = ("circle", "ring", "triangle", "square", "frame", "plus", "cross", "star", "half_disk", "crescent")
STYLES = ("textured", "plain", "outline", "noisy")  # keys of STYLE_PARAMS, default first
_SUPERSAMPLE = 2  # drawn at 2x, averaged down: anti-aliased edges
_TILT = np.deg2rad(15.0)  # rotation range; more would turn plus into cross


def _polygon(theta: np.ndarray, n: int) -> np.ndarray:
    """Radius of a regular n-gon (circumradius 1, a vertex at angle 0) along direction theta."""
    sector = 2 * np.pi / n
    return np.cos(np.pi / n) / np.cos(np.mod(theta, sector) - np.pi / n)


def _mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of ``shape`` in coordinates (u, v) where the shape has radius 1 around 0."""
    r, theta = np.hypot(u, v), np.arctan2(v, u)
    if shape == "circle":
        return r <= 1.0
    if shape == "ring":
        return (r <= 1.0) & (r >= 0.55)
    if shape == "triangle":  # a vertex pointing up
        return r <= _polygon(theta - np.pi / 2, 3)
    if shape == "square":
        return np.maximum(abs(u), abs(v)) <= 0.8
    if shape == "frame":
        m = np.maximum(abs(u), abs(v))
        return (m <= 0.8) & (m >= 0.45)
    if shape == "plus":
        return ((abs(u) <= 0.3) & (abs(v) <= 1.0)) | ((abs(v) <= 0.3) & (abs(u) <= 1.0))
    if shape == "cross":
        a, b = (u + v) / np.sqrt(2), (u - v) / np.sqrt(2)
        return ((abs(a) <= 0.28) & (abs(b) <= 1.0)) | ((abs(b) <= 0.28) & (abs(a) <= 1.0))
    if shape == "star":  # five points, inner radius 0.45: linear in angle between tip and notch
        t = np.mod(theta - np.pi / 2, 2 * np.pi / 5) / (2 * np.pi / 5)  # 0 at a tip, 0.5 at a notch
        return r <= 1.0 - 0.55 * (1 - abs(1 - 2 * t))
    if shape == "half_disk":
        return (r <= 1.0) & (v <= 0.15)
    if shape == "crescent":
        return (r <= 1.0) & (np.hypot(u - 0.5, v + 0.1) >= 0.75)
    raise ValueError(f"unknown shape {shape!r}; valid: {', '.join(SHAPES)}")


def _texture(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A random zero-mean pattern in [-1, 1] on pixel coordinates in [0, 1): stripes, checks or blobs."""
    kind = rng.integers(3)
    if kind == 0:  # stripes of random frequency and orientation
        a = rng.uniform(0, np.pi)
        f = rng.uniform(2.0, 7.0)
        return np.sin(2 * np.pi * f * (x * np.cos(a) + y * np.sin(a)) + rng.uniform(0, 2 * np.pi))
    if kind == 1:  # checks of random size
        f = rng.uniform(2.0, 6.0)
        return np.sign(np.sin(2 * np.pi * f * x + rng.uniform(0, 6)) * np.sin(2 * np.pi * f * y + rng.uniform(0, 6)))
    coarse = rng.uniform(-1, 1, (5, 5))  # smooth blobs: 5x5 random grid, bilinear upsampling
    gx, gy = x * 4, y * 4
    i, j = np.minimum(gx.astype(int), 3), np.minimum(gy.astype(int), 3)
    fx, fy = gx - i, gy - j
    return (
        (1 - fx) * (1 - fy) * coarse[j, i]
        + fx * (1 - fy) * coarse[j, i + 1]
        + (1 - fx) * fy * coarse[j + 1, i]
        + fx * fy * coarse[j + 1, i + 1]
    )


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """The mask minus its erosion by ``width`` pixels (4-neighbourhood, repeated)."""
    inner = mask.copy()
    for _ in range(width):
        p = np.pad(inner, 1, constant_values=False)
        inner = inner & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


# Per style: size range (radius as a fraction of the image), centre offset from the middle (fraction
# of the room left), tilt, whether the shape is lighter than the background, contrast (1 = the
# colours as drawn), background / shape texture amplitudes, pixel noise (std, in [0, 1] units).
_STYLE_BASE = dict(
    radius=(0.28, 0.42),
    shift=0.6,
    light_shape=True,
    contrast=1.0,
    bg_texture=(0.1, 0.25),
    shape_texture=(0.0, 0.0),
    noise=0.04,
    outline=False,
)
STYLE_PARAMS = {
    "textured": {**_STYLE_BASE, "shape_texture": (0.0, 0.1)},
    "plain": {**_STYLE_BASE, "bg_texture": (0.0, 0.0), "noise": 0.02},
    "outline": {**_STYLE_BASE, "outline": True},
    "noisy": {**_STYLE_BASE, "contrast": 0.6, "bg_texture": (0.0, 0.0), "noise": 0.12},
}


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (all in [0, 1]) as RGB in [0, 1]."""
    k = np.mod(np.array([5.0, 3.0, 1.0]) + 6 * h, 6)
    return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)


def _colours(rng: np.random.Generator, light_shape: bool) -> tuple[np.ndarray, np.ndarray]:
    """Shape and background RGB in [0, 1]: random hues and saturations; with ``light_shape`` the
    shape is bright (value 0.7-1) on a dark background (0.05-0.45), else either may be the lighter."""
    fg = _hsv(rng.uniform(), rng.uniform(0.2, 1.0), rng.uniform(0.7, 1.0))
    bg = _hsv(rng.uniform(), rng.uniform(0.2, 1.0), rng.uniform(0.05, 0.45))
    if not light_shape and rng.uniform() < 0.5:
        fg, bg = bg, fg
    return fg, bg


def render(shape: str, style: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One (size, size, 3) uint8 image of ``shape`` in ``style``, every nuisance drawn from ``rng``."""
    if style not in STYLE_PARAMS:
        raise ValueError(f"unknown style {style!r}; valid: {', '.join(STYLES)}")
    prm = STYLE_PARAMS[style]
    n = size * _SUPERSAMPLE
    y, x = np.mgrid[0:n, 0:n].astype(np.float64) / n + 0.5 / n  # pixel centres in [0, 1)
    radius = rng.uniform(*prm["radius"])
    cx, cy = 0.5 + prm["shift"] * (0.5 - radius) * rng.uniform(-1, 1, 2)
    tilt = rng.uniform(-_TILT, _TILT)
    du, dv = (x - cx) / radius, (cy - y) / radius  # v points up
    u, v = du * np.cos(tilt) + dv * np.sin(tilt), -du * np.sin(tilt) + dv * np.cos(tilt)
    mask = _mask(shape, u, v)
    if prm["outline"]:
        mask = _outline(mask, max(1, round(0.12 * radius * n)))
    fg, bg = _colours(rng, prm["light_shape"])
    mid = (fg + bg) / 2
    fg, bg = mid + prm["contrast"] * (fg - mid), mid + prm["contrast"] * (bg - mid)
    image = np.where(mask[..., None], fg, bg)
    amp = rng.uniform(*prm["bg_texture"])
    if amp > 0:
        image = image + np.where(mask, 0.0, amp * _texture(rng, x, y))[..., None] * rng.choice([-1, 1], 3)
    amp = rng.uniform(*prm["shape_texture"])
    if amp > 0:
        image = image + np.where(mask, amp * _texture(rng, x, y), 0.0)[..., None]
    image = image.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    image = image + rng.normal(0.0, prm["noise"], image.shape)
    return (image.clip(0, 1) * 255).round().astype(np.uint8)


def image_rng(seed: int, style: str, label: int, index: int) -> np.random.Generator:
    """The generator of one image: seeded by (seed, style, class, index) only."""
    return np.random.default_rng([seed, zlib.crc32(style.encode()), label, index])


def shape_images(
    per_class: int, style: str = "textured", seed: int = 0, size: int = 32, shapes: Sequence[str] = SHAPES
) -> tuple[np.ndarray, np.ndarray]:
    """``(N, size, size, 3)`` uint8 images and ``(N,)`` int64 labels (index in ``shapes``), class-major."""
    images = np.empty((per_class * len(shapes), size, size, 3), dtype=np.uint8)
    for label, shape in enumerate(shapes):
        for i in range(per_class):
            images[label * per_class + i] = render(shape, style, image_rng(seed, style, label, i), size)
    return images, np.repeat(np.arange(len(shapes), dtype=np.int64), per_class)
