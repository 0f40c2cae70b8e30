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
IN100_VIT_SCRIPTS = sorted((SCRIPT_ROOT / "imagenet-100-vit").glob("*.sh"))
# facebookresearch/moco-v3 CONFIG.md (ViT-Small): --optimizer=adamw --lr=1.5e-4 --weight-decay=.1
# --warmup-epochs=40, cosine per iteration to 0; solo-learn mocov3_vit.yaml: classifier_lr 3e-4;
# solo-learn scripts/pretrain/cifar/mae.yaml: vit_small, patch_size 4 on 32 px.
RECIPE = {
    "--backbone": ["vit_small"],
    "--patch_size": ["4"],
    "--optimizer": ["adamw"],
    "--lr": ["1.5e-4"],
    "--classifier_lr": ["3e-4"],
    "--weight_decay": ["0.1"],
    "--scheduler": ["warmup_cosine"],
    "--scheduler_interval": ["step"],
    "--warmup_epochs": ["40"],
    "--warmup_start_lr": ["0.0"],
    "--min_lr": ["0.0"],
}
# facebookresearch/dino main_dino.py defaults: adamw, lr 5e-4, warmup 10, min_lr 1e-6, wd 0.04 (biases and
# norms excluded), clip_grad 3.0, momentum_teacher 0.996; solo-learn dino_vit.yaml: classifier_lr 3e-3.
DINO_RECIPE = {
    **RECIPE,
    "--lr": ["5e-4"],
    "--classifier_lr": ["3e-3"],
    "--weight_decay": ["0.04"],
    "--warmup_epochs": ["10"],
    "--min_lr": ["1e-6"],
    "--exclude_bias_n_norm": [],
    "--clip_grad": ["3.0"],
    "--base_tau_momentum": ["0.996"],
    # main_dino.py: --weight_decay_end 0.4, --drop_path_rate 0.1, global crops of area (0.4, 1),
    # 8 local crops of area (0.05, 0.4) with blur p 0.5 (96 px for 224 px; 16 px on CIFAR's 32)
    "--weight_decay_end": ["0.4"],
    "--drop_path_rate": ["0.1"],
    "--min_scale": ["0.4"],
    "--num_small_crops": ["8"],
    "--small_crop_size": ["16"],
    "--small_crop_min_scale": ["0.05"],
    "--small_crop_max_scale": ["0.4"],
    "--small_crop_gaussian_prob": ["0.5"],
}
# moco-v3 vits.py stop_grad_conv1 (CONFIG.md: --stop-grad-conv1 for ViT-Small)
MOCOV3_RECIPE = {**RECIPE, "--freeze_patch_embed": []}
# the ResNet scripts' optimiser flags that the ViT recipe replaces (LARS and its switches)
REPLACED = {"--eta_lars", "--grad_clip_lars", "--exclude_bias_n_norm"}


def _recipe(path: Path) -> dict:
    return {"dino": DINO_RECIPE, "mocov3": MOCOV3_RECIPE}.get(path.stem.split("_")[0], RECIPE)


def _flags(path: Path) -> list[tuple[str, list[str]]]:
    return split_flags(parse_script(path.read_text(), {"DATA_DIR": "/data"}))


def test_both_methods_both_variants_are_shipped():
    assert [p.name for p in VIT_SCRIPTS] == [
        f"{m}{v}.sh" for m in ("barlow", "byol", "dino", "mocov3") for v in ("", "_distill")
    ]
    assert [p.name for p in IN100_VIT_SCRIPTS] == [f"{m}{v}.sh" for m in ("dino", "mocov3") for v in ("", "_distill")]


@pytest.mark.parametrize("path", VIT_SCRIPTS, ids=[p.name for p in VIT_SCRIPTS])
def test_vit_script_is_the_resnet_script_with_the_vit_recipe(path: Path):
    ours = dict(_flags(path))
    resnet = dict(_flags(SCRIPT_ROOT / "cifar" / path.name))
    recipe = _recipe(path)
    for flag, value in recipe.items():
        assert ours.get(flag) == value, f"{path.name}: {flag} {ours.get(flag)} (recipe: {value})"
    assert not (REPLACED - set(recipe)) & set(ours), f"{path.name}: LARS switches left in a ViT script"
    same = {f: v for f, v in resnet.items() if f not in recipe and f not in REPLACED and f != "--name"}
    assert {f: ours.get(f) for f in same} == same, f"{path.name}: differs from cifar/{path.name} beyond the recipe"
    assert ours["--name"][0] == resnet["--name"][0].replace("-cifar100", "-vit-cifar100")
    args = parse_args(parse_script(path.read_text(), {"DATA_DIR": "/data"}))
    assert (args.backbone, args.patch_size, args.optimizer) == ("vit_small", 4, "adamw")
    assert args.precision == "auto" and not args.lars
    text = path.read_text()
    assert "scripts/pretrain/cifar/mae.yaml" in text and ("moco-v3" in text or "facebookresearch/dino" in text)


