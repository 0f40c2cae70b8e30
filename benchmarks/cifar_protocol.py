"""Python side of ``benchmarks/cifar_protocol.sh`` (run that script; this file has two commands).

    python benchmarks/cifar_protocol.py plan --finetune_script S --cassle_script S --data_dir D \
        --epochs 30 [--budget_s 540] [--elapsed_s 0 --count_probe] [--json F] -- <launcher's -- flags>
    python benchmarks/cifar_protocol.py report OUT_DIR --method barlow --epochs 30 [--extra "..."]

``plan``: the throughput probe and the planned wall time. It builds, from the shipped scripts and
the same overrides the launcher gets, task 0 of the fine-tuning run and task 1 of the CaSSLe run
(its frozen copy and predictor included) exactly as ``main_continual.py`` does, and times
``--steps`` (20) whole training iterations of each after ``--warmup_steps`` (fetch, on-device
augmentation, step: ``benchmarks/throughput.py``'s timer). It also times a forward pass of the
backbone (the per-epoch validation and the evaluation's feature extraction), the checkpoint write
(every epoch end), the linear-probe step of the evaluation and each task's start-up. The planned
time of the three concurrent runs is

    planned(E) = GPU work of all three runs, summed (they share one GPU):
                     sum over runs and tasks of E x (steps x step time + validation pass)
               + the per-process costs of the longest run (they overlap across runs):
                     tasks x (start-up + E x checkpoint write) + its evaluation

which grows with E, so the largest E with ``elapsed + planned(E) <= budget`` is printed (and,
with ``--json``, written). Summing the GPU work is the cautious reading: three processes on one
GPU go no faster than one process that keeps it busy, and often slower.

``report``: the table of the finished runs (``OUT_DIR/{finetune,cassle,offline}``): A, F, T from
each run's ``eval/results.json`` (the launcher's ``--eval``: linear probe on frozen features after
every task), the random-init row from the same evaluation, the wall time of each run (training and
evaluation, from the shell's clock) and training views/s = 2 x optimizer steps x batch size, summed
over tasks, / the tasks' time (process start to exit, from the manifest). Writes
``OUT_DIR/protocol.md`` and ``OUT_DIR/protocol.json`` and prints the markdown.
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()  # before the heavy imports: their cost is part of every task's start-up

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from protocol_report import cmd_report  # noqa: E402  (benchmarks/ is on sys.path)


# --------------------------------------------------------------------------- plan
def protocol_argvs(
    finetune_script: str, cassle_script: str, data_dir: str, common: list[str], offline_extra: list[str]
) -> dict[str, list[str]]:
    """The merged argv of each run, as ``job_launcher.py --script S -- common [offline_extra]``."""
    from cassle.continual.plan import merge_args, parse_script

    env = {**os.environ, "DATA_DIR": data_dir}
    ft = merge_args(parse_script(Path(finetune_script).read_text(), env), common)
    cassle = merge_args(parse_script(Path(cassle_script).read_text(), env), common)
    return {"finetune": ft, "cassle": cassle, "offline": merge_args(ft, offline_extra)}


def _limited(steps: int, limit) -> int:
    """Batches per epoch under Lightning's ``limit_*_batches`` (an int count or a fraction)."""
    if limit is None:
        return steps
    limit = float(limit)
    return min(steps, int(limit)) if limit > 1.0 else int(steps * limit)


def _task_sizes(args, datamodule) -> list[int]:
    from cassle.data.datamodule import task_subset

    sizes = []
    for t in range(args.num_tasks):
        a = copy.copy(args)
        a.task_idx = t
        sizes.append(len(task_subset(datamodule.train_full, a)))
    return sizes


