"""The report half of `cifar_protocol.py`: one table (A, F, T, wall time, views/s) from the three run folders.

Kept apart from the planner so that the report stays light (no Lightning import) and each file keeps one job.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUNS = ("finetune", "cassle", "offline")
# Figures measured with an independent implementation at 5 tasks x 30 epochs (Barlow Twins,
# ResNet-18, CIFAR-100; linear probe A), the calibration this protocol is compared with.
CALIBRATION = {"barlow": {"epochs": 30, "random_init": 19.9, "finetune": 42.7, "cassle": 39.8, "offline": 48.5}}


def machine_info() -> dict:
    """Device, versions and git state (without importing Lightning: the report stays light)."""
    import importlib.metadata as md
    import platform
    import subprocess

    import torch

    def version(dist: str):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    def git(*cmd: str):
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:
            return None

    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pytorch_lightning": version("pytorch_lightning"),
        "wandb": version("wandb"),
        "nvidia_dali": version("nvidia-dali-cuda120"),
        "git_sha": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain")),
    }


def _iso_s(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def run_row(run_dir: Path) -> dict:
    """A, F, T, wall time and training views/s of one finished run folder."""
    from cassle.utils.checkpoint import read_checkpoint

    res = json.loads((run_dir / "eval" / "results.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    views = train_s = 0.0
    for t, task in sorted(manifest["tasks"].items(), key=lambda kv: int(kv[0])):
        ckpt = read_checkpoint(task["checkpoint"])
        batch = json.loads((run_dir / f"task{t}" / "args.json").read_text())["batch_size"]
        views += 2 * ckpt["global_step"] * batch
        train_s += _iso_s(task["started"], task["finished"])
    status = run_dir.parent / f"{run_dir.name}.status.json"
    wall = json.loads(status.read_text())["wall_s"] if status.exists() else None
    return {
        "A": res["A"],
        "F": res.get("F"),
        "T": res.get("T"),
        "wall_s": wall,
        "train_s": train_s,
        "train_views": views,
        "views_per_s": views / train_s if train_s > 0 else None,
        "num_tasks": len(manifest["tasks"]),
        "random_init_A": res.get("extra", {}).get("random_baseline_acc1"),
        "results": str(run_dir / "eval" / "results.json"),
    }


def _fmt(v, spec=".2f"):
    return "n/a" if v is None else format(v, spec)


def cmd_report(opts) -> int:
    out = Path(opts.out_dir)
    rows = {name: run_row(out / name) for name in RUNS}
    random_a = rows["finetune"]["random_init_A"]
    cal = CALIBRATION.get(opts.method)
    label = {"random_init": "random init", "finetune": "fine-tuning", "cassle": "CaSSLe", "offline": "offline"}
    lines = [
        f"CIFAR-100, {opts.method}, {rows['finetune']['num_tasks']} tasks x {opts.epochs} epochs "
        f"(offline: 1 task x {opts.epochs} epochs over all images: each image seen as often)",
        "",
        "| run | A | F | T | wall time (s) | views/s |" + (" calibration A |" if cal else ""),
        "|---|---:|---:|---:|---:|---:|" + ("---:|" if cal else ""),
    ]
    table = {"random_init": {"A": random_a, "F": None, "T": None, "wall_s": None, "views_per_s": None}, **rows}
    for key, r in table.items():
        line = (
            f"| {label[key]} | {_fmt(r['A'])} | {_fmt(r['F'])} | {_fmt(r['T'])} | {_fmt(r['wall_s'], '.0f')} "
            f"| {_fmt(r['views_per_s'], ',.0f')} |"
        )
        lines.append(line + (f" {cal[key]} |" if cal else ""))
    lines += [
        "",
        "A, F, T: linear probe on frozen features (fast mode) after every task, whole test set; "
        "wall time: the run's training and evaluation (the three ran concurrently on one device); "
        "views/s: 2 x steps x batch / the tasks' time.",
    ]
    if cal:
        lines.append(f"Calibration: an independent implementation at 5 x {cal['epochs']} epochs.")
    if opts.extra:
        lines.append(f"EXTRA flags (smoke settings, the figures mean nothing): `{opts.extra}`")
    text = "\n".join(lines) + "\n"
    result = {
        "method": opts.method,
        "epochs": opts.epochs,
        "extra": opts.extra,
        "rows": table,
        "calibration": cal,
        "total_wall_s": opts.total_wall_s,
        "machine": machine_info(),
        "command": opts.command,
    }
    (out / "protocol.md").write_text(text)
    (out / "protocol.json").write_text(json.dumps(result, indent=2) + "\n")
    print(text, end="")
    print(f"-> {out / 'protocol.md'}, {out / 'protocol.json'}")
    return 0
