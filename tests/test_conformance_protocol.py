"""Conformance (issue 20, parts 2-4): the offline linear protocol as the reference ran it, A / F / T
that name the protocol which made them, and the smaller points (precision, results paths).

2. the offline probe: bicubic random crop for image folders (the reference's DALI path), bilinear for
   CIFAR (its torchvision path), last partial batch dropped; --dali used when installed
3. --eval_protocol {fast, paper}: see the tests below
4. --precision auto / 16 on GPUs without native bf16; benchmarks/RESULTS.md paths relative
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- 2. offline protocol
@pytest.fixture
def folder_data(tmp_path):
    from cassle.data.datasets import load_dataset
    from cassle.eval.linear import EvalData

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(2):
            for k in range(5):
                path = tmp_path / split / f"c{c}" / f"{k}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(path)
    train, test = (load_dataset("custom", str(tmp_path), train=t) for t in (True, False))
    return EvalData.build("custom", train, test, num_classes=2, split="class", num_tasks=1,
                          mean=(0.5,) * 3, std=(0.25,) * 3, crop_size=8)


def _crop(transform):
    from torchvision.transforms import v2

    return next(t for t in transform.transforms if isinstance(t, v2.RandomResizedCrop))


def test_2_offline_probe_crops_bicubic_for_folders_bilinear_for_cifar(folder_data):
    from torchvision.transforms import InterpolationMode

    from cassle.data.datasets import TensorImageDataset
    from cassle.eval.linear import EvalData

    crop = _crop(folder_data.train_transform())
    assert crop.interpolation == InterpolationMode.BICUBIC  # the reference's DALI INTERP_CUBIC
    assert (tuple(crop.size), crop.scale) == ((8, 8), (0.08, 1.0))
    tensor = TensorImageDataset(torch.zeros(6, 8, 8, 3, dtype=torch.uint8), torch.arange(6) % 2, num_classes=2)
    cifar_like = EvalData.build("synthetic", tensor, tensor, num_classes=2, split="class", num_tasks=1,
                                mean=(0.5,) * 3, std=(0.5,) * 3)
    assert _crop(cifar_like.train_transform()).interpolation == InterpolationMode.BILINEAR  # torchvision's


def test_2_offline_probe_drops_the_last_partial_batch(folder_data, capsys):
    from cassle.eval.offline_loader import probe_train_loader

    idx = torch.arange(10)
    for dali in (False, True):  # without DALI installed, --dali gives the same batches and a notice
        loader = probe_train_loader(folder_data, idx, batch_size=4, num_workers=0, seed=5, dali=dali)
        sizes = [len(y) for _x, y in loader]
        assert sizes == [4, 4], sizes  # 10 images: the partial batch of 2 is dropped
        x, _ = next(iter(loader))
        assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32
    assert "DALI is not installed" in capsys.readouterr().err
    one = probe_train_loader(folder_data, idx[:3], batch_size=4, num_workers=0, seed=5)
    assert [len(y) for _x, y in one] == [3]  # fewer images than a batch: the only batch is kept


def test_2_main_linear_passes_dali_to_the_probe():
    import main_linear
    from cassle.eval.run_eval import probe_config

    opts = main_linear.parse_args(["--pretrained_feature_extractor", "x.ckpt", "--dali"])
    cfg, _ = probe_config(opts, {"method": "byol"}, "augmented")
    assert cfg.dali is True and cfg.lr == 3.0
    assert "--dali is ignored" not in main_linear.build_parser().format_help()


def test_2_readme_row_on_dali_names_main_linear():
    text = (REPO / "README.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| DomainNet/ImageNet-100 without DALI"))
    assert "main_linear.py" in row and "bicubic" in row and "dropped" in row
