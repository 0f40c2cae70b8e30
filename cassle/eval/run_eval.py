"""What ``main_linear.py`` runs: one checkpoint, or every task of a continual run folder.

Run folder (``--run_dir experiments/<run>``, what ``job_launcher.py --eval`` calls): a probe on the
backbone after every task i gives the row ``R[i][j]`` (accuracy on the test images of task j), a
randomly initialised backbone of the same architecture and seed gives the forward-transfer baseline,
and ``cassle.eval.report.write_report`` writes ``<run>/eval/{accuracy_matrix.csv, results.json,
accuracy_matrix.png, summary.md}``. Every input is checked before anything is computed (all task
checkpoints present and consistent, data loadable, class counts matching), so bad input fails fast
with a clear message and leaves no partial ``results.json``.

The parts: ``run_folder.py`` (the run folder's plan and checks), ``eval_inputs.py`` (the data and
the probe's recipe from the flags and the checkpoint), ``eval_outputs.py`` (the protocol record,
results.json, wandb), ``report.py`` (the run folder's report files); this module evaluates the
checkpoints and re-exports the parts' names.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

# Also re-exported from here, their home before the split: the names of linear.py that this module
# imported, and those of eval_inputs.py, eval_outputs.py and run_folder.py.
from cassle.eval.eval_inputs import (  # noqa: F401
    FAST_PROBE_LR,
    _check_backbone_flag,
    _precision,
    _trained_crop,
    _trust,
    probe_config,
    resolve_data,
)
from cassle.eval.eval_outputs import _protocol, _wandb_init, _write_json
from cassle.eval.eval_protocol import tags as protocol_tags  # noqa: F401
from cassle.eval.finished import check_not_symlink, check_task_finished  # noqa: F401
from cassle.eval.linear import (  # noqa: F401
    DISTANCES,
    KNN_K,
    KNN_T,
    EvalData,
    EvalInputError,
    ProbeConfig,
    checkpoint_hparams,
    evaluate_backbone,
    evaluate_online,
    load_backbone_from_checkpoint,
    load_online_classifier,
    random_backbone,
    read_checkpoint_file,
    reference_lr,
)
from cassle.eval.offline_loader import describe as describe_augmentation  # noqa: F401
from cassle.eval.run_folder import (  # noqa: F401
    RUN_CONSISTENT_KEYS,
    RunPlan,
    _first_task,
    _predecessor,
    _task_checkpoint,
    check_run_dir,
)
from cassle.utils.checkpoint import atomic_torch_save

__all__ = ["evaluate_checkpoint", "evaluate_run_dir", "check_run_dir", "resolve_data", "probe_config", "RunPlan"]

ONLINE_T_UNDEFINED = (
    "forward transfer is not defined for --protocol online: the rows of R come from the "
    "checkpoints' online classifiers, and a randomly initialised network has none (a "
    "linear probe on it is another protocol, not a baseline for these rows)"
)


# --------------------------------------------------------------------------- single checkpoint
def evaluate_checkpoint(opts: argparse.Namespace) -> dict[str, Any]:
    """Evaluate one checkpoint; writes ``<output_dir>/results.json`` and returns its content."""
    path = opts.pretrained_feature_extractor
    ckpt = read_checkpoint_file(
        path, _trust(opts), {"backbone": getattr(opts, "backbone", None), "dataset": getattr(opts, "dataset", None)}
    )
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
            raise EvalInputError(
                f"--protocol online needs the pretraining dataset ({hp.get('dataset')}), got {data.name}"
            )
        classifier = load_online_classifier(ckpt, path, feat_dim, data.num_classes)
    del ckpt
    out_dir = opts.output_dir or os.path.join(
        os.path.dirname(os.path.abspath(path)), "online_eval" if online else f"linear_{mode}"
    )
    os.makedirs(out_dir, exist_ok=True)
    protocol = _protocol(opts, cfg, data, lr_source, hp.get("method"))
    run = None
    if opts.wandb:
        run = _wandb_init(
            opts, opts.name or f"{hp.get('name', 'run')}-linear", {**vars(opts), "protocol": protocol}, out_dir
        )
        if mode == "augmented" and not online:
            from pytorch_lightning.loggers import WandbLogger

            cfg.logger = WandbLogger(experiment=run)

    res = (
        evaluate_online(backbone, classifier, data, cfg) if online else evaluate_backbone(backbone, feat_dim, data, cfg)
    )
    probe = res.pop("probe", None)
    results = {
        "protocol": protocol,
        "checkpoint": os.path.abspath(path),
        "seed": cfg.seed,
        "acc1": res["acc1"],
        "task_names": data.task_names,
        "per_task": res["per_task"],
        "task_sizes": data.task_sizes,
        **{k: res[k] for k in ("knn", "domain_aware") if k in res},
    }
    if opts.save_checkpoint and probe is not None:
        atomic_torch_save(
            {"classifier": probe.cpu().state_dict(), "protocol": protocol},
            os.path.join(out_dir, "linear_classifier.pt"),
        )
    _write_json(os.path.join(out_dir, "results.json"), results)
    if run is not None:
        flat = {
            "linear/acc1": results["acc1"],
            **{f"linear/acc1_{n}": a for n, a in zip(data.task_names, results["per_task"])},
        }
        flat.update({f"linear/knn_{d}": a for d, a in results.get("knn", {}).items()})
        flat.update({f"linear/domain_aware_{d}": a for d, a in results.get("domain_aware", {}).items()})
        run.log(flat)
        run.finish()
    results["output"] = os.path.join(out_dir, "results.json")
    return results


# --------------------------------------------------------------------------- run folder
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
        raise EvalInputError(
            f"the evaluation data has {data.num_tasks} task(s) but the run has {plan.num_tasks}; "
            "do not override --num_tasks / --split_strategy / --domain for a run folder"
        )
    if (
        data.name == hp0.get("dataset")
        and hp0.get("num_classes") is not None
        and int(hp0["num_classes"]) != data.num_classes
    ):
        raise EvalInputError(
            f"num_classes mismatch: the run was pretrained with num_classes={hp0['num_classes']} "
            f"but the evaluation data has {data.num_classes} classes"
        )
    cfg, lr_source = probe_config(opts, hp0, opts.mode or "fast")
    protocol = _protocol(opts, cfg, data, lr_source, hp0.get("method"))
    out_dir = opts.output_dir or os.path.join(run_dir, "eval")
    os.makedirs(out_dir, exist_ok=True)  # fails here (not after the probes) when not writable
    run = None
    if opts.wandb:
        run = _wandb_init(
            opts,
            opts.name or f"{os.path.basename(os.path.abspath(run_dir))}-eval",
            {**vars(opts), "protocol": protocol},
            out_dir,
        )

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

    extra: dict[str, Any] = {
        "acc1_whole_test_set": acc1,
        "run_dir": os.path.abspath(run_dir),
        "num_classes": data.num_classes,
    }
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
        domain_aware = {
            "domains": domains,
            "matrix": [[row[d] for d in domains] for row in aware],
            "random_baseline": None if baseline is None else [baseline[d] for d in domains],
        }
    results = write_report(
        out_dir,
        R,
        base.get("per_task"),
        task_names=data.task_names,
        protocol=protocol,
        seed=cfg.seed,
        checkpoints=[os.path.abspath(c) for c in plan.checkpoints],
        extra=extra,
        task_sizes=data.task_sizes,
        domain_aware=domain_aware,
    )
    if run is not None:
        log_to_wandb(results, os.path.join(out_dir, "accuracy_matrix.png"), run=run)
        run.finish()
    results["output_dir"] = out_dir
    return results
