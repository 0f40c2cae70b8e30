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
    method supports it, Osiris (any method); what is skipped is said."""
    from benchmarks.strategy_cost import STRATEGY_WITH_CASSLE, successors

    def resolve(*argv):
        return successors(throughput.parse_bench_args(["--smoke", *argv]))

    assert resolve() == ("pnr_decorrelative", ["cromo_mixup", "osiris"], [])
    assert resolve("--method", "byol", "--distiller", "predictive")[:2] == (
        "pnr_predictive",
        ["cromo_mixup", "osiris"],
    )
    pnr, names, notes = resolve("--method", "mocov2plus", "--distiller", "contrastive")
    assert (pnr, names) == ("pnr_moco", ["osiris"]) and "cromo_mixup skipped" in notes[0]
    # as their scripts run them: CroMo-Mixup on CaSSLe's distiller, Osiris without one
    assert STRATEGY_WITH_CASSLE == {"cromo_mixup": True, "osiris": False}
    pnr, names, notes = resolve("--method", "swav", "--distiller", "knowledge", "--cl_strategies", "")
    assert (pnr, names) == (None, []) and "no PNR distiller for --method swav" in notes[0]
    assert resolve("--pnr_distiller", "none", "--cl_strategies", "ewc,cromo_mixup")[:2] == (
        None,
        ["ewc", "cromo_mixup"],
    )


def test_mode_selection():
    """--modes: the default is the Speed issue's six (no successor modes), `all` every mode including
    strategy and pocon, in MODES' order; unknown names are refused."""
    b = throughput.parse_bench_args([])
    assert b.modes == ["step", "gpu", "workers", "finetune", "augment", "optim"]
    assert throughput.parse_bench_args(["--modes", "all"]).modes == list(throughput.MODES)
    assert {"strategy", "pocon"} <= set(throughput.MODES)
    assert throughput.parse_bench_args(["--modes", "finetune, pocon"]).modes == ["finetune", "pocon"]
    with pytest.raises(SystemExit):
        throughput.parse_bench_args(["--modes", "all,bogus"])


def test_pocon_mode_skips_methods_pocon_does_not_support():
    from benchmarks.pocon_cost import pocon_steps
    from cassle.strategies.pocon import SUPPORTED

    assert SUPPORTED == ("barlow_twins", "vicreg", "simclr")
    lines = []
    b = throughput.parse_bench_args(["--smoke", "--method", "byol", "--modes", "pocon"])
    views, cost = pocon_steps(measure=None, b=b, log=lines.append)  # nothing measured: None is not called
    assert views == {} and "barlow_twins, vicreg, simclr" in cost["skipped"] and "pocon skipped" in lines[0]


def test_pocon_mode_times_both_phases_at_task_1(tmp_path):
    """pocon mode (issue 23), CPU smoke in process (~5 s on 2 busy cores: four short fits): the expert
    step trains the expert (not F), the merge step F + g_exp + g_ret (not the expert, not F_(t-1), not
    the method's projector); the model holds the expert and F_(t-1) beside CaSSLe's one snapshot."""
    b = throughput.parse_bench_args(["--smoke", "--modes", "pocon"])
    b.argv = []
    result = throughput.run(b, log=lambda *_: None)
    views, cost, figures = result["views_per_s"], result["pocon_cost"], result["step_figures"]
    assert set(figures) == {"finetune", "cassle", "pocon_expert", "pocon_merge"}
    base = views["cassle_step_premade"]
    for phase in ("expert", "merge"):
        speed = views[f"pocon_{phase}_step_premade"]
        assert speed > 0 and cost[phase]["extra_time_fraction"] == pytest.approx(base / speed - 1)
        assert cost[phase]["extra_time_fraction_vs_finetune"] == pytest.approx(
            views["finetune_step_premade"] / speed - 1
        )
        assert cost[phase]["peak_mib"] is None  # CPU: the state counts stand for memory
    expert, merge = cost["expert"]["state"], cost["merge"]["state"]
    tuned, cassle = figures["finetune"]["state"], figures["cassle"]["state"]
    backbone = tuned["updated_by_module"]["backbone"]
    assert set(expert["updated_by_module"]) == {"pocon.expert", "projector", "classifier"}
    assert expert["updated_by_module"]["pocon.expert"] == backbone
    assert set(merge["updated_by_module"]) == {"backbone", "pocon.adapt_proj", "pocon.retro_proj", "classifier"}
    assert expert["updated_params"] == tuned["updated_params"]  # the expert phase is a fine-tuning step
    # POCON's model: fine-tuning's + the expert + F_(t-1) (two more backbones) + g_exp + g_ret
    extra_proj = merge["updated_by_module"]["pocon.adapt_proj"] + merge["updated_by_module"]["pocon.retro_proj"]
    assert merge["params"] == expert["params"] == tuned["params"] + 2 * backbone + extra_proj
    assert cassle["params"] > tuned["params"] + backbone  # CaSSLe: F_(t-1) + its predictor


