"""Train one task of a continual self-supervised sequence (fine-tuning or CaSSLe).

    python main_continual.py --method barlow_twins --dataset cifar100 --data_dir DATA \
        --num_tasks 5 --task_idx 1 --pretrained_model RUN/task0/last.ckpt \
        --distiller decorrelative --checkpoint_dir RUN/task1 ...

`job_launcher.py` runs the whole sequence (and resumes it); this script is one step of it. Exit
codes: 0 only when the task completed and `<checkpoint_dir>/last.ckpt` holds its whole schedule;
143 after SIGTERM and 130 after SIGINT (128 + signal, as a shell reports a killed command), whatever
point of the task the signal hit; 1 for any other unfinished task; 2 for bad input.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings

import pytorch_lightning as pl
import torch


def build_model(args):
    from cassle.distillers import distill_wrapper
    from cassle.methods import METHODS
    from cassle.strategies import strategy_wrapper
    from cassle.strategies.pocon import pocon_wrapper

    method_cls = METHODS[args.method]
    if getattr(args, "pocon", False):  # POCON's two phases per task; no distiller, no strategy
        return pocon_wrapper(method_cls)(**vars(args))
    if args.distiller:
        method_cls = distill_wrapper(method_cls, args.distiller)
    method_cls = strategy_wrapper(method_cls, args.cl_strategy, base_method=METHODS[args.method])
    return method_cls(**vars(args))


def runs_on_gpu(args) -> bool:
    return torch.cuda.is_available() and args.accelerator in ("auto", "gpu", "cuda")


def apply_memory_format(model, args):
    """channels_last when asked (`on`) or on GPUs (`auto`); the runner and the benchmarks share it."""
    model.channels_last = args.channels_last == "on" or (args.channels_last == "auto" and runs_on_gpu(args))
    return model.to(memory_format=torch.channels_last) if model.channels_last else model


def resolve_precision(args) -> str:
    from cassle.utils.precision import auto_precision, normalise_precision

    if args.precision != "auto":
        return normalise_precision(args.precision)
    return auto_precision(runs_on_gpu(args))


def build_loggers(args):
    from pytorch_lightning.loggers import CSVLogger

    # A resumed task logs to logs/resume<k>/ so the first attempt's metrics.csv is kept.
    version = ""
    if args.resume_from_checkpoint:
        k = 1
        while os.path.exists(os.path.join(args.checkpoint_dir, "logs", f"resume{k}")):
            k += 1
        version = f"resume{k}"
    loggers = [CSVLogger(save_dir=args.checkpoint_dir, name="logs", version=version)]
    if args.wandb:
        from pytorch_lightning.loggers import WandbLogger  # imports wandb only when asked

        loggers.append(
            WandbLogger(
                name=args.name,
                project=args.project,
                entity=args.entity,
                save_dir=args.checkpoint_dir,
                offline=not args.wandb_online,
                config=vars(args),
            )
        )
    return loggers


def check_task_args(args) -> None:
    if args.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        said = getattr(args, "device_request", None) or f"--accelerator {args.accelerator}"
        raise ValueError(
            f"{said} asks for a GPU but no CUDA GPU is visible; run on the CPU by "
            "giving `--accelerator cpu --devices 1` after it (with the launcher: "
            "add `-- --accelerator cpu --devices 1`)"
        )
    if args.num_tasks is not None and not 0 <= args.task_idx < args.num_tasks:
        raise ValueError(
            f"--task_idx {args.task_idx} is out of range for --num_tasks "
            f"{args.num_tasks} (valid: 0..{args.num_tasks - 1})"
        )
    if getattr(args, "num_small_crops", 0) and args.cl_strategy:
        raise ValueError(
            "--num_small_crops (multi-crop) does not combine with --cl_strategy: the strategies' "
            "buffers and losses take the two global views"
        )
    if args.distiller and args.task_idx > 0 and not args.pretrained_model and not args.resume_from_checkpoint:
        raise ValueError(
            f"task {args.task_idx} with --distiller {args.distiller} needs "
            "--pretrained_model: the previous task's final checkpoint (its frozen "
            "copy is what CaSSLe distils from)"
        )


def determinism_flags(args) -> dict:
    """Trainer flags: cudnn autotuning (the shapes are fixed) unless --deterministic, which asks
    for deterministic kernels in Lightning's "warn" mode: an op without one (AdaptiveAvgPool2d's
    CUDA backward, for one) warns instead of stopping the run."""
    if args.deterministic:
        return {"deterministic": "warn", "benchmark": False}
    return {"deterministic": None, "benchmark": True}


def build_lightning_strategy(args):
    """Lightning's strategy; DDP variants without the per-forward buffer broadcast.

    Lightning's DDP (and so the reference) copies rank 0's buffers to every rank before each
    forward: SwAV's per-process queue would hold W copies of rank 0's projections, and MoCo's
    identical queue would be re-sent every step. --ddp_broadcast_buffers restores that behaviour.
    """
    from pytorch_lightning.strategies import DDPStrategy, StrategyRegistry

    name = args.strategy
    devices = args.devices
    on_gpu = runs_on_gpu(args)
    many = (
        args.num_nodes > 1
        or (isinstance(devices, int) and (devices > 1 or devices == -1))
        or (isinstance(devices, list) and len(devices) > 1)  # GPU ids: --gpus 0,1
        or (devices == "auto" and on_gpu and torch.cuda.device_count() > 1)
    )
    if name == "auto" and many:
        name = "ddp"
    entry = StrategyRegistry[name] if isinstance(name, str) and name in StrategyRegistry else None
    if entry is None or not issubclass(entry["strategy"], DDPStrategy):
        return name
    params = dict(entry["init_params"])
    if getattr(args, "pocon", False):  # each POCON phase leaves the other's parameters without gradient
        params["find_unused_parameters"] = True
    return entry["strategy"](**params, broadcast_buffers=args.ddp_broadcast_buffers)


def run_task(args, extra_callbacks=()) -> pl.Trainer:
    """Train task `args.task_idx`; returns the trainer (tests pass extra callbacks)."""
    from cassle.data import ContinualDataModule
    from cassle.strategies import TaskEndCallback, validate_strategy_args
    from cassle.strategies.pocon import check_pocon_args, check_pocon_resume
    from cassle.utils.args import save_args
    from cassle.utils.callbacks import AtomicLastCheckpoint, ConsoleProgress, RNGStateCheckpoint
    from cassle.utils.checkpoint import check_compatible, load_pretrained, read_checkpoint, resume_context
    from cassle.utils.cpu_threads import apply_cpu_threads

    check_task_args(args)
    apply_cpu_threads(args.cpu_threads)
    pl.seed_everything(args.seed, workers=True)

    # Everything that can fail on bad input happens before anything is written.
    datamodule = ContinualDataModule.from_args(args)
    args.num_classes = datamodule.num_classes  # from the data (and the images checked)
    args.num_tasks = datamodule.args.num_tasks  # a domain split: one task per domain
    validate_strategy_args(args, datamodule)
    check_pocon_args(args)
    pretrained = None
    if args.resume_from_checkpoint:
        # Read (safely) and checked here; Lightning's own load below applies the same allowlist.
        resumed = read_checkpoint(args.resume_from_checkpoint, trust=args.trust_checkpoint, hints=args)
        if resumed.get("original_format"):
            raise ValueError(
                f"{args.resume_from_checkpoint} was written by the original cassle code: "
                "its trainer state cannot be resumed here; start from its weights "
                "with --pretrained_model instead"
            )
        check_compatible(resumed, args.resume_from_checkpoint, args, resume=True)
        check_pocon_resume(resumed, args.resume_from_checkpoint, args)
    elif args.pretrained_model:
        pretrained = read_checkpoint(args.pretrained_model, trust=args.trust_checkpoint, hints=args)
        check_compatible(pretrained, args.pretrained_model, args)
    model = build_model(args)
    if pretrained is not None:
        load_pretrained(model, pretrained, args.pretrained_model)
    if not args.resume_from_checkpoint:
        model.start_new_task()  # snapshots the frozen model, resets per-task state

    precision = resolve_precision(args)
    model = apply_memory_format(model, args)

    os.makedirs(args.checkpoint_dir, exist_ok=True)
    save_args(args, os.path.join(args.checkpoint_dir, "args.json"))
    trainer = pl.Trainer(
        max_epochs=args.max_epochs,
        max_steps=args.max_steps,
        accelerator=args.accelerator,
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy=build_lightning_strategy(args),
        sync_batchnorm=args.sync_batchnorm,
        precision=precision,
        logger=build_loggers(args),
        enable_checkpointing=False,
        # TaskEndCallback first: what it computes (EWC's Fisher) goes into the final last.ckpt.
        callbacks=[
            TaskEndCallback(),
            AtomicLastCheckpoint(args.checkpoint_dir, task_idx=args.task_idx),
            RNGStateCheckpoint(),
            ConsoleProgress(args.task_idx),
            pl.callbacks.LearningRateMonitor(logging_interval="step"),
            # The bar shows epoch-level values only: Lightning reads every step-level bar
            # value with .item() after each batch, bar or no bar (see BaseMethod).
            *([] if args.no_progress_bar else [pl.callbacks.TQDMProgressBar(refresh_rate=20)]),
            *extra_callbacks,
        ],
        limit_train_batches=args.limit_train_batches,
        limit_val_batches=args.limit_val_batches,
        check_val_every_n_epoch=args.check_val_every_n_epoch,
        log_every_n_steps=args.log_every_n_steps,
        num_sanity_val_steps=args.num_sanity_val_steps,
        enable_progress_bar=not args.no_progress_bar,
        **determinism_flags(args),
    )
    # weights_only=True: a resumed checkpoint is data only (cassle.utils.checkpoint's allowlist),
    # unless --trust_checkpoint says the user knows where the file comes from.
    with resume_context():
        trainer.fit(
            model, datamodule=datamodule, ckpt_path=args.resume_from_checkpoint, weights_only=not args.trust_checkpoint
        )
    return trainer


class StopSignals(pl.Callback):
    """SIGTERM / SIGINT -> a non-zero exit, wherever they land.

    Lightning turns SIGTERM during fit into a `SystemExit` *without a code* (exit 0) and Ctrl-C
    into `sys.exit(1)`; a task stopped either way must never look finished. The handlers record
    the signal; outside training they stop the process at once (`SystemExit(128 + signal)`, or
    Python's `KeyboardInterrupt` for SIGINT); during training (this object is also the callback
    that marks it) the loop stops at the next batch end, raised from the callback, not from
    wherever the signal happened to land (an exception raised asynchronously inside library code
    can be swallowed there). `exit_code` is 128 + signal.
    """

    def __init__(self):
        self.signum: int | None = None
        self.training = False
        self._previous = {}

    def _handle(self, signum, frame):
        self.signum = self.signum or signum
        if self.training:
            return  # on_*_batch_end stops the loop
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    def _stop_if_signalled(self, *_args, **_kwargs) -> None:
        if self.signum is not None:
            raise SystemExit(128 + self.signum)

    def on_train_start(self, trainer, pl_module) -> None:
        self.training = True
        self._stop_if_signalled()

    on_train_batch_end = on_validation_batch_end = on_train_epoch_end = _stop_if_signalled

    def on_train_end(self, trainer, pl_module) -> None:
        self.training = False

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum


def error_text(err: BaseException) -> str:
    """The message of a bad-input error, one line where it can be.

    An error re-raised from a DataLoader worker carries the worker's whole traceback in its
    message; its last line is the error itself (e.g. the image that cannot be decoded).
    """
    text = str(err).strip()
    if text.startswith("Caught ") and "Original Traceback" in text:
        text = text.splitlines()[-1]
    return text


def main(argv=None) -> int:
    from cassle.continual.progress import task_complete
    from cassle.utils.args import parse_args

    args = parse_args(argv)
    last = os.path.join(args.checkpoint_dir, "last.ckpt")
    with StopSignals() as stop:
        try:
            trainer = run_task(args, extra_callbacks=[stop])
        except (SystemExit, KeyboardInterrupt):
            if stop.exit_code is None:
                raise
            trainer = None
        except (OSError, RuntimeError) as err:  # a full disk: one line, no stray temporary file
            from cassle.utils.diskfull import is_disk_full, message, remove_stray_tmp

            if not is_disk_full(err, args.checkpoint_dir):
                raise
            remove_stray_tmp(args.checkpoint_dir)
            print(f"error: task {args.task_idx}: {message(err, last)}", file=sys.stderr)
            return 1
    if stop.exit_code is not None:
        name = signal.Signals(stop.signum).name
        print(
            f"task {args.task_idx} stopped by {name}; the launcher resumes it from {last} "
            f"(or pass --resume_from_checkpoint {last})",
            file=sys.stderr,
        )
        return stop.exit_code
    if trainer.interrupted:
        print(f"task {args.task_idx} was interrupted; resume with --resume_from_checkpoint {last}", file=sys.stderr)
        return 1
    if not os.path.isfile(last):
        print(
            f"error: task {args.task_idx} ran no training step (no {last}); check "
            "--limit_train_batches, --batch_size and the task's data size",
            file=sys.stderr,
        )
        return 1
    complete, why = task_complete(last, args.task_idx, args.max_epochs, args.max_steps)
    if not complete:
        print(f"error: task {args.task_idx} ended before its schedule: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    for noisy in (".*does not have many workers.*", ".*`srun` command is available.*"):
        warnings.filterwarnings("ignore", noisy)
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        print(f"error: {error_text(err)}", file=sys.stderr)
        sys.exit(2)
