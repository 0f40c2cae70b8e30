"""Compare evaluated continual runs: ``main_linear.py --compare RUN [RUN ...] --output_dir DIR``.

Each RUN is a run folder whose ``eval/results.json`` exists (``main_linear.py --run_dir RUN`` or
``job_launcher.py --eval``), or a folder of such run folders (a launcher grid). A run is described
by its last task's ``args.json``: method, strategy (fine-tuning, a ``--cl_strategy`` list, CaSSLe
from ``--distiller``, or both), dataset, split, number of tasks and seed. Runs that differ only in
their seed are repeats: their A / F / T become mean +- sample std (n >= 2) over the seeds.

Writes into DIR: ``comparison.csv`` (one row per metric x strategy x method: mean, std, n, seeds,
paper value, runs), ``comparison.md`` (one table per metric, rows = strategy, columns = method),
``comparison.png`` (grouped bars with std error bars, one panel per metric) and
``comparison.json``. Beside the fine-tuning and CaSSLe rows of CIFAR-100 class-incremental 5-task
runs the paper's A is shown (Fini et al., CVPR 2022, the README figure).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cassle.eval import eval_protocol
from cassle.utils.checkpoint import atomic_write_text

METRICS = ("A", "F", "T")
METHOD_NAMES = {
    "simclr": "SimCLR",
    "mocov2plus": "MoCoV2+",
    "byol": "BYOL",
    "barlow_twins": "Barlow Twins",
    "swav": "SwAV",
    "vicreg": "VICReg",
}
METHOD_NAMES.update({"dino": "DINO", "deepclusterv2": "DeepClusterV2", "mocov3": "MoCo v3"})  # issue 22
METHOD_NAMES.update({"simsiam": "SimSiam", "nnclr": "NNCLR", "ressl": "ReSSL", "wmse": "W-MSE"})  # issue 22
STRATEGY_NAMES = {
    "ewc": "EWC",
    "replay": "ER",
    "der": "DER",
    "lump": "LUMP",
    "less_forget": "Less-Forget",
    "pod": "POD",
    "pfr": "PFR",
    "si": "SI",
    "derpp": "DER++",
    "co2l": "Co2L",
    "cromo_mixup": "CroMo-Mixup",
    "osiris": "Osiris-R",  # --osiris_variant d: "Osiris-D" (strategy_label)
}
ROW_ORDER = [
    "fine-tuning",
    "EWC",
    "SI",
    "ER",
    "DER",
    "DER++",
    "LUMP",
    "Less-Forget",
    "POD",
    "PFR",
    "Co2L",
    "CaSSLe",
    "CaSSLe + CroMo-Mixup",
    "Osiris-R",
    "Osiris-D",
    "PNR",
    "POCON",
]
# CroMo-Mixup (Mushtaq et al., ECCV 2024) is run as CaSSLe's distiller (its KD term) + --cl_strategy
# cromo_mixup; no paper number beside its rows: its CIFAR-100 runs (750 epochs per task, 500 images
# stored per task, ErumMushtaq/CroMo-Mixup README) are not this repo's protocol (README, differences).
# Osiris (Zhang et al., CoLLAs 2024): no paper number beside its rows. Its CIFAR-100 numbers are kNN
# accuracies (SkrighYZ/Osiris eval.py, utils/knn_utils.py; no linear probe) of a GroupNorm + Mish
# ResNet-18 trained 200 epochs per task with SGD lr 0.03, no schedule (train.py; its default
# --num_tasks is 20), not this repo's protocol (5 tasks, linear probe; README, differences). The
# paper's table could not be read when Osiris was added: none is recorded here.
# CaSSLe paper (Fini et al., 2022), CIFAR-100, 5 class-incremental tasks, linear top-1 after the
# last task: fine-tuning -> CaSSLe.
PAPER_CIFAR100 = {
    "byol": (52.7, 62.2),
    "barlow_twins": (54.3, 60.4),
    "simclr": (48.9, 58.3),
    "mocov2plus": (47.3, 59.5),
    "swav": (55.5, 57.8),
    "vicreg": (51.5, 53.6),
}

# PNR paper (Cha et al., ICML 2024) CIFAR-100 numbers: none yet. Its repository (csm9493/PNR) states no
# numbers and the paper's table could not be read when PNR was added; a PNR row shows no paper
# number until one is entered here with its source (README, "Continual strategies").
PAPER_PNR_CIFAR100: dict[str, float] = {}

# POCON paper (Gomez-Villa et al., WACV 2024) CIFAR-100 numbers: none here. Its protocol is not this
# grid's (its public command, alviur/pocon_wacv2024 src/tests/wacv.py, runs 10 tasks with 500 + 250
# epochs per task and 500 + 500 at task 0, and probes each task with linear heads), and its tables
# could not be read when POCON was added: a POCON row shows no paper number; enter the paper's
# CIFAR-100 accuracy for a matching protocol here with its source (README, "CaSSLe's successors").
PAPER_POCON_CIFAR100: dict[str, float] = {}


class CompareError(ValueError):
    pass


def find_runs(paths: Sequence[str]) -> list[Path]:
    """Run folders (with eval/results.json) named directly or one level below a named folder."""
    runs: list[Path] = []
    for p in map(Path, paths):
        if (p / "eval" / "results.json").is_file():
            runs.append(p)
        elif p.is_dir() and any((c / "eval" / "results.json").is_file() for c in p.iterdir() if c.is_dir()):
            runs += sorted(c for c in p.iterdir() if (c / "eval" / "results.json").is_file())
            pending = sorted(
                c.name
                for c in p.iterdir()
                if (c / "manifest.json").is_file() and not (c / "eval" / "results.json").is_file()
            )
            if pending:  # a grid still running, or runs never evaluated: say so, use the others
                print(
                    f"[compare] {p}: skipping {len(pending)} run(s) without eval/results.json: {', '.join(pending)}",
                    file=sys.stderr,
                )
        elif p.is_dir():
            raise CompareError(
                f"{p} has no eval/results.json (evaluate it first: python main_linear.py "
                f"--run_dir {p}) and holds no evaluated run folders"
            )
        else:
            raise CompareError(f"--compare {p}: no such folder")
    if not runs:
        raise CompareError("--compare found no evaluated run")
    return runs


def _last_task_args(run: Path) -> dict:
    tasks = sorted(
        (int(d.name[4:]), d) for d in run.glob("task*") if d.name[4:].isdigit() and (d / "args.json").is_file()
    )
    if not tasks:
        raise CompareError(f"{run} has no task*/args.json: not a cassle run folder")
    return json.loads((tasks[-1][1] / "args.json").read_text())


def strategy_label(args: dict) -> str:
    if args.get("pocon"):  # POCON's own task loop (--pocon): never combined with the others
        return "POCON"
    osiris = "Osiris-D" if args.get("osiris_variant") == "d" else "Osiris-R"
    names = [osiris if n == "osiris" else STRATEGY_NAMES.get(n, n) for n in (args.get("cl_strategy") or [])]
    if args.get("distiller"):  # PNR's distillers (pnr_*) are PNR, not CaSSLe: never CaSSLe's number
        names = ["PNR" if str(args["distiller"]).startswith("pnr_") else "CaSSLe", *names]
    return " + ".join(names) if names else "fine-tuning"


def describe(run: Path) -> dict[str, Any]:
    args = _last_task_args(run)
    results = json.loads((run / "eval" / "results.json").read_text())
    proto = results.get("protocol") or {}
    return {
        "run": str(run),
        "method": args.get("method"),
        "strategy": strategy_label(args),
        "protocol": eval_protocol.short(proto),
        "protocol_label": eval_protocol.label(proto),
        "seed": args.get("seed"),
        "dataset": args.get("dataset"),
        "split": args.get("split_strategy"),
        "num_tasks": args.get("num_tasks"),
        **{m: results.get(m) for m in METRICS},
    }


def paper_value(strategy: str, method: str, setting: tuple) -> float | None:
    if setting != ("cifar100", "class", 5) or method not in PAPER_CIFAR100:
        return None
    if strategy == "PNR":
        return PAPER_PNR_CIFAR100.get(method)
    if strategy == "POCON":
        return PAPER_POCON_CIFAR100.get(method)
    return {"fine-tuning": PAPER_CIFAR100[method][0], "CaSSLe": PAPER_CIFAR100[method][1]}.get(strategy)


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return mean, std


def aggregate(runs: list[dict]) -> list[dict]:
    settings = {(r["dataset"], r["split"], r["num_tasks"]) for r in runs}
    if len(settings) > 1:
        raise CompareError(
            "--compare mixes settings (dataset, split, tasks): "
            + "; ".join(f"{d}/{s}/{t}" for d, s, t in sorted(settings, key=str))
        )
    setting = settings.pop()
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        groups[(r["strategy"], r["method"])].append(r)
    for (strategy, method), members in groups.items():
        seeds = [m["seed"] for m in members]
        if len(set(seeds)) != len(seeds):
            raise CompareError(
                f"{strategy} / {method}: two runs with the same seed "
                f"({', '.join(m['run'] for m in members)}); compare repeats with different seeds"
            )
        kinds = sorted({m.get("protocol", "unknown") for m in members})
        if len(kinds) > 1:
            raise CompareError(
                f"{strategy} / {method}: runs evaluated with different protocols ({', '.join(kinds)}): "
                f"evaluate them alike (main_linear.py --run_dir RUN --eval_protocol ...)"
            )
    rows = []
    for (strategy, method), members in groups.items():
        kind = members[0].get("protocol", "unknown")
        for metric in METRICS:
            mean, std = _stats([m[metric] for m in members])
            paper = paper_value(strategy, method, setting) if metric == "A" else None
            rows.append(
                {
                    "metric": metric,
                    "strategy": strategy,
                    "method": method,
                    "mean": mean,
                    "std": std,
                    "n": len(members),
                    "seeds": sorted(m["seed"] for m in members),
                    "protocol": kind,
                    "protocol_label": members[0].get("protocol_label", kind),
                    # the paper's number only beside figures made with the paper's protocol
                    "paper": paper if kind == "paper" else None,
                    "paper_protocols_differ": paper is not None and kind != "paper",
                    "runs": [m["run"] for m in members],
                }
            )
    return rows


def _order(rows):
    strategies = sorted(
        {r["strategy"] for r in rows}, key=lambda s: (ROW_ORDER.index(s) if s in ROW_ORDER else len(ROW_ORDER), s)
    )
    methods = sorted(
        {r["method"] for r in rows},
        key=lambda m: list(METHOD_NAMES).index(m) if m in METHOD_NAMES else len(METHOD_NAMES),
    )
    return strategies, methods


def _cell(row: dict | None) -> str:
    if row is None or row["mean"] is None:
        return "-"
    text = f"{row['mean']:.2f}" + (f" ± {row['std']:.2f}" if row["std"] is not None else "")
    text += f" (n={row['n']})" if row["n"] > 1 else ""
    text += f" {{{row.get('protocol', 'unknown')}}}"
    if row.get("paper_protocols_differ"):
        return text + " [paper: protocols differ]"
    return text + (f" [paper {row['paper']:.1f}]" if row["paper"] is not None else "")


def markdown(rows: list[dict]) -> str:
    strategies, methods = _order(rows)
    index = {(r["metric"], r["strategy"], r["method"]): r for r in rows}
    lines = [
        "# Continual strategies compared",
        "",
        (
            "Mean ± sample std over seeds (n runs); {protocol}: how the figure was made (paper = the "
            "paper's protocol, fast = the fast probe, custom = other flags); [paper X]: the CaSSLe paper's "
            "CIFAR-100 number, shown only beside figures made with the paper's protocol ([paper: protocols "
            "differ] otherwise)."
        ),
        "",
    ]
    for kind, text in sorted({(r.get("protocol"), r.get("protocol_label")) for r in rows}, key=str):
        lines.append(f"- {{{kind}}}: {text}")
    lines.append("")
    for metric, title in zip(METRICS, ("A (average accuracy)", "F (forgetting)", "T (forward transfer)")):
        lines += [
            f"## {title}",
            "",
            "| strategy | " + " | ".join(METHOD_NAMES.get(m, m) for m in methods) + " |",
            "|---" * (len(methods) + 1) + "|",
        ]
        for s in strategies:
            lines.append(f"| {s} | " + " | ".join(_cell(index.get((metric, s, m))) for m in methods) + " |")
        lines.append("")
    return "\n".join(lines)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", "strategy", "method", "mean", "std", "n", "seeds", "paper", "runs", "protocol"])
    strategies, methods = _order(rows)
    key = {(r["metric"], r["strategy"], r["method"]): r for r in rows}
    for metric in METRICS:
        for s in strategies:
            for m in methods:
                r = key.get((metric, s, m))
                if r is not None:
                    w.writerow(
                        [
                            metric,
                            s,
                            m,
                            "" if r["mean"] is None else f"{r['mean']:.4f}",
                            "" if r["std"] is None else f"{r['std']:.4f}",
                            r["n"],
                            " ".join(map(str, r["seeds"])),
                            "" if r["paper"] is None else r["paper"],
                            " ".join(r["runs"]),
                            r.get("protocol", "unknown"),
                        ]
                    )
    return buf.getvalue()


def bar_plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies, methods = _order(rows)
    key = {(r["metric"], r["strategy"], r["method"]): r for r in rows}
    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 4), dpi=100)
    width = 0.8 / max(len(methods), 1)
    for ax, metric in zip(axes, METRICS):
        for j, m in enumerate(methods):
            cells = [key.get((metric, s, m)) for s in strategies]
            ys = [c["mean"] if c and c["mean"] is not None else 0.0 for c in cells]
            errs = [c["std"] if c and c["std"] is not None else 0.0 for c in cells]
            xs = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(strategies))]
            ax.bar(xs, ys, width, yerr=errs, capsize=2, label=METHOD_NAMES.get(m, m))
            for x, c in zip(xs, cells):
                if c and c["paper"] is not None:
                    ax.plot([x - width / 2, x + width / 2], [c["paper"]] * 2, color="black", lw=1.5)
        ax.set_xticks(range(len(strategies)))
        ax.set_xticklabels(strategies, rotation=45, ha="right", fontsize=8)
        ax.set_title(metric)
        ax.axhline(0, color="grey", lw=0.5)
    axes[0].legend(fontsize=8)
    kinds = ", ".join(sorted({str(r.get("protocol")) for r in rows}))
    fig.suptitle(f"protocol: {kinds}; black ticks: the paper's number (paper protocol only)", fontsize=8)
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def compare_runs(paths: Sequence[str], output_dir: str) -> dict[str, Any]:
    """Gather, aggregate and write the comparison; returns ``{"rows", "output_dir"}``."""
    runs = [describe(r) for r in find_runs(paths)]
    rows = aggregate(runs)
    os.makedirs(output_dir, exist_ok=True)
    atomic_write_text(os.path.join(output_dir, "comparison.csv"), to_csv(rows))
    atomic_write_text(os.path.join(output_dir, "comparison.md"), markdown(rows) + "\n")
    bar_plot(rows, os.path.join(output_dir, "comparison.png"))
    atomic_write_text(
        os.path.join(output_dir, "comparison.json"), json.dumps({"runs": runs, "rows": rows}, indent=2) + "\n"
    )
    return {"rows": rows, "output_dir": output_dir, "markdown": markdown(rows)}
