"""What ``main_linear.py`` runs: one checkpoint, or every task of a continual run folder.

Run folder (``--run_dir experiments/<run>``, what ``job_launcher.py --eval`` calls): a probe on the
backbone after every task i gives the row ``R[i][j]`` (accuracy on the test images of task j), a
randomly initialised backbone of the same architecture and seed gives the forward-transfer baseline,
and ``cassle.eval.report.write_report`` writes ``<run>/eval/{accuracy_matrix.csv, results.json,
accuracy_matrix.png, summary.md}``. Every input is checked before anything is computed (all task
checkpoints present and consistent, data loadable, class counts matching), so bad input fails fast
with a clear message and leaves no partial ``results.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
from dataclasses import dataclass
from typing import Any

import torch

from cassle.eval.linear import (
    DISTANCES, KNN_K, KNN_T, EvalData, EvalInputError, ProbeConfig, checkpoint_hparams,
    evaluate_backbone, evaluate_online, load_backbone_from_checkpoint, load_online_classifier, random_backbone,
    read_checkpoint_file, reference_lr,
)
from cassle.eval.eval_protocol import tags as protocol_tags
from cassle.eval.offline_loader import describe as describe_augmentation
from cassle.eval.finished import check_not_symlink, check_task_finished
from cassle.utils.checkpoint import atomic_torch_save

__all__ = ["evaluate_checkpoint", "evaluate_run_dir", "check_run_dir", "resolve_data", "probe_config", "RunPlan"]

ONLINE_T_UNDEFINED = ("forward transfer is not defined for --protocol online: the rows of R come from the "
                      "checkpoints' online classifiers, and a randomly initialised network has none (a "
                      "linear probe on it is another protocol, not a baseline for these rows)")

# Keys every task checkpoint of one run must share.
RUN_CONSISTENT_KEYS = ("method", "backbone", "dataset", "num_classes", "num_tasks", "split_strategy", "seed")


def _trust(opts: argparse.Namespace | None) -> bool:
    """--trust_checkpoint: unpickle checkpoints fully (code in them runs); off unless asked for."""
    return bool(getattr(opts, "trust_checkpoint", False))


# --------------------------------------------------------------------------- data and config
def _trained_crop(hp: dict) -> int | None:
    """View 1's crop size of the pretraining run (what its own validation used), if recorded."""
    crop = hp.get("crop_size")
    if isinstance(crop, (list, tuple)):
        crop = crop[0] if crop else None
    return int(crop) if crop is not None else None


