"""main_linear.py --compare: runs -> A/F/T table by strategy x method, mean +- std over seeds."""

import csv
import json
from pathlib import Path

import pytest

from main_linear import main


def _run(
    root: Path,
    name: str,
    method: str,
    seed: int,
    A: float,
    F: float = 1.0,
    T: float = 2.0,
    dataset="cifar100",
    distiller=None,
    cl_strategy=None,
    protocol=None,
    **more,
) -> Path:
    run = root / name
    for t in range(2):  # task 0 of a CaSSLe run has no distiller: the last task's args count
        (run / f"task{t}").mkdir(parents=True)
        args = {
            "method": method,
            "seed": seed,
            "dataset": dataset,
            "split_strategy": "class",
            "num_tasks": 5,
            "distiller": distiller if t else None,
            "cl_strategy": cl_strategy,
            **more,
        }
        (run / f"task{t}" / "args.json").write_text(json.dumps(args))
    (run / "eval").mkdir()
    protocol = protocol or {"name": "online", "dataset": dataset, "eval_protocol": "paper"}
    (run / "eval" / "results.json").write_text(json.dumps({"A": A, "F": F, "T": T, "protocol": protocol}))
    return run


def test_compare_table_csv_markdown_plot(tmp_path, capsys):
    grid = tmp_path / "grid"
    _run(grid, "byol-ft-s1", "byol", 1, 50.0)
    _run(grid, "byol-ft-s2", "byol", 2, 54.0)
    _run(grid, "byol-cassle", "byol", 1, 60.0, distiller="predictive")
    _run(grid, "byol-pfr-er", "byol", 1, 58.0, cl_strategy=["pfr", "replay"])
    simclr = _run(tmp_path, "simclr-ewc", "simclr", 1, 40.0, F=3.0, cl_strategy=["ewc"])
    out = tmp_path / "cmp"
    assert main(["--compare", str(grid), str(simclr), "--output_dir", str(out)]) == 0
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    ft = next(r for r in rows if r["metric"] == "A" and r["strategy"] == "fine-tuning")
    assert (float(ft["mean"]), float(ft["std"]), ft["n"], ft["seeds"]) == (
        52.0,
        pytest.approx(2.828, abs=1e-3),
        "2",
        "1 2",
    )
    assert ft["paper"] == "52.7"  # the CaSSLe paper's BYOL fine-tuning on CIFAR-100
    cassle = next(r for r in rows if r["metric"] == "A" and r["strategy"] == "CaSSLe")
    assert cassle["paper"] == "62.2"
    assert {r["strategy"] for r in rows} == {"fine-tuning", "CaSSLe", "PFR + ER", "EWC"}
    md = (out / "comparison.md").read_text()
    assert "| strategy | SimCLR | BYOL |" in md
    assert "| fine-tuning | - | 52.00 ± 2.83 (n=2) {paper} [paper 52.7] |" in md
    assert "| EWC | 3.00 {paper} | - |" in md  # the F table
    assert (out / "comparison.png").stat().st_size > 1000
    assert "CaSSLe" in capsys.readouterr().out


def test_compare_bad_input(tmp_path, capsys):
    _run(tmp_path, "a", "byol", 1, 50.0)
    _run(tmp_path, "b", "byol", 1, 51.0)
    assert main(["--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--output_dir", str(tmp_path / "o")]) == 2
    assert "two runs with the same seed" in capsys.readouterr().err
    _run(tmp_path, "c", "byol", 2, 51.0, dataset="cifar10")
    assert main(["--compare", str(tmp_path / "a"), str(tmp_path / "c"), "--output_dir", str(tmp_path / "o")]) == 2
    assert "mixes settings" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--compare", str(tmp_path / "empty"), "--output_dir", str(tmp_path / "o")]) == 2
    assert "has no eval/results.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--compare", str(tmp_path / "a")])
    assert "--compare needs --output_dir" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_compare_shows_the_papers_number_only_beside_the_papers_protocol(tmp_path):
    """Issue 20: a fast-probe A next to the paper's (online classifier) number is not like with like."""
    fast = {"name": "linear-fast", "dataset": "cifar100", "eval_protocol": "fast"}
    _run(tmp_path / "g", "byol-ft", "byol", 1, 40.0, protocol=fast)
    _run(tmp_path / "g", "byol-cassle", "byol", 1, 45.0, distiller="predictive")
    out = tmp_path / "cmp"
    assert main(["--compare", str(tmp_path / "g"), "--output_dir", str(out)]) == 0
    md = (out / "comparison.md").read_text()
    assert "| fine-tuning | 40.00 {fast} [paper: protocols differ] |" in md
    assert "| CaSSLe | 45.00 {paper} [paper 62.2] |" in md
    assert "- {fast}: fast protocol: fast probe on cached standardised features (not the paper's)" in md
    rows = {r["strategy"]: r for r in csv.DictReader((out / "comparison.csv").open()) if r["metric"] == "A"}
    assert (rows["fine-tuning"]["paper"], rows["fine-tuning"]["protocol"]) == ("", "fast")
    assert (rows["CaSSLe"]["paper"], rows["CaSSLe"]["protocol"]) == ("62.2", "paper")
    _run(tmp_path / "g", "byol-ft-2", "byol", 2, 41.0)  # same row, other protocol: refused
    assert main(["--compare", str(tmp_path / "g"), "--output_dir", str(out)]) == 2


