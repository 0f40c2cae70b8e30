"""benchmarks/throughput.py: the --smoke run end to end (CPU, seconds) and its argument handling."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("throughput", REPO / "benchmarks" / "throughput.py")
throughput = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(throughput)

VIEW_KEYS = {
    "step_premade",
    "e2e_gpu_augment",
    "e2e_torchvision_workers",
    "finetune_step_premade",
    "augment_only",
    "augment_only_per_view",
    "step_premade_lars",
    "step_premade_sgd",
}


def test_smoke_run_writes_positive_figures(tmp_path):
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/throughput.py", "--smoke", "--output", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "views/s" in done.stdout and "e2e_gpu_vs_step" in done.stdout
    result = json.loads(out.read_text())
    assert {
        "machine",
        "settings",
        "command",
        "cassle_args",
        "views_per_s",
        "cassle_overhead",
        "ratios",
        "targets",
        "meets_targets",
        "smoke",
    } <= set(result)
    assert result["smoke"] is True
    assert set(result["views_per_s"]) == VIEW_KEYS
    assert all(v > 0 for v in result["views_per_s"].values())
    assert set(result["ratios"]) == set(result["targets"]) == {"e2e_gpu_vs_step", "e2e_gpu_vs_workers"}
    assert all(r > 0 for r in result["ratios"].values())
    assert result["targets"] == {"e2e_gpu_vs_step": 0.85, "e2e_gpu_vs_workers": 2.0}
    views = result["views_per_s"]
    assert result["ratios"]["e2e_gpu_vs_step"] == pytest.approx(views["e2e_gpu_augment"] / views["step_premade"])
    overhead = result["cassle_overhead"]
    assert overhead["extra_time_fraction"] == pytest.approx(views["finetune_step_premade"] / views["step_premade"] - 1)
    step_ms = result["step_ms_by_optimizer"]
    assert step_ms["lars"] == pytest.approx(1000 * 2 * result["settings"]["batch_size"] / views["step_premade_lars"])
    assert step_ms["sgd"] == pytest.approx(1000 * 2 * result["settings"]["batch_size"] / views["step_premade_sgd"])
    assert step_ms["lars_extra_fraction"] == pytest.approx(step_ms["lars"] / step_ms["sgd"] - 1)
    assert "step with LARS / with SGD" in done.stdout
    machine = result["machine"]
    for key in ("device", "torch", "pytorch_lightning", "cpu_count", "git_sha", "python"):
        assert key in machine
    assert machine["cpu_count"] >= 1 and machine["torch"]
    settings = result["settings"]
    assert settings["method"] == "barlow_twins" and settings["distiller"] == "decorrelative"
    assert settings["backbone"] == "tiny" and settings["batched_device"] == "cpu"
    assert "--smoke" in result["command"] and "--data_device cpu_batched" in result["cassle_args"]


def test_target_setting_command_line_is_valid_for_cassle():
    """The GPU target setting's cassle flags parse (no data needed for parsing)."""
    from cassle.utils.args import parse_args

    b = throughput.parse_bench_args(["--data_dir", "/data/cifar100", "--", "--max_epochs", "3"])
    assert (b.method, b.distiller, b.backbone, b.batch_size, b.dataset) == (
        "barlow_twins",
        "decorrelative",
        "resnet18",
        256,
        "cifar100",
    )
    args = parse_args(throughput.cassle_argv(b, distiller=b.distiller, data_device="gpu", checkpoint_dir="x"))
    assert args.dataset == "cifar100" and args.task_idx == 1 and args.num_tasks == 5 and args.lars
    assert args.solarization_prob == [0.0, 0.2] and args.max_epochs == 3 and args.data_device == "gpu"


def test_bad_arguments():
    with pytest.raises(SystemExit):
        throughput.parse_bench_args(["--modes", "step,bogus"])
    with pytest.raises(SystemExit):
        throughput.parse_bench_args(["--steps", "0"])
    b = throughput.parse_bench_args(["--smoke", "--modes", "step"])
    assert b.modes == ["step"] and b.backbone == "tiny" and b.steps <= 4


def test_successors_measured_beside_cassle_resolve_per_method():
    """strategy mode (issue 23): PNR's distiller of the method beside CaSSLe's, CroMo-Mixup where the
    method supports it; what is skipped is said."""
    from benchmarks.strategy_cost import successors

    def resolve(*argv):
        return successors(throughput.parse_bench_args(["--smoke", *argv]))

    assert resolve() == ("pnr_decorrelative", ["cromo_mixup"], [])
    assert resolve("--method", "byol", "--distiller", "predictive")[:2] == ("pnr_predictive", ["cromo_mixup"])
    pnr, names, notes = resolve("--method", "mocov2plus", "--distiller", "contrastive")
    assert (pnr, names) == ("pnr_moco", []) and "cromo_mixup skipped" in notes[0]
    pnr, names, notes = resolve("--method", "swav", "--distiller", "knowledge", "--cl_strategies", "")
    assert (pnr, names) == (None, []) and "no PNR distiller for --method swav" in notes[0]
    assert resolve("--pnr_distiller", "none", "--cl_strategies", "ewc,cromo_mixup")[:2] == (
        None,
        ["ewc", "cromo_mixup"],
    )


@pytest.mark.slow  # ~50 s on 2 busy cores: four Lightning fits in a subprocess
def test_one_command_measures_cassle_pnr_and_cromo_mixup(tmp_path):
    out = tmp_path / "succ.json"
    argv = ["--smoke", "--method", "byol", "--distiller", "predictive", "--modes", "finetune,strategy"]
    done = subprocess.run(
        [sys.executable, "benchmarks/throughput.py", *argv, "--output", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    views, cost = result["views_per_s"], result["strategy_cost"]
    assert set(cost) == {"pnr_predictive", "cromo_mixup"}
    base = views["cassle_step_premade"]
    assert base > 0 and views["finetune_step_premade"] > 0
    for name, key in (
        ("pnr_predictive", "pnr_predictive_step_premade"),
        ("cromo_mixup", "cassle_cromo_mixup_step_premade"),
    ):
        assert cost[name]["extra_time_fraction"] == pytest.approx(base / views[key] - 1)
    assert "PNR (pnr_predictive)" in done.stdout and "CaSSLe + cromo_mixup" in done.stdout