def _probe_kind(argv: list[str], steps: int, warmup: int, tmp: str) -> dict:
    """Build one task as main_continual does and time ``steps`` iterations after ``warmup``."""
    import pytorch_lightning as pl
    import throughput

    from cassle.data import ContinualDataModule
    from cassle.utils.args import parse_args
    from main_continual import apply_memory_format, build_model

    t0 = time.perf_counter()
    args = parse_args(argv + ["--checkpoint_dir", tmp])
    pl.seed_everything(args.seed, workers=True, verbose=False)
    dm = ContinualDataModule.from_args(args)
    args.num_classes = dm.num_classes
    model = build_model(args)
    model.start_new_task()
    model = apply_memory_format(model, args)
    build_s = time.perf_counter() - t0
    timer = throughput.StepTimer(warmup, steps)
    t_fit = time.perf_counter()
    views = throughput.timed_fit(
        args, model, argparse.Namespace(warmup_steps=warmup, steps=steps), datamodule=dm, timer=timer
    )
    step_s = 2 * args.batch_size / views
    # Trainer set-up (data onto the device) and the first steps' extra cost (kernel selection).
    setup_s = (timer.t_start - t_fit) + max(0.0, (timer.t0 - timer.t_start) - warmup * step_s)
    return {
        "args": args,
        "datamodule": dm,
        "model": model,
        "views_per_s": views,
        "step_s": step_s,
        "build_s": build_s + setup_s,
    }


def _device(args):
    """Where the runs train (Lightning moves a model back to the CPU after ``fit``)."""
    import torch

    from main_continual import runs_on_gpu

    return torch.device("cuda") if runs_on_gpu(args) else torch.device("cpu")


def _forward_rate(model, args, dm, batches: int = 10) -> float:
    """Images/s of the backbone alone, eval mode, no grad (validation and feature extraction)."""
    import torch

    from main_continual import resolve_precision

    device = _device(args)
    backbone = model.backbone.to(device).eval()
    size = args.crop_size[0] if isinstance(args.crop_size, (list, tuple)) else args.crop_size
    size = size or dm.default_crop_size
    x = torch.randn(args.batch_size, 3, size, size, device=device)
    if model.channels_last:
        x = x.to(memory_format=torch.channels_last)
    bf16 = resolve_precision(args).startswith("bf16") and device.type == "cuda"
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        backbone(x)
        _sync()
        t0 = time.perf_counter()
        for _ in range(batches):
            backbone(x)
        _sync()
    return batches * args.batch_size / (time.perf_counter() - t0)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _checkpoint_s(model, tmp: str) -> float:
    """One epoch-end checkpoint: weights plus about as much optimizer state (SGD/LARS momentum)."""
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    t0 = time.perf_counter()
    torch.save({"state_dict": state, "optimizer": state}, os.path.join(tmp, "probe.ckpt"))
    return time.perf_counter() - t0


def _probe_step_s(feat_dim: int, num_classes: int, device, steps: int = 50) -> float:
    """One step of the evaluation's linear probe on cached features (batch 256)."""
    import torch

    from cassle.eval.probe import train_linear_probe_on_features

    feats = torch.randn(256 * steps, feat_dim, device=device)
    labels = torch.randint(0, num_classes, (256 * steps,), device=device)
    train_linear_probe_on_features(feats, labels, num_classes, epochs=1, lr=0.1, batch_size=256, device=device)
    _sync()
    t0 = time.perf_counter()
    train_linear_probe_on_features(feats, labels, num_classes, epochs=1, lr=0.1, batch_size=256, device=device)
    _sync()
    return (time.perf_counter() - t0) / steps


def plan_time(m: dict, epochs: int) -> dict:
    """Planned seconds of the three concurrent runs at ``epochs`` per task (see the module doc)."""
    per_run = {}
    for name, run in m["runs"].items():
        gpu = sum(epochs * (steps * m["step_s"][kind] + m["val_s"]) for steps, kind in run["tasks"])
        own = sum(m["startup_s"][kind] + epochs * m["checkpoint_s"] for _, kind in run["tasks"])
        per_run[name] = {"gpu_s": gpu, "process_s": own + m["eval_s"][name]}
    gpu_total = sum(r["gpu_s"] for r in per_run.values())
    process = max(r["process_s"] for r in per_run.values())
    return {
        "epochs": epochs,
        "gpu_work_s": gpu_total,
        "per_process_s": process,
        "planned_s": gpu_total + process,
        "runs": per_run,
    }


