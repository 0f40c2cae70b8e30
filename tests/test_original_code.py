"""Coming from the original cassle code: its scripts (flags as facts) and checkpoints work here."""

from __future__ import annotations

import contextlib
import io
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

import main_continual
import main_linear
from cassle.continual import launcher, task_process
from cassle.utils.args import module_available, parse_args
from cassle.utils.original_checkpoint import KEY_MAP, map_key, translate

REPO = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- original-format scripts
# Flags of the original repository's scripts, one per line as there (facts, not its code).
SETTINGS = {
    "cifar": [
        "--dataset cifar100",
        "--encoder resnet18",
        "--data_dir $DATA_DIR",
        "--split_strategy class",
        "--max_epochs 500",
        "--num_tasks 5",
        "--gpus 0",
        "--precision 16",
        "--optimizer sgd",
        "--lars",
        "--grad_clip_lars",
        "--eta_lars 0.02",
        "--exclude_bias_n_norm",
        "--scheduler warmup_cosine",
        "--lr 0.3",
        "--classifier_lr 0.1",
        "--weight_decay 1e-4",
        "--batch_size 256",
        "--num_workers 5",
        "--brightness 0.4",
        "--contrast 0.4",
        "--saturation 0.2",
        "--hue 0.1",
        "--gaussian_prob 0.0 0.0",
        "--solarization_prob 0.0 0.2",
        "--min_scale 0.08",
    ],
    "imagenet-100-class": [
        "--dataset imagenet100",
        "--encoder resnet18",
        "--data_dir $DATA_DIR",
        "--train_dir imagenet-100/train",
        "--val_dir imagenet-100/val",
        "--split_strategy class",
        "--max_epochs 400",
        "--num_tasks 5",
        "--gpus 0,1",
        "--accelerator ddp",
        "--sync_batchnorm",
        "--num_workers 5",
        "--precision 16",
        "--optimizer sgd",
        "--lars",
        "--grad_clip_lars",
        "--eta_lars 0.02",
        "--exclude_bias_n_norm",
        "--scheduler warmup_cosine",
        "--lr 0.4",
        "--weight_decay 1e-5",
        "--batch_size 128",
        "--brightness 0.4",
        "--contrast 0.4",
        "--saturation 0.2",
        "--hue 0.1",
        "--gaussian_prob 1.0 0.1",
        "--solarization_prob 0.0 0.2",
        "--dali",
        "--check_val_every_n_epoch 9999",
    ],
    "imagenet-100-data": [
        "--dataset imagenet100",
        "--encoder resnet18",
        "--data_dir $DATA_DIR",
        "--train_dir imagenet-100/train",
        "--val_dir imagenet-100/val",
        "--split_strategy data",
        "--max_epochs 400",
        "--num_tasks 5",
        "--gpus 0,1",
        "--accelerator ddp",
        "--sync_batchnorm",
        "--num_workers 5",
        "--precision 16",
        "--optimizer sgd",
        "--scheduler warmup_cosine",
        "--lr 0.4",
        "--weight_decay 1e-5",
        "--batch_size 128",
        "--brightness 0.4",
        "--contrast 0.4",
        "--saturation 0.2",
        "--hue 0.1",
        "--dali",
    ],
    "domainnet": [
        "--dataset domainnet",
        "--encoder resnet18",
        "--data_dir $DATA_DIR/domainnet",
        "--split_strategy domain",
        "--max_epochs 200",
        "--num_tasks 6",
        "--gpus 0,1,2,3",
        "--accelerator ddp",
        "--sync_batchnorm",
        "--num_workers 5",
        "--precision 16",
        "--optimizer sgd",
        "--lars",
        "--grad_clip_lars",
        "--eta_lars 0.02",
        "--exclude_bias_n_norm",
        "--scheduler warmup_cosine",
        "--lr 0.4",
        "--weight_decay 1e-4",
        "--batch_size 64",
        "--brightness 0.4",
        "--contrast 0.4",
        "--saturation 0.2",
        "--hue 0.1",
        "--dali",
        "--offline",
        "--check_val_every_n_epoch 9999",
        "--disable_knn_eval",
    ],
}
COMMON = ["--wandb", "--save_checkpoint", "--project ever-learn", "--entity unitn-mhug"]
METHOD_FLAGS = {
    "barlow_twins": ["--scale_loss 0.1", "--proj_hidden_dim 2048", "--output_dim 2048"],
    "byol": [
        "--output_dim 256",
        "--proj_hidden_dim 4096",
        "--pred_hidden_dim 4096",
        "--base_tau_momentum 0.99",
        "--final_tau_momentum 1.0",
        "--momentum_classifier",
    ],
    "mocov2plus": [
        "--proj_hidden_dim 2048",
        "--queue_size 65536",
        "--temperature 0.2",
        "--base_tau_momentum 0.99",
        "--final_tau_momentum 0.999",
        "--momentum_classifier",
    ],
    "simclr": ["--temperature 0.2", "--proj_hidden_dim 2048", "--output_dim 256"],
    "swav": [
        "--proj_hidden_dim 2048",
        "--output_dim 128",
        "--queue_size 3840",
        "--num_prototypes 3000",
        "--epoch_queue_starts 100",
        "--freeze_prototypes_epochs 5",
        "--min_lr 0.0006",
    ],
    "supcon": ["--temperature 0.1", "--proj_hidden_dim 2048", "--output_dim 256", "--supervised"],
    "vicreg": [
        "--proj_hidden_dim 2048",
        "--output_dim 2048",
        "--sim_loss_weight 25",
        "--var_loss_weight 25",
        "--cov_loss_weight 1.0",
        "--min_scale 0.2",
    ],
}
DISTILLERS = {
    "barlow_twins": "decorrelative",
    "byol": "predictive",
    "mocov2plus": "contrastive",
    "simclr": "contrastive",
    "supcon": "contrastive",
    "swav": "knowledge",
    "vicreg": "predictive_mse",
}


