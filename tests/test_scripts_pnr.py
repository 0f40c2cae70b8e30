"""PNR's CIFAR-100 scripts: the pseudo-negative weight and the MoCo queue of PNR's public scripts,
the source named in the header, one script per family (the recipe itself is checked with every
CIFAR script in tests/test_bash_scripts.py, through tests/pnr_scripts.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.pnr_scripts import PNR_CIFAR, is_pnr
from tests.test_bash_scripts import SCRIPTS, _args, _ids, _setting, _stem

PNR_SCRIPTS = [p for p in SCRIPTS if _setting(p) == "cifar" and is_pnr(p)]


@pytest.mark.parametrize("path", PNR_SCRIPTS, ids=_ids(PNR_SCRIPTS))
def test_pnr_cifar_script_is_pnrs_public_script(path: Path):
    stem, a = _stem(path), _args(path)
    assert a.pnr_negative_lamb == PNR_CIFAR[stem][1] and "csm9493/PNR" in path.read_text()
    if stem == "mocov2plus":
        assert a.queue_size == 65536 and a.eta_lars == 0.02 and a.grad_clip_lars


def test_every_pnr_family_has_its_cifar_script():
    assert sorted(_stem(p) for p in PNR_SCRIPTS) == sorted(PNR_CIFAR)
