"""POCON's shipped scripts, for tests/test_bash_scripts.py and tests/test_scripts_pocon.py: which exist
and the CIFAR-100 recipe of POCON's public command (alviur/pocon_wacv2024 src/tests/wacv.py,
src/approach/sslModels.py), written out here."""

from __future__ import annotations

from pathlib import Path

POCON = ("barlow",)  # the code's SSL objective (--sslModel BT)
POCON_GRID = ("cifar", "digits")
# optimizer, lr, classifier_lr, weight_decay, scheduler, max_epochs, expert epochs, batch_size,
# jitter b/c/s/h, solarization, lamb, scale_loss, retro lamb, adapt lamb, adapt proj, retro proj
POCON_CIFAR = (
    "sgd",
    0.01,
    0.1,
    5e-4,
    "none",
    750,
    500,
    256,
    (0.4, 0.4, 0.4, 0.1),
    [0.0],
    0.0051,
    0.025,
    25.0,
    1.0,
    3,
    0,
)


def is_pocon(path: Path) -> bool:
    return path.stem.endswith("_pocon") and path.stem[: -len("_pocon")] in POCON
