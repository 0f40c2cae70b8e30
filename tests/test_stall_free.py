"""The training step queues GPU work without waiting for it: no blocking call per step.

Each method runs task 1 with its CaSSLe distiller (one run also with a continual strategy that
draws random numbers per step) on the batched path's CPU twin (`--data_device cpu_batched`, the
code that runs on GPUs) through the real runner, under a recorder of the calls that would block a
CUDA stream (tests/stall_recorder.py). Between logging and checkpoint boundaries every step must
make none; a failure names the file and line of each call.
"""

from __future__ import annotations

import pytest
import torch

from cassle.distillers import DEFAULT_DISTILLER
from cassle.methods import METHODS
from main_continual import build_model, run_task
from tests.helpers import tiny_args
from tests.stall_recorder import StallRecorder, StepWindows

STEPS = 5  # window 0 holds the first step's one-off work; window 4 is cut short by the end
# Flags that add per-step work: the CIFAR recipes' LARS (clipping, exclusion), hue jitter and
# solarisation, and blur.
RECIPE = [
    "--lars",
    "--grad_clip_lars",
    "--exclude_bias_n_norm",
    "--hue",
    "0.1",
    "--solarization_prob",
    "0.0",
    "0.2",
    "--gaussian_prob",
    "0.5",
]


# SwAV: a queue of 2 batches, in use from step 2 on, under bf16 autocast (the GPU default);
# BYOL also feeds the online kNN monitor.
EXTRA = {"swav": ["--queue_size", "16", "--precision", "bf16-mixed"], "byol": ["--knn_eval"]}
# Issue 22: W-MSE's whitening and NNCLR's neighbour search under bf16 autocast; ReSSL with its
# scripts' momentum classifier.
EXTRA.update(
    {"wmse": ["--precision", "bf16-mixed"], "nnclr": ["--precision", "bf16-mixed"], "ressl": ["--momentum_classifier"]}
)


def _task0_checkpoint(method: str, tmp_path) -> str:
    """A task-0 checkpoint of an untrained model: the distiller's frozen model at task 1."""
    args = tiny_args(method, "--num_tasks", "2", *EXTRA.get(method, []), tmp_path=tmp_path)
    args.num_classes = 4
    model = build_model(args)
    path = str(tmp_path / "task0.ckpt")
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(vars(args))}, path)
    return path


@pytest.mark.parametrize(
    "method,more",
    [(m, []) for m in METHODS]
    + [
        ("barlow_twins", ["--cl_strategy", "lump", "--buffer_size", "64"]),  # per-step mixup draws
        ("byol", ["--cl_strategy", "der", "ewc", "pod", "pfr", "less_forget", "--buffer_size", "64"]),
        ("simclr", ["--cl_strategy", "replay", "--buffer_size", "64"]),
        # SI's per-optimiser-step path integral, DER++'s second buffer draw, Co2L's relations
        ("vicreg", ["--cl_strategy", "derpp", "si", "co2l", "--buffer_size", "64"]),
        # CroMo-Mixup's per-step Beta draw, mixed forward and frozen forward (active from step 1)
        ("simclr", ["--cl_strategy", "cromo_mixup", "--buffer_size", "64", "--replay_batch_size", "4"]),
    ],
)
def test_no_blocking_call_per_step(method, more, tmp_path):
    online_eval = list(METHODS).index(method) % 2 == 0  # half also run the online-eval stream
    args = tiny_args(
        method,
        "--num_tasks",
        "2",
        "--task_idx",
        "1",
        "--data_device",
        "cpu_batched",
        "--synthetic_size",
        "256",
        "--batch_size",
        "8",
        "--max_steps",
        str(STEPS),
        "--log_every_n_steps",
        "50",
        "--limit_val_batches",
        "0",
        *RECIPE,
        *EXTRA.get(method, []),
        *(["--online_eval_batch_size", "8"] if online_eval else []),
        *more,
        "--pretrained_model",
        _task0_checkpoint(method, tmp_path),
        distiller=DEFAULT_DISTILLER[method],
        tmp_path=tmp_path / "task1",
    )
    recorder = StallRecorder()
    windows = StepWindows(recorder)
    with recorder:
        trainer = run_task(args, extra_callbacks=[windows])
    assert trainer.global_step == STEPS
    assert len(windows.windows) == STEPS - 1
    # Step 0 is a boundary (the NaN flag is read at global step 0, first-step set-up).
    found = [f"step {i}: {event}" for i, events in enumerate(windows.windows) if i > 0 for event in events]
    assert not found, "blocking calls inside training steps:\n" + "\n".join(found)


def test_eval_batches_need_no_host_copy():
    """Validation and probe batches of the batched path: normalisation constants stay on the
    device (the first batch may put them there)."""
    from cassle.data import ContinualDataModule

    args = tiny_args("simclr", "--data_device", "cpu_batched", "--batch_size", "4", "--synthetic_size", "256")
    dm = ContinualDataModule.from_args(args)
    dm.setup("fit")
    loader = dm.val_dataloader()
    recorder = StallRecorder()
    with recorder:
        batches = iter(loader)
        next(batches)
        recorder.recording = True
        for _ in range(3):
            next(batches)
    assert not recorder.events, "\n".join(map(str, recorder.events))


def test_recorder_finds_what_it_should():
    """The recorder is not blind: each kind of stall is reported with this file's line."""
    device_tensor = torch.ones(3)
    recorder = StallRecorder()
    with recorder:
        recorder.recording = True
        device_tensor.sum().item()
        bool(device_tensor[0] > 0)
        int(device_tensor[1])
        torch.tensor([1.0, 2.0], device=device_tensor.device)
        host = torch.as_tensor([0.5, 0.5, 0.5])
        host.view(3, 1).to(device_tensor.device)
        device_tensor - host  # a host tensor mixed into a device op
        device_tensor[device_tensor > 0]  # boolean-mask indexing: the count is read
        f"{device_tensor.sum():.1f}"
        # not stalls: device-side work, 0-dim host scalars, reads of host tensors
        torch.where(device_tensor > 0, device_tensor, torch.zeros(()))
        torch.arange(3, device=device_tensor.device) + device_tensor
        bool(host.sum() > 0)
    kinds = [e.kind for e in recorder.events]
    assert kinds == ["read", "read", "read", "from_data", "h2d", "h2d", "sync", "read"], [
        str(e) for e in recorder.events
    ]
    assert all("tests/test_stall_free.py:" in e.where for e in recorder.events)
