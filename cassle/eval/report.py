"""Write the evaluation report of a continual run: CSV, JSON, PNG heatmap and a markdown summary.

Files written into ``out_dir`` (the run's ``eval/`` folder):

- ``accuracy_matrix.csv``: header ``after_task \\ eval_task,<task names>``, then one row per
  "trained up to task i" (first cell its task name), values in percent at full precision.
- ``results.json``: A, F, T, the matrix, the random-init baseline, task names and sizes, the
  protocol, seed, checkpoint paths, git sha, library versions, UTC timestamp, ``extra``.
- ``accuracy_matrix.png``: annotated heatmap, always ``PNG_SIZE_PX`` = 600 x 500 pixels
  (6 x 5 inches at 100 dpi, no tight bounding box, so the size does not depend on the labels);
  ``PNG_SIZE_PX_DOMAINS`` = 1200 x 500 with the domain-aware panel beside it.
- ``summary.md``: the matrix as a markdown table, the A / F / T lines and the protocol.
- ``domain_aware.csv`` (domain-incremental runs): one row per task, one column per domain: the
  accuracy of a probe trained and tested on that domain alone (also in the other three files).

Atomicity: everything is first written into a temporary folder inside ``out_dir``; only when all
four files exist are they moved into place, ``results.json`` last (and a stale ``results.json`` is
removed before the others are replaced). So ``results.json`` exists only next to a complete, matching
report, and any failure leaves no partial ``results.json`` behind.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .eval_protocol import label as protocol_label
from .metrics import as_matrix, average_accuracy, forgetting, forward_transfer

__all__ = [
    "write_report",
    "format_results",
    "log_to_wandb",
    "PNG_SIZE_IN",
    "PNG_DPI",
    "PNG_SIZE_PX",
    "PNG_SIZE_PX_DOMAINS",
    "REPORT_FILES",
    "DOMAIN_AWARE_CSV",
]

PNG_SIZE_IN = (6.0, 5.0)
PNG_DPI = 100
PNG_SIZE_PX = (600, 500)  # (width, height) = PNG_SIZE_IN * PNG_DPI
PNG_SIZE_IN_DOMAINS = (12.0, 5.0)  # with the domain-aware panel beside the matrix
PNG_SIZE_PX_DOMAINS = (1200, 500)
REPORT_FILES = ("accuracy_matrix.csv", "accuracy_matrix.png", "summary.md", "results.json")
DOMAIN_AWARE_CSV = "domain_aware.csv"  # written only for runs with domain-aware results


def _git_sha() -> str | None:
    """HEAD of the repository holding this package, or None (no git, no commit, not a checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


def _versions() -> dict[str, str | None]:
    vers: dict[str, str | None] = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("torch", "pytorch_lightning", "torchvision"):
        try:
            vers[name] = __import__(name).__version__
        except Exception:  # not installed / broken install: record that, do not fail the report
            vers[name] = None
    return vers


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _write_csv(
    path: Path,
    arr: np.ndarray,
    names: list[str],
    cols: list[str] | None = None,
    corner: str = "after_task \\ eval_task",
) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([corner, *(names if cols is None else cols)])
        for name, row in zip(names, arr):
            w.writerow([name, *(repr(float(v)) for v in row)])


def _heatmap(
    fig, ax, arr: np.ndarray, rows: list[str], cols: list[str], xlabel: str, title: str, title_size: float | None = None
) -> None:
    im = ax.imshow(arr, cmap="viridis", vmin=0.0, vmax=max(100.0, float(arr.max())))
    fig.colorbar(im, ax=ax, label="top-1 accuracy (%)")
    many = len(cols) > 6
    ax.set_xticks(range(len(cols)), labels=cols, rotation=45 if many else 0, ha="right" if many else "center")
    ax.set_yticks(range(len(rows)), labels=rows)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("trained up to task i")
    ax.set_title(title, fontsize=title_size)
    size = max(6.0, 14.0 - max(arr.shape))  # shrink the annotations as the matrix grows
    for i in range(arr.shape[0]):
        for j in range(arr.shape[1]):
            # dark text on the bright (high) end of viridis, white on the dark end
            colour = "black" if im.norm(arr[i, j]) > 0.6 else "white"
            ax.text(j, i, f"{arr[i, j]:.1f}", ha="center", va="center", color=colour, fontsize=size)


def _write_png(
    path: Path, arr: np.ndarray, names: list[str], A, F, T, aware: dict | None = None, protocol: str = ""
) -> None:
    """The accuracy matrix; with domain-aware results a second panel beside it (twice as wide)."""
    # Figure + Agg canvas directly: no pyplot global state, works headless, no backend switching.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=PNG_SIZE_IN if aware is None else PNG_SIZE_IN_DOMAINS, dpi=PNG_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1 if aware is None else 2, 1)
    title = f"A = {_fmt(A)}   F = {_fmt(F)}   T = {_fmt(T)}" + (f"\n{protocol}" if protocol else "")
    if aware is None:
        _heatmap(fig, ax, arr, names, names, "evaluated on task j", title)
    else:  # two panels: smaller titles so they stay clear of the colour bars
        _heatmap(fig, ax, arr, names, names, "evaluated on task j", f"domain-agnostic: {title}", 10)
        matrix = np.asarray(aware["matrix"], dtype=np.float64)
        _heatmap(
            fig,
            fig.add_subplot(1, 2, 2),
            matrix,
            names,
            list(aware["domains"]),
            "domain (its own probe)",
            f"domain-aware: mean after the last task = {_fmt(aware['final_mean'])}",
            10,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=PNG_DPI, format="png")


def _write_summary(path: Path, results: dict[str, Any]) -> None:
    names = results["task_names"]
    arr = results["accuracy_matrix"]
    aware = results.get("domain_aware")
    lines = ["# Continual evaluation", ""]
    if aware is not None:
        lines += ["## Domain-agnostic (one classifier for all domains)", ""]
    lines += ["| after task \\ eval on | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |" for name, row in zip(names, arr)]
    if results["random_baseline"] is not None:
        lines.append("| random init | " + " | ".join(f"{v:.2f}" for v in results["random_baseline"]) + " |")
    said = f" [{protocol_label(results['protocol'])}]"
    lines += [
        "",
        f"- A (average accuracy, %): {_fmt(results['A'])}{said}",
        f"- F (forgetting, %): {_fmt(results['F'])}{said}",
        f"- T (forward transfer, %): {_fmt(results['T'])}{said}"
        + (f" ({results['extra']['T_undefined']})" if results["extra"].get("T_undefined") else ""),
    ]
    if aware is not None:
        domains = aware["domains"]
        lines += [
            "",
            "## Domain-aware (one classifier per domain, trained and tested on it)",
            "",
            "| after task \\ domain | " + " | ".join(domains) + " |",
            "|---|" + "---|" * len(domains),
        ]
        lines += [
            f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |" for name, row in zip(names, aware["matrix"])
        ]
        if aware.get("random_baseline") is not None:
            lines.append("| random init | " + " | ".join(f"{v:.2f}" for v in aware["random_baseline"]) + " |")
        lines += [
            "",
            f"- mean over domains after the last task (%): {_fmt(aware['final_mean'])}",
            f"- file: {DOMAIN_AWARE_CSV}",
        ]
    lines += [f"- seed: {results['seed']}", f"- git sha: {results['git_sha'] or 'n/a'}", "", "## Protocol", ""]
    lines += [f"- {k}: {v}" for k, v in results["protocol"].items()] or ["- (none given)"]
    lines += ["", "## Checkpoints", ""] + ([f"- {c}" for c in results["checkpoints"]] or ["- (none given)"])
    path.write_text("\n".join(lines) + "\n")


def _domain_aware(aware: dict, n: int) -> dict[str, Any]:
    """Checked, JSON-ready domain-aware results: domains, matrix (n rows), baseline, final mean."""
    domains = [str(d) for d in aware["domains"]]
    matrix = np.asarray(aware["matrix"], dtype=np.float64)
    if matrix.shape != (n, len(domains)):
        raise ValueError(
            f"domain_aware matrix must have one row per task ({n}) and one column per domain "
            f"({len(domains)}), got shape {matrix.shape}"
        )
    base = aware.get("random_baseline")
    if base is not None and len(base) != len(domains):
        raise ValueError(f"domain_aware random_baseline needs one value per domain ({len(domains)}), got {len(base)}")
    return {
        "domains": domains,
        "matrix": matrix.tolist(),
        "random_baseline": None if base is None else [float(v) for v in base],
        "final_mean": float(matrix[-1].mean()),
    }


def write_report(
    out_dir: str | os.PathLike,
    R,
    random_baseline,
    *,
    task_names: Sequence[str] | None = None,
    protocol: dict,
    seed: int | None,
    checkpoints: Sequence[str],
    extra: dict | None = None,
    task_sizes: Sequence[float] | None = None,
    domain_aware: dict | None = None,
) -> dict[str, Any]:
    """Compute A, F, T from ``R`` and write the four report files (see the module docstring).

    ``domain_aware`` (domain-incremental runs): ``{"domains": names, "matrix": one row per task of
    per-domain accuracies of one probe per domain, "random_baseline": per domain or None}``; it
    adds ``domain_aware.csv``, a section of ``summary.md``, a panel of the picture and the key
    ``domain_aware`` of ``results.json`` (with ``final_mean``, the last row's mean).

    ``random_baseline`` (length T, percent) may be None when no random-init probe was run; T is then
    None. ``task_sizes`` (test images per task) weights A, see ``average_accuracy``. ``task_names``
    defaults to ``task0 .. task{T-1}``. Returns the dict written to ``results.json``.
    """
    arr = as_matrix(R)
    n = arr.shape[0]
    names = [f"task{i}" for i in range(n)] if task_names is None else [str(s) for s in task_names]
    if len(names) != n:
        raise ValueError(f"task_names must have one name per task ({n}), got {len(names)}: {names}")
    if not isinstance(protocol, dict):
        raise ValueError(f"protocol must be a dict describing how R was made, got {type(protocol).__name__}")
    if isinstance(checkpoints, (str, bytes)):
        raise ValueError("checkpoints must be a list of paths, got a single string")

    A = average_accuracy(arr, task_sizes)
    F = forgetting(arr)
    T = None if random_baseline is None else forward_transfer(arr, random_baseline)
    baseline = (
        None
        if random_baseline is None
        else np.asarray(
            random_baseline.detach().cpu() if hasattr(random_baseline, "detach") else random_baseline, dtype=np.float64
        ).tolist()
    )
    results: dict[str, Any] = {
        "A": A,
        "F": F,
        "T": T,
        "num_tasks": n,
        "task_names": names,
        "task_sizes": None if task_sizes is None else [float(s) for s in task_sizes],
        "accuracy_matrix": arr.tolist(),
        "random_baseline": baseline,
        "protocol": dict(protocol),
        "seed": seed,
        "checkpoints": [str(c) for c in checkpoints],
        "git_sha": _git_sha(),
        "versions": _versions(),
        "hostname": platform.node(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "extra": dict(extra or {}),
    }
    if domain_aware is not None:
        results["domain_aware"] = _domain_aware(domain_aware, n)
    # Serialise before touching the disk: an unserialisable `extra` fails here, writing nothing.
    payload = json.dumps(results, indent=2, allow_nan=False)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".report-tmp-", dir=out))
    try:
        aware = results.get("domain_aware")
        _write_csv(tmp / "accuracy_matrix.csv", arr, names)
        if aware is not None:
            _write_csv(
                tmp / DOMAIN_AWARE_CSV,
                np.asarray(aware["matrix"]),
                names,
                aware["domains"],
                corner="after_task \\ domain",
            )
        _write_png(tmp / "accuracy_matrix.png", arr, names, A, F, T, aware, protocol_label(results["protocol"]))
        _write_summary(tmp / "summary.md", results)
        (tmp / "results.json").write_text(payload + "\n")
        (out / "results.json").unlink(missing_ok=True)  # stale results must not describe new files
        (out / DOMAIN_AWARE_CSV).unlink(missing_ok=True)
        files = ((DOMAIN_AWARE_CSV,) if aware is not None else ()) + REPORT_FILES
        for name in files:  # results.json last: its presence marks a complete report
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def _text_table(corner: str, rows: list[str], cols: list[str], values, extra_rows=()) -> list[str]:
    table = [[corner, *cols]] + [[r, *(f"{v:.2f}" for v in vals)] for r, vals in zip(rows, values)]
    table += [[name, *(f"{v:.2f}" for v in vals)] for name, vals in extra_rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in table]