def original_script(setting: str, method: str, distill: bool) -> str:
    lines = [
        "python3 main_continual.py",
        *SETTINGS[setting],
        f"--name {method}-{setting}{'-distill' if distill else ''}",
        *COMMON,
        f"--method {'simclr' if method == 'supcon' else method}",
        *METHOD_FLAGS[method],
    ]
    if distill:
        lines += ["--task_idx 1", f"--distiller {DISTILLERS[method]}", "--pretrained_model $PRETRAINED_PATH"]
    return " \\\n    ".join(lines) + "\n"


def original_linear_script(setting: str, lr: float) -> str:
    data = SETTINGS[setting][:4] + [f for f in SETTINGS[setting] if f.startswith(("--train_dir", "--val_dir"))]
    lines = [
        "python3 main_linear.py",
        *dict.fromkeys(data),
        "--num_tasks 5",
        "--max_epochs 100",
        "--gpus 0",
        "--precision 16",
        "--optimizer sgd",
        "--scheduler step",
        f"--lr {lr}",
        "--lr_decay_steps 60 80",
        "--weight_decay 0",
        "--batch_size 256",
        "--num_workers 8",
        "--dali",
        "--name linear-eval",
        "--pretrained_feature_extractor $PRETRAINED_PATH",
        "--project ever-learn",
        "--entity unitn-mhug",
        "--wandb",
        "--save_checkpoint",
    ]
    return " \\\n    ".join(lines) + "\n"


