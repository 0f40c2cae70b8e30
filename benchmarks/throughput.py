"""Training throughput of cassle, in augmented views per second (2 views per image).

    python benchmarks/throughput.py --method barlow_twins --distiller decorrelative \
        --backbone resnet18 --batch_size 256 --dataset cifar100 --data_dir DATA \
        --output benchmarks/results/h100.json
    python benchmarks/throughput.py --smoke --output experiments/smoke.json     # CPU, tiny, seconds

Every figure runs the real code: args from ``cassle.utils.args.parse_args``, the model from
``main_continual.build_model`` at task 1 of ``--num_tasks`` (so the CaSSLe model has its frozen
snapshot and predictor), the data from ``ContinualDataModule``, and a Lightning ``Trainer`` with
the runner's precision / channels_last resolution, CSV logger and LR monitor. A callback times
``--steps`` whole iterations (fetch + transfer + hook + step) after ``--warmup_steps``, with
``torch.cuda.synchronize`` around the window on GPUs. Modes:

  step      the training step on pre-made tensors: one augmented batch already on the device,
            yielded again and again (no data cost at all: the ceiling)
  gpu       end to end with the batched path: uint8 task images on the device, gathered per batch
            and augmented in ``on_after_batch_transfer`` (``--data_device gpu``; ``cpu_batched``
            without CUDA)
  workers   end to end with torchvision transforms in ``--num_workers`` DataLoader workers
  finetune  the step on pre-made tensors without the distiller (for the CaSSLe overhead:
            frozen forward + predictor + distillation loss)
  optim     the step on pre-made tensors with LARS and with SGD (same parameter groups), in ms
            per step: what the LARS update costs beside plain SGD
  augment   the batched augmentation alone (no model): as the hook runs it (both views in one
            fused pass) and view by view (``MultiViewBatchAugment``)
  strategy  CaSSLe's successors beside CaSSLe on pre-made tensors: PNR (``--pnr_distiller``) and
            each ``--cl_strategies`` (CroMo-Mixup with CaSSLe, Osiris): ``strategy_cost.py``
  pocon     POCON's expert step and merge step at task 1 beside fine-tuning and CaSSLe:
            ``pocon_cost.py`` (``--modes all``: every mode)

Targets (the Speed issue; one H100/H200, Barlow Twins + decorrelative, ResNet-18, batch 256,
CIFAR-100): gpu >= 85% of step, gpu >= 2x workers. Figures go to stdout and ``--output`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "benchmarks"):  # run as a script from anywhere, or imported by path
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from throughput_config import (  # noqa: E402, F401  (re-exported; benchmarks/ is on sys.path)
    MODES,
    OPTIMIZER_FLAGS,
    RECIPES,
    SMOKE_FLAGS,
    TARGETS,
    cassle_argv,
    parse_bench_args,
)


def machine_info() -> dict:
    def version(mod: str):
        try:
            return __import__(mod).__version__
        except Exception:
            return None

    def git(*cmd: str):
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:
            return None

    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cuda = torch.cuda.is_available()
    info = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "cuda": torch.version.cuda,
        "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "pytorch_lightning": pl.__version__,
        "torchvision": version("torchvision"),
        "git_sha": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain")),
        # other load on the machine makes figures noisy (shared CPU machines especially)
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    try:
        import importlib.metadata as md

        info["nvidia_dali"] = md.version("nvidia-dali-cuda120")
    except Exception:
        info["nvidia_dali"] = None
    return info


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class StepTimer(pl.Callback):
    """Times iterations warmup+1 .. warmup+steps, end to end (fetch, transfer, hook, step)."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps, self.done = warmup, steps, 0
        self.t_start = self.t0 = self.t1 = None

    def on_train_start(self, trainer, pl_module):
        self.t_start = time.perf_counter()  # after setup (data onto the device), before step 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.done += 1
        if self.done == self.warmup:
            _sync()
            self.t0 = time.perf_counter()
        elif self.done == self.warmup + self.steps:
            _sync()
            self.t1 = time.perf_counter()

    @property
    def seconds(self) -> float:
        if self.t0 is None or self.t1 is None:
            raise RuntimeError(f"only {self.done} of {self.warmup + self.steps} iterations ran")
        return self.t1 - self.t0


class RepeatBatch:
    """A sized iterable yielding the same (pre-made, on-device) batch ``length`` times."""

    def __init__(self, batch, length: int):
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        for _ in range(self.length):
            yield self.batch


def build(b, *, distiller: str | None, data_device: str, checkpoint_dir: str, more: tuple[str, ...] = ()):
    """(args, datamodule, model) exactly as main_continual.run_task builds them; `more`: flags
    appended to the command line."""
    from cassle.data import ContinualDataModule
    from cassle.utils.args import parse_args
    from main_continual import apply_memory_format, build_model

    args = parse_args(
        cassle_argv(b, distiller=distiller, data_device=data_device, checkpoint_dir=checkpoint_dir, more=more)
    )
    pl.seed_everything(args.seed, workers=True, verbose=False)
    dm = ContinualDataModule.from_args(args)
    args.num_classes = dm.num_classes
    model = build_model(args)
    model.start_new_task()
    model = apply_memory_format(model, args)
    return args, dm, model