def format_results(results: dict[str, Any]) -> str:
    """The report for the console: the matrix (and the domain-aware one) with names, A / F / T."""
    names = results["task_names"]
    base = [("random init", results["random_baseline"])] if results["random_baseline"] is not None else []
    aware = results.get("domain_aware")
    lines = ["domain-agnostic accuracy (%), one classifier for all domains:" if aware else "accuracy matrix (%):"]
    lines += _text_table("after task \\ eval on", names, names, results["accuracy_matrix"], base)
    lines.append(
        f"A = {_fmt(results['A'])}  F = {_fmt(results['F'])}  T = {_fmt(results['T'])}  "
        f"[{protocol_label(results.get('protocol'))}]"
    )
    if aware is not None:
        abase = [("random init", aware["random_baseline"])] if aware.get("random_baseline") is not None else []
        lines += ["domain-aware accuracy (%), one classifier per domain:"]
        lines += _text_table("after task \\ domain", names, aware["domains"], aware["matrix"], abase)
        lines.append(f"mean over domains after the last task = {_fmt(aware['final_mean'])}")
    return "\n".join(lines)


def log_to_wandb(
    results: dict[str, Any], png_path: str | os.PathLike | None = None, run=None, prefix: str = "eval"
) -> None:
    """Log A / F / T, the matrix (as a table) and the heatmap to wandb.

    ``run`` defaults to the active ``wandb.run``; wandb is imported only here, so the rest of the
    package works without it. Raises RuntimeError when there is no run to log to.
    """
    import wandb  # lazy: optional dependency

    run = run if run is not None else wandb.run
    if run is None:
        raise RuntimeError("log_to_wandb needs an active wandb run (call wandb.init first or pass run=)")
    data: dict[str, Any] = {f"{prefix}/{k}": results[k] for k in ("A", "F", "T") if results.get(k) is not None}
    names = results["task_names"]
    data[f"{prefix}/accuracy_matrix"] = wandb.Table(
        columns=["after_task", *names], data=[[name, *row] for name, row in zip(names, results["accuracy_matrix"])]
    )
    if png_path is not None:
        data[f"{prefix}/accuracy_matrix_png"] = wandb.Image(str(png_path))
    run.log(data)
