"""The original cassle code's command-line flags that this code spells differently or does not need.

``add_original_flags`` adds them to ``main_continual.py``'s and ``main_linear.py``'s parsers: each keeps its
original meaning, or is one clear error when this project does not implement what it did.
"""

from __future__ import annotations

import argparse

# Flags of the original cassle code (its bash scripts, main_pretrain.py and main_linear.py) that this
# code spells differently or does not need. Each keeps its original meaning here, or is a clear error
# when this project does not implement what it did. (Flags with the same name and meaning in both,
# e.g. --encoder, --lars, --momentum_classifier, are defined where they belong.)
ORIGINAL_NOOP_HELP = "original code's flag, accepted: {}"
UNSUPPORTED_ORIGINAL_FLAGS = {
    "--multicrop": "multi-crop is --num_small_crops N with --small_crop_size / --small_crop_min_scale / "
    "--small_crop_max_scale here (DINO only; cassle/data/multicrop.py)",
    "--no_labels": "unlabelled custom datasets are not supported (the online classifier needs labels)",
    "--auto_umap": "UMAP plots are not part of this project",
    "--auto_umap_dir": "UMAP plots are not part of this project",
    "--auto_umap_frequency": "UMAP plots are not part of this project",
}
# Lightning 1.5's --accelerator took strategy names; they meant distributed training on GPUs.
LIGHTNING15_DISTRIBUTED = ("ddp", "ddp_spawn", "ddp2", "dp", "ddp_sharded", "ddp_cpu")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


class _Unsupported(argparse.Action):
    def __init__(self, option_strings, dest, nargs="?", **kwargs):
        super().__init__(option_strings, dest, nargs=nargs, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(
            f"{option_string} (a flag of the original cassle code): "
            f"{UNSUPPORTED_ORIGINAL_FLAGS[option_string]}; remove it from the script"
        )


def add_original_flags(parser: argparse.ArgumentParser, *, linear: bool = False) -> None:
    """The original code's flags (see the table above) for main_continual.py or main_linear.py."""
    from cassle.data.args import _PerViewAction

    g = parser.add_argument_group("flags of the original cassle code (accepted with their meaning)")
    g.add_argument(
        "--offline",
        dest="wandb_online",
        action="store_const",
        const=False,
        help="wandb offline (the default here; --wandb_online syncs)",
    )
    g.add_argument(
        "--checkpoint_frequency",
        type=int,
        default=None,
        help=ORIGINAL_NOOP_HELP.format("last.ckpt is written at every epoch end"),
    )
    for flag in ("--no_labels", "--auto_umap", "--auto_umap_dir", "--auto_umap_frequency"):
        g.add_argument(flag, action=_Unsupported, help=argparse.SUPPRESS)
    if linear:
        g.add_argument(
            "--semi_supervised", dest="label_fraction", type=float, help="the original spelling of --label_fraction"
        )
        g.add_argument(
            "--checkpoint_dir",
            default=None,
            help="the original's output folder: results go to CHECKPOINT_DIR/linear unless --output_dir is given",
        )
        for flag, why in (
            ("--zero_init_residual", "the weights come from the checkpoint"),
            ("--classifier_lr", "the probe's lr is --lr, as in the original"),
            ("--exclude_bias_n_norm", "the probe uses --weight_decay 0 by default"),
            ("--sync_batchnorm", "the frozen backbone's BatchNorm is in eval mode"),
            ("--check_val_every_n_epoch", "the probe is evaluated when it is trained"),
        ):
            if flag in ("--classifier_lr", "--check_val_every_n_epoch"):
                g.add_argument(flag, type=float, default=None, help=ORIGINAL_NOOP_HELP.format(why))
            else:
                g.add_argument(flag, action="store_true", help=ORIGINAL_NOOP_HELP.format(why))
        g.add_argument("--num_nodes", type=int, default=1, choices=[1], help="linear evaluation runs on one device")
        return
    g.add_argument(
        "--disable_knn_eval",
        dest="knn_eval",
        action="store_const",
        const=False,
        help="no online kNN monitor (the default here; --knn_eval turns it on)",
    )
    g.add_argument(
        "--size",
        dest="crop_size",
        type=int,
        nargs="+",
        default=argparse.SUPPRESS,
        action=_PerViewAction,
        help="the original spelling of --crop_size",
    )
    g.add_argument("--num_crops", type=int, choices=[2], default=2, help="the CaSSLe methods use two crops")
    g.add_argument("--multicrop", action=_Unsupported, help=argparse.SUPPRESS)
    g.add_argument(
        "--semi_supervised", type=float, default=None, help=ORIGINAL_NOOP_HELP.format("it had no effect on pretraining")
    )
    g.add_argument(
        "--encode_indexes_into_labels", action="store_true", help=ORIGINAL_NOOP_HELP.format("no CaSSLe method used it")
    )
    g.add_argument(
        "--debug_augmentations", action="store_true", help="print the per-view augmentation settings at start"
    )
