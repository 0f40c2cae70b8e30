"""PNR's shipped scripts, for tests/test_bash_scripts.py and tests/test_scripts_pnr.py: which exist,
with which distiller, and the CIFAR-100 recipe of PNR's public scripts (csm9493/PNR
bash_files/continual/cifar/*_pnr.sh) = CaSSLe's recipe of the method with the values PNR's script
sets otherwise, written out here."""

from __future__ import annotations

from pathlib import Path

# file stem -> its distiller, for the methods PNR's public code covers; CIFAR-100 and the digits demo
PNR = {
    "barlow": "pnr_decorrelative",
    "byol": "pnr_predictive",
    "mocov2plus": "pnr_moco",
    "simclr": "pnr_contrastive",
    "vicreg": "pnr_predictive_mse",
}
PNR_GRID = ("cifar", "digits")
# stem -> the CIFAR_RECIPE fields PNR's script sets otherwise (index: value), its
# --pnr_negative_lamb (None: no such term)
PNR_CIFAR = {
    "simclr": ({1: 0.6, 3: 1e-4, 6: (0.4, 0.4, 0.2, 0.1), 7: [0.0, 0.2]}, None),
    "mocov2plus": ({0: "lars", 1: 0.6, 6: (0.4, 0.4, 0.2, 0.1), 7: [0.0, 0.2]}, None),
    "byol": ({}, 0.5),
    "barlow": ({1: 0.4}, 1.0),
    "vicreg": ({}, 23.0),
}


def is_pnr(path: Path) -> bool:
    return path.stem.endswith("_pnr") and path.stem[:-4] in PNR


def recipe_of(path: Path, recipe: tuple) -> tuple:
    """The CIFAR recipe a script must carry: CaSSLe's, or PNR's changes of it for a PNR script."""
    if not is_pnr(path):
        return recipe
    recipe = list(recipe)
    for i, v in PNR_CIFAR[path.stem[:-4]][0].items():
        recipe[i] = v
    return tuple(recipe)