def _quiet(fn, *args, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = fn(*args, **kwargs)
    return rc, out.getvalue() + err.getvalue()


@pytest.fixture
def env(tmp_path, monkeypatch):
    dummy = tmp_path / "previous.ckpt"
    torch.save({"state_dict": {}}, dummy)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PRETRAINED_PATH", str(dummy))
    if not module_available("wandb"):  # the scripts say --wandb
        monkeypatch.setattr(launcher, "_split_extra", _with_extra(launcher._split_extra, ["--no-wandb"]))
    return tmp_path


def _with_extra(split, extra):
    def wrapped(argv):
        own, rest = split(argv)
        return own, [*rest, *extra]

    return wrapped


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_original_scripts_parse_and_plan(setting, env, monkeypatch):
    """Every method, fine-tuning and CaSSLe, through the launcher's --dry_run (which validates
    every task's arguments with main_continual.py's parser) and main_continual's parser itself."""
    for method in METHOD_FLAGS:
        if setting == "cifar" and method in ("mocov2plus", "supcon"):
            continue  # the original has no CIFAR MoCo or SupCon scripts
        for distill in (False, True):
            script = env / f"{setting}-{method}-{distill}.sh"
            script.write_text(original_script(setting, method, distill))
            if distill:  # the original's CaSSLe scripts start at task 1 from PRETRAINED_PATH
                monkeypatch.setenv("PRETRAINED_PATH", str(env / "previous.ckpt"))
            else:  # fine-tuning starts at task 0: a leftover PRETRAINED_PATH is refused (issue 9)
                monkeypatch.delenv("PRETRAINED_PATH", raising=False)
            rc, out = _quiet(
                launcher.main,
                ["--script", str(script), "--experiment_dir", str(env / "exp" / script.stem), "--dry_run"],
                repo_root=str(REPO),
            )
            assert rc == 0, out
            first = 1 if distill else 0
            assert f"task {first}: run" in out and "task 4: run" in out
            argv = [a for a in out.splitlines() if a.startswith(("/", "python")) and "main_continual.py" in a][0]
            args = parse_args(argv.split()[2:])
            assert args.method == method.replace("supcon", "simclr") and args.backbone == "resnet18"
            assert args.supervised == (method == "supcon") if method in ("simclr", "supcon") else True
            gpus = next(f.split()[1] for f in SETTINGS[setting] if f.startswith("--gpus"))
            assert args.accelerator == "gpu" and args.devices == [int(g) for g in gpus.split(",")]
            assert args.strategy == ("ddp" if "--accelerator ddp" in SETTINGS[setting] else "auto")
            assert args.precision == "16-mixed" and args.lars == ("--lars" in SETTINGS[setting])
            if method in ("byol", "mocov2plus"):
                assert args.momentum_classifier
            if setting == "domainnet":
                assert args.wandb_online is False and args.knn_eval is False


@pytest.mark.parametrize("setting", ["cifar", "imagenet-100-class", "domainnet"])
def test_original_linear_scripts_parse(setting, env, monkeypatch):
    text = original_linear_script(setting, 3.0).replace("$PRETRAINED_PATH", "x.ckpt")
    text = text.replace("$DATA_DIR", "/data")
    argv = text.replace("\\\n", " ").split()[2:]
    opts = main_linear.parse_args(argv + ([] if module_available("wandb") else ["--no-wandb"]))
    assert opts.accelerator == "gpu" and opts.devices == 1 and opts.backbone == "resnet18"
    assert opts.lr == 3.0 and opts.lr_decay_steps == [60, 80] and opts.pretrained_feature_extractor == "x.ckpt"


# --------------------------------------------------------------------------- --gpus / --accelerator / --devices
BASE = ["--method", "byol", "--dataset", "synthetic"]


@pytest.mark.parametrize(
    "flags,accelerator,devices",
    [
        (["--gpus", "0"], "gpu", [0]),
        (["--gpus", "0,1"], "gpu", [0, 1]),
        (["--gpus", "0", "--accelerator", "cpu", "--devices", "1"], "cpu", 1),
        (["--gpus", "0,1", "--accelerator", "cpu"], "cpu", "auto"),
        (["--accelerator", "cpu", "--devices", "1", "--gpus", "2"], "gpu", [2]),
        (["--gpus", "0,1,2,3", "--devices", "2"], "gpu", 2),
        (["--gpus", "0,1", "--accelerator", "ddp"], "gpu", [0, 1]),
    ],
)
def test_last_of_gpus_accelerator_devices_wins(flags, accelerator, devices):
    args = parse_args(BASE + flags)
    assert (args.accelerator, args.devices) == (accelerator, devices)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message is about a machine without a GPU")
def test_gpu_message_fits_what_was_typed(tmp_path):
    for flags, said in (
        (["--gpus", "0"], "--gpus 0 asks for a GPU"),
        (["--accelerator", "gpu"], "--accelerator gpu asks for a GPU"),
        (["--gpus", "0,1", "--accelerator", "ddp"], "--accelerator ddp asks for a GPU"),
    ):
        with pytest.raises(ValueError, match=said) as err:
            main_continual.check_task_args(parse_args(BASE + flags))
        assert "--accelerator cpu --devices 1" in str(err.value)
    main_continual.check_task_args(parse_args(BASE + ["--gpus", "0", "--accelerator", "cpu", "--devices", "1"]))


def test_unsupported_original_flag_is_named():
    with pytest.raises(SystemExit):
        parse_args(BASE + ["--multicrop"])
    rc, out = _quiet(_exit_code, parse_args, BASE + ["--auto_umap"])
    assert rc == 2 and "--auto_umap" in out and "not part of this project" in out


def _exit_code(fn, *args):
    try:
        fn(*args)
    except SystemExit as stop:
        return stop.code
    return 0


def test_launcher_validates_task_args_before_starting(env, monkeypatch):
    script = env / "byol.sh"
    script.write_text(original_script("cifar", "byol", False))
    monkeypatch.delenv("PRETRAINED_PATH")  # a fine-tuning run from task 0
    started = []
    monkeypatch.setattr(task_process, "run_task", lambda *a, **k: started.append(a) or 0)
    for extra in (["--dry_run"], []):
        exp = env / f"exp{len(extra)}"
        rc, out = _quiet(
            launcher.main,
            ["--script", str(script), "--experiment_dir", str(exp), *extra, "--", "--no_such_flag"],
            repo_root=str(REPO),
        )
        assert rc == 2 and "--no_such_flag" in out and "task 0" in out, out
        assert not exp.exists()
    assert not started


# --------------------------------------------------------------------------- original checkpoints
def _mlp(*dims, bn=True):
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers += [nn.BatchNorm1d(dims[i + 1])] if bn else []
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def original_checkpoint(
    method: str,
    *,
    hidden: int = 64,
    out: int = 32,
    classes: int = 100,
    cifar: bool = True,
    distiller: str | None = None,
    prototypes: int = 20,
) -> dict:
    """A Lightning 1.5 checkpoint as the original code wrote it: its module names and shapes."""
    encoder = torchvision.models.resnet18()
    encoder.fc = nn.Identity()
    if cifar:
        encoder.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
        encoder.maxpool = nn.Identity()
    parts = {"encoder": encoder, "classifier": nn.Linear(512, classes)}
    if method in ("barlow_twins", "vicreg"):
        parts["projector"] = _mlp(512, hidden, hidden, out)
    elif method in ("simclr", "mocov2plus"):
        parts["projector"] = _mlp(512, hidden, out, bn=False)
    else:
        parts["projector"] = _mlp(512, hidden, out)
    if method in ("byol", "mocov2plus"):
        parts["momentum_encoder"] = encoder
        parts["momentum_projector"] = parts["projector"]
        parts["momentum_classifier"] = nn.Linear(512, classes)
    if method == "byol":
        parts["predictor"] = _mlp(out, hidden, out)
    if distiller:
        parts["frozen_encoder"], parts["frozen_projector"] = encoder, parts["projector"]
        parts["distill_predictor"] = _mlp(out, hidden, out)
    state = OrderedDict(
        (f"{name}.{k}", v.clone()) for name, module in parts.items() for k, v in module.state_dict().items()
    )
    if method == "swav":
        state["prototypes.weight_g"] = torch.rand(prototypes, 1) + 0.5
        state["prototypes.weight_v"] = torch.randn(prototypes, out)
        state["queue"] = torch.zeros(2, 3840 // 2, out)  # queue_size // world_size rows
    if method == "mocov2plus":
        state["queue"] = nn.functional.normalize(torch.randn(2, out, 64), dim=1)
        state["queue_ptr"] = torch.zeros(1, dtype=torch.long)
    return {
        "epoch": 499,
        "global_step": 97500,
        "pytorch-lightning_version": "1.5.10",
        "state_dict": state,
        "callbacks": {},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.3, "params": [0]}]}],
        "lr_schedulers": [{"last_epoch": 500, "base_lrs": [0.3]}],
        "native_amp_scaling_state": {
            "scale": 65536.0,
            "growth_factor": 2.0,
            "backoff_factor": 0.5,
            "growth_interval": 2000,
            "_growth_tracker": 0,
        },
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"current": {"completed": 499}}}},
    }


