"""Which evaluation protocol made an A / F / T: ``--eval_protocol {fast, paper}``.

The CaSSLe paper reports, after each task, the top-1 of
- CIFAR-100: the online linear classifier trained during pretraining (labelled batches of the
  whole training set; ``--protocol online``);
- ImageNet-100 and DomainNet: an offline linear probe trained on augmented images for 100 epochs
  with the per-method lr (``--mode augmented``, ``LINEAR_LRS``).

``paper`` runs exactly that protocol for the run's dataset; ``fast`` (the default of
``main_linear.py --run_dir`` and ``job_launcher.py --eval``) extracts features once, without
augmentation, standardises them and trains the probe with lr 0.1 for every method: minutes instead
of hours, but its figures are not the paper's (the README's table of differences lists it). Users
of the original mistook one protocol for the other (its issue #12); every report therefore names
the protocol beside each figure (``label``), and ``--compare`` shows the paper's number only beside
rows made with the paper's protocol.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

EVAL_PROTOCOLS = ("fast", "paper")
ONLINE_DATASETS = ("cifar10", "cifar100")  # the paper's figures there are the online classifier's


def paper_protocol(dataset: str | None) -> dict[str, Any]:
    """``--protocol`` / ``--mode`` of the paper's evaluation for ``dataset``."""
    if dataset in ONLINE_DATASETS:
        return {"protocol": "online", "mode": None}
    return {"protocol": "linear", "mode": "augmented"}


def run_args(run_dir: str) -> dict[str, Any]:
    """The first readable task*/args.json of a run folder ({} when there is none)."""
    for args_path in sorted(Path(run_dir).glob("task*/args.json")):
        try:
            value = json.loads(args_path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(value, dict) and value.get("dataset"):
            return value
    return {}


def run_dataset(run_dir: str) -> str | None:
    """The dataset of a run folder (its first task's args.json), None when no args.json is readable."""
    value = run_args(run_dir).get("dataset")
    return str(value) if value else None


def apply(opts, parser=None) -> None:
    """Resolve ``opts.eval_protocol`` into ``opts.protocol`` / ``opts.mode`` (``--run_dir`` only).

    ``paper`` chooses both itself: an explicit ``--mode`` or ``--protocol online`` beside it is an
    error (through ``parser.error`` when given, else ValueError).
    """
    choice = getattr(opts, "eval_protocol", None)

    def fail(message: str):
        if parser is not None:
            parser.error(message)
        raise ValueError(message)

    if choice is None:
        return
    if choice not in EVAL_PROTOCOLS:
        fail(f"--eval_protocol {choice}: choose one of {', '.join(EVAL_PROTOCOLS)}")
    if not getattr(opts, "run_dir", None):
        fail("--eval_protocol is for --run_dir (every checkpoint of a run); one checkpoint takes --mode / --protocol")
    if choice == "fast":
        if opts.protocol == "linear" and opts.mode is None:
            opts.mode = "fast"
        return
    if opts.mode is not None or opts.protocol != "linear":
        fail("--eval_protocol paper chooses the protocol for the run's dataset itself; drop --mode / --protocol")
    dataset = opts.dataset or run_dataset(opts.run_dir)
    if dataset is None:
        fail(f"--eval_protocol paper: the dataset of {opts.run_dir} is unknown (no task*/args.json); give --dataset")
    chosen = paper_protocol(dataset)
    opts.protocol, opts.mode = chosen["protocol"], chosen["mode"]
    if chosen["mode"] == "augmented" and run_args(opts.run_dir).get("dali"):
        opts.dali = True  # the run pretrained through DALI: its probe does too (when DALI is installed)


def tags(proto: Mapping[str, Any]) -> dict[str, Any]:
    """``eval_protocol`` (paper, fast or custom: from what was run, whatever the flags) and ``label``
    for a protocol dict of ``run_eval`` (results.json)."""
    kind = "paper" if matches("paper", proto) else "fast" if matches("fast", proto) else "custom"
    return {"eval_protocol": kind, "label": label({**proto, "eval_protocol": kind})}


def matches(choice: str, proto: Mapping[str, Any]) -> bool:
    """True when ``proto`` (a results.json protocol) is what ``choice`` prescribes."""
    name = proto.get("name")
    if choice == "fast":
        return name == "linear-fast"
    want = paper_protocol(proto.get("dataset"))
    if want["protocol"] == "online":
        return name == "online"
    return (
        name == "linear-augmented"
        and proto.get("label_fraction", 1.0) == 1.0
        and str(proto.get("lr_source", "")).startswith("reference lr")
        and proto.get("epochs") == 100
    )


def is_paper(proto: Mapping[str, Any] | None) -> bool:
    """Was this results.json protocol the paper's? (older results without the tag: by their content)."""
    if not proto:
        return False
    if "eval_protocol" in proto:
        return proto["eval_protocol"] == "paper"
    return matches("paper", proto)


def label(proto: Mapping[str, Any] | None) -> str:
    """The protocol in a few words, printed beside every A / F / T."""
    if not proto:
        return "protocol unknown"
    name, kind = proto.get("name"), proto.get("eval_protocol")
    if kind is None:
        kind = "paper" if matches("paper", proto) else "fast" if name == "linear-fast" else "custom"
    if name == "online":
        what = "online classifier"
    elif name == "linear-augmented":
        what = f"offline augmented probe, lr {proto.get('lr')}"
    elif name == "linear-fast":
        what = "fast probe on cached standardised features"
    else:
        what = str(name)
    return {"paper": f"paper protocol: {what}", "fast": f"fast protocol: {what} (not the paper's)"}.get(
        kind, f"custom protocol: {what} (not the paper's)"
    )


def short(proto: Mapping[str, Any] | None) -> str:
    """One word for tables: paper, fast or custom."""
    if not proto:
        return "unknown"
    if "eval_protocol" in proto:
        return str(proto["eval_protocol"])
    return "paper" if matches("paper", proto) else "fast" if proto.get("name") == "linear-fast" else "custom"
