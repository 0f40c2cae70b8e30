"""Does a ViT train stably in bf16? fp32 vs bf16-mixed, same seed, same data, same steps.

    python benchmarks/vit_bf16_check.py --data_dir DIR_WITH_CIFAR100_NPZ --steps 300
    python benchmarks/vit_bf16_check.py --steps 20          # synthetic images, a quick look

The run is the shipped ViT script (``bash_files/continual/cifar-vit/<method>.sh``, task 0) through
``main_continual.run_task``, with these overrides: ``--backbone vit_tiny``, ``--batch_size B``,
``--lr`` scaled by 256 / B so the *effective* lr equals the script's at batch 256 (1.5e-4 for the
MoCo v3 recipe), ``--max_epochs 10 --warmup_epochs 1`` with ``--limit_train_batches steps/10``
(so the run reaches the peak lr after a tenth of the steps and then decays, as a real task does
over its 500 epochs), no online-eval batches, no validation, CPU (``--accelerator gpu``: the same
check on a GPU, the run benchmarks/RESULTS.md asks for). Lightning's ``bf16-mixed`` is
the same autocast on the CPU as on a GPU (bf16 matmuls, fp32 weights, optimizer and losses kept
in fp32 by the losses' own upcast), so what differs on a GPU is the kernels, not the numerics'
kind.

Printed per precision: the loss (SSL + online classifier) averaged over windows, non-finite
losses / gradients, the largest gradient norm, and at the end the bf16 - fp32 gap of the last
window's loss. "stable" = no non-finite value and the last-window loss within 10% of fp32's.
These are numbers, not a pass/fail test: benchmarks/RESULTS.md ("ViT bf16") records them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

DROP = {
    "--online_eval_batch_size",
    "--crop_size",
    "--patch_size",
    "--data_dir",
    "--wandb",
    "--accelerator",
    "--devices",
    "--precision",
    "--batch_size",
    "--num_workers",
    "--max_epochs",
    "--warmup_epochs",
    "--backbone",
    "--lr",
    "--name",
}


class Recorder(pl.Callback):
    """Loss per step, gradient norm per optimizer step, non-finite counts."""

    def __init__(self):
        self.losses, self.grad_norms, self.nonfinite_grads = [], [], 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])).item()
        self.grad_norms.append(norm)
        self.nonfinite_grads += int(not math.isfinite(norm))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss.detach()))


def argv_for(b, precision: str, out_dir: str) -> list[str]:
    from cassle.continual.plan import parse_script, split_flags

    script = ROOT / "bash_files" / "continual" / "cifar-vit" / f"{b.script}.sh"
    flags = split_flags(parse_script(script.read_text(), {"DATA_DIR": b.data_dir or "/unused"}))
    lr = float(dict(flags)["--lr"][0]) * 256 / b.batch_size
    argv = [x for f, vals in flags if f not in DROP for x in (f, *vals)]
    if b.data_dir:
        argv += ["--data_dir", b.data_dir]
    else:
        argv = [x for x in argv if x != "cifar100"]  # replaced below
        i = argv.index("--dataset")
        argv[i + 1 : i + 1] = ["synthetic"]
        argv += ["--synthetic_size", str(b.batch_size * 16), "--synthetic_image_size", "32", "--num_classes", "100"]
    per_epoch = max(1, b.steps // 10)
    return argv + [
        "--backbone",
        b.backbone,
        "--batch_size",
        str(b.batch_size),
        "--lr",
        repr(lr),
        "--crop_size",
        str(b.crop_size),
        "--patch_size",
        "4",
        "--max_epochs",
        "10",
        "--warmup_epochs",
        "1",
        "--limit_train_batches",
        str(per_epoch),
        "--check_val_every_n_epoch",
        "1000",
        "--num_sanity_val_steps",
        "0",
        "--accelerator",
        b.accelerator,
        "--devices",
        "1",
        "--precision",
        precision,
        "--num_workers",
        "0",
        "--no-wandb",
        "--no_progress_bar",
        "--checkpoint_dir",
        out_dir,
        "--name",
        f"bf16-check-{precision}",
    ]


def run_one(b, precision: str) -> dict:
    from cassle.utils.args import parse_args
    from main_continual import run_task

    rec = Recorder()
    with tempfile.TemporaryDirectory() as tmp:
        args = parse_args(argv_for(b, precision, tmp))
        t0 = time.perf_counter()
        run_task(args, extra_callbacks=[rec])
        seconds = time.perf_counter() - t0
    w = b.window
    windows = [sum(rec.losses[i : i + w]) / len(rec.losses[i : i + w]) for i in range(0, len(rec.losses), w)]
    return {
        "precision": precision,
        "steps": len(rec.losses),
        "seconds": round(seconds, 1),
        "loss_windows": [round(x, 4) for x in windows],
        "first_loss": rec.losses[0] if rec.losses else None,
        "nonfinite_losses": sum(not math.isfinite(x) for x in rec.losses),
        "nonfinite_grads": rec.nonfinite_grads,
        "max_grad_norm": max(rec.grad_norms) if rec.grad_norms else None,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--script", default="byol", choices=["byol", "barlow", "dino", "mocov3"], help="cifar-vit script (task 0)"
    )
    p.add_argument("--backbone", default="vit_tiny")
    p.add_argument("--data_dir", default=None, help="CIFAR-100 (numpy or torchvision layout); default synthetic")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--crop_size", type=int, default=32, help="16 on a slow CPU (patch 4: 16 tokens + CLS)")
    p.add_argument("--window", type=int, default=30, help="steps per averaged loss")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"], help="gpu: the same check on a GPU")
    p.add_argument(
        "--precisions",
        nargs="+",
        default=["32", "bf16-mixed"],
        help="one of them per process to run the two side by side; the gap needs both",
    )
    p.add_argument("--output", default=None, help="JSON file to write")
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("FP32_JSON", "BF16_JSON"),
        default=None,
        help="only compare the outputs of two one-precision runs",
    )
    b = p.parse_args(argv)
    if b.compare:
        compare(*(json.loads(Path(f).read_text())["runs"][0] for f in b.compare))
        return 0
    torch.set_num_threads(b.threads)
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    results = []
    for prec in b.precisions:
        r = run_one(b, prec)
        results.append(r)
        print(
            f"{r['precision']:>10}: {r['steps']} steps in {r['seconds']} s; loss by {b.window}-step window: "
            f"{r['loss_windows']}; non-finite losses {r['nonfinite_losses']}, grads {r['nonfinite_grads']}; "
            f"max grad norm {r['max_grad_norm']:.3g}",
            flush=True,
        )
    summary = {
        "script": b.script,
        "backbone": b.backbone,
        "batch_size": b.batch_size,
        "crop_size": b.crop_size,
        "data": b.data_dir or "synthetic",
        "torch": torch.__version__,
        "runs": results,
    }
    if len(results) == 2:
        summary.update(compare(*results))
    if b.output:
        Path(b.output).parent.mkdir(parents=True, exist_ok=True)
        Path(b.output).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def compare(fp32: dict, bf16: dict) -> dict:
    """bf16 - fp32 gap of the last window's loss; "stable" = no non-finite value and gap < 10%."""
    last32, last16 = fp32["loss_windows"][-1], bf16["loss_windows"][-1]
    gap = (last16 - last32) / abs(last32)
    stable = bf16["nonfinite_losses"] == 0 and bf16["nonfinite_grads"] == 0 and abs(gap) < 0.10
    print(
        f"last-window loss: fp32 {last32:.4f}, bf16 {last16:.4f} (gap {100 * gap:+.2f}%); "
        f"stable: {'yes' if stable else 'NO'}"
    )
    return {"last_window_gap": gap, "stable": stable}


if __name__ == "__main__":
    sys.exit(main())
