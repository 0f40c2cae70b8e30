""".ci/check_skips.py: CI lists every skipped test with its reason and fails on a skip that
.ci/expected_skips.txt does not name (so DALI, SLURM or timm tests cannot skip silently)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_skips", REPO / ".ci" / "check_skips.py")
check_skips = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_skips)

SKIP = '<testcase classname="{}" name="{}"><skipped type="pytest.{}" message="{}">x</skipped></testcase>'
JUNIT = "".join(
    [
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">',
        SKIP.format("tests.test_gpu_loader", "test_cuda_loader_and_hook", "skip", "needs a GPU"),
        SKIP.format("tests.test_dali", "test_run[a]", "skip", "NVIDIA DALI not installed"),
        SKIP.format("tests.test_x.TestK", "test_y", "xfail", "known"),  # an xfail is not a skip
        SKIP.format("tests.sub.test_z.TestK", "test_w", "skip", "needs a GPU"),
        '<testcase classname="tests.test_x" name="test_ok" />',
        "</testsuite></testsuites>",
    ]
)


def run(tmp_path, allow: str) -> int:
    (tmp_path / "r.xml").write_text(JUNIT)
    (tmp_path / "allow.txt").write_text(allow)
    return check_skips.main(str(tmp_path / "r.xml"), str(tmp_path / "allow.txt"))


def test_skips_are_listed_with_reasons_and_unexpected_ones_fail(tmp_path, capsys):
    assert check_skips.skipped_tests(_write(tmp_path)) == [
        ("tests/test_gpu_loader.py::test_cuda_loader_and_hook", "needs a GPU"),
        ("tests/test_dali.py::test_run[a]", "NVIDIA DALI not installed"),
        ("tests/sub/test_z.py::TestK::test_w", "needs a GPU"),
    ]
    gpu_only = "# comment\ntests/test_gpu_loader.py::* | needs a GPU | no GPU on CI\ntests/sub/* | GPU | none\n"
    assert run(tmp_path, gpu_only) == 1
    out = capsys.readouterr().out
    assert "skipped tests: 3" in out and "reason: NVIDIA DALI not installed" in out
    assert "NOT EXPECTED" in out and "FAIL: 1 test(s)" in out and "tests/test_dali.py::test_run[a]" in out
    assert run(tmp_path, gpu_only + "tests/test_dali.py::* | DALI | cannot install\n") == 0
    # the reason must match too: a GPU test skipping for another reason is not expected
    assert (
        run(
            tmp_path,
            "tests/test_gpu_loader.py::* | scipy | x\ntests/test_dali.py::* | DALI | x\ntests/sub/* | GPU | x\n",
        )
        == 1
    )


def _write(tmp_path):
    (tmp_path / "r.xml").write_text(JUNIT)
    return str(tmp_path / "r.xml")


def test_the_repository_allowlist_is_well_formed_and_names_why():
    entries = check_skips.read_allowlist(str(REPO / ".ci" / "expected_skips.txt"))
    assert entries and all(len(why) > 10 for _, _, why in entries)
    assert not any("dali" in glob.lower() or "slurm" in glob or "optim" in glob for glob, _, _ in entries)


def test_a_malformed_allowlist_line_names_the_file_and_line(tmp_path):
    with pytest.raises(SystemExit, match=r"allow.txt:2: expected"):
        run(tmp_path, "# ok\ntests/test_x.py::* | only two fields\n")