def _fake_cifar100(root: Path) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("train_0", 200), ("test", 100)):
        np.savez(
            root / f"{name}.npz",
            x=rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8),
            y=np.arange(n, dtype=np.int64) % 100,
        )


def test_key_table_and_unknown_keys():
    assert map_key("encoder.layer1.0.conv1.weight") == "backbone.layer1.0.conv1.weight"
    assert map_key("momentum_encoder.bn1.weight") == "momentum_backbone.bn1.weight"
    assert map_key("frozen_encoder.conv1.weight") == "frozen_backbone.conv1.weight"
    assert map_key("distill_predictor.0.weight") == "distiller.predictor.0.weight"
    assert map_key("prototypes.weight_g") == "prototypes.weight_g" and map_key("queue") == "queue"
    assert len({new for _, new in KEY_MAP}) == len(KEY_MAP)
    with pytest.raises(ValueError, match=r"nnclr_queue"):
        translate({"encoder.conv1.weight": torch.zeros(1), "nnclr_queue": torch.zeros(1)}, "x.ckpt")


def test_original_checkpoint_linear_evaluation(tmp_path):
    """main_linear.py --pretrained_feature_extractor with the original linear script's flags."""
    ckpt = original_checkpoint("byol")
    path = tmp_path / "byol-cifar100-task4-ep=499-abcd1234.ckpt"
    torch.save(ckpt, path)
    _fake_cifar100(tmp_path / "cifar")
    text = original_linear_script("cifar", 3.0).replace("$PRETRAINED_PATH", str(path))
    argv = text.replace("$DATA_DIR", str(tmp_path / "cifar")).replace("\\\n", " ").split()[2:]
    cpu = [
        "--accelerator",
        "cpu",
        "--devices",
        "1",
        "--precision",
        "32",
        "--mode",
        "fast",
        "--max_epochs",
        "1",
        "--num_workers",
        "0",
        "--no-wandb",
        "--output_dir",
        str(tmp_path / "out"),
    ]
    rc, out = _quiet(main_linear.main, argv + cpu)
    assert rc == 0, out
    assert "loaded: backbone.* (120, from encoder.*)" in out
    assert "momentum_backbone.* (120)" in out and "predictor.* (" in out  # ignored, named
    from cassle.eval.linear import load_backbone_from_checkpoint

    backbone, _, hp = load_backbone_from_checkpoint(str(path), 100)
    assert hp["backbone"] == "resnet18" and hp["cifar_stem"] and hp["method"] == "byol"
    assert torch.equal(
        backbone.state_dict()["layer3.1.conv2.weight"], ckpt["state_dict"]["encoder.layer3.1.conv2.weight"]
    )
    rc, out = _quiet(main_linear.main, [*argv, *cpu, "--encoder", "resnet50"])
    assert rc == 2 and "resnet18" in out and "--encoder/--backbone resnet50" in out


