"""Users' own data: every mistake is found before training, naming the file and the line
(issue 18, section 5). Each test builds a tiny image set in ``tmp_path``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cassle.data.custom import DataError, ImageDecodeError, load_described, validate_images
from cassle.data.datamodule import ContinualDataModule
from cassle.data.prepare import main as prepare_main


def _png(path: Path, value: int = 100, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def _lists(root: Path, train: list[str], test: list[str], prefix: str = "") -> Path:
    """``{prefix}train.txt`` / ``{prefix}test.txt`` with these lines; the images a line names are made."""
    for line in train + test:
        rel = line.rsplit(" ", 1)[0]
        if not rel.startswith(("/", "..")) and not (root / rel).exists():
            _png(root / rel)
    (root / f"{prefix}train.txt").write_text("".join(f"{ln}\n" for ln in train), encoding="utf-8")
    (root / f"{prefix}test.txt").write_text("".join(f"{ln}\n" for ln in test), encoding="utf-8")
    return root


def _four_classes(root: Path) -> Path:
    return _lists(root, [f"c{c}/a.png {c}" for c in range(4)], [f"c{c}/b.png {c}" for c in range(4)])


def _dm(root, **kw):
    args = {"dataset": "custom", "data_dir": str(root), "num_workers": 0, "batch_size": 4}
    args.update(kw)
    return ContinualDataModule(**args)


# --------------------------------------------------------------------------- labels and classes
def test_label_beyond_the_classes_is_an_error_listing_the_empty_classes(tmp_path, caplog):
    root = _four_classes(tmp_path)
    with (root / "train.txt").open("a") as f:
        f.write("c3/a.png 1001\n")  # a typo: 1001 for 1
    with pytest.raises(
        DataError,
        match=r"997 of 1002 classes have no training image: 4-1000\. .*"
        r"largest label \+ 1 \(label 1001 at .*train\.txt:5\)",
    ):
        load_described(root, True)
    # classes only in the test list have no training image either
    _lists(tmp_path / "t", ["c0/a.png 0", "c1/a.png 1"], ["c0/b.png 0", "c2/b.png 2"])
    with pytest.raises(DataError, match=r"1 of 3 classes have no training image: 2\. "):
        load_described(tmp_path / "t", True)
    # classes.txt names them: allowed, with one line saying so
    (root / "classes.txt").write_text("".join(f"k{i}\n" for i in range(1002)))
    with caplog.at_level(logging.WARNING):
        ds = load_described(root, True)
        load_described(root, False)
    assert ds.num_classes == 1002
    said = [r.getMessage() for r in caplog.records if "have no training image" in r.getMessage()]
    assert len(said) == 1 and "997 of 1002 classes named in" in said[0] and "4 (k4)" in said[0], said


@pytest.mark.parametrize("label", ["--1", "\u0663", "+3", "3.0", "\u00b2"])
def test_labels_are_plain_ascii_integers(tmp_path, label):
    root = _four_classes(tmp_path)
    lines = (root / "train.txt").read_text().splitlines()
    lines[1] = f"c1/a.png {label}"
    (root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"train\.txt:2: .*plain decimal integer .*got label '{re.escape(label)}'"):
        load_described(root, True)


def test_list_files_must_be_utf8_named_by_file_and_line(tmp_path):
    root = _four_classes(tmp_path)
    _png(root / "c1" / "caf\xe9.png")
    with (root / "test.txt").open("ab") as f:
        f.write("c1/caf\xe9.png 1\n".encode("latin-1"))  # a Latin-1 list
    with pytest.raises(DataError, match=r"test\.txt:5: not UTF-8 text"):
        load_described(root, True)
    # a byte-order mark (Windows editors) is fine
    (root / "test.txt").write_bytes("\ufeffc0/b.png 0\nc1/b.png 1\nc2/b.png 2\nc3/b.png 3\n".encode())
    assert load_described(root, False).samples[0][0] == "c0/b.png"
    (root / "classes.txt").write_bytes(b"ant\nb\xe9e\ncat\ndog\n")
    with pytest.raises(DataError, match=r"classes\.txt:2: not UTF-8 text"):
        load_described(root, True)
    # classes.txt: line k names label k, so a gap or a repeated name is named by its line
    for text, line, what in (("ant\n\nbee\ncat\n", 2, "empty line"), ("ant\nbee\nant\ndog\n", 3, "already on line 1")):
        (root / "classes.txt").write_text(text + "\n\n")  # trailing empty lines are fine
        with pytest.raises(DataError, match=rf"classes\.txt:{line}: .*{what}"):
            load_described(root, True)
    (root / "classes.txt").write_text("ant\nbee\ncat\ndog\n\n")
    assert load_described(root, True).classes == ["ant", "bee", "cat", "dog"]


# --------------------------------------------------------------------------- paths
def test_paths_leaving_the_data_folder_are_refused_naming_the_line(tmp_path):
    root = _four_classes(tmp_path / "data")
    _png(tmp_path / "outside" / "x.png")
    (root / "c2" / "link.png").symlink_to(tmp_path / "outside" / "x.png")
    (root / "c3" / "inner.png").symlink_to(root / "c3" / "a.png")  # a link inside the folder: fine
    (root / "linked_dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    base = (root / "train.txt").read_text()
    for n, (line, why) in enumerate(
        [
            ("../outside/x.png 0", r"climbs out of the data folder"),
            (f"{tmp_path / 'outside' / 'x.png'} 1", "is an absolute path"),
            ("c2/link.png 2", "through a symbolic link"),
            ("linked_dir/x.png 3", "through a symbolic link"),
        ]
    ):
        (root / "train.txt").write_text(base + "c3/inner.png 3\n" + line + "\n")
        with pytest.raises(
            DataError,
            match=rf"1 image path\(s\) leave the data folder .*train\.txt:6: "
            rf"image path .* {why}.*--allow_paths_outside_data_dir",
        ):
            _dm(root).setup()
        dm = _dm(root, allow_paths_outside_data_dir=True)  # the user means it
        dm.setup()
        assert np.asarray(dm.train_full[5][0]).shape == (8, 8, 3), n
    # evaluation follows the run's own setting (recorded in the checkpoint's hyperparameters)
    from cassle.eval.run_eval import resolve_data

    hp = {"dataset": "custom", "data_dir": str(root), "num_classes": 4, "crop_size": [8, 8]}
    opts = argparse.Namespace(dataset=None, crop_size=None, image_cache_gb=0.0)
    with pytest.raises(DataError, match=r"train\.txt:6: .*--allow_paths_outside_data_dir"):
        resolve_data(opts, hp)
    assert len(resolve_data(opts, {**hp, "allow_paths_outside_data_dir": True}).train_set) == 6
    opts.allow_paths_outside_data_dir = True
    assert len(resolve_data(opts, hp).train_set) == 6


# --------------------------------------------------------------------------- images
def _gray16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)  # PIL mode I;16: a 16-bit greyscale PNG


def _write_png(path: Path, width: int, height: int, depth: int, colour: int, rows: bytes) -> None:
    """A PNG written by hand: IHDR (``depth`` bits, ``colour`` type), the filtered ``rows``, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _bomb_png(path: Path, width: int, height: int) -> None:
    """A valid PNG header declaring ``width x height`` pixels, a few bytes of data (never decoded)."""
    _write_png(path, width, height, 8, 0, b"\0" * 64)


