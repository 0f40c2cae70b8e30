"""The ViT CIFAR-100 scripts (bash_files/continual/cifar-vit): the method's ResNet-18 CIFAR script
with only the backbone and the optimiser recipe replaced, the recipe written out here from its
sources (MoCo v3's ViT-Small recipe, solo-learn's CIFAR patch size), and a launcher smoke run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from cassle.continual.plan import parse_script, split_flags
from cassle.utils.args import parse_args
from tests.test_bash_scripts import SCRIPT_ROOT, _fake_cifar100, _launch

VIT_SCRIPTS = sorted((SCRIPT_ROOT / "cifar-vit").glob("*.sh"))
# facebookresearch/moco-v3 CONFIG.md (ViT-Small): --optimizer=adamw --lr=1.5e-4 --weight-decay=.1
# --warmup-epochs=40, cosine per iteration to 0; solo-learn mocov3_vit.yaml: classifier_lr 3e-4;
# solo-learn scripts/pretrain/cifar/mae.yaml: vit_small, patch_size 4 on 32 px.
RECIPE = {"--backbone": ["vit_small"], "--patch_size": ["4"], "--optimizer": ["adamw"], "--lr": ["1.5e-4"],
          "--classifier_lr": ["3e-4"], "--weight_decay": ["0.1"], "--scheduler": ["warmup_cosine"],
          "--scheduler_interval": ["step"], "--warmup_epochs": ["40"], "--warmup_start_lr": ["0.0"],
          "--min_lr": ["0.0"]}
# the ResNet scripts' optimiser flags that the ViT recipe replaces (LARS and its switches)
REPLACED = {"--eta_lars", "--grad_clip_lars", "--exclude_bias_n_norm"}


def _flags(path: Path) -> list[tuple[str, list[str]]]:
    return split_flags(parse_script(path.read_text(), {"DATA_DIR": "/data"}))


def test_both_methods_both_variants_are_shipped():
    assert [p.name for p in VIT_SCRIPTS] == ["barlow.sh", "barlow_distill.sh", "byol.sh", "byol_distill.sh"]


@pytest.mark.parametrize("path", VIT_SCRIPTS, ids=[p.name for p in VIT_SCRIPTS])
def test_vit_script_is_the_resnet_script_with_the_vit_recipe(path: Path):
    ours = dict(_flags(path))
    resnet = dict(_flags(SCRIPT_ROOT / "cifar" / path.name))
    for flag, value in RECIPE.items():
        assert ours.get(flag) == value, f"{path.name}: {flag} {ours.get(flag)} (recipe: {value})"
    assert not REPLACED & set(ours), f"{path.name}: LARS switches left in a ViT script"
    same = {f: v for f, v in resnet.items() if f not in RECIPE and f not in REPLACED and f != "--name"}
    assert {f: ours.get(f) for f in same} == same, f"{path.name}: differs from cifar/{path.name} beyond the recipe"
    assert ours["--name"][0] == resnet["--name"][0].replace("-cifar100", "-vit-cifar100")
    args = parse_args(parse_script(path.read_text(), {"DATA_DIR": "/data"}))
    assert (args.backbone, args.patch_size, args.optimizer, args.lr) == ("vit_small", 4, "adamw", 1.5e-4)
    assert args.precision == "auto" and not args.lars and not args.exclude_bias_n_norm
    text = path.read_text()
    assert "scripts/pretrain/cifar/mae.yaml" in text and "moco-v3" in text  # the sources are named


@pytest.mark.slow
def test_vit_cassle_script_smoke_through_launcher(tmp_path):
    """cifar-vit/byol_distill.sh through job_launcher.py: tasks 0 and 1 (distiller) on vit_tiny."""
    data = tmp_path / "cifar"
    data.mkdir()
    _fake_cifar100(data)
    env = {**os.environ, "DATA_DIR": str(data), "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    tiny = ["--backbone", "vit_tiny", "--crop_size", "16", "--max_epochs", "1", "--batch_size", "8",
            "--online_eval_batch_size", "8", "--num_workers", "0", "--proj_hidden_dim", "32",
            "--output_dim", "16", "--pred_hidden_dim", "32", "--distill_proj_hidden_dim", "32",
            "--limit_train_batches", "2", "--limit_val_batches", "1", "--accelerator", "cpu",
            "--devices", "1", "--precision", "32", "--no_progress_bar", "--num_tasks", "2"]
    exp = tmp_path / "exp"
    _launch(SCRIPT_ROOT / "cifar-vit" / "byol_distill.sh", exp, tiny, env)
    for t in range(2):
        assert (exp / f"task{t}" / "last.ckpt").is_file(), f"task {t} left no checkpoint"
