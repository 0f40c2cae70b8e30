"""``throughput.py --matrix``: every method of ``cassle.methods.METHODS`` x {resnet18, vit_small}.

    python benchmarks/throughput.py --matrix --batch_size 256 --dataset cifar100 --data_dir DIR \
        --precision auto --output benchmarks/results/matrix_gpu.json
    python benchmarks/throughput.py --matrix --smoke --output experiments/matrix_smoke.json  # CPU

For each (method, backbone) pair it runs ``throughput.run`` (the same Trainer, model and data as a
single measurement) with the method's paper distiller (``DEFAULT_DISTILLER``) at task 1, by
default in the modes ``step`` (CaSSLe step on a pre-made batch) and ``finetune`` (the step without
the distiller); ``--modes`` picks others. The ViT rows use the ViT scripts' optimiser (AdamW, no
LARS, ``bash_files/continual/cifar-vit``) and ``--patch_size 4`` on 32 px crops (16 px crops with
``--smoke``, still patch 4); the ResNet rows the method's CIFAR recipe where ``throughput.RECIPES``
has one. A pair that cannot run at the given settings (W-MSE needs a batch that is a multiple
of its ``--whitening_size``) gets an ``error`` row and the loop goes on. ``--smoke`` keeps its
tiny heads and synthetic data but not its tiny backbone: the backbones are the two measured ones.
"""

from __future__ import annotations

import copy
import sys

BACKBONES = ("resnet18", "vit_small")
DEFAULT_MODES = ["step", "finetune"]
# The ViT scripts' optimiser flags (bash_files/continual/cifar-vit: MoCo v3's ViT recipe)
VIT_FLAGS = [
    "--no-lars",
    "--optimizer",
    "adamw",
    "--no-exclude_bias_n_norm",
    "--lr",
    "1.5e-4",
    "--weight_decay",
    "0.1",
    "--patch_size",
    "4",
]


def run_matrix(b, run, argv=None, log=print) -> dict:
    """``run``: throughput.run. Returns {"matrix": [row per pair], "runs": [run's JSON per pair]}."""
    from cassle.distillers import DEFAULT_DISTILLER
    from cassle.methods import METHODS

    argv = list(sys.argv[1:] if argv is None else argv)
    modes = b.modes if "--modes" in argv else DEFAULT_MODES
    rows, runs = [], []
    for method in METHODS:
        for backbone in BACKBONES:
            one = copy.copy(b)
            one.method, one.backbone, one.modes = method, backbone, list(modes)
            one.distiller = DEFAULT_DISTILLER.get(method)
            one.extra = list(b.extra) + (VIT_FLAGS if backbone.startswith("vit_") else [])
            log(f"--- {method} + {one.distiller} on {backbone}")
            try:
                result = run(one, log=log)
            except Exception as err:  # noqa: BLE001 - one pair's setting error must not stop the table
                log(f"    failed: {type(err).__name__}: {err}")
                rows.append(
                    {
                        "method": method,
                        "backbone": backbone,
                        "distiller": one.distiller,
                        "error": f"{type(err).__name__}: {err}",
                        "cassle_extra_time_fraction": None,
                    }
                )
                continue
            views = result["views_per_s"]
            rows.append(
                {
                    "method": method,
                    "backbone": backbone,
                    "distiller": one.distiller,
                    "precision": result["settings"]["precision"],
                    **views,
                    "cassle_extra_time_fraction": result["cassle_overhead"].get("extra_time_fraction"),
                }
            )
            runs.append(result)
    keys = [k for k in ("step_premade", "finetune_step_premade") if any(k in r for r in rows)]
    log(f"{'method':14s} {'backbone':10s} " + " ".join(f"{k:>22s}" for k in keys) + "   CaSSLe extra")
    for r in rows:
        extra = r["cassle_extra_time_fraction"]
        log(
            f"{r['method']:14s} {r['backbone']:10s} "
            + " ".join(f"{r.get(k, float('nan')):>22,.0f}" for k in keys)
            + (f"   {100 * extra:+.1f} %" if extra is not None else "")
        )
    return {
        "smoke": b.smoke,
        "matrix": rows,
        "backbones": list(BACKBONES),
        "modes": list(modes),
        "machine": runs[0]["machine"] if runs else None,
        "runs": runs,
    }