def test_original_swav_checkpoint_loads(tmp_path):
    """Weight-normalised prototypes map 1:1; the original's per-process queue (another size) is
    ignored and reported, as this code refills its queue every task."""
    from cassle.utils.checkpoint import load_pretrained, read_checkpoint
    from tests.helpers import tiny_args

    ckpt = original_checkpoint("swav", classes=4)
    path = tmp_path / "swav-task0.ckpt"
    torch.save(ckpt, path)
    args = tiny_args(
        "swav",
        "--backbone",
        "resnet18",
        "--num_tasks",
        "2",
        "--task_idx",
        "1",
        "--proj_hidden_dim",
        "64",
        "--output_dim",
        "32",
        distiller="knowledge",
    )
    args.num_classes = 4
    model = main_continual.build_model(args)
    _, out = _quiet(load_pretrained, model, read_checkpoint(str(path), hints=args), str(path))
    state = model.state_dict()
    for key in ("prototypes.weight_g", "prototypes.weight_v", "projector.3.weight", "backbone.conv1.weight"):
        assert torch.equal(state[key], ckpt["state_dict"][key.replace("backbone.", "encoder.")]), key
    assert "ignored: queue" in out, out


def test_original_cassle_checkpoint_parts_carry_over(tmp_path):
    """An original task-1 CaSSLe checkpoint (frozen_encoder, distill_predictor) continuing at task 2."""
    from cassle.utils.checkpoint import load_pretrained, read_checkpoint
    from tests.helpers import tiny_args

    ckpt = original_checkpoint("byol", distiller="predictive", classes=4)
    path = tmp_path / "byol-task1.ckpt"
    torch.save(ckpt, path)
    args = tiny_args(
        "byol",
        "--backbone",
        "resnet18",
        "--num_tasks",
        "3",
        "--task_idx",
        "2",
        "--proj_hidden_dim",
        "64",
        "--output_dim",
        "32",
        "--pred_hidden_dim",
        "64",
        "--distill_proj_hidden_dim",
        "64",
        "--momentum_classifier",
        distiller="predictive",
    )
    args.num_classes = 4
    model = main_continual.build_model(args)
    loaded = read_checkpoint(str(path), hints=args)
    _, out = _quiet(load_pretrained, model, loaded, str(path))
    state = model.state_dict()
    for theirs, ours in (
        ("distill_predictor.3.weight", "distiller.predictor.3.weight"),
        ("momentum_encoder.layer4.1.bn2.running_var", "momentum_backbone.layer4.1.bn2.running_var"),
        ("momentum_classifier.weight", "momentum_classifier.weight"),
        ("predictor.0.weight", "predictor.0.weight"),
    ):
        assert torch.equal(state[ours], ckpt["state_dict"][theirs]), ours
    loaded_line = next(line for line in out.splitlines() if "loaded:" in line)
    assert "distiller.predictor.* (9)" in loaded_line and "frozen_backbone.* (120)" in loaded_line, out


