"""Atomic writes (cassle/utils/checkpoint.py): never a partial file, and ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from cassle.utils.checkpoint import atomic_write_text, atomic_write_with


def test_written_file_has_the_umask_permissions_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "eval" / "summary.md", "A = 1\n")
    finally:
        os.umask(old)
    assert path.read_text() == "A = 1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_with(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
