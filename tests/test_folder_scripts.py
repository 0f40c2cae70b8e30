"""The ImageNet-100 and DomainNet bash scripts run for real (tiny overrides) on generated JPEG
folders, through the launcher, on the CPU: the folder and file-list loaders, with DALI when it is
installed (its CPU mode) and torchvision otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DOMAINS = ("real", "quickdraw", "painting", "sketch", "infograph", "clipart")
TINY = [
    "--backbone",
    "tiny",
    "--max_epochs",
    "1",
    "--batch_size",
    "4",
    "--num_workers",
    "0",
    "--accelerator",
    "cpu",
    "--devices",
    "1",
    "--strategy",
    "auto",
    "--no-sync_batchnorm",
    "--precision",
    "32",
    "--crop_size",
    "32",
    "--limit_train_batches",
    "2",
    "--limit_val_batches",
    "1",
    "--proj_hidden_dim",
    "32",
    "--output_dim",
    "32",
    "--distill_proj_hidden_dim",
    "32",
    "--warmup_epochs",
    "0",
    "--check_val_every_n_epoch",
    "1",
]


def _jpeg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path, quality=90)


def _launch(script: str, exp: Path, data: Path, extra: list[str]) -> None:
    env = {**os.environ, "DATA_DIR": str(data), "PYTHONWARNINGS": "ignore", "WANDB_SILENT": "true"}
    cmd = [sys.executable, "job_launcher.py", "--script", script, "--experiment_dir", str(exp), "--", *TINY, *extra]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{script} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    manifest = json.loads((exp / "manifest.json").read_text())
    assert all(t["status"] == "done" for t in manifest["tasks"].values())


@pytest.mark.slow
@pytest.mark.parametrize("dali", ["--no-dali", "--dali"])
def test_imagenet100_class_script_runs_on_an_image_folder(tmp_path, dali):
    data = tmp_path / "imagenet100"
    for split, per_class in (("train", 6), ("val", 2)):
        for c in range(4):
            for i in range(per_class):
                _jpeg(data / split / f"n{c:08d}" / f"img{i}.JPEG", seed=c * 100 + i)
    _launch(
        "bash_files/continual/imagenet-100/class/barlow_distill.sh", tmp_path / "exp", data, ["--num_tasks", "2", dali]
    )


@pytest.mark.slow
def test_domainnet_script_runs_on_file_lists(tmp_path):
    # Two of the six domains (--domains, and --num_tasks 2 over the script's 6) keep this smoke run short.
    data = tmp_path / "domainnet"
    for d, domain in enumerate(DOMAINS[:2]):
        for split, per_class in (("train", 4), ("test", 1)):
            lines = []
            for c in range(3):
                for i in range(per_class):
                    rel = f"{domain}/class{c}/{split}{i}.jpg"
                    _jpeg(data / rel, seed=d * 1000 + c * 10 + i)
                    lines.append(f"{rel} {c}")
            (data / f"{domain}_{split}.txt").write_text("\n".join(lines) + "\n")
    _launch(
        "bash_files/continual/domainnet/vicreg_distill.sh",
        tmp_path / "exp",
        data,
        ["--num_classes", "3", "--no-dali", "--domains", "real", "quickdraw", "--num_tasks", "2"],
    )
    recorded = json.loads((tmp_path / "exp" / "task1" / "args.json").read_text())
    assert recorded["domains"] == ["real", "quickdraw"] and recorded["num_tasks"] == 2