def test_original_checkpoint_of_another_method_is_a_clear_error(tmp_path):
    path = tmp_path / "swav.ckpt"
    torch.save(original_checkpoint("swav"), path)
    argv = [
        "--method",
        "byol",
        "--dataset",
        "synthetic",
        "--num_classes",
        "100",
        "--synthetic_size",
        "200",
        "--num_tasks",
        "2",
        "--task_idx",
        "1",
        "--distiller",
        "predictive",
        "--pretrained_model",
        str(path),
        "--accelerator",
        "cpu",
        "--checkpoint_dir",
        str(tmp_path / "t1"),
    ]
    with pytest.raises(ValueError, match=r"holds a method 'swav' checkpoint .*--method byol"):
        main_continual.main(argv)
    assert not (tmp_path / "t1").exists()


def cpu_overrides(method: str) -> list[str]:
    """What a user adds after `--` to try a GPU script on a CPU, plus small sizes for a test."""
    extra = [
        "--accelerator",
        "cpu",
        "--devices",
        "1",
        "--num_tasks",
        "2",
        "--max_steps",
        "2",
        "--batch_size",
        "8",
        "--num_workers",
        "0",
        "--precision",
        "32",
        "--limit_val_batches",
        "1",
        "--proj_hidden_dim",
        "64",
        "--output_dim",
        "32",
        "--distill_proj_hidden_dim",
        "64",
        "--no_progress_bar",
    ]
    return extra + {"byol": ["--pred_hidden_dim", "64"], "swav": ["--num_prototypes", "20"]}.get(method, [])


def _in_process(command, log_path, header="", **_runner_options):
    """The launcher's task runner, without a subprocess: main_continual.main on the task's argv."""
    rc, out = _quiet(_exit_code_of_main, command[2:])
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    Path(log_path).write_text(out)
    return rc


def _exit_code_of_main(argv):
    try:
        return main_continual.main(argv)
    except ValueError as err:
        print(f"error: {err}")
        return 2


@pytest.mark.parametrize(
    "method",
    [
        "byol",  # momentum encoder, momentum classifier, predictor
        *(pytest.param(m, marks=pytest.mark.slow) for m in ("swav", "barlow_twins", "simclr", "vicreg")),
    ],
)
def test_original_cifar_scripts_run_from_original_checkpoints(method, env, monkeypatch):
    """The original CIFAR CaSSLe scripts (task 1 from PRETRAINED_PATH = an original checkpoint)
    through the launcher with `-- --accelerator cpu --devices 1` and small sizes: a few steps each
    (tasks run in-process: the launcher's subprocess path is tested elsewhere)."""
    _fake_cifar100(env / "data")
    monkeypatch.setattr(task_process, "run_task", _in_process)
    if True:
        ckpt = original_checkpoint(method)
        pretrained = env / f"{method}-task0.ckpt"
        torch.save(ckpt, pretrained)
        monkeypatch.setenv("PRETRAINED_PATH", str(pretrained))
        script = env / f"{method}_distill.sh"
        script.write_text(original_script("cifar", method, True))
        exp = env / "runs" / method
        rc, out = _quiet(
            launcher.main,
            ["--script", str(script), "--experiment_dir", str(exp), "--", *cpu_overrides(method)],
            repo_root=str(REPO),
        )
        log = (exp / "task1" / "train.log").read_text() if (exp / "task1" / "train.log").exists() else ""
        assert rc == 0, out + log
        assert "original cassle checkpoint" in log and "loaded: backbone.* (120)" in log, log[-3000:]
        new = torch.load(exp / "task1" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
        # The frozen model CaSSLe distils from is the original checkpoint's encoder.
        assert torch.equal(
            new["frozen_backbone.layer2.0.conv1.weight"], ckpt["state_dict"]["encoder.layer2.0.conv1.weight"]
        )
        assert json.loads((exp / "task1" / "args.json").read_text())["task_idx"] == 1


def test_readme_has_a_section_for_users_of_the_original_code():
    text = (REPO / "README.md").read_text()
    assert "## Coming from the original code" in text and "original_checkpoint.py" in text