def test_pocon_runs_are_their_own_row_without_a_paper_number(tmp_path):
    """A --pocon run is labelled POCON (never fine-tuning beside the paper's number), after PNR."""
    from cassle.eval.compare import ROW_ORDER, paper_value, strategy_label

    assert strategy_label({"pocon": True}) == "POCON" and ROW_ORDER[-1] == "POCON"
    run = _run(tmp_path / "g", "barlow-pocon", "barlow_twins", 1, 50.0)
    for t in range(2):
        args = json.loads((run / f"task{t}" / "args.json").read_text())
        (run / f"task{t}" / "args.json").write_text(json.dumps({**args, "pocon": True}))
    _run(tmp_path / "g", "barlow-ft", "barlow_twins", 1, 40.0)
    out = tmp_path / "cmp"
    assert main(["--compare", str(tmp_path / "g"), "--output_dir", str(out)]) == 0
    rows = {r["strategy"]: r for r in csv.DictReader((out / "comparison.csv").open()) if r["metric"] == "A"}
    assert paper_value("POCON", "barlow_twins", ("cifar100", "class", 5)) is None
    assert rows["POCON"]["paper"] == ""
    assert rows["fine-tuning"]["paper"] == "54.3"
    md = (out / "comparison.md").read_text()
    assert md.index("| fine-tuning |") < md.index("| POCON |")


def test_papers_numbers_show_with_their_protocol(tmp_path, monkeypatch):
    """Issue 23: a successor's paper number of the same setting but another training protocol shows
    with that protocol, never as the row's paper value; another task count is not shown at all; the
    CaSSLe paper's number beside runs of fewer epochs says so."""
    from cassle.eval import paper_numbers as pn

    other = pn.PaperProtocol("cifar100", "class", 5, 750, "resnet18", "500-image buffer")
    monkeypatch.setitem(
        pn.PAPER_NUMBERS,
        "PNR",
        {
            "byol": [
                pn.PaperNumber(70.0, "a paper, Table 9", pn.PaperProtocol("cifar100", "class", 10, 500)),
                pn.PaperNumber(61.0, "a paper, Table 1", other),
            ],
            "simclr": pn.PaperNumber(55.0, "a paper, Table 2", pn.PaperProtocol("cifar100", "class", 10, 500)),
        },
    )
    g = tmp_path / "g"
    _run(g, "byol-pnr", "byol", 1, 60.0, distiller="pnr_predictive", max_epochs=500, backbone="resnet18")
    _run(g, "simclr-pnr", "simclr", 1, 50.0, distiller="pnr_contrastive", max_epochs=500)
    _run(g, "byol-cassle-short", "byol", 1, 40.0, distiller="predictive", max_epochs=2)
    _run(g, "simclr-cassle", "simclr", 1, 57.0, distiller="contrastive", max_epochs=500, backbone="resnet18")
    out = tmp_path / "cmp"
    assert main(["--compare", str(g), "--output_dir", str(out)]) == 0
    md = (out / "comparison.md").read_text()
    assert "| PNR | 50.00 {paper} | 60.00 {paper} [paper 61.0 (5 tasks x 750 ep, resnet18, 500-image buffer): " in md
    assert "70.0" not in md and "55.0" not in md  # the 10-task numbers: not these runs' setting
    assert "| CaSSLe | 57.00 {paper} [paper 58.3] | 40.00 {paper} [paper 62.2 (5 tasks x 500 ep, resnet18): " in md
    assert "- PNR / BYOL: 61.0 (5 tasks x 750 ep, resnet18, 500-image buffer); a paper, Table 1" in md
    assert "- CaSSLe / SimCLR: 58.3 (5 tasks x 500 ep, resnet18); Fini et al., CVPR 2022" in md
    rows = {
        (r["strategy"], r["method"]): r for r in csv.DictReader((out / "comparison.csv").open()) if r["metric"] == "A"
    }
    assert rows[("PNR", "byol")]["paper"] == "" and rows[("PNR", "byol")]["paper_other"].startswith("61.0 (5 tasks")
    assert rows[("CaSSLe", "byol")]["paper"] == ""  # 2 epochs per task: not the paper's 500
    assert (rows[("CaSSLe", "simclr")]["paper"], rows[("CaSSLe", "simclr")]["paper_other"]) == ("58.3", "")
    assert rows[("PNR", "simclr")]["paper"] == rows[("PNR", "simclr")]["paper_other"] == ""


def test_paper_numbers_table_is_sourced_and_matches_only_this_repos_protocol():
    from cassle.eval import paper_numbers as pn

    for row, by_method in pn.PAPER_NUMBERS.items():
        for method in by_method:
            for e in pn.entries(row, method):
                assert e.source and 0 < e.value < 100, (row, method)
    setting = ("cifar100", "class", 5)
    assert pn.paper_value("CaSSLe", "barlow_twins", setting) == 60.4
    assert pn.paper_value("CaSSLe", "barlow_twins", ("cifar100", "class", 10)) is None
    assert pn.lookup("CaSSLe", "barlow_twins", setting, epochs=500, backbone="resnet18")[1] is True
    assert pn.lookup("CaSSLe", "barlow_twins", setting, epochs=500, backbone="vit_small")[1] is False
    assert pn.lookup("fine-tuning", "byol", setting, epochs=499)[0].value == 52.7
