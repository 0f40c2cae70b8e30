"""ViT backbones (timm): geometry for the crop, the CLS-token feature, a continual task 0 and
task 1 with a distiller on `vit_tiny` (CPU, 16 px crops, a few steps), and the checkpoints in
`main_linear.py`. One torch thread (the suite's rule on the shared 2-core machine)."""

from __future__ import annotations

import json

import pytest
import torch

import main_linear
from cassle.backbones import BACKBONES, build_backbone, default_patch_size, vit_kwargs
from cassle.continual import manifest as mf
from cassle.eval.linear import load_backbone_from_checkpoint
from main_continual import run_task
from tests.helpers import tiny_args


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_sizes_patch_and_position_embeddings():
    # (embed, depth, heads) of solo-learn's solo/backbones/vit/vit.py, written out
    for name, (dim, heads) in {"vit_tiny": (192, 3), "vit_small": (384, 6)}.items():
        net, feat_dim = build_backbone(name, cifar=True)  # CIFAR: 32 px crop, patch 4
        assert feat_dim == dim == net.num_features and len(net.blocks) == 12
        assert net.blocks[0].attn.num_heads == heads
        assert net.patch_embed.patch_size == (4, 4) and tuple(net.pos_embed.shape) == (1, 8 * 8 + 1, dim)
    assert "vit_base" in BACKBONES
    net, _ = build_backbone("vit_tiny", img_size=224)  # ImageNet crop: ViT-Ti/16, 14 x 14 + CLS
    assert net.patch_embed.patch_size == (16, 16) and net.pos_embed.shape[1] == 14 * 14 + 1
    net, _ = build_backbone("vit_tiny", img_size=16, patch_size=2)
    assert net.pos_embed.shape[1] == 8 * 8 + 1
    assert [default_patch_size(s) for s in (32, 64, 96, 224)] == [4, 4, 16, 16]
    with pytest.raises(ValueError, match="--patch_size 64 does not fit a 32 px crop"):
        build_backbone("vit_tiny", img_size=32, patch_size=64)


def test_vit_kwargs_rule():
    assert vit_kwargs("resnet18", [32], None, True) == {}
    assert vit_kwargs("vit_small", None, None, small_images=True) == {"img_size": 32, "patch_size": 4}
    assert vit_kwargs("vit_small", None, None, small_images=False) == {"img_size": 224, "patch_size": 16}
    assert vit_kwargs("vit_small", [96, 32], 8, small_images=False) == {"img_size": 96, "patch_size": 8}


def test_feature_is_the_normalised_cls_token():
    torch.manual_seed(0)
    net, dim = build_backbone("vit_tiny", img_size=16)
    net.eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        tokens = net.forward_features(x)  # (B, 1 + 16, dim), after the final LayerNorm
        out = net(x)
        assert tokens.shape == (3, 17, dim)
        assert torch.equal(out, tokens[:, 0])
        assert not torch.allclose(out, tokens[:, 1:].mean(1))  # not the mean of the patch tokens
        # another input size interpolates the position embeddings (DINO's small crops)
        assert net(torch.randn(2, 3, 8, 8)).shape == (2, dim)


VIT = [
    "--backbone",
    "vit_tiny",
    "--crop_size",
    "16",
    "--limit_train_batches",
    "2",
    "--limit_val_batches",
    "1",
    "--optimizer",
    "adamw",
    "--lr",
    "1.5e-4",
    "--weight_decay",
    "0.1",
    "--warmup_start_lr",
    "0",
    "--scheduler_interval",
    "step",
]


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    """BYOL + predictive on vit_tiny: task 0 (no distiller) and task 1 (distiller), 2 steps each."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("vit_run")
    manifest = mf.new_manifest("vit", None, [], range(2))
    mf.save_manifest(str(root), manifest)
    models = []
    for t in range(2):
        extra = [*VIT, "--num_tasks", "2", "--task_idx", str(t)]
        if t:
            extra += ["--pretrained_model", str(root / "task0" / "last.ckpt")]
        trainer = run_task(tiny_args("byol", *extra, distiller="predictive" if t else None, tmp_path=root / f"task{t}"))
        models.append(trainer.lightning_module)
        mf.update_task(str(root), manifest, t, "done", returncode=0, checkpoint=str(root / f"task{t}" / "last.ckpt"))
    torch.set_num_threads(n)
    return root, models


def test_continual_task0_and_task1_with_distiller(vit_run):
    root, (task0, task1) = vit_run
    assert task0.distiller is None if hasattr(task0, "distiller") else True
    assert task1.distiller is not None
    assert type(task1.backbone).__name__ == "VisionTransformer" and task1.features_dim == 192
    assert task1.frozen_backbone.pos_embed.shape == task1.backbone.pos_embed.shape == (1, 17, 192)
    # the frozen snapshot is task 0's final backbone; task 1 trained away from it
    t0 = torch.load(root / "task0" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    for k, v in task1.frozen_backbone.state_dict().items():
        assert torch.equal(v, t0[f"backbone.{k}"]), k
    assert not torch.equal(task1.backbone.blocks[0].attn.qkv.weight, t0["backbone.blocks.0.attn.qkv.weight"])
    for t in range(2):
        rows = (root / f"task{t}" / "logs" / "metrics.csv").read_text()
        assert "train/ssl_loss" in rows
    opt = task1.trainer.optimizers[0]
    assert type(opt).__name__ == "AdamW"


def test_vit_checkpoint_loads_in_main_linear(vit_run, capsys):
    root, (_, task1) = vit_run
    backbone, dim, hp = load_backbone_from_checkpoint(str(root / "task1" / "last.ckpt"))
    assert dim == 192 and hp["backbone"] == "vit_tiny" and hp["patch_size"] is None
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(backbone(x), task1.backbone.eval()(x))
    out = root / "eval"
    rc = main_linear.main(
        [
            "--run_dir",
            str(root),
            "--output_dir",
            str(out),
            "--max_epochs",
            "2",
            "--num_workers",
            "0",
            "--accelerator",
            "cpu",
        ]
    )
    assert rc == 0, capsys.readouterr().err[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert len(res["accuracy_matrix"]) == 2 and all(len(r) == 2 for r in res["accuracy_matrix"])
