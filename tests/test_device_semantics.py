"""What the GPU runs must mean the same as on the CPU: --deterministic in warn mode, cudnn
autotuning, DDP without buffer broadcasts (each rank keeps its own SwAV queue), per-process RNG
states of the own device only, float32 SwAV prototype scores under autocast, and the host-side
SwAV queue count that replaced a per-step read of the queue."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.strategies import DDPStrategy

from cassle.losses import sinkhorn_knopp
from cassle.methods.swav import prototype_scores
from cassle.utils import callbacks
from cassle.utils.callbacks import RNGStateCheckpoint
from main_continual import build_lightning_strategy, build_model, determinism_flags
from tests.helpers import tiny_args


# ----------------------------------------------------------------------------- 8, 9
@pytest.fixture
def restore_torch_flags():
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark = saved[2]


def test_deterministic_warns_instead_of_failing(restore_torch_flags):
    """An op without a deterministic kernel (on CUDA: AdaptiveAvgPool2d's backward; on the CPU:
    put_) must warn under --deterministic, not stop the run; autotuning is off."""
    pl.Trainer(accelerator="cpu", devices=1, logger=False, **determinism_flags(tiny_args("simclr", "--deterministic")))
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.benchmark is False
    with pytest.warns(UserWarning, match="does not have a deterministic implementation"):
        torch.zeros(3).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]))


def test_cudnn_autotuning_by_default(restore_torch_flags):
    torch.backends.cudnn.benchmark = False
    pl.Trainer(accelerator="cpu", devices=1, logger=False, **determinism_flags(tiny_args("simclr")))
    assert torch.backends.cudnn.benchmark is True


# ----------------------------------------------------------------------------- 10
@pytest.mark.parametrize(
    "extra,broadcast,start_method,find_unused",
    [
        (["--devices", "2"], False, "popen", None),  # auto -> ddp
        (["--devices", "2", "--strategy", "ddp"], False, "popen", None),
        (["--devices", "2", "--ddp_broadcast_buffers"], True, "popen", None),
        (["--devices", "2", "--strategy", "ddp_spawn_find_unused_parameters_true"], False, "spawn", True),
    ],
)
def test_ddp_strategy_broadcasts_buffers_only_when_asked(extra, broadcast, start_method, find_unused):
    strategy = build_lightning_strategy(tiny_args("swav", *extra))
    assert isinstance(strategy, DDPStrategy)
    assert strategy._ddp_kwargs["broadcast_buffers"] is broadcast
    assert strategy._start_method == start_method
    assert strategy._ddp_kwargs.get("find_unused_parameters") is find_unused


def test_single_process_strategies_are_left_alone():
    assert build_lightning_strategy(tiny_args("swav")) == "auto"
    assert build_lightning_strategy(tiny_args("swav", "--strategy", "single_device")) == "single_device"


@pytest.mark.slow
def test_each_rank_keeps_its_own_queue_unless_broadcast(tmp_path):
    """Two gloo processes run DDP with the arguments of our strategy, default and flag."""
    import json
    import socket
    import subprocess
    import sys
    from pathlib import Path

    kwargs = [
        build_lightning_strategy(tiny_args("swav", "--devices", "2", *flag))._ddp_kwargs
        for flag in ([], ["--ddp_broadcast_buffers"])
    ]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = Path(__file__).with_name("ddp_buffer_worker.py")
    procs = [
        subprocess.Popen([sys.executable, str(worker), str(rank), str(port), str(tmp_path), json.dumps(kwargs)])
        for rank in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    own = [torch.load(tmp_path / f"queue0_{r}.pt") for r in range(2)]
    broadcast = [torch.load(tmp_path / f"queue1_{r}.pt") for r in range(2)]
    # default: every rank's queue holds its own projections of both steps
    assert not torch.equal(own[0][:2], own[1][:2]) and not torch.equal(own[0][2:], own[1][2:])
    # flag: before step 2 rank 1's queue was replaced by rank 0's (its own first push is gone)
    torch.testing.assert_close(broadcast[1][2:], broadcast[0][2:])
    assert not torch.equal(broadcast[1][2:], own[1][2:])


# ----------------------------------------------------------------------------- 11
class FakeCuda:
    """torch.cuda RNG functions of a machine with `count` GPUs (states tagged by device)."""

    def __init__(self, count: int):
        self.count, self.set_calls = count, []

    def get_rng_state(self, device):
        return torch.tensor([100 + device.index], dtype=torch.uint8)

    def get_rng_state_all(self):
        raise AssertionError("only the own device's state may be saved")

    def set_rng_state(self, state, device):
        if device.index >= self.count:
            raise RuntimeError(f"no GPU {device.index}")
        self.set_calls.append((int(state[0]), device.index))


def _trainer(rank: int, device: str) -> SimpleNamespace:
    return SimpleNamespace(global_rank=rank, strategy=SimpleNamespace(root_device=torch.device(device)))


def _patch_cuda(monkeypatch, cuda: FakeCuda) -> None:
    for name in ("get_rng_state", "get_rng_state_all", "set_rng_state"):
        monkeypatch.setattr(torch.cuda, name, getattr(cuda, name))


def test_rng_states_are_saved_per_rank_for_the_own_device(monkeypatch):
    cuda = FakeCuda(count=4)
    _patch_cuda(monkeypatch, cuda)
    other_rank = {
        "python": random.Random(7).getstate(),
        "numpy": np.random.RandomState(7).get_state(),
        "torch": torch.Generator().manual_seed(7).get_state(),
        "cuda": torch.tensor([42], dtype=torch.uint8),
    }
    monkeypatch.setattr(callbacks, "_gather_objects", lambda states: [states, other_rank])
    checkpoint = {}
    RNGStateCheckpoint().on_save_checkpoint(_trainer(0, "cuda:3"), None, checkpoint)
    ranks = checkpoint["rng_states"]["per_rank"]
    assert len(ranks) == 2 and int(ranks[0]["cuda"][0]) == 103  # GPU 3's state only

    # Resume as rank 1 on a machine with a single GPU: rank 1's states, on that GPU.
    small = FakeCuda(count=1)
    _patch_cuda(monkeypatch, small)
    random.seed(0)
    RNGStateCheckpoint().on_load_checkpoint(_trainer(1, "cuda:0"), None, checkpoint)
    assert small.set_calls == [(42, 0)]
    assert random.random() == random.Random(7).random()  # rank 1's Python stream, not rank 0's

    # A third rank (resumed on more processes) keeps its seeded state.
    random.seed(0)
    RNGStateCheckpoint().on_load_checkpoint(_trainer(2, "cuda:0"), None, checkpoint)
    assert random.random() == random.Random(0).random() and small.set_calls == [(42, 0)]


def test_rng_states_of_the_earlier_layout_load_on_fewer_gpus(monkeypatch):
    cuda = FakeCuda(count=1)
    _patch_cuda(monkeypatch, cuda)
    old = {
        "rng_states": {
            "python": random.Random(3).getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": [torch.tensor([i], dtype=torch.uint8) for i in range(8)],
        }
    }
    RNGStateCheckpoint().on_load_checkpoint(_trainer(0, "cuda:0"), None, old)
    assert cuda.set_calls == [(0, 0)] and random.random() == random.Random(3).random()
    RNGStateCheckpoint().on_load_checkpoint(_trainer(0, "cpu"), None, old)  # no GPU: CPU states
    assert cuda.set_calls == [(0, 0)]


def test_rng_states_round_trip_on_the_cpu():
    checkpoint, trainer = {}, _trainer(0, "cpu")
    torch.manual_seed(11)
    RNGStateCheckpoint().on_save_checkpoint(trainer, None, checkpoint)
    expected = torch.rand(3)
    torch.manual_seed(99)
    RNGStateCheckpoint().on_load_checkpoint(trainer, None, checkpoint)
    assert torch.equal(torch.rand(3), expected)
    assert "cuda" not in checkpoint["rng_states"]["per_rank"][0]


# ----------------------------------------------------------------------------- 12, 6
def _swav(*extra):
    args = tiny_args("swav", "--num_prototypes", "64", *extra)
    args.num_classes = 4
    return build_model(args)


def test_swav_scores_and_codes_in_float32_under_autocast():
    model = _swav()
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(32, 16, generator=g), dim=-1)
    exact = z.double() @ model.prototypes.weight.double().T  # (N, K)
    exact_codes = sinkhorn_knopp(exact, epsilon=0.05, num_iters=3)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.prototypes(z).dtype == torch.bfloat16  # what autocast alone would give
        scores = prototype_scores(model.prototypes, z)
        codes = model._codes([scores])[0]
    assert scores.dtype == torch.float32 and codes.dtype == torch.float32
    torch.testing.assert_close(scores.double(), exact, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(codes.double(), exact_codes, rtol=1e-4, atol=1e-6)
    # bf16 scores would move the codes by percents (what this test guards against)
    rounded = sinkhorn_knopp(exact.bfloat16().double(), epsilon=0.05, num_iters=3)
    assert ((rounded - exact_codes).abs() / exact_codes).max() > 0.01


def test_swav_queue_count_matches_the_queue(monkeypatch):
    """The host-side count decides like the old per-step read of the queue's last row, also
    after loading a half-filled queue and after a new task."""
    model = _swav("--queue_size", "24", "--epoch_queue_starts", "0")
    model.start_new_task()
    views = [torch.randn(8, 3, 16, 16) for _ in range(2)]

    def queue_in_use_by_reading_it():
        return bool((model.queue[:, -1] != 0).any())

    decisions = []
    for _ in range(4):
        decisions.append((model._queue_full(), queue_in_use_by_reading_it()))
        model.ssl_step(views, torch.zeros(8, dtype=torch.long))
    assert decisions == [(False, False)] * 3 + [(True, True)]

    half = _swav("--queue_size", "24", "--epoch_queue_starts", "0")
    state = model.state_dict()
    state["queue"][:, 16:] = 0  # two of three batches in
    half.load_state_dict(state)
    assert half._queue_full() is False and half._queue_filled == 16
    half.ssl_step(views, torch.zeros(8, dtype=torch.long))
    assert half._queue_full() is True
    half.start_new_task()
    assert half._queue_full() is False and not half.queue.any()
