"""Issue 22's ViT recipes: DINO's weight-decay schedule, multi-crop and drop path, MoCo v3's frozen
random patch projection (cassle/utils/wd_schedule.py, cassle/data/multicrop.py,
cassle/methods/recipe.py). One torch thread (the suite's rule on the shared 2-core machine)."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from cassle.backbones import build_backbone
from cassle.data import ContinualDataModule
from cassle.utils.wd_schedule import weight_decay_at
from main_continual import build_model, check_task_args, run_task
from tests.helpers import tiny_args


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- weight decay
def test_weight_decay_schedule_values_written_out():
    # DINO: 0.04 -> 0.4; wd_k = end + (base - end) (1 + cos(pi k / K)) / 2, K = 100
    assert weight_decay_at(0, 100, 0.04, 0.4) == pytest.approx(0.04, abs=1e-15)
    assert weight_decay_at(50, 100, 0.04, 0.4) == pytest.approx(0.22, abs=1e-15)  # the midpoint
    assert weight_decay_at(100, 100, 0.04, 0.4) == pytest.approx(0.4, abs=1e-15)
    assert weight_decay_at(250, 100, 0.04, 0.4) == pytest.approx(0.4, abs=1e-15)  # held past the end
    # k = 25: 0.4 - 0.36 (1 + sqrt(2)/2) / 2
    assert weight_decay_at(25, 100, 0.04, 0.4) == pytest.approx(0.4 - 0.18 * (1 + math.sqrt(0.5)), abs=1e-15)
    values = [weight_decay_at(k, 100, 0.04, 0.4) for k in range(101)]
    assert all(a < b for a, b in zip(values, values[1:]))  # rises monotonically


class _WDRecorder(pl.Callback):
    """(global_step, {group name: weight decay}) just before each optimiser step."""

    def __init__(self, stop_after_epoch: int | None = None):
        self.rows: list[tuple[int, dict[str, float]]] = []
        self.stop_after_epoch = stop_after_epoch

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.rows.append((trainer.global_step, {g["name"]: g["weight_decay"] for g in optimizer.param_groups}))

    def on_train_epoch_end(self, trainer, module):
        if self.stop_after_epoch is not None and trainer.current_epoch == self.stop_after_epoch:
            trainer.should_stop = True  # an interrupted task: its last.ckpt is at this epoch's end


WD_FLAGS = [
    "--weight_decay",
    "0.04",
    "--weight_decay_end",
    "0.4",
    "--exclude_bias_n_norm",
    "--max_epochs",
    "2",
    "--limit_train_batches",
    "2",
    "--limit_val_batches",
    "1",
    "--warmup_epochs",
    "0",
]


def test_weight_decay_schedule_per_step_and_exact_after_resume(tmp_path):
    full = _WDRecorder()
    run_task(tiny_args("dino", *WD_FLAGS, tmp_path=tmp_path / "full"), extra_callbacks=[full])
    total = 4  # 2 epochs x 2 batches
    assert [k for k, _ in full.rows] == [0, 1, 2, 3]
    for k, groups in full.rows:
        want = 0.4 + (0.04 - 0.4) * (1 + math.cos(math.pi * k / total)) / 2
        scheduled = {n for n, wd in groups.items() if wd == pytest.approx(want, abs=1e-12)}
        # the decayed groups follow the schedule; biases / norms and the classifier keep 0
        assert {"backbone", "projector", "prototypes"} <= scheduled, (k, groups)
        assert groups["classifier"] == 0.0 and groups["backbone_bias_norm"] == 0.0
    assert full.rows[1][1]["backbone"] != full.rows[2][1]["backbone"]
    # interrupted after epoch 0, then resumed: steps 2 and 3 get the same values
    cut = _WDRecorder(stop_after_epoch=0)
    run_task(tiny_args("dino", *WD_FLAGS, tmp_path=tmp_path / "cut"), extra_callbacks=[cut])
    assert [k for k, _ in cut.rows] == [0, 1]
    resumed = _WDRecorder()
    args = tiny_args(
        "dino", *WD_FLAGS, "--resume_from_checkpoint", str(tmp_path / "cut" / "last.ckpt"), tmp_path=tmp_path / "cut"
    )
    run_task(args, extra_callbacks=[resumed])
    assert [k for k, _ in resumed.rows] == [2, 3]
    assert resumed.rows == full.rows[2:]


# --------------------------------------------------------------------------- multi-crop
MULTI = ["--num_small_crops", "3", "--small_crop_size", "8"]


def test_small_crops_in_every_training_view_list(tmp_path):
    for device in ("cpu", "cpu_batched"):
        args = tiny_args("dino", *MULTI, "--data_device", device, tmp_path=tmp_path)
        dm = ContinualDataModule.from_args(args)
        settings = dm.train_view_settings
        assert [s["crop_size"] for s in settings] == [16, 16, 8, 8, 8]
        assert [(s["min_scale"], s["max_scale"]) for s in settings[2:]] == [(0.05, 0.4)] * 3
        assert [s["gaussian_prob"] for s in settings[2:]] == [0.5] * 3  # DINO's local blur
        assert len(dm.view_settings) == 2  # buffers / online eval keep the two global views
        batch = next(iter(dm.train_dataloader()))
        if device == "cpu_batched":
            batch = dm.on_after_batch_transfer(batch, 0)
        _, views, _ = batch
        assert [tuple(v.shape[-2:]) for v in views] == [(16, 16)] * 2 + [(8, 8)] * 3


def _dino_loss_written_out(student, teacher, center, t_student, t_teacher, n_views):
    s = (student.double() / t_student).chunk(n_views)
    t = F.softmax((teacher.double() - center.double()) / t_teacher, dim=-1).chunk(2)
    terms = [-(t[u] * F.log_softmax(s[v], dim=-1)).sum(-1).mean() for u in range(2) for v in range(n_views) if u != v]
    return sum(terms) / len(terms)  # 2 x 5 - 2 = 8 pairs


def test_student_sees_all_crops_teacher_only_global_ones():
    torch.manual_seed(0)
    model = build_model(tiny_args("dino", *MULTI))
    teacher_inputs, loss_inputs = [], []
    model.momentum_backbone.register_forward_hook(lambda m, i, o: teacher_inputs.append(tuple(i[0].shape)))
    model.dino_loss.register_forward_hook(lambda m, i, o: loss_inputs.append((i[0].detach(), i[1].detach(), o)))
    center = model.dino_loss.center.clone()
    views = [torch.randn(8, 3, 16, 16) for _ in range(2)] + [torch.randn(8, 3, 8, 8) for _ in range(3)]
    out = model.ssl_step(views, torch.zeros(8, dtype=torch.long))
    assert teacher_inputs == [(8, 3, 16, 16)] * 2
    ((student, teacher, loss),) = loss_inputs
    assert student.shape == (5 * 8, 20) and teacher.shape == (2 * 8, 20)
    assert model.dino_loss.num_crops == 5
    want = _dino_loss_written_out(student, teacher, center, 0.1, model.dino_loss.teacher_temp(), 5)
    torch.testing.assert_close(loss.double(), want, rtol=1e-6, atol=1e-6)
    # the online classifier and the distillers read the global crops only
    assert len(out.feats) == len(out.z) == len(out.momentum_feats) == 2


def test_distiller_uses_the_global_crops_only():
    model = build_model(tiny_args("dino", *MULTI, "--num_tasks", "2", "--task_idx", "1", distiller="knowledge"))
    frozen_inputs = []
    model.frozen_backbone.register_forward_hook(lambda m, i, o: frozen_inputs.append(tuple(i[0].shape)))
    views = [torch.randn(8, 3, 16, 16) for _ in range(2)] + [torch.randn(8, 3, 8, 8) for _ in range(3)]
    out = model.ssl_step(views, torch.zeros(8, dtype=torch.long))
    assert frozen_inputs == [(8, 3, 16, 16)] * 2
    assert torch.isfinite(out.logs["distill_loss"])


def test_small_crops_only_for_dino_and_without_strategies():
    with pytest.raises(ValueError, match="--num_small_crops is for DINO"):
        build_model(tiny_args("byol", *MULTI))
    with pytest.raises(ValueError, match="does not combine with --cl_strategy"):
        check_task_args(tiny_args("dino", *MULTI, "--cl_strategy", "replay"))


VIT_MULTI = [
    "--backbone",
    "vit_tiny",
    *MULTI,
    "--drop_path_rate",
    "0.1",
    "--weight_decay_end",
    "0.4",
    "--limit_train_batches",
    "2",
    "--limit_val_batches",
    "1",
    "--optimizer",
    "adamw",
    "--lr",
    "5e-4",
    "--weight_decay",
    "0.04",
    "--exclude_bias_n_norm",
    "--num_tasks",
    "2",
]


@pytest.mark.slow
def test_dino_vit_multicrop_cassle_two_tasks(tmp_path):
    """DINO + knowledge distiller + multi-crop + drop path + wd schedule on vit_tiny (16 px global,
    8 px small crops), task 0 then task 1, 2 steps each."""
    for t in range(2):
        extra = [*VIT_MULTI, "--task_idx", str(t)]
        if t:
            extra += ["--pretrained_model", str(tmp_path / "task0" / "last.ckpt")]
        args = tiny_args("dino", *extra, distiller="knowledge" if t else None, tmp_path=tmp_path / f"task{t}")
        trainer = run_task(args)
        assert trainer.global_step == 2
    rows = (tmp_path / "task1" / "logs" / "metrics.csv").read_text()
    assert "train/distill_loss" in rows


# --------------------------------------------------------------------------- drop path
def test_drop_path_in_the_student_only():
    torch.manual_seed(0)
    model = build_model(tiny_args("dino", "--backbone", "vit_tiny", "--drop_path_rate", "0.1"))
    rates = [getattr(b.drop_path1, "drop_prob", 0.0) for b in model.backbone.blocks]  # block 0: Identity
    # timm: linearly from 0 to the rate over the 12 blocks
    assert rates[0] == pytest.approx(0.0) and rates[-1] == pytest.approx(0.1)
    assert rates[5] == pytest.approx(0.1 * 5 / 11)
    x = torch.randn(4, 3, 16, 16)
    model.train()
    torch.manual_seed(1)
    a = model.backbone(x)
    torch.manual_seed(2)
    b = model.backbone(x)
    assert not torch.allclose(a, b), "drop path is not active in train mode"
    model.eval()
    assert torch.equal(model.backbone(x), model.backbone(x))
    model.train()  # the teacher drops nothing, also in train mode
    assert all(getattr(m, "drop_prob", 0.0) == 0.0 for m in model.momentum_backbone.modules())
    torch.manual_seed(1)
    a = model.momentum_backbone(x)
    torch.manual_seed(2)
    assert torch.equal(a, model.momentum_backbone(x))
    with pytest.raises(ValueError, match="--drop_path_rate is for the ViT backbones"):
        build_backbone("resnet18", drop_path_rate=0.1)


def test_frozen_copy_of_the_distiller_drops_nothing():
    flags = ["--backbone", "vit_tiny", "--drop_path_rate", "0.1", "--num_tasks", "2", "--task_idx", "1"]
    model = build_model(tiny_args("byol", *flags, distiller="predictive"))
    assert any(getattr(m, "drop_prob", 0.0) > 0 for m in model.backbone.modules())
    assert all(getattr(m, "drop_prob", 0.0) == 0.0 for m in model.frozen_backbone.modules())


# --------------------------------------------------------------------------- MoCo v3 patch projection
class _Snapshot(pl.Callback):
    def on_train_start(self, trainer, module):
        self.before = {k: v.detach().clone() for k, v in module.backbone.state_dict().items()}
        self.opt_ids = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}


def test_frozen_patch_embed_stays_at_init_while_the_rest_trains(tmp_path):
    args = tiny_args(
        "mocov3",
        "--backbone",
        "vit_tiny",
        "--freeze_patch_embed",
        "--optimizer",
        "adamw",
        "--lr",
        "1e-3",
        "--weight_decay",
        "0.1",
        "--limit_train_batches",
        "2",
        "--limit_val_batches",
        "1",
        "--warmup_epochs",
        "0",
        tmp_path=tmp_path,
    )
    snap = _Snapshot()
    model = run_task(args, extra_callbacks=[snap]).lightning_module
    proj = model.backbone.patch_embed.proj
    assert not proj.weight.requires_grad and not proj.bias.requires_grad
    assert id(proj.weight) not in snap.opt_ids and id(proj.bias) not in snap.opt_ids  # not in the optimiser
    after = model.backbone.state_dict()
    for k in ("patch_embed.proj.weight", "patch_embed.proj.bias"):
        assert torch.equal(after[k], snap.before[k]), f"{k} changed"
    for k in ("blocks.0.attn.qkv.weight", "pos_embed", "cls_token"):
        assert not torch.equal(after[k], snap.before[k]), f"{k} did not train"
    with pytest.raises(ValueError, match="--freeze_patch_embed is for the ViT backbones"):
        build_model(tiny_args("mocov3", "--freeze_patch_embed"))