def timed_fit(args, model, b, *, datamodule=None, loader=None, timer: StepTimer | None = None) -> float:
    """views/s of ``b.steps`` iterations of a Lightning fit (after ``b.warmup_steps``); pass a
    ``timer`` to read its other stamps afterwards."""
    from pytorch_lightning.loggers import CSVLogger

    from main_continual import determinism_flags, resolve_precision

    timer = timer or StepTimer(b.warmup_steps, b.steps)
    trainer = pl.Trainer(
        max_epochs=10**6,
        max_steps=b.warmup_steps + b.steps,
        accelerator=args.accelerator,
        devices=1,
        precision=resolve_precision(args),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        logger=CSVLogger(args.checkpoint_dir, name="logs"),
        log_every_n_steps=args.log_every_n_steps,
        callbacks=[timer, pl.callbacks.LearningRateMonitor(logging_interval="step")],
        **determinism_flags(args),
    )  # cudnn autotuning as in the runner
    if datamodule is not None:
        trainer.fit(model, datamodule=datamodule)
    else:
        trainer.fit(model, train_dataloaders=loader)
    return 2 * args.batch_size * b.steps / timer.seconds


def premade_batch(dm, device: torch.device):
    """One batch through the batched path's own gather + augmentation, kept on ``device``."""
    loader = dm._device_loader(
        dm.train_full.images[dm.task_indices],
        dm.train_full.targets[dm.task_indices],
        dm.task_indices,
        train=True,
        device=device,
    )
    indexes, images, targets = next(iter(loader))
    views = dm.augmenter(device)(images, loader.generator)
    return indexes, views, targets


def augment_only(aug, images: torch.Tensor, steps: int, warmup: int) -> float:
    """views/s of ``aug(images, generator)`` alone (2 views per image)."""
    gen = torch.Generator(device=images.device).manual_seed(0)
    for _ in range(warmup):
        aug(images, gen)
    _sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        aug(images, gen)
    _sync()
    return 2 * images.shape[0] * steps / (time.perf_counter() - t0)


