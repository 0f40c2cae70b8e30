"""DALI pipelines (cassle/data/dali.py) in DALI's CPU mode on small generated image folders.

Tests that need DALI skip with the reason when it is not installed; the "optional" behaviour
(no import at package import, the one-line notice and torchvision fallback) is tested always.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cassle.data import DOMAINNET_DOMAINS, ContinualDataModule, load_dataset
from cassle.data import dali as dali_mod

REPO = Path(__file__).resolve().parents[1]
HAS_DALI = dali_mod.dali_available()
needs_dali = pytest.mark.skipif(not HAS_DALI, reason="NVIDIA DALI not installed (pip install nvidia-dali-cuda120)")
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def solid(colour, h=20, w=24) -> np.ndarray:
    return np.broadcast_to(np.array(colour, dtype=np.uint8), (h, w, 3)).copy()


def ramp(h=20, w=24) -> np.ndarray:
    """Brightness rising left to right: a horizontal flip makes it fall."""
    row = np.linspace(0, 255, w).round().astype(np.uint8)
    return np.repeat(np.broadcast_to(row[None, :, None], (h, w, 1)), 3, axis=2).copy()


@pytest.fixture
def folder(tmp_path):
    """3 classes x 6 PNG images (lossless, so solid colours decode exactly), train and val."""
    colours = [(200, 40, 90), (30, 160, 220), (120, 120, 120)]
    for split in ("train", "val"):
        for c, colour in enumerate(colours):
            for k in range(6):
                _save(tmp_path / split / f"class {c}" / f"{k}.png", solid(colour))
    return tmp_path


def settings(**overrides) -> list[dict]:
    s = dict(
        crop_size=8,
        min_scale=0.08,
        max_scale=1.0,
        brightness=0.4,
        contrast=0.4,
        saturation=0.2,
        hue=0.1,
        color_jitter_prob=0.0,
        gray_scale_prob=0.0,
        horizontal_flip_prob=0.0,
        gaussian_prob=0.0,
        solarization_prob=0.0,
    )
    s.update(overrides)
    return [dict(s), dict(s)]


def train_loader(dataset, indices=None, batch_size=6, **kw):
    opts = dict(batch_size=batch_size, num_threads=1, device_id=None, seed=1)
    opts.update({k: kw.pop(k) for k in list(kw) if k in ("seed", "shard_id", "num_shards")})
    return dali_mod.DaliTrainLoader(dataset, indices, settings(**kw), MEAN, STD, **opts)


def normalised(colour) -> torch.Tensor:
    return (torch.tensor(colour, dtype=torch.float64) / 255 - torch.tensor(MEAN)) / torch.tensor(STD)


# ------------------------------------------------------------------------------------ optional import
def test_package_import_does_not_import_dali():
    code = (
        "import sys, cassle, cassle.data, cassle.data.dali, cassle.data.datamodule; "
        "assert not any(m.startswith('nvidia.dali') for m in sys.modules), 'DALI imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_without_dali_one_line_notice_and_torchvision(folder, monkeypatch, caplog):
    monkeypatch.setattr(dali_mod, "dali_available", lambda: False)
    dm = ContinualDataModule(
        dataset="custom", data_dir=str(folder), dali=True, batch_size=4, num_workers=0, crop_size=[8]
    )
    with caplog.at_level(logging.WARNING):
        assert dm.data_path() == "workers"
        indexes, views, targets = next(iter(dm.train_dataloader()))
    notices = [r.getMessage() for r in caplog.records if "DALI" in r.getMessage()]
    assert len(notices) == 1 and "\n" not in notices[0] and "torchvision" in notices[0]
    assert [tuple(v.shape) for v in views] == [(4, 3, 8, 8)] * 2
    with pytest.raises(ImportError, match="pip install nvidia-dali"):
        dali_mod._require_dali()


def test_dali_flag_on_tensor_dataset_is_a_notice(folder, caplog):
    dm = ContinualDataModule(
        dataset="synthetic", synthetic_size=40, synthetic_image_size=8, num_classes=4, dali=True, num_workers=0
    )
    with caplog.at_level(logging.WARNING):
        assert dm.data_path() == "workers"
    assert any("--dali is ignored" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="needs a tensor dataset"):
        ContinualDataModule(dataset="custom", data_dir=str(folder), data_device="cpu_batched").data_path()


def test_file_samples_relative_paths(folder):
    ds = load_dataset("custom", str(folder), train=True)
    root, files = dali_mod.file_samples(ds)
    assert Path(root) == folder / "train" and files[0] == "class 0/0.png" and len(files) == 18
    with pytest.raises(TypeError, match="file-backed"):
        dali_mod.file_samples(object())


# ------------------------------------------------------------------------------------ pipelines
@needs_dali
def test_train_contract_indexes_and_epochs(folder):
    ds = load_dataset("custom", str(folder), train=True)
    task = torch.tensor([0, 2, 4, 6, 7, 8, 9, 13, 14, 15, 16, 17])
    loader = train_loader(ds, task, batch_size=5)
    assert len(loader) == 12 // 5
    epochs = []
    for _ in range(2):
        seen = []
        for indexes, views, targets in loader:
            assert len(views) == 2 and all(v.shape == (5, 3, 8, 8) and v.dtype == torch.float32 for v in views)
            assert torch.equal(targets, torch.tensor(ds.targets)[indexes])
            seen += indexes.tolist()
        assert len(seen) == 10 and len(set(seen)) == 10 and set(seen) <= set(task.tolist())
        epochs.append(seen)
    assert epochs[0] != epochs[1]  # reshuffled


@needs_dali
def test_identity_up_to_normalise_on_solid_images(folder):
    """Crop, resize and flip of a solid image change nothing: only Normalize remains."""
    ds = load_dataset("custom", str(folder), train=True)
    _, views, targets = next(iter(train_loader(ds, horizontal_flip_prob=0.5)))
    colours = {0: (200, 40, 90), 1: (30, 160, 220), 2: (120, 120, 120)}
    for v in views:
        for x, y in zip(v, targets):
            expected = normalised(colours[int(y)]).view(3, 1, 1).float().expand_as(x)
            torch.testing.assert_close(x, expected, atol=0.6 / 255 / min(STD), rtol=0)


@needs_dali
def test_grayscale_and_solarize_hand_values(folder):
    ds = load_dataset("custom", str(folder), train=True)
    _, views, targets = next(iter(train_loader(ds, gray_scale_prob=1.0, solarization_prob=1.0)))
    for x, y in zip(views[0], targets):
        r, g, b = [(200, 40, 90), (30, 160, 220), (120, 120, 120)][int(y)]
        luma = 0.299 * r + 0.587 * g + 0.114 * b
        sol = 255 - luma if luma >= 128 else luma
        expected = normalised((sol, sol, sol)).view(3, 1, 1).float().expand_as(x)
        torch.testing.assert_close(x, expected, atol=1.6 / 255 / min(STD), rtol=0)


@needs_dali
def test_probabilities_flip_and_grayscale(tmp_path):
    """Coin flips: the share of flipped (falling ramp) and grey samples is near p (binomial, n=96)."""
    for k in range(96):
        _save(tmp_path / "train" / "c" / f"{k:02d}.png", ramp())
    ds = load_dataset("custom", str(tmp_path), train=True)
    loader = train_loader(ds, batch_size=32, horizontal_flip_prob=0.3, min_scale=0.5)
    xs = torch.cat([v[0] for _, v, _ in loader])
    left, right = xs[..., :2].mean(dim=(1, 2, 3)), xs[..., -2:].mean(dim=(1, 2, 3))
    share = (left > right).float().mean().item()
    assert abs(share - 0.3) < 0.15, share  # 3.2 binomial standard deviations
    # grey: colour images become channel-equal with probability p
    for k in range(96):
        _save(tmp_path / "g" / "train" / "c" / f"{k:02d}.png", solid((220, 30, 60)))
    ds = load_dataset("custom", str(tmp_path / "g"), train=True)
    loader = dali_mod.DaliTrainLoader(
        ds, None, settings(gray_scale_prob=0.6), (0.0,) * 3, (1.0,) * 3, batch_size=32, num_threads=1, seed=2
    )
    xs = torch.cat([v[1] for _, v, _ in loader])
    grey = ((xs[:, 0] - xs[:, 1]).abs().amax(dim=(1, 2)) < 0.02).float().mean().item()
    assert abs(grey - 0.6) < 0.16, grey


@needs_dali
def test_colour_jitter_brightness_factor_range_and_mean(tmp_path):
    """Brightness alone on a grey image: factor = out / in, uniform in [0.6, 1.4] (torchvision's range)."""
    for k in range(64):
        _save(tmp_path / "train" / "c" / f"{k:02d}.png", solid((100, 100, 100)))
    ds = load_dataset("custom", str(tmp_path), train=True)
    loader = dali_mod.DaliTrainLoader(
        ds,
        None,
        settings(color_jitter_prob=1.0, contrast=0.0, saturation=0.0, hue=0.0),
        (0.0,) * 3,
        (1.0,) * 3,
        batch_size=32,
        num_threads=1,
        seed=4,
    )
    factor = torch.cat([v[0].mean(dim=(1, 2, 3)) for _, v, _ in loader]) / (100 / 255)
    assert factor.min() >= 0.6 - 0.02 and factor.max() <= 1.4 + 0.02
    assert abs(factor.mean().item() - 1.0) < 0.1 and abs(factor.std().item() - 0.8 / 12**0.5) < 0.08


@needs_dali
def test_shards_same_length_and_disjoint(folder):
    ds = load_dataset("custom", str(folder), train=True)
    shards = [train_loader(ds, None, batch_size=4, shard_id=r, num_shards=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 9 // 4
    seen = [[i for b in s for i in b[0].tolist()] for s in shards]
    assert not set(seen[0]) & set(seen[1])


@needs_dali
def test_eval_pipeline_and_datamodule_dali_path(folder):
    dm = ContinualDataModule(
        dataset="custom",
        data_dir=str(folder),
        dali=True,
        batch_size=4,
        num_workers=1,
        crop_size=[8],
        mean=list(MEAN),
        std=list(STD),
    )
    assert dm.data_path() == "dali"
    train = dm.train_dataloader()
    assert isinstance(train, dali_mod.DaliTrainLoader) and len(train) == 18 // 4
    val = dm.val_dataloader()
    assert len(val) == 5
    xs, ys = zip(*val)
    y = torch.cat(ys)
    assert y.tolist() == torch.tensor(dm.val_full.targets).tolist()  # whole val set, in order
    x = torch.cat(xs)
    assert x.shape == (18, 3, 8, 8)
    colours = [(200, 40, 90), (30, 160, 220), (120, 120, 120)]
    expected = torch.stack([normalised(colours[int(c)]).float() for c in y])
    torch.testing.assert_close(x.mean(dim=(2, 3)), expected, atol=0.6 / 255 / min(STD), rtol=0)


@needs_dali
def test_domainnet_task_through_dali(tmp_path):
    for d, domain in enumerate(DOMAINNET_DOMAINS):
        for split in ("train", "test"):
            lines = []
            for k in range(3):
                rel = f"{domain}/class {d}/{split}_{k}.png"
                _save(tmp_path / rel, solid((40 * d, 10 * k, 0)))
                lines.append(f"{rel} {d}")
            (tmp_path / f"{domain}_{split}.txt").write_text("\n".join(lines) + "\n")
    dm = ContinualDataModule(
        dataset="domainnet",
        data_dir=str(tmp_path),
        split_strategy="domain",
        num_tasks=6,
        task_idx=2,
        batch_size=3,
        num_workers=1,
        crop_size=[8],
        dali=True,
    )
    indexes, views, targets = next(iter(dm.train_dataloader()))
    assert sorted(indexes.tolist()) == [6, 7, 8] and targets.tolist() == [2, 2, 2]
    assert [tuple(v.shape) for v in views] == [(3, 3, 8, 8)] * 2


@needs_dali
def test_run_task_trains_through_dali(tmp_path):
    from main_continual import run_task
    from tests.helpers import tiny_args

    for split in ("train", "val"):
        for c in range(4):
            for k in range(4):
                _save(tmp_path / "data" / split / f"c{c}" / f"{k}.png", solid((60 * c, 40, 200 - 40 * k), 20, 20))
    args = tiny_args(
        "barlow_twins",
        "--dataset",
        "custom",
        "--data_dir",
        str(tmp_path / "data"),
        "--dali",
        "--crop_size",
        "16",
        "--batch_size",
        "4",
        "--num_workers",
        "1",
        "--max_steps",
        "3",
        tmp_path=tmp_path / "run",
    )
    trainer = run_task(args)
    assert isinstance(trainer.train_dataloader, dali_mod.DaliTrainLoader)
    assert trainer.global_step == 3 and (tmp_path / "run" / "last.ckpt").is_file()


@pytest.mark.parametrize("dali_device, expected", [("gpu", 0), ("cpu", None)])
def test_dali_device_picks_where_the_pipeline_runs(folder, monkeypatch, dali_device, expected):
    """On a GPU run, --dali_device gpu decodes on that GPU; cpu keeps DALI on the CPU (original flag)."""
    built = {}

    class Recorder:
        def __init__(self, *args, device_id=None, **kwargs):
            built["device_id"] = device_id

    monkeypatch.setattr(dali_mod, "DaliTrainLoader", Recorder)
    dm = ContinualDataModule(
        dataset="custom",
        data_dir=str(folder),
        dali=True,
        dali_device=dali_device,
        batch_size=4,
        num_workers=1,
        crop_size=[8],
    )
    monkeypatch.setattr(dm, "_trainer_device", lambda: torch.device("cuda", 0))
    dm._dali_loader(train=True)
    assert built["device_id"] == expected
