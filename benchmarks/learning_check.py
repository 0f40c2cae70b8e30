"""Does each method learn features? Train task 0 of a class split, then compare a linear probe on
the trained backbone with one on a randomly initialised backbone of the same architecture.

A method whose probe does not beat random init is broken, whatever its loss curve looks like.
Prints a table and writes JSON (machine, versions, command, figures).

    # CPU (minutes): tiny backbone on the digits set
    python benchmarks/learning_check.py --dataset digits --backbone tiny --epochs 10
    # GPU: ResNet-18 on real CIFAR-100 (numpy layout or torchvision folder in DATA)
    python benchmarks/learning_check.py --dataset cifar100 --data_dir DATA --backbone resnet18 \
        --epochs 30 --batch_size 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cassle.data import ContinualDataModule  # noqa: E402
from cassle.eval.linear import load_backbone_from_checkpoint, random_backbone  # noqa: E402
from cassle.eval.probe import extract_features, probe_accuracy, train_linear_probe_on_features  # noqa: E402
from cassle.utils.args import parse_args  # noqa: E402

# Per-method flags of the CIFAR recipes (REFERENCE section 4), heads shrunk for the tiny backbone.
RECIPES = {
    "barlow_twins": [
        "--optimizer",
        "lars",
        "--grad_clip_lars",
        "--exclude_bias_n_norm",
        "--lr",
        "0.3",
        "--weight_decay",
        "1e-4",
        "--scale_loss",
        "0.1",
        "--solarization_prob",
        "0.0",
        "0.2",
    ],
    "byol": [
        "--optimizer",
        "lars",
        "--grad_clip_lars",
        "--exclude_bias_n_norm",
        "--lr",
        "1.0",
        "--weight_decay",
        "1e-5",
        "--solarization_prob",
        "0.0",
        "0.2",
    ],
    "simclr": [
        "--optimizer",
        "lars",
        "--grad_clip_lars",
        "--exclude_bias_n_norm",
        "--lr",
        "0.4",
        "--weight_decay",
        "1e-5",
        "--brightness",
        "0.8",
        "--contrast",
        "0.8",
        "--saturation",
        "0.8",
        "--hue",
        "0.2",
    ],
    "mocov2plus": ["--optimizer", "sgd", "--lr", "0.3", "--weight_decay", "1e-4", "--queue_size", "4096"],
    "swav": [
        "--optimizer",
        "lars",
        "--grad_clip_lars",
        "--lr",
        "0.6",
        "--weight_decay",
        "1e-6",
        "--min_lr",
        "6e-4",
        "--num_prototypes",
        "300",
        "--epoch_queue_starts",
        "1000",
        "--freeze_prototypes_epochs",
        "1",
        "--brightness",
        "0.8",
        "--contrast",
        "0.8",
        "--saturation",
        "0.8",
        "--hue",
        "0.2",
    ],
    "vicreg": [
        "--optimizer",
        "lars",
        "--grad_clip_lars",
        "--exclude_bias_n_norm",
        "--lr",
        "0.3",
        "--weight_decay",
        "1e-4",
        "--min_scale",
        "0.2",
        "--solarization_prob",
        "0.1",
    ],
    # issue 22: bash_files/continual/cifar/<m>.sh (solo-learn's CIFAR scripts), queues shortened
    "simsiam": [
        "--optimizer",
        "sgd",
        "--lr",
        "0.5",
        "--classifier_lr",
        "0.1",
        "--weight_decay",
        "1e-5",
        "--saturation",
        "0.4",
        "--zero_init_residual",
    ],
    "nnclr": [
        "--optimizer",
        "lars",
        "--eta_lars",
        "0.02",
        "--grad_clip_lars",
        "--exclude_bias_n_norm",
        "--lr",
        "0.4",
        "--classifier_lr",
        "0.1",
        "--weight_decay",
        "1e-5",
        "--solarization_prob",
        "0.0",
        "0.2",
        "--pred_hidden_dim",
        "1024",
        "--queue_size",
        "4096",
    ],
    "ressl": [
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--classifier_lr",
        "0.1",
        "--weight_decay",
        "1e-4",
        "--brightness",
        "0.4",
        "0.0",
        "--contrast",
        "0.4",
        "0.0",
        "--saturation",
        "0.2",
        "0.0",
        "--hue",
        "0.1",
        "0.0",
        "--queue_size",
        "4096",
    ],
    # W-MSE: projections of 32 whitened in slices of 64 rows, so batches of 64 or 128 fit
    "wmse": [
        "--optimizer",
        "adam",
        "--lr",
        "3e-3",
        "--classifier_lr",
        "3e-3",
        "--weight_decay",
        "1e-6",
        "--warmup_start_lr",
        "0",
        "--min_scale",
        "0.2",
        "--output_dim",
        "32",
        "--whitening_size",
        "64",
    ],
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data_dir", default=None)
    p.add_argument("--backbone", default="tiny")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--num_tasks", type=int, default=5)
    p.add_argument("--proj_dim", type=int, default=256, help="projector hidden and output width")
    p.add_argument("--num_workers", type=int, default=2)
    p.add_argument("--output", default="benchmarks/results/learning_check.json")
    p.add_argument(
        "--extra",
        nargs=argparse.REMAINDER,
        default=[],
        help="more main_continual flags for every run, e.g. --extra --crop_size 16",
    )
    opts = p.parse_args()

    from main_continual import run_task

    results = {
        "command": " ".join(sys.argv),
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "settings": vars(opts),
        "methods": {},
    }
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"{'method':14s} {'trained':>8s} {'random':>8s} {'gain':>7s} {'minutes':>8s}")
    for method in opts.methods:
        with tempfile.TemporaryDirectory() as out:
            argv = [
                "--method",
                method,
                "--dataset",
                opts.dataset,
                "--backbone",
                opts.backbone,
                "--num_tasks",
                str(opts.num_tasks),
                "--task_idx",
                "0",
                "--max_epochs",
                str(opts.epochs),
                "--batch_size",
                str(opts.batch_size),
                "--num_workers",
                str(opts.num_workers),
                "--warmup_epochs",
                str(min(10, max(1, opts.epochs // 10))),
                "--proj_hidden_dim",
                str(opts.proj_dim),
                "--output_dim",
                str(opts.proj_dim),
                "--checkpoint_dir",
                out,
                "--no_progress_bar",
                "--check_val_every_n_epoch",
                str(opts.epochs),
                *RECIPES[method],
            ]
            if method == "byol":
                argv += ["--pred_hidden_dim", str(opts.proj_dim)]
            if opts.data_dir:
                argv += ["--data_dir", opts.data_dir]
            argv += opts.extra
            args = parse_args(argv)
            start = time.time()
            run_task(args)
            minutes = (time.time() - start) / 60
            dm = ContinualDataModule.from_args(args)
            dm.setup()
            task_idx = dm.task_indices
            test_mask = torch.isin(dm.val_full.targets, torch.tensor(dm.task_classes))
            test_idx = torch.nonzero(test_mask).flatten()
            accs = {}
            trained, _, hp = load_backbone_from_checkpoint(os.path.join(out, "last.ckpt"))
            rand, _ = random_backbone(hp, seed=0)
            for name, net in (("trained", trained), ("random", rand)):
                net = net.to(device).eval()
                xtr, ytr = extract_features(net, dm.eval_loader(train=True, indices=task_idx), device)
                val_loader = torch.utils.data.DataLoader(
                    torch.utils.data.Subset(dm.val_dataset, test_idx.tolist()), batch_size=256
                )
                xte, yte = extract_features(net, val_loader, device)
                probe = train_linear_probe_on_features(xtr, ytr, dm.num_classes, epochs=100, device=device)
                accs[name] = probe_accuracy(probe, xte, yte)
        gain = accs["trained"] - accs["random"]
        results["methods"][method] = {**accs, "gain": gain, "train_minutes": minutes}
        print(f"{method:14s} {accs['trained']:8.2f} {accs['random']:8.2f} {gain:+7.2f} {minutes:8.1f}", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(opts.output)), exist_ok=True)
    with open(opts.output, "w") as f:
        json.dump(results, f, indent=2)
    print(f"-> {opts.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
