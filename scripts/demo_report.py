"""The table of ``scripts/demo.sh``: random init, fine-tuning and CaSSLe on the shapes set.

    python scripts/demo_report.py OUT_DIR --method simclr [--total_wall_s S] [--command "..."]

Reads ``OUT_DIR/{finetune,cassle}`` (run folders of ``job_launcher.py --eval``): A, F, T from each
run's ``eval/results.json`` (linear probe on frozen features after every task), the random-init
row from the same evaluation, each run's wall time (training and evaluation, the shell's clock).
Writes ``OUT_DIR/demo.md`` and ``OUT_DIR/demo.json`` and prints the table and the PNG paths.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from protocol_report import _fmt, machine_info, run_row  # noqa: E402

RUNS = {"finetune": "fine-tuning", "cassle": "CaSSLe"}


def report(out_dir: Path, method: str, total_wall_s: float | None = None, command: str | None = None) -> str:
    rows = {name: run_row(out_dir / name) for name in RUNS}
    tasks = rows["finetune"]["num_tasks"]
    random_a = rows["finetune"]["random_init_A"]
    lines = [
        f"Shapes (cassle.data.shapes, 16x16), {method}, {tasks} class-incremental tasks, tiny conv net, CPU",
        "",
        "| run | A | F | T | wall time (s) |",
        "|---|---:|---:|---:|---:|",
        f"| random init | {_fmt(random_a)} | | | |",
    ]
    for name, label in RUNS.items():
        r = rows[name]
        lines.append(f"| {label} | {_fmt(r['A'])} | {_fmt(r['F'])} | {_fmt(r['T'])} | {_fmt(r['wall_s'], '.0f')} |")
    lines += [
        "",
        "A: mean linear-probe accuracy (%) over the tasks' test images after the last task; F: forgetting; "
        "T: forward transfer (vs random init). The two runs ran concurrently"
        + (f"; {total_wall_s:.0f} s in all (data, both runs, their evaluation)." if total_wall_s else "."),
        "Accuracy matrices: " + ", ".join(str(out_dir / n / "eval" / "accuracy_matrix.png") for n in RUNS),
    ]
    text = "\n".join(lines) + "\n"
    (out_dir / "demo.md").write_text(text)
    (out_dir / "demo.json").write_text(
        json.dumps(
            {
                "method": method,
                "rows": rows,
                "random_init_A": random_a,
                "total_wall_s": total_wall_s,
                "command": command,
                "machine": machine_info(),
            },
            indent=2,
        )
        + "\n"
    )
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--method", default="simclr")
    p.add_argument("--total_wall_s", type=float, default=None)
    p.add_argument("--command", default=None)
    opts = p.parse_args(argv)
    out = Path(opts.out_dir)
    print(report(out, opts.method, opts.total_wall_s, opts.command), end="")
    print(f"-> {out / 'demo.md'}, {out / 'demo.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