@pytest.mark.parametrize("path", IN100_VIT_SCRIPTS, ids=[p.name for p in IN100_VIT_SCRIPTS])
def test_imagenet100_vit_script(path: Path):
    ours = dict(_flags(path))
    recipe = {
        **_recipe(path),
        "--patch_size": ["16"],
        "--crop_size": ["224"],
        "--devices": ["2"],
        "--batch_size": ["128"],
        "--max_epochs": ["400"],
    }
    if path.stem.startswith("dino"):
        recipe["--small_crop_size"] = ["96"]  # main_dino.py's local crops for 224 px global ones
    for flag, value in recipe.items():
        assert ours.get(flag) == value, f"{path.name}: {flag} {ours.get(flag)} (recipe: {value})"
    if path.stem.startswith("dino"):  # DINO README, ViT-S/16 boosted run
        assert (ours["--num_prototypes"], ours["--norm_last_layer"]) == (["65536"], ["false"])
        assert (ours["--teacher_temperature"], ours["--warmup_teacher_temperature_epochs"]) == (["0.07"], ["30"])
    else:  # moco-v3 CONFIG.md: --moco-t=.2, 4096-d MLPs, 256-d output, m 0.99 cosine to 1
        assert (ours["--temperature"], ours["--proj_hidden_dim"], ours["--output_dim"]) == (["0.2"], ["4096"], ["256"])
        assert (ours["--base_tau_momentum"], ours["--final_tau_momentum"]) == (["0.99"], ["1.0"])
    args = parse_args(parse_script(path.read_text(), {"DATA_DIR": "/data"}))
    assert (args.backbone, args.optimizer, args.strategy, args.dataset) == ("vit_small", "adamw", "ddp", "imagenet100")
    assert args.freeze_patch_embed == path.stem.startswith("mocov3")
    assert args.num_small_crops == (8 if path.stem.startswith("dino") else 0)


@pytest.mark.slow
def test_vit_cassle_script_smoke_through_launcher(tmp_path):
    """cifar-vit/byol_distill.sh through job_launcher.py: tasks 0 and 1 (distiller) on vit_tiny."""
    data = tmp_path / "cifar"
    data.mkdir()
    _fake_cifar100(data)
    env = {**os.environ, "DATA_DIR": str(data), "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    tiny = [
        "--backbone",
        "vit_tiny",
        "--crop_size",
        "16",
        "--max_epochs",
        "1",
        "--batch_size",
        "8",
        "--online_eval_batch_size",
        "8",
        "--num_workers",
        "0",
        "--proj_hidden_dim",
        "32",
        "--output_dim",
        "16",
        "--pred_hidden_dim",
        "32",
        "--distill_proj_hidden_dim",
        "32",
        "--limit_train_batches",
        "2",
        "--limit_val_batches",
        "1",
        "--accelerator",
        "cpu",
        "--devices",
        "1",
        "--precision",
        "32",
        "--no_progress_bar",
        "--num_tasks",
        "2",
    ]
    exp = tmp_path / "exp"
    _launch(SCRIPT_ROOT / "cifar-vit" / "byol_distill.sh", exp, tiny, env)
    for t in range(2):
        assert (exp / f"task{t}" / "last.ckpt").is_file(), f"task {t} left no checkpoint"


@pytest.mark.slow
def test_dino_vit_multicrop_script_smoke_through_launcher(tmp_path):
    """cifar-vit/dino_distill.sh as shipped (multi-crop, drop path, wd schedule) through the launcher
    on vit_tiny with 16 px global and 8 px small crops: tasks 0 and 1 (knowledge distiller)."""
    data = tmp_path / "cifar"
    data.mkdir()
    _fake_cifar100(data)
    env = {**os.environ, "DATA_DIR": str(data), "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    tiny = ["--backbone", "vit_tiny", "--crop_size", "16", "--small_crop_size", "8", "--max_epochs", "1"]
    tiny += ["--batch_size", "8", "--online_eval_batch_size", "8", "--num_workers", "0", "--num_prototypes", "20"]
    tiny += ["--proj_hidden_dim", "32", "--output_dim", "16", "--distill_proj_hidden_dim", "32"]
    tiny += ["--limit_train_batches", "2", "--limit_val_batches", "1", "--accelerator", "cpu", "--devices", "1"]
    tiny += ["--precision", "32", "--no_progress_bar", "--num_tasks", "2"]
    exp = tmp_path / "exp"
    _launch(SCRIPT_ROOT / "cifar-vit" / "dino_distill.sh", exp, tiny, env)
    for t in range(2):
        assert (exp / f"task{t}" / "last.ckpt").is_file(), f"task {t} left no checkpoint"
    assert "train/distill_loss" in (exp / "task1" / "logs" / "metrics.csv").read_text()