def test_16bit_images_are_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000, 32768], [40000, 65535, 128, 25700]] * 2, np.uint16)
    root = _four_classes(tmp_path / "data")
    _gray16(root / "c0" / "a.png", values)
    ds = load_described(root, True)
    assert validate_images(ds) == 4
    got = np.asarray(ds[0][0])
    want = np.floor(values.astype(np.float64) / 257 + 0.5).astype(np.uint8)  # round(v / 257)
    assert got.shape == (4, 4, 3) and (got == want[..., None]).all(), got[..., 0]
    assert want.max() == 255 and (want == 255).mean() < 0.2  # not today's clipping (all but 0 -> 255)
    # 16-bit RGB (48-bit PNG): PIL's decoder keeps the high byte, floor(v / 256), within 1 of round(v / 257)
    rgb = np.stack([values, 65535 - values, values], -1)
    _write_png(root / "c2" / "a.png", 4, 4, 16, 2, b"".join(b"\0" + row.astype(">u2").tobytes() for row in rgb))
    got = np.asarray(load_described(root, True)[2][0]).astype(int)
    assert (np.abs(got - np.floor(rgb / 257 + 0.5)) <= 1).all() and got.max() == 255 and got.min() == 0, got
    # the same through a train/ val/ folder pair (torchvision ImageFolder)
    _gray16(tmp_path / "folders" / "train" / "a" / "x.png", values)
    _gray16(tmp_path / "folders" / "val" / "a" / "x.png", values)
    dm = _dm(tmp_path / "folders")
    assert (np.asarray(dm.train_full[0][0]) == want[..., None]).all()
    # pixels with no known 8-bit scale (float TIFF) are refused naming the file
    Image.fromarray(np.ones((4, 4), np.float32)).save(root / "c1" / "a.tif")
    (root / "train.txt").write_text("c0/a.png 0\nc1/a.tif 1\nc2/a.png 2\nc3/a.png 3\n")
    with pytest.raises(DataError, match=r"train\.txt:2: .*c1/a\.tif: floating-point pixels"):
        _dm(root).setup()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL warns, then we refuse