@pytest.mark.slow  # ~50 s on 2 busy cores: five Lightning fits in a subprocess
def test_one_command_measures_cassle_pnr_cromo_mixup_and_osiris(tmp_path):
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
    assert set(cost) == {"pnr_predictive", "cromo_mixup", "osiris"}
    base = views["cassle_step_premade"]
    assert base > 0 and views["finetune_step_premade"] > 0
    for name, key in (
        ("pnr_predictive", "pnr_predictive_step_premade"),
        ("cromo_mixup", "cassle_cromo_mixup_step_premade"),
        ("osiris", "osiris_step_premade"),
    ):
        assert cost[name]["extra_time_fraction"] == pytest.approx(base / views[key] - 1)
        assert cost[name]["extra_time_fraction_vs_finetune"] == pytest.approx(
            views["finetune_step_premade"] / views[key] - 1
        )
    assert cost["cromo_mixup"]["with_cassle"] and not cost["osiris"]["with_cassle"]
    # Osiris runs without CaSSLe's distiller (no frozen snapshot for Osiris-R), with h beside g
    osiris = cost["osiris"]["state"]["updated_by_module"]
    assert "distiller" not in osiris and "strategies.osiris" in osiris
    assert "PNR (pnr_predictive)" in done.stdout and "CaSSLe + cromo_mixup" in done.stdout
    assert "osiris (no distiller)" in done.stdout


def test_successor_params_builds_every_successor_without_data():
    """successor_params.py (the memory the models hold, at any size; here the smoke's tiny net): one
    model per successor of the method; Osiris-R = fine-tuning + h (a copy of the projector), CaSSLe's
    successors PNR and CroMo-Mixup hold CaSSLe's parameters."""
    _spec2 = importlib.util.spec_from_file_location("successor_params", REPO / "benchmarks" / "successor_params.py")
    sp = importlib.util.module_from_spec(_spec2)
    _spec2.loader.exec_module(sp)
    counts = sp.main(["--smoke"])
    assert set(counts) == {"finetune", "cassle", "pnr_decorrelative", "cromo_mixup", "osiris", "pocon"}
    b = throughput.parse_bench_args(["--smoke"])
    from cassle.utils.args import parse_args
    from main_continual import build_model

    plain = build_model(parse_args(throughput.cassle_argv(b, distiller=None, data_device="cpu", checkpoint_dir="x")))
    projector = sum(p.numel() for p in plain.projector.parameters())
    assert counts["osiris"]["params"] == counts["finetune"]["params"] + projector
    assert counts["pnr_decorrelative"]["params"] == counts["cromo_mixup"]["params"] == counts["cassle"]["params"]
    assert counts["pocon"]["params"] > counts["finetune"]["params"] + 2 * sum(
        p.numel() for p in plain.backbone.parameters()
    )
