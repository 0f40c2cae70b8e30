"""Compare evaluated continual runs: ``main_linear.py --compare RUN [RUN ...] --output_dir DIR``.

Each RUN is a run folder whose ``eval/results.json`` exists (``main_linear.py --run_dir RUN`` or
``job_launcher.py --eval``), or a folder of such run folders (a launcher grid). A run is described
by its last task's ``args.json``: method, strategy (fine-tuning, a ``--cl_strategy`` list, CaSSLe
from ``--distiller``, or both), dataset, split, number of tasks and seed. Runs that differ only in
their seed are repeats: their A / F / T become mean +- sample std (n >= 2) over the seeds.

Writes into DIR: ``comparison.csv`` (one row per metric x strategy x method: mean, std, n, seeds,
paper value, runs), ``comparison.md`` (one table per metric, rows = strategy, columns = method),
``comparison.png`` (grouped bars with std error bars, one panel per metric) and
``comparison.json``. Beside a row the paper's A is shown where ``paper_numbers.py`` has one for its
row and method in the runs' setting: as ``[paper X]`` when its protocol is the runs' (the CaSSLe
paper's fine-tuning and CaSSLe CIFAR-100 5-task numbers), with its protocol otherwise; the
comparison lists every number shown with its source.
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
from cassle.eval.paper_numbers import lookup, paper_value  # noqa: F401  (paper_value re-exported)
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
# cromo_mixup. The papers' numbers beside the rows, with source and protocol: paper_numbers.py.
# Osiris (Zhang et al., CoLLAs 2024): its CIFAR-100 numbers are kNN accuracies (SkrighYZ/Osiris
# eval.py, utils/knn_utils.py; no linear probe) of a GroupNorm + Mish ResNet-18 trained 200 epochs
# per task with SGD lr 0.03, no schedule (train.py; default --num_tasks 20): not this repo's protocol,
# and the paper's table could not be read when Osiris was added; none is recorded.

# POCON paper (Gomez-Villa et al., WACV 2024) CIFAR-100 numbers: none here. Its protocol is not this
# grid's (its public command, alviur/pocon_wacv2024 src/tests/wacv.py, runs 10 tasks with 500 + 250
# epochs per task and 500 + 500 at task 0, and probes each task with linear heads), and its tables
# could not be read when POCON was added: a POCON row shows no paper number; enter the paper's
# CIFAR-100 accuracy for a matching protocol in paper_numbers.py with its source.


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
        "epochs": args.get("max_epochs"),  # per task, the last task's (the papers' numbers need theirs)
        "backbone": args.get("backbone"),
        **{m: results.get(m) for m in METRICS},
    }


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
        epochs = {m.get("epochs") for m in members}
        backbones = {m.get("backbone") for m in members}
        entry, same = lookup(
            strategy,
            method,
            setting,
            epochs=epochs.pop() if len(epochs) == 1 else "mixed",
            backbone=backbones.pop() if len(backbones) == 1 else "mixed",
        )
        for metric in METRICS:
            mean, std = _stats([m[metric] for m in members])
            shown = entry if metric == "A" else None
            paper = shown.value if shown is not None and same else None
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
                    # a paper number of the same setting made with another training protocol
                    "paper_other": None if shown is None or same else shown.value,
                    "paper_number": None if shown is None else shown.value,
                    "paper_protocol": None if shown is None else shown.protocol.short(),
                    "paper_source": None if shown is None else shown.source,
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
    if row.get("paper_other") is not None:
        return text + f" [paper {row['paper_other']:.1f} ({row['paper_protocol']}): protocols differ]"
    return text + (f" [paper {row['paper']:.1f}]" if row["paper"] is not None else "")


def markdown(rows: list[dict]) -> str:
    strategies, methods = _order(rows)
    index = {(r["metric"], r["strategy"], r["method"]): r for r in rows}
    lines = [
        "# Continual strategies compared",
        "",
        (
            "Mean ± sample std over seeds (n runs); {protocol}: how the figure was made (paper = the "
            "paper's protocol, fast = the fast probe, custom = other flags); [paper X]: the paper's number "
            "(sources below), shown only beside figures made with the paper's protocol ([paper: protocols "
            "differ] otherwise); [paper X (P): protocols differ]: the paper's number for the same setting "
            "obtained with training protocol P, not this run's."
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
    cited = sorted({(r["strategy"], r["method"], r["paper_source"]) for r in rows if r.get("paper_source")})
    if cited:
        lines += ["## Paper numbers shown", ""]
        for s, m, source in cited:
            r = index[("A", s, m)]
            lines.append(f"- {s} / {METHOD_NAMES.get(m, m)}: {r['paper_number']} ({r['paper_protocol']}); {source}")
        lines.append("")
    return "\n".join(lines)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["metric", "strategy", "method", "mean", "std", "n", "seeds", "paper", "runs", "protocol", "paper_other"]
    )
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
                            ""
                            if r.get("paper_other") is None
                            else f"{r['paper_other']} ({r['paper_protocol']}; {r['paper_source']})",
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
