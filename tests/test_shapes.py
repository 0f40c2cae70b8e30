"""The procedural shapes set (cassle.data.shapes) and its writer (python -m cassle.data.demo --set shapes)."""

from __future__ import annotations

import numpy as np
import pytest

from cassle.data import shapes as S
from cassle.data.custom import load_described
from cassle.data.demo import main as demo_main


def test_every_shape_is_drawn_and_distinct():
    # Centred, untilted, radius 1 in a [-1.2, 1.2] grid: each mask is non-empty, smaller than the
    # grid, and no two shapes have the same mask (plus vs cross, ring vs circle, ...).
    v, u = np.mgrid[1.2:-1.2:96j, -1.2:1.2:96j]
    masks = {name: S._mask(name, u, v) for name in S.SHAPES}
    for name, m in masks.items():
        assert 0.05 < m.mean() < 0.8, name
    names = list(masks)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert (masks[a] != masks[b]).mean() > 0.05, (a, b)
    with pytest.raises(ValueError, match="unknown shape"):
        S._mask("hexagon", u, v)


def test_images_are_a_pure_function_of_seed_style_class_index():
    a, la = S.shape_images(3, "textured", seed=0, size=16)
    b, lb = S.shape_images(5, "textured", seed=0, size=16)  # more images: the first 3 per class unchanged
    assert a.shape == (30, 16, 16, 3) and a.dtype == np.uint8
    assert la.tolist() == [c for c in range(10) for _ in range(3)]
    for c in range(10):
        np.testing.assert_array_equal(a[la == c], b[lb == c][:3])
    c_, _ = S.shape_images(3, "textured", seed=1, size=16)
    assert (a != c_).any()  # another seed, other pixels
    d, _ = S.shape_images(3, "plain", seed=0, size=16)
    assert (a != d).any()
    with pytest.raises(ValueError, match="unknown style"):
        S.render("circle", "blurry", S.image_rng(0, "blurry", 0, 0))


def test_nuisances_vary_and_the_shape_is_visible():
    # Colours and positions differ between images of one class; in every image the shape's pixels
    # differ from the background's (a light shape on a dark ground in the plain style).
    images, labels = S.shape_images(20, "plain", size=32)
    circles = images[labels == 0].astype(float)
    assert circles.mean(axis=(1, 2)).std(axis=0).min() > 5  # mean colour varies per image
    grey = images.astype(float).mean(axis=3)
    centre = grey[:, 12:20, 12:20].mean(axis=(1, 2))
    corners = (grey[:, :3, :3].mean(axis=(1, 2)) + grey[:, -3:, -3:].mean(axis=(1, 2))) / 2
    filled = np.isin(labels, [S.SHAPES.index(n) for n in ("circle", "square")])
    assert (centre[filled] - corners[filled] > 20).all()


def test_demo_writes_shapes_through_the_custom_data_path(tmp_path, capsys):
    assert (
        demo_main(
            [str(tmp_path), "--set", "shapes", "--per_class", "5", "--image_size", "16", "--styles", "plain", "outline"]
        )
        == 0
    )
    assert "wrote 100 shapes images in 2 style(s)" in capsys.readouterr().out
    assert (tmp_path / "plain" / "star" / "0004.png").is_file()
    assert (tmp_path / "classes.txt").read_text().split() == sorted(S.SHAPES)
    train = load_described(tmp_path, True, domains=["plain", "outline"], split_strategy="domain")
    test = load_described(tmp_path, False, domains=["plain", "outline"], split_strategy="domain")
    assert len(train) == 80 and len(test) == 20  # 1 of 5 per (style, class) is a test image
    image, label = train[0]
    assert image.size == (16, 16) and 0 <= label < 10
    # the same command writes the same bytes
    again = tmp_path / "again"
    assert (
        demo_main(
            [str(again), "--set", "shapes", "--per_class", "5", "--image_size", "16", "--styles", "plain", "outline"]
        )
        == 0
    )
    assert (again / "plain" / "star" / "0004.png").read_bytes() == (
        tmp_path / "plain" / "star" / "0004.png"
    ).read_bytes()


def test_demo_rejects_unknown_shape_styles(tmp_path, capsys):
    assert demo_main([str(tmp_path), "--set", "shapes", "--styles", "inverted"]) == 2
    assert "unknown shape style(s) inverted" in capsys.readouterr().err


def test_demo_script_names_an_unknown_method_before_running_anything(tmp_path):
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    res = subprocess.run(
        ["bash", str(repo / "scripts" / "demo.sh"), str(tmp_path / "out"), "nosuch"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "d")},
    )
    assert res.returncode == 2
    assert "no bash_files/continual/shapes/nosuch.sh" in res.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "d").exists()  # nothing written
