"""Published numbers that ``main_linear.py --compare`` shows beside its rows, with source and protocol.

``PAPER_NUMBERS[row][method]`` is a ``PaperNumber(value, source, protocol)`` (or a list of them,
one per protocol): ``row`` is a ``--compare`` row name (``compare.strategy_label``: "fine-tuning",
"CaSSLe", "PNR", "CaSSLe + CroMo-Mixup", ...), ``method`` this repo's ``--method`` name, ``value``
the paper's linear top-1 after the last task (A), ``source`` where the number is printed (paper,
table or figure, or README line) and ``protocol`` how it was obtained. Adding a successor's numbers
is adding entries here; nothing else changes.

How ``--compare`` shows an entry (``lookup``):

* its dataset, split and number of tasks equal the compared runs' and its training protocol is this
  repo's (``REPO_PROTOCOLS``: CIFAR-100, 5 class-incremental tasks x 500 epochs, ResNet-18, the
  paper's linear accuracy after the last task; README, the shared REFERENCE.md sections 4 and 5)
  and the runs' own epochs / backbone (their last task's ``args.json``, where stated) agree:
  ``[paper X]`` beside figures made with the paper's evaluation protocol, ``[paper: protocols
  differ]`` beside others (the existing rule of issue 20);
* same dataset, split and tasks but another training protocol (more epochs, a replay buffer, another
  backbone, a kNN figure): ``[paper X (PROTOCOL): protocols differ]``, the number with its protocol,
  never as the row's paper value (not in the CSV's ``paper`` column, no tick in the plot);
* another dataset, split or number of tasks: not shown (not the same experiment).
"""

from __future__ import annotations

from typing import NamedTuple


class PaperProtocol(NamedTuple):
    dataset: str
    split: str
    num_tasks: int
    epochs: int | str  # per task, as the source states it ("600 then 350" where tasks differ)
    backbone: str = "resnet18"
    note: str = ""  # anything else that differs from this repo's protocol (replay, kNN, ...)

    @property
    def setting(self) -> tuple:
        return (self.dataset, self.split, self.num_tasks)

    def short(self) -> str:
        parts = [f"{self.num_tasks} tasks x {self.epochs} ep", self.backbone]
        return ", ".join(parts + ([self.note] if self.note else []))


class PaperNumber(NamedTuple):
    value: float
    source: str
    protocol: PaperProtocol


# This repository's protocols the papers' numbers can match (README; the shared REFERENCE.md 4, 5).
REPO_PROTOCOLS = {("cifar100", "class", 5): PaperProtocol("cifar100", "class", 5, 500, "resnet18")}

_CASSLE_SRC = "Fini et al., CVPR 2022 (CaSSLe), CIFAR-100 class-incremental figure (the README's)"
_CASSLE_C100 = REPO_PROTOCOLS[("cifar100", "class", 5)]
# CaSSLe paper: fine-tuning -> CaSSLe, CIFAR-100, 5 class-incremental tasks, linear top-1 after the last task.
_CASSLE = {
    "byol": (52.7, 62.2),
    "barlow_twins": (54.3, 60.4),
    "simclr": (48.9, 58.3),
    "mocov2plus": (47.3, 59.5),
    "swav": (55.5, 57.8),
    "vicreg": (51.5, 53.6),
}

PAPER_NUMBERS: dict[str, dict[str, PaperNumber | list[PaperNumber]]] = {
    "fine-tuning": {m: PaperNumber(ft, _CASSLE_SRC, _CASSLE_C100) for m, (ft, _) in _CASSLE.items()},
    "CaSSLe": {m: PaperNumber(c, _CASSLE_SRC, _CASSLE_C100) for m, (_, c) in _CASSLE.items()},
    # PNR (Cha, Cho, Moon, ICML 2024, arXiv 2306.05101): no entry. Its repository (csm9493/PNR:
    # README.md, run_cifar100.sh, bash_files/continual/cifar/*_pnr.sh) prints no number; its CIFAR-100
    # runs are 5 class-incremental tasks x 500 epochs, ResNet-18, seed 5 (this repo's protocol). The
    # paper's tables could not be read here: the stored copies of arXiv 2306.05101v2 (HTML), PMLR
    # v235 cha24a (PDF) and the abstract pages (sciencestack, huggingface papers, mlanthology,
    # researchtrend, arxivlens, nyuscholars) give only the abstract. A leaderboard page
    # (wizwand.com) lists "CIFAR-100 Class-IL (5T) Accuracy 63.19" and "CIFAR-100 10T A_T 59.29"
    # for the paper without naming the SSL method: not entered (no method, not the paper itself).
    # Enter the paper's Table numbers as "PNR": {"byol": PaperNumber(v, "Cha et al. 2024, Table N",
    # REPO_PROTOCOLS[("cifar100", "class", 5)]), ...} once read.
    "PNR": {},
    # CroMo-Mixup (Mushtaq et al., ECCV 2024, arXiv 2407.12188): no entry. Its repository
    # (ErumMushtaq/CroMo-Mixup, Readme.md) prints commands, no number; its CIFAR-100 protocol is
    # not this repo's in any case: 5 tasks x 750 epochs (10 tasks: 600 then 350), a 500-image
    # buffer (100 / 25 for some), kNN and linear figures. The paper's tables could not be read here
    # (the stored arXiv 2407.12188v1 HTML and sciencestack page give only the abstract). Enter them
    # with PaperProtocol("cifar100", "class", 5, 750, "resnet18", "500-image replay buffer"): they
    # then show with "protocols differ" and their protocol.
    "CaSSLe + CroMo-Mixup": {},
}


def entries(row: str, method: str) -> list[PaperNumber]:
    found = PAPER_NUMBERS.get(row, {}).get(method)
    return [] if found is None else list(found) if isinstance(found, list) else [found]


def lookup(
    row: str, method: str, setting: tuple, epochs: int | None = None, backbone: str | None = None
) -> tuple[PaperNumber | None, bool]:
    """(the paper's number for these runs or None, whether its training protocol is the runs').

    ``setting`` = (dataset, split, num_tasks) of the runs; ``epochs`` / ``backbone`` their last
    task's, None where unknown (then not held against the match)."""
    same_setting = [e for e in entries(row, method) if e.protocol.setting == tuple(setting)]
    if not same_setting:
        return None, False
    repo = REPO_PROTOCOLS.get(tuple(setting))
    for e in same_setting:
        p = e.protocol
        if (
            p == repo
            and (epochs is None or str(epochs) == str(p.epochs))
            and (backbone is None or backbone == p.backbone)
        ):
            return e, True
    return same_setting[0], False


def paper_value(row: str, method: str, setting: tuple) -> float | None:
    """The paper's A when its protocol is this repo's for ``setting`` (else None)."""
    entry, same = lookup(row, method, setting)
    return entry.value if entry is not None and same else None
