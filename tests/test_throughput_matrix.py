"""benchmarks/throughput.py --matrix: every method x {resnet18, vit_small}, each with its paper
distiller, the ViT rows with the ViT scripts' optimiser (the measurement itself is the single-run
code, tested in tests/test_benchmark.py; here the loop and the command lines it builds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


throughput = _load("throughput")
matrix = _load("throughput_matrix")


def test_matrix_covers_every_method_on_both_backbones():
    from cassle.distillers import DEFAULT_DISTILLER
    from cassle.methods import METHODS

    seen = []

    def fake_run(b, log=print):
        seen.append((b.method, b.backbone, b.distiller, tuple(b.modes), tuple(b.extra)))
        views = {"step_premade": 100.0, "finetune_step_premade": 125.0}
        return {
            "views_per_s": views,
            "settings": {"precision": "32"},
            "machine": {"device": "cpu"},
            "cassle_overhead": {"extra_time_fraction": 0.25},
        }

    b = throughput.parse_bench_args(["--smoke", "--matrix", "--", "--seed", "3"])
    lines = []
    out = matrix.run_matrix(b, fake_run, argv=["--smoke", "--matrix"], log=lines.append)
    assert [(m, bb) for m, bb, *_ in seen] == [(m, bb) for m in METHODS for bb in ("resnet18", "vit_small")]
    for method, backbone, distiller, modes, extra in seen:
        assert distiller == DEFAULT_DISTILLER[method] and modes == ("step", "finetune")
        assert extra[:2] == ("--seed", "3")  # the user's flags first, the ViT recipe after them
        assert (extra[2:] == tuple(matrix.VIT_FLAGS)) == (backbone == "vit_small")
    assert len(out["matrix"]) == 2 * len(METHODS)
    assert all(r["cassle_extra_time_fraction"] == 0.25 for r in out["matrix"])
    assert any("vit_small" in line and "+25.0 %" in line for line in lines)

    def failing_run(b, log=print):
        if b.method == "byol" and b.backbone == "vit_small":
            raise ValueError("--batch_size 4 must be a multiple of 256")
        return fake_run(b, log)

    out = matrix.run_matrix(b, failing_run, argv=["--smoke", "--matrix"], log=lines.append)
    bad = [r for r in out["matrix"] if "error" in r]
    assert [(r["method"], r["backbone"]) for r in bad] == [("byol", "vit_small")]
    assert "multiple of 256" in bad[0]["error"]
    assert len(out["matrix"]) == 2 * len(METHODS)


def test_vit_row_command_line_is_the_vit_recipe(tmp_path):
    from cassle.utils.args import parse_args

    b = throughput.parse_bench_args(["--smoke", "--matrix"])
    b.method, b.backbone, b.extra = "byol", "vit_small", list(matrix.VIT_FLAGS)
    args = parse_args(
        throughput.cassle_argv(b, distiller="predictive", data_device="cpu", checkpoint_dir=str(tmp_path))
    )
    assert (args.backbone, args.optimizer, args.lars, args.patch_size) == ("vit_small", "adamw", False, 4)
    assert (args.lr, args.weight_decay, args.exclude_bias_n_norm) == (1.5e-4, 0.1, False)
    b.method = "barlow_twins"  # its RECIPES entry says --lars: the ViT flags come after and win
    args = parse_args(
        throughput.cassle_argv(b, distiller="decorrelative", data_device="cpu", checkpoint_dir=str(tmp_path))
    )
    assert not args.lars and args.optimizer == "adamw"