def resolve_data(opts: argparse.Namespace, hp: dict) -> EvalData:
    """Evaluation data from the flags; what is not given comes from the checkpoint's hparams
    (only when evaluating on the pretraining dataset: a different --dataset starts from defaults).

    The test transform follows the run's own crop size (``--crop_size`` overrides it), so a 64 px
    run is evaluated at 64 px, not at the 224 px of the reference's ImageNet-size protocol.
    """
    from cassle.data.args import DESCRIBED_DATASETS
    from cassle.data.datasets import DOMAINNET_DOMAINS, dataset_stats, load_dataset
    from cassle.data.image_check import DEFAULT_MAX_IMAGE_PIXELS

    dataset = opts.dataset or hp.get("dataset")
    if dataset is None:
        raise EvalInputError("--dataset is not given and the checkpoint does not record one")
    same = dataset == hp.get("dataset")

    def pick(name: str, default=None):
        value = getattr(opts, name, None)
        if value is not None:
            return value
        return hp.get(name, default) if same and hp.get(name) is not None else default

    split, num_tasks = pick("split_strategy"), pick("num_tasks")
    domains = pick("domains")
    if getattr(opts, "domain", None):  # the reference's per-domain run: train and test on one domain
        valid = domains or (DOMAINNET_DOMAINS if dataset == "domainnet" else None)
        if valid is not None and opts.domain not in valid:
            raise EvalInputError(f"unknown --domain {opts.domain!r}; valid: {', '.join(valid)}")
        domains, split, num_tasks = [opts.domain], None, 1
    elif split == "domain" and dataset not in DESCRIBED_DATASETS:
        raise EvalInputError(f"split_strategy domain needs data with domains (--dataset "
                             f"{' or '.join(DESCRIBED_DATASETS)}), got {dataset}")
    num_classes = pick("num_classes")
    kwargs = dict(data_dir=pick("data_dir"), download=bool(getattr(opts, "download", False)),
                  train_dir=pick("train_dir"), val_dir=pick("val_dir"),
                  num_classes=num_classes if dataset in ("synthetic", *DESCRIBED_DATASETS) else None,
                  synthetic_size=pick("synthetic_size", 1000),
                  image_size=pick("synthetic_image_size", 32) if dataset == "synthetic" else 32,
                  domains=domains, split_strategy=split,
                  allow_outside=bool(getattr(opts, "allow_paths_outside_data_dir", False)
                                     or pick("allow_paths_outside_data_dir")),  # given, or the run's
                  max_image_pixels=pick("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS))
    train_set = load_dataset(dataset, train=True, **kwargs)
    test_set = load_dataset(dataset, train=False, **kwargs)
    if split == "domain" and num_tasks is None:  # one task per domain
        num_tasks = len(train_set.domain_names)
    num_tasks = int(num_tasks or 1)
    if getattr(opts, "validate_images", True) and hasattr(train_set, "samples"):
        from cassle.data.custom import validate_images

        validate_images(train_set, "training")
        validate_images(test_set, "test")
    n_cls = int(num_classes or train_set.num_classes)
    top = max(int(torch.as_tensor(train_set.targets).max()), int(torch.as_tensor(test_set.targets).max()))
    if top >= n_cls:
        raise EvalInputError(f"--num_classes {n_cls} is too small: {dataset} has labels up to {top}")
    mean, std = pick("mean"), pick("std")
    stats = dataset_stats(dataset)
    crop = getattr(opts, "crop_size", None) or (_trained_crop(hp) if same else None)
    return EvalData.build(dataset, train_set, test_set, num_classes=n_cls, split=split, num_tasks=num_tasks,
                          mean=mean or stats[0], std=std or stats[1], crop_size=crop,
                          cache_bytes=int(float(getattr(opts, "image_cache_gb", 0) or 0) * 2 ** 30))


def _precision(opts) -> str:
    p = str(getattr(opts, "precision", "auto") or "auto")
    if p == "auto":  # the rule of cassle.utils.precision (native bf16 only)
        from cassle.utils.precision import native_bf16

        return "bf16-mixed" if native_bf16() else "32"
    return {"16": "16-mixed", "bf16": "bf16-mixed", "32-true": "32"}.get(p, p)


FAST_PROBE_LR = 0.1


def probe_config(opts: argparse.Namespace, hp: dict, mode: str) -> tuple[ProbeConfig, str]:
    """The probe's recipe and where its lr came from."""
    method = getattr(opts, "method", None) or hp.get("method")
    if opts.lr is not None:
        lr, lr_source = float(opts.lr), "--lr"
    elif mode == "fast":
        # Cached features are standardised before the probe (see probe.py), which makes the lr
        # independent of each method's feature scale: one value serves every method.
        lr, lr_source = FAST_PROBE_LR, "fast-mode lr on standardised features"
    else:
        lr, lr_source = reference_lr(method), f"reference lr of {method}"
    seed = opts.seed if opts.seed is not None else int(hp.get("seed", 5))
    cfg = ProbeConfig(
        mode=mode, epochs=opts.max_epochs, lr=lr, batch_size=opts.batch_size, momentum=opts.momentum,
        weight_decay=opts.weight_decay, milestones=opts.lr_decay_steps, label_fraction=opts.label_fraction,
        seed=seed, num_workers=opts.num_workers if opts.num_workers is not None else int(hp.get("num_workers", 4)),
        accelerator=opts.accelerator, precision=_precision(opts), knn=opts.knn,
        domain_aware=opts.domain_eval in ("aware", "both"), progress_bar=opts.progress_bar,
        dali=bool(getattr(opts, "dali", False)),
    )
    return cfg, lr_source


def _protocol(opts, cfg: ProbeConfig, data: EvalData, lr_source: str, method: str | None) -> dict[str, Any]:
    online = opts.protocol == "online"
    milestones = list(cfg.milestones) if cfg.milestones is not None else [round(0.6 * cfg.epochs), round(0.8 * cfg.epochs)]
    probe = {
        "mode": cfg.mode, "epochs": cfg.epochs, "lr": cfg.lr, "lr_source": lr_source, "optimizer": "sgd",
        "momentum": cfg.momentum, "weight_decay": cfg.weight_decay, "batch_size": cfg.batch_size,
        "lr_milestones": milestones, "lr_gamma": 0.1,
        "train_augmentation": (describe_augmentation(data, cfg.dali) if cfg.mode == "augmented" else "none: features extracted once, probe on cached features"),
        "label_fraction": cfg.label_fraction if cfg.label_fraction is not None else 1.0,
        "feature_standardization": cfg.mode == "fast",
    }
    proto: dict[str, Any] = {
        "name": "online" if online else f"linear-{cfg.mode}",
        "description": ("the online classifier trained during pretraining (the reference's CIFAR protocol)"
                        if online else "one all-class linear classifier on the frozen backbone"),
        "method": method, "dataset": data.name, "num_classes": data.num_classes,
        "split_strategy": data.split, "num_tasks": data.num_tasks,
        "per_task_accuracy": ("task-agnostic: predictions over all classes, no masking; "
                              + {"class": "task j = test images of task j's classes (class order seed 5)",
                                 "domain": "task j = test images of domain j",
                                 }.get(data.split, "every task = the whole test set")),
        "test_transform": data.transform_description(),
        "seed": cfg.seed,
    }
    if not online:
        proto.update(probe)
    else:
        proto["random_baseline_probe"] = probe
    if cfg.knn:
        proto["knn"] = {"k": KNN_K, "T": KNN_T, "distances": list(DISTANCES), "weighted": True}
    proto.update(protocol_tags(proto))  # eval_protocol (paper / fast / custom) and its label
    return proto


# --------------------------------------------------------------------------- single checkpoint
def _write_json(path: str, payload: dict) -> None:
    from cassle.utils.checkpoint import atomic_write_text

    atomic_write_text(path, json.dumps(payload, indent=2, allow_nan=False) + "\n")


def _wandb_init(opts, name: str, config: dict, out_dir: str):
    """A wandb run whose files (``wandb/``) go into the evaluation's output folder, not the cwd."""
    import wandb  # lazy: optional dependency

    return wandb.init(project=opts.project, entity=opts.entity, name=name, config=config, dir=out_dir,
                      mode="online" if opts.wandb_online else "offline")


def evaluate_checkpoint(opts: argparse.Namespace) -> dict[str, Any]:
    """Evaluate one checkpoint; writes ``<output_dir>/results.json`` and returns its content."""
    path = opts.pretrained_feature_extractor
    ckpt = read_checkpoint_file(path, _trust(opts), {"backbone": getattr(opts, "backbone", None),
                                                     "dataset": getattr(opts, "dataset", None)})
    hp = checkpoint_hparams(ckpt, path)
    _check_backbone_flag(opts, hp, path)
    data = resolve_data(opts, hp)
    same = data.name == hp.get("dataset")
    backbone, feat_dim, hp = load_backbone_from_checkpoint(path, data.num_classes if same else None, ckpt)
    mode = opts.mode or "augmented"
    cfg, lr_source = probe_config(opts, hp, mode)
    online = opts.protocol == "online"
    classifier = None
    if online:
        if not same:
            raise EvalInputError(f"--protocol online needs the pretraining dataset ({hp.get('dataset')}), got {data.name}")
        classifier = load_online_classifier(ckpt, path, feat_dim, data.num_classes)
    del ckpt
    out_dir = opts.output_dir or os.path.join(os.path.dirname(os.path.abspath(path)),
                                              "online_eval" if online else f"linear_{mode}")
    os.makedirs(out_dir, exist_ok=True)
    protocol = _protocol(opts, cfg, data, lr_source, hp.get("method"))
    run = None
    if opts.wandb:
        run = _wandb_init(opts, opts.name or f"{hp.get('name', 'run')}-linear", {**vars(opts), "protocol": protocol},
                          out_dir)
        if mode == "augmented" and not online:
            from pytorch_lightning.loggers import WandbLogger

            cfg.logger = WandbLogger(experiment=run)

    res = evaluate_online(backbone, classifier, data, cfg) if online else evaluate_backbone(backbone, feat_dim, data, cfg)
    probe = res.pop("probe", None)
    results = {"protocol": protocol, "checkpoint": os.path.abspath(path), "seed": cfg.seed,
               "acc1": res["acc1"], "task_names": data.task_names, "per_task": res["per_task"],
               "task_sizes": data.task_sizes, **{k: res[k] for k in ("knn", "domain_aware") if k in res}}
    if opts.save_checkpoint and probe is not None:
        atomic_torch_save({"classifier": probe.cpu().state_dict(), "protocol": protocol},
                          os.path.join(out_dir, "linear_classifier.pt"))
    _write_json(os.path.join(out_dir, "results.json"), results)
    if run is not None:
        flat = {"linear/acc1": results["acc1"], **{f"linear/acc1_{n}": a for n, a in zip(data.task_names, results["per_task"])}}
        flat.update({f"linear/knn_{d}": a for d, a in results.get("knn", {}).items()})
        flat.update({f"linear/domain_aware_{d}": a for d, a in results.get("domain_aware", {}).items()})
        run.log(flat)
        run.finish()
    results["output"] = os.path.join(out_dir, "results.json")
    return results


def _check_backbone_flag(opts, hp: dict, path: str) -> None:
    wanted = getattr(opts, "backbone", None)
    if wanted and wanted != hp.get("backbone"):
        raise EvalInputError(f"--encoder/--backbone {wanted} does not match checkpoint {path} "
                             f"(trained with {hp.get('backbone')}); the architecture comes from the checkpoint")


# --------------------------------------------------------------------------- run folder
@dataclass
class RunPlan:
    run_dir: str
    checkpoints: list[str]
    hparams: list[dict]

    @property
    def num_tasks(self) -> int:
        return len(self.checkpoints)


def _task_checkpoint(run_dir: str, t: int, entry: dict | None) -> str:
    """``<run>/task{t}/last.ckpt``: where the launcher always writes it. The manifest's recorded path
    is not followed: in a copied or moved run folder it points at the original run's files."""
    path = os.path.join(run_dir, f"task{t}", "last.ckpt")
    if os.path.isfile(path):
        return path
    why = "the manifest says the task is done but " if entry and entry.get("status") == "done" else ""
    raise EvalInputError(f"task {t} of {run_dir}: {why}its checkpoint {path} is missing; "
                         "rerun the launcher to finish the run")


def _first_task(run_dir: str, manifest: dict | None) -> int:
    """The task the run started at: 0, or the ``--task_idx`` of a run started from PRETRAINED_PATH."""
    if manifest is not None and manifest.get("tasks"):
        return min(int(t) for t in manifest["tasks"])
    found = [int(m.group(1)) for d in glob.glob(os.path.join(run_dir, "task*"))
             if (m := re.fullmatch(r"task(\d+)", os.path.basename(d))) and os.path.isfile(os.path.join(d, "last.ckpt"))]
    return min(found) if found else 0


def _predecessor(path: str, hp: dict, t: int) -> str:
    """The checkpoint task ``t`` (at ``path``) was built on: the ``--pretrained_model`` it recorded.
    For a run started at task t from PRETRAINED_PATH this is how rows 0..t-1 of the matrix are found."""
    prev = hp.get("pretrained_model")
    if not prev:
        raise EvalInputError(f"{path} (task {t}) records no --pretrained_model, so the checkpoint of task "
                             f"{t - 1} that the accuracy matrix needs is unknown")
    if not os.path.isfile(prev):
        raise EvalInputError(f"task {t - 1} of the accuracy matrix is the checkpoint task {t} started from "
                             f"({prev}, recorded in {path}), and it is missing; put it back at that path")
    return prev


def check_run_dir(run_dir: str, opts: argparse.Namespace | None = None) -> RunPlan:
    """Every task checkpoint of the run, present, readable, with backbone weights and consistent hparams.

    A run started at task s > 0 from PRETRAINED_PATH (the reference workflow) holds tasks s..T-1;
    the rows before s come from the checkpoint it started from and, going back, from the
    ``--pretrained_model`` each of those recorded.
    """
    from cassle.continual.manifest import load_manifest

    if not os.path.isdir(run_dir):
        raise EvalInputError(f"run folder {run_dir!r} does not exist")
    manifest = load_manifest(run_dir)
    tasks = (manifest or {}).get("tasks", {})
    start = _first_task(run_dir, manifest)
    first = _task_checkpoint(run_dir, start, tasks.get(str(start)))
    hp0 = checkpoint_hparams(read_checkpoint_file(first, _trust(opts)), first)
    num_tasks = int(hp0.get("num_tasks") or 1)
    task_dirs = sorted(d for d in glob.glob(os.path.join(run_dir, "task*")) if re.fullmatch(r"task\d+", os.path.basename(d)))
    if manifest is not None:
        problems = [f"task {t}: {tasks[str(t)]['status'] if str(t) in tasks else 'not in the manifest'}"
                    for t in range(start, num_tasks) if tasks.get(str(t), {}).get("status") != "done"]
        if problems:
            raise EvalInputError(f"run {run_dir} is not finished (num_tasks={num_tasks}): {'; '.join(problems)}; "
                                 "rerun the launcher to finish it before evaluating")
    elif len(task_dirs) < num_tasks - start:
        raise EvalInputError(f"run {run_dir} has {len(task_dirs)} task folder(s) ({', '.join(map(os.path.basename, task_dirs))}) "
                             f"but its checkpoints say num_tasks={num_tasks}")
    paths = {t: _task_checkpoint(run_dir, t, tasks.get(str(t))) for t in range(start, num_tasks)}
    for t in range(start - 1, -1, -1):  # the lineage before the run's first task
        nxt = paths[t + 1]
        paths[t] = _predecessor(nxt, checkpoint_hparams(read_checkpoint_file(nxt, _trust(opts)), nxt), t + 1)
    checkpoints, hparams = [], []
    for t in range(num_tasks):
        path = paths[t]
        ckpt = read_checkpoint_file(path, _trust(opts))
        hp = checkpoint_hparams(ckpt, path)
        for key in RUN_CONSISTENT_KEYS:
            if key in hp and key in hp0 and hp[key] != hp0[key]:
                raise EvalInputError(f"{path} has {key}={hp[key]!r} but task {start} has {key}={hp0[key]!r}: "
                                     "the checkpoints are not from one run")
        if hp.get("task_idx") is not None and int(hp["task_idx"]) != t:
            raise EvalInputError(f"{path} was trained as task_idx={hp['task_idx']}, expected {t}")
        if t >= start and not ckpt.get("original_format"):
            check_task_finished(path, t)  # the launcher's rule, from the checkpoint and the task's records
        _, feat_dim, _ = load_backbone_from_checkpoint(path, None, ckpt)  # backbone.* present and loadable
        if opts is not None and opts.protocol == "online":
            load_online_classifier(ckpt, path, feat_dim, int(hp["num_classes"]))
        checkpoints.append(path)
        hparams.append(hp)
    return RunPlan(run_dir, checkpoints, hparams)


def evaluate_run_dir(opts: argparse.Namespace) -> dict[str, Any]:
    """Fill R[i][j] for every task checkpoint of ``opts.run_dir`` and write ``<run>/eval/``."""
    from cassle.eval.report import log_to_wandb, write_report

    run_dir = opts.run_dir.rstrip("/") or "/"
    if not opts.output_dir:  # the run folder is data: never written through a link inside it
        check_not_symlink(os.path.join(run_dir, "eval"))
    plan = check_run_dir(run_dir, opts)
    hp0 = plan.hparams[0]
    _check_backbone_flag(opts, hp0, plan.checkpoints[0])
    data = resolve_data(opts, hp0)
    if data.num_tasks != plan.num_tasks:
        raise EvalInputError(f"the evaluation data has {data.num_tasks} task(s) but the run has {plan.num_tasks}; "
                             "do not override --num_tasks / --split_strategy / --domain for a run folder")
    if data.name == hp0.get("dataset") and hp0.get("num_classes") is not None and int(hp0["num_classes"]) != data.num_classes:
        raise EvalInputError(f"num_classes mismatch: the run was pretrained with num_classes={hp0['num_classes']} "
                             f"but the evaluation data has {data.num_classes} classes")
    cfg, lr_source = probe_config(opts, hp0, opts.mode or "fast")
    protocol = _protocol(opts, cfg, data, lr_source, hp0.get("method"))
    out_dir = opts.output_dir or os.path.join(run_dir, "eval")
    os.makedirs(out_dir, exist_ok=True)  # fails here (not after the probes) when not writable
    run = None
    if opts.wandb:
        run = _wandb_init(opts, opts.name or f"{os.path.basename(os.path.abspath(run_dir))}-eval",
                          {**vars(opts), "protocol": protocol}, out_dir)

    R, acc1, knn, aware = [], [], {d: [] for d in DISTANCES}, []
    for t, path in enumerate(plan.checkpoints):
        print(f"[eval] task {t}: {protocol['name']} on {path}", flush=True)
        ckpt = read_checkpoint_file(path, _trust(opts))
        backbone, feat_dim, _ = load_backbone_from_checkpoint(path, None, ckpt)
        if opts.protocol == "online":
            res = evaluate_online(backbone, load_online_classifier(ckpt, path, feat_dim, data.num_classes), data, cfg)
        else:
            res = evaluate_backbone(backbone, feat_dim, data, cfg)
        del ckpt
        R.append(res["per_task"])
        acc1.append(res["acc1"])
        for d in res.get("knn", {}):
            knn[d].append(res["knn"][d])
        if "domain_aware" in res:
            aware.append(res["domain_aware"])
        per = ", ".join(f"{n} {a:.2f}" for n, a in zip(data.task_names, res["per_task"]))
        line = f"[eval] after task {t} ({data.task_names[t]}): acc1 {res['acc1']:.2f}; per task: {per}"
        if "domain_aware" in res:
            line += "; domain-aware: " + ", ".join(f"{n} {a:.2f}" for n, a in res["domain_aware"].items())
        print(line, flush=True)

    extra: dict[str, Any] = {"acc1_whole_test_set": acc1, "run_dir": os.path.abspath(run_dir),
                             "num_classes": data.num_classes}
    base: dict[str, Any] = {}
    if opts.protocol == "online":
        # R[j-1][j] is the online classifier's accuracy; a random network has no online classifier,
        # and a linear probe on it measures something else, so the difference would mean nothing.
        extra["T_undefined"] = ONLINE_T_UNDEFINED
    else:
        print("[eval] random-init backbone (forward-transfer baseline)", flush=True)
        rand, feat_dim = random_backbone(hp0, cfg.seed)
        base = evaluate_backbone(rand, feat_dim, data, cfg)  # the same probe as the rows of R
        extra["random_baseline_acc1"] = base["acc1"]
    if cfg.knn and knn["cosine"]:  # (the online protocol trains nothing and computes no kNN)
        extra["knn"] = {d: {"per_checkpoint": knn[d], "random_baseline": base["knn"][d]} for d in DISTANCES}
    domain_aware = None
    if aware:  # one probe per domain after every task (domain-incremental runs)
        domains = list(aware[0])
        baseline = base.get("domain_aware")
        domain_aware = {"domains": domains, "matrix": [[row[d] for d in domains] for row in aware],
                        "random_baseline": None if baseline is None else [baseline[d] for d in domains]}
    results = write_report(out_dir, R, base.get("per_task"), task_names=data.task_names, protocol=protocol,
                           seed=cfg.seed, checkpoints=[os.path.abspath(c) for c in plan.checkpoints],
                           extra=extra, task_sizes=data.task_sizes, domain_aware=domain_aware)
    if run is not None:
        log_to_wandb(results, os.path.join(out_dir, "accuracy_matrix.png"), run=run)
        run.finish()
    results["output_dir"] = out_dir
    return results