def run(b: argparse.Namespace, log=print) -> dict:
    from main_continual import resolve_precision

    cuda = torch.cuda.is_available() and not b.smoke
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    batched = "gpu" if cuda else "cpu_batched"
    views: dict[str, float] = {}
    commands: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        args, dm, model = build(b, distiller=b.distiller, data_device=batched, checkpoint_dir=tmp)
        model.to(device)
        length = b.warmup_steps + b.steps
        commands["cassle_args"] = shlex.join(
            cassle_argv(b, distiller=b.distiller, data_device=batched, checkpoint_dir="DIR")
        )
        if {"step", "finetune", "optim", "strategy", "pocon"} & set(b.modes):
            batch = premade_batch(dm, device)
            tp = SimpleNamespace(build=build, timed_fit=timed_fit, RepeatBatch=RepeatBatch)
            measure = __import__("step_cost").StepMeasure(tp, b, batch, device, tmp)
        if "step" in b.modes:
            views["step_premade"] = timed_fit(args, model, b, loader=RepeatBatch(batch, length))
            log(f"step on pre-made tensors      {views['step_premade']:>12,.0f} views/s")
        if "gpu" in b.modes:
            views["e2e_gpu_augment"] = timed_fit(args, model, b, datamodule=dm)
            log(f"end to end, batched ({device.type:4s})    {views['e2e_gpu_augment']:>12,.0f} views/s")
        if "augment" in b.modes:
            images = dm.train_full.images[dm.task_indices][: b.batch_size].to(device)
            fused = dm.augmenter(device)  # what the hook runs: both views in one pass
            views["augment_only"] = augment_only(fused, images, b.steps, b.warmup_steps)
            views["augment_only_per_view"] = augment_only(fused.multi, images, b.steps, b.warmup_steps)
            log(f"augmentation alone (fused)    {views['augment_only']:>12,.0f} views/s")
            log(f"augmentation alone (per view) {views['augment_only_per_view']:>12,.0f} views/s")
        if "workers" in b.modes:
            wargs, wdm, _ = build(b, distiller=b.distiller, data_device="cpu", checkpoint_dir=tmp)
            views["e2e_torchvision_workers"] = timed_fit(wargs, model, b, datamodule=wdm)
            log(f"end to end, {b.num_workers:2d} torchvision workers {views['e2e_torchvision_workers']:>8,.0f} views/s")
        if "finetune" in b.modes:
            views["finetune_step_premade"] = measure("finetune")["views_per_s"]
            log(f"fine-tuning step (no CaSSLe)  {views['finetune_step_premade']:>12,.0f} views/s")
        if cuda and {"strategy", "pocon"} & set(b.modes):
            model.cpu()  # the peaks of the models compared, without the step mode's model resident
        if "strategy" in b.modes:  # PNR, CroMo-Mixup, Osiris beside CaSSLe (strategy_cost.py)
            views.update((cost := __import__("strategy_cost").strategy_steps(measure, b, log))[0])
        if "pocon" in b.modes:  # POCON's expert and merge steps beside CaSSLe (pocon_cost.py)
            views.update((pocon := __import__("pocon_cost").pocon_steps(measure, b, log))[0])
        if "optim" in b.modes:
            for name, flags in OPTIMIZER_FLAGS.items():
                oargs, _, omodel = build(
                    b, distiller=b.distiller, data_device=batched, checkpoint_dir=tmp, more=tuple(flags)
                )
                omodel.to(device)
                views[f"step_premade_{name}"] = timed_fit(oargs, omodel, b, loader=RepeatBatch(batch, length))
            step_ms = {name: 1000 * 2 * b.batch_size / views[f"step_premade_{name}"] for name in OPTIMIZER_FLAGS}
            step_ms["lars_extra_fraction"] = step_ms["lars"] / step_ms["sgd"] - 1
            log(
                f"step with LARS / with SGD     {step_ms['lars']:>9.2f} / {step_ms['sgd']:.2f} ms "
                f"(LARS {100 * step_ms['lars_extra_fraction']:+.1f} %)"
            )

    ratios, meets = {}, {}
    if "e2e_gpu_augment" in views and "step_premade" in views:
        ratios["e2e_gpu_vs_step"] = views["e2e_gpu_augment"] / views["step_premade"]
    if "e2e_gpu_augment" in views and "e2e_torchvision_workers" in views:
        ratios["e2e_gpu_vs_workers"] = views["e2e_gpu_augment"] / views["e2e_torchvision_workers"]
    for k, v in ratios.items():
        meets[k] = v >= TARGETS[k]
    if "optim" not in b.modes:
        step_ms = {}
    overhead = {}
    if "step_premade" in views and "finetune_step_premade" in views:
        overhead = {
            "distill_step_views_per_s": views["step_premade"],
            "finetune_step_views_per_s": views["finetune_step_premade"],
            # extra time per step that CaSSLe adds: frozen forward + predictor + its loss
            "extra_time_fraction": views["finetune_step_premade"] / views["step_premade"] - 1,
        }
    for k, v in ratios.items():
        log(f"{k:28s}  {v:6.2f}  (target >= {TARGETS[k]}{', met' if meets[k] else ', NOT met'})")
    if overhead:
        log(f"CaSSLe extra time per step    {100 * overhead['extra_time_fraction']:6.1f} %")
    return {
        "smoke": b.smoke,
        "machine": machine_info(),
        # what ran: cassle's resolved args (flags after `--` may override the benchmark's own)
        "settings": {
            "method": args.method,
            "distiller": args.distiller,
            "backbone": args.backbone,
            "dataset": args.dataset,
            "batch_size": args.batch_size,
            "num_tasks": args.num_tasks,
            "task_idx": 1,
            "steps": b.steps,
            "warmup_steps": b.warmup_steps,
            "precision": resolve_precision(args),
            "channels_last": bool(model.channels_last),
            "num_workers": b.num_workers,
            "batched_device": str(device),
            "train_size": dm.train_size,
            "modes": b.modes,
        },
        "command": shlex.join([sys.executable, "benchmarks/throughput.py", *b.argv]),
        "cassle_args": commands["cassle_args"],
        "views_per_s": views,
        "cassle_overhead": overhead,
        "strategy_cost": cost[1] if "strategy" in b.modes else {},
        "pocon_cost": pocon[1] if "pocon" in b.modes else {},
        # fine-tuning / CaSSLe / each successor's views/s, peak MiB (CUDA) and state counts
        "step_figures": measure.figures if {"finetune", "strategy", "pocon"} & set(b.modes) else {},
        "step_ms_by_optimizer": step_ms,
        "ratios": ratios,
        "targets": TARGETS,
        "meets_targets": meets,
    }


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    b = parse_bench_args(argv)
    b.argv = argv
    if b.smoke:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # keep the table readable
    result = __import__("throughput_matrix").run_matrix(b, run, argv) if b.matrix else run(b)  # beside this file
    text = json.dumps(result, indent=2, sort_keys=True)
    if b.output:
        os.makedirs(os.path.dirname(os.path.abspath(b.output)), exist_ok=True)
        Path(b.output).write_text(text + "\n")
        print(f"wrote {b.output}")
    return 0


if __name__ == "__main__":
    for noisy in (
        ".*does not have many workers.*",
        ".*overridden `on_after_batch_transfer`.*",
        ".*smaller than the logging interval.*",
        ".*`srun` command is available.*",
        ".*warmup_steps.*",
        ".*LeafSpec.*",
        ".*no `val_dataloader`.*",
    ):
        warnings.filterwarnings("ignore", noisy)
    sys.exit(main())
