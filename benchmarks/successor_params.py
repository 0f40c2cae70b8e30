"""Parameter and state counts of fine-tuning, CaSSLe and each successor at the real size (no data, no
step; CPU, seconds): the memory each model holds at task 1, beside the CUDA peaks of ``throughput.py
--modes strategy,pocon``.

    python benchmarks/successor_params.py --method barlow_twins --distiller decorrelative [--output FILE]

Each model is built as ``throughput.py`` builds it (``throughput_config.cassle_argv``: the
benchmark's recipe, ResNet-18, task 1 of 5, the successors' flags of ``strategy_cost.STRATEGY_COST``
and ``pocon_cost.POCON_FLAGS``), with ``--num_classes 100`` (CIFAR-100) in place of the data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from pocon_cost import POCON_FLAGS, POCON_METHODS  # noqa: E402
from step_cost import state_counts  # noqa: E402
from strategy_cost import STRATEGY_COST, STRATEGY_WITH_CASSLE, successors  # noqa: E402
from throughput_config import cassle_argv, parse_bench_args  # noqa: E402


def models(b) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """name -> (distiller, extra flags) of every model measured beside CaSSLe for ``b.method``."""
    pnr, names, _ = successors(b)
    out = {"finetune": (None, ()), "cassle": (b.distiller, ())}
    if pnr is not None:
        out[pnr] = (pnr, ())
    for name in names:
        out[name] = (
            b.distiller if STRATEGY_WITH_CASSLE.get(name, True) else None,
            ("--cl_strategy", name, *STRATEGY_COST.get(name, [])),
        )
    if b.method in POCON_METHODS:
        out["pocon"] = (None, POCON_FLAGS)
    return out


def main(argv=None) -> dict:
    from cassle.utils.args import parse_args
    from main_continual import build_model

    b = parse_bench_args(argv)
    counts = {}
    for name, (distiller, flags) in models(b).items():
        more = ("--num_classes", "100", *flags)
        args = parse_args(cassle_argv(b, distiller=distiller, data_device="cpu", checkpoint_dir="DIR", more=more))
        counts[name] = state_counts(build_model(args))
        counts[name].pop("updated_params"), counts[name].pop("updated_by_module")  # no step ran
        print(f"{name:20s} {counts[name]['params']:>12,} params  {counts[name]['state_mib']:8.1f} MiB (fp32 state)")
    if b.output:  # throughput's --output
        Path(b.output).write_text(json.dumps({"argv": list(argv or sys.argv[1:]), "counts": counts}, indent=2) + "\n")
    return counts


if __name__ == "__main__":
    main()