def largest_epochs(m: dict, budget_s: float, limit: int = 100_000) -> int:
    """The largest EPOCHS in [0, limit] with planned(E) <= budget_s (0 when none fits).

    planned(E) grows with E (a maximum of linear functions), so a bisection finds it."""
    fits = lambda e: plan_time(m, e)["planned_s"] <= budget_s  # noqa: E731
    if not fits(1):
        return 0
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def measure(opts) -> dict:
    """Everything ``plan_time`` needs, measured on this machine."""
    import pytorch_lightning  # noqa: F401  (timed: every task process pays these imports)
    import throughput  # noqa: F401
    import torch

    import main_continual  # noqa: F401
    from cassle.continual.plan import plan_tasks
    from cassle.data import ContinualDataModule  # noqa: F401

    import_s = time.perf_counter() - _T_START
    argvs = protocol_argvs(
        opts.finetune_script, opts.cassle_script, opts.data_dir, opts.common, shlex.split(opts.offline_extra)
    )
    with tempfile.TemporaryDirectory() as tmp:
        ft_task0 = plan_tasks(argvs["finetune"], None, os.path.join(tmp, "ft"))[0].argv
        cs_tasks = plan_tasks(argvs["cassle"], None, os.path.join(tmp, "cs"))
        if len(cs_tasks) < 2:
            raise SystemExit("error: the CaSSLe run has one task: nothing to distil, nothing to probe")
        ft = _probe_kind(ft_task0, opts.steps, opts.warmup_steps, os.path.join(tmp, "p0"))
        cs = _probe_kind(cs_tasks[1].argv, opts.steps, opts.warmup_steps, os.path.join(tmp, "p1"))
        args, dm, model = ft["args"], ft["datamodule"], ft["model"]
        fwd = _forward_rate(model, args, dm)
        ckpt_s = _checkpoint_s(cs["model"], tmp)
        feat_dim = model.features_dim
        probe_step = _probe_step_s(feat_dim, dm.num_classes, _device(args))
    sizes = _task_sizes(args, dm)
    n_train, n_test = len(dm.train_full), len(dm.val_full)
    B = args.batch_size
    steps = lambda n: _limited(n // B, args.limit_train_batches)  # noqa: E731  (drop_last)
    val_batches = _limited(math.ceil(n_test / B), args.limit_val_batches)
    val_s = min(n_test, val_batches * B) / fwd / max(1, args.check_val_every_n_epoch)
    runs = {
        "finetune": {"tasks": [(steps(n), "finetune") for n in sizes]},
        "cassle": {"tasks": [(steps(n), "finetune" if t == 0 else "cassle") for t, n in enumerate(sizes)]},
        "offline": {"tasks": [(steps(n_train), "finetune")]},
    }
    probe_steps = 100 * math.ceil(n_train / 256)  # main_linear's fast mode: 100 epochs, batch 256
    eval_s = {}
    for name, run in runs.items():
        backbones = len(run["tasks"]) + 1  # every task's checkpoint and the random init
        eval_s[name] = import_s + backbones * ((n_train + n_test) / fwd + probe_steps * probe_step)
    return {
        "device": torch.cuda.get_device_name(0) if _device(args).type == "cuda" else "cpu",
        "views_per_s": {"finetune": ft["views_per_s"], "cassle": cs["views_per_s"]},
        "step_s": {"finetune": ft["step_s"], "cassle": cs["step_s"]},
        "startup_s": {"finetune": import_s + ft["build_s"], "cassle": import_s + cs["build_s"]},
        "import_s": import_s,
        "forward_images_per_s": fwd,
        "val_s": val_s,
        "checkpoint_s": ckpt_s,
        "probe_step_s": probe_step,
        "eval_s": eval_s,
        "runs": runs,
        "train_size": n_train,
        "test_size": n_test,
        "task_sizes": sizes,
        "batch_size": B,
        "probe": {"steps": opts.steps, "warmup_steps": opts.warmup_steps},
        "argv": argvs,
    }


def cmd_plan(opts) -> int:
    m = measure(opts)
    # EPOCHS=auto trains right after this probe: its own time counts; a dry run's does not.
    spent = opts.elapsed_s + (time.perf_counter() - _T_START if opts.count_probe else 0.0)
    budget = opts.budget_s - spent
    best = largest_epochs(m, budget)
    plan = plan_time(m, opts.epochs)
    print(
        f"probe on {m['device']} ({opts.steps} steps after {opts.warmup_steps} warm-up, batch {m['batch_size']}): "
        f"fine-tuning {m['views_per_s']['finetune']:,.0f} views/s, CaSSLe {m['views_per_s']['cassle']:,.0f} views/s; "
        f"backbone forward {m['forward_images_per_s']:,.0f} images/s; task start-up "
        f"{m['startup_s']['cassle']:.1f} s; checkpoint {m['checkpoint_s']:.2f} s"
    )
    for name, r in plan["runs"].items():
        print(
            f"  {name:8s} {len(m['runs'][name]['tasks'])} task(s): GPU work {r['gpu_s']:7.0f} s, "
            f"start-up + checkpoints + evaluation {r['process_s']:5.0f} s"
        )
    fits = "fits" if spent + plan["planned_s"] <= opts.budget_s else "does NOT fit"
    print(
        f"planned time at EPOCHS={opts.epochs}: {plan['planned_s']:.0f} s (GPU work of the three runs "
        f"summed {plan['gpu_work_s']:.0f} s + per-process {plan['per_process_s']:.0f} s); "
        f"{fits} in the budget of {opts.budget_s:.0f} s"
    )
    print(
        f"largest EPOCHS that fits in {opts.budget_s:.0f} s: {best}"
        + (f" (planned {plan_time(m, best)['planned_s']:.0f} s, after {spent:.0f} s already spent)" if best else "")
    )
    if opts.json:
        out = {
            "epochs": opts.epochs,
            "budget_s": opts.budget_s,
            "spent_s": spent,
            "largest_epochs": best,
            "plan": plan,
            "measured": m,
        }
        Path(opts.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    common: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, common = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pl_ = sub.add_parser("plan")
    pl_.add_argument("--finetune_script", required=True)
    pl_.add_argument("--cassle_script", required=True)
    pl_.add_argument("--data_dir", required=True)
    pl_.add_argument("--epochs", type=int, required=True)
    pl_.add_argument("--offline_extra", default="--num_tasks 1")
    pl_.add_argument("--budget_s", type=float, default=540.0)
    pl_.add_argument("--elapsed_s", type=float, default=0.0, help="already spent of the budget")
    pl_.add_argument("--count_probe", action="store_true", help="the probe's own time is spent too (auto)")
    pl_.add_argument("--steps", type=int, default=20)
    pl_.add_argument("--warmup_steps", type=int, default=5)
    pl_.add_argument("--json", default=None)
    rp = sub.add_parser("report")
    rp.add_argument("out_dir")
    rp.add_argument("--method", required=True)
    rp.add_argument("--epochs", type=int, required=True)
    rp.add_argument("--extra", default="")
    rp.add_argument("--total_wall_s", type=float, default=None)
    rp.add_argument("--command", default=None)
    opts = p.parse_args(argv)
    opts.common = common
    return cmd_plan(opts) if opts.command == "plan" else cmd_report(opts)


if __name__ == "__main__":
    import logging
    import warnings

    for noisy in (
        ".*does not have many workers.*",
        ".*smaller than the logging interval.*",
        ".*`srun` command is available.*",
        ".*warmup_steps.*",
        ".*LeafSpec.*",
        ".*no `val_dataloader`.*",
        ".*`weights_only` was not set.*",
    ):
        warnings.filterwarnings("ignore", noisy)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    sys.exit(main())