def test_images_above_the_pixel_limit_are_refused_naming_file_limit_and_flag(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    root = _four_classes(tmp_path)
    _png(root / "c1" / "a.png", size=80)  # 6,400 pixels
    with pytest.raises(
        DataError,
        match=r"train\.txt:2: .*c1/a\.png: 80 x 80 = 6,400 pixels is above the limit "
        r"of 5,000 pixels .*--max_image_pixels",
    ):
        _dm(root, max_image_pixels=5000).setup()
    dm = _dm(root, max_image_pixels=5000, validate_images=False)  # unchecked: refused when read
    with pytest.raises(ImageDecodeError, match=r"c1/a\.png \(listed at .*train\.txt:2\).*above the limit of 5,000"):
        dm.train_full[1]
    assert np.asarray(_dm(root, max_image_pixels=6400).train_full[1][0]).shape == (80, 80, 3)
    # a decompression bomb: 400 million pixels declared in 100 bytes, refused from its header
    _bomb_png(root / "c2" / "a.png", 20000, 20000)
    with pytest.raises(
        DataError,
        match=r"train\.txt:3: .*c2/a\.png: .*exceeds limit .*the limit is 89,478,485 "
        r"pixels .*--max_image_pixels",
    ):
        _dm(root).setup()
    with pytest.raises(
        DataError,
        match=r"c2/a\.png: 20000 x 20000 = 400,000,000 pixels is above the limit of "
        r"300,000,000",
    ):
        _dm(root, max_image_pixels=300_000_000).setup()  # our check, not PIL's, past PIL's default
    _dm(root, max_image_pixels=0).setup()  # 0: no limit (the header check passes; nothing decoded)


# --------------------------------------------------------------------------- domains
def test_a_domain_without_test_images_is_found_before_training(tmp_path):
    root = tmp_path
    _lists(root, ["photo/c0/a.png 0", "photo/c1/a.png 1"], ["photo/c0/b.png 0", "photo/c1/b.png 1"], "photo_")
    _lists(root, ["sketch/c0/a.png 0", "sketch/c1/a.png 1"], [], "sketch_")
    for split in ("domain", "class"):
        with pytest.raises(DataError, match=r"domain\(s\) sketch have no test images"):
            _dm(root, split_strategy=split, domains=["photo", "sketch"], num_tasks=2).setup()
    _dm(root, split_strategy="domain", domains=["photo"]).setup()  # the complete domain alone is fine
    # the task runner stops on it before task 0 trains: nothing written
    from main_continual import main
    from tests.helpers import tiny_argv

    out = tmp_path / "task0"
    argv = tiny_argv(
        "barlow_twins",
        "--dataset",
        "custom",
        "--data_dir",
        str(root),
        "--num_classes",
        "2",
        "--split_strategy",
        "domain",
        "--domains",
        "photo",
        "sketch",
        "--crop_size",
        "8",
        tmp_path=out,
    )
    with pytest.raises(DataError, match=r"domain\(s\) sketch have no test images"):
        main(argv)
    assert not (out / "last.ckpt").exists()


# --------------------------------------------------------------------------- prepare
def test_prepare_refuses_non_utf8_names_before_writing_and_reports_empty_class_folders(tmp_path, capsys):
    root = tmp_path / "data"
    for c in ("ant", "bee"):
        _png(root / c / "1.png")
        _png(root / c / "2.png")
    (root / "cat").mkdir()  # an empty class folder
    assert prepare_main([str(root)]) == 0
    out = capsys.readouterr().out
    assert "1 class folder(s) hold no image file" in out and "cat/" in out, out
    assert (root / "classes.txt").read_text() == "ant\nbee\n"
    # a file name in Latin-1: an error naming it, and nothing written
    bad = tmp_path / "bad"
    _png(bad / "ant" / "1.png")
    _png(bad / "ant" / "2.png")
    with open(os.path.join(os.fsencode(bad / "ant"), b"caf\xe9.png"), "wb") as f:
        f.write((bad / "ant" / "1.png").read_bytes())
    assert prepare_main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"file name {bad}/ant/caf\\xe9.png is not valid UTF-8" in err and "nothing was written" in err, err
    assert sorted(p.name for p in bad.iterdir()) == ["ant"]
    # an image linked from outside the folder: refused unless the user means it
    _png(tmp_path / "elsewhere" / "x.png")
    (root / "bee" / "3.png").symlink_to(tmp_path / "elsewhere" / "x.png")
    assert prepare_main([str(root), "--force"]) == 2
    assert "bee/3.png leads outside the data folder through a symbolic link" in capsys.readouterr().err
    assert prepare_main([str(root), "--force", "--allow_paths_outside_data_dir"]) == 0
    assert "bee/3.png 1" in (root / "train.txt").read_text() + (root / "test.txt").read_text()
