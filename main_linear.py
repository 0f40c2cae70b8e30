"""Linear evaluation of self-supervised checkpoints (REFERENCE.md section 5).

One checkpoint (the reference's form; augmented 100-epoch protocol by default):

    python main_linear.py --pretrained_feature_extractor experiments/<run>/task4/last.ckpt \
        --dataset cifar100 --data_dir DATA [--mode augmented|fast] [--lr 3.0] [--label_fraction 0.1] [--knn]

prints top-1 on the whole test set and per task and writes ``<output_dir>/results.json``
(default ``<checkpoint folder>/linear_<mode>/``). Dataset, data folder, split and number of tasks
come from the checkpoint when not given.

A continual run folder (fast mode by default; what ``job_launcher.py --eval`` calls):

    python main_linear.py --run_dir experiments/<run> [--mode fast|augmented] [--data_dir DATA]

probes the backbone after every task plus a randomly initialised one and writes the accuracy
matrix R, A, F, T into ``<run>/eval/`` (accuracy_matrix.csv, results.json, accuracy_matrix.png,
summary.md). Exit code 0 on success, 2 on bad input (message on stderr, nothing written).

Several evaluated runs (run folders, or folders of run folders such as a launcher grid):

    python main_linear.py --compare RUN [RUN ...] --output_dir DIR

writes the A / F / T table (rows = strategy, columns = method, mean +- std over seeds) as
comparison.csv / .md / .png / .json (cassle/eval/compare.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    from cassle.data.args import DATASETS, SPLIT_STRATEGIES
    from cassle.utils.args import add_original_flags, new_parser

    p = new_parser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    what = p.add_argument_group("what to evaluate (exactly one)")
    what.add_argument(
        "--pretrained_feature_extractor",
        "--pretrained_model",
        "--checkpoint",
        dest="pretrained_feature_extractor",
        help="one task's last.ckpt",
    )
    what.add_argument("--run_dir", help="a job_launcher.py run folder (task*/last.ckpt, manifest.json)")
    what.add_argument(
        "--compare",
        nargs="+",
        metavar="RUN",
        help="evaluated run folders (or folders of them) to tabulate; needs --output_dir",
    )
    what.add_argument(
        "--trust_checkpoint",
        action="store_true",
        help="unpickle the checkpoint(s) fully, running any code they carry: only for "
        "files whose origin you know (default: data only, see README)",
    )
    what.add_argument(
        "--protocol",
        choices=["linear", "online"],
        default="linear",
        help="linear: train a linear probe (default); online: the checkpoint's online "
        "classifier trained during pretraining (the reference's CIFAR numbers)",
    )
    what.add_argument(
        "--eval_protocol",
        choices=["fast", "paper"],
        default=None,
        help="with --run_dir: fast (default) = features once, no augmentation, standardised, "
        "lr 0.1 for every method (minutes; not the paper's figures); paper = the paper's "
        "protocol for the run's dataset: CIFAR the online classifier, ImageNet-100 / "
        "DomainNet the offline augmented probe with the per-method lr. Every report "
        "names the protocol beside A / F / T",
    )
    what.add_argument(
        "--mode",
        choices=["fast", "augmented"],
        default=None,
        help="augmented: the reference's 100-epoch augmented protocol (default for one "
        "checkpoint); fast: features extracted once, probe on cached features "
        "(default for --run_dir)",
    )

    data = p.add_argument_group("data (default: what the checkpoint was trained on)")
    data.add_argument("--dataset", choices=DATASETS, default=None)
    data.add_argument("--data_dir", default=None)
    data.add_argument("--train_dir", default=None)
    data.add_argument("--val_dir", default=None)
    data.add_argument("--download", action="store_true", help="let torchvision download CIFAR")
    data.add_argument("--num_classes", type=int, default=None)
    data.add_argument("--synthetic_size", type=int, default=None)
    data.add_argument("--synthetic_image_size", type=int, default=None)
    data.add_argument("--split_strategy", choices=SPLIT_STRATEGIES, default=None)
    data.add_argument("--num_tasks", type=int, default=None)
    data.add_argument(
        "--domains",
        nargs="+",
        default=None,
        help="domains in task order (default: the checkpoint's; DomainNet's reference order)",
    )
    data.add_argument("--domain", default=None, help="data with domains: train and test on this domain only")
    data.add_argument(
        "--domain_eval",
        choices=["agnostic", "aware", "both"],
        default="both",
        help="domain split: agnostic = one classifier on all domains, aware = one per domain",
    )
    data.add_argument(
        "--crop_size",
        type=int,
        default=None,
        help="test crop; default: the run's own crop size (folders: resize crop*256/224 + "
        "centre crop, the reference's 256/224 for 224 px runs)",
    )
    data.add_argument(
        "--validate_images",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check every listed image exists and its header decodes before evaluating",
    )
    data.add_argument(
        "--allow_paths_outside_data_dir",
        action="store_true",
        default=False,
        help="accept list lines whose image lies outside --data_dir (also on when the "
        "checkpoint's run was given it and its data is evaluated)",
    )
    data.add_argument(
        "--max_image_pixels",
        type=int,
        default=None,
        help="larger images are refused naming the file (default: the run's, else PIL's 89,478,485; 0 = no limit)",
    )
    data.add_argument(
        "--label_fraction",
        type=float,
        default=None,
        help="semi-supervised: a stratified, seeded fraction of the labels (0.01, 0.1)",
    )

    opt = p.add_argument_group("probe")
    opt.add_argument("--max_epochs", type=int, default=100)
    opt.add_argument("--lr", type=float, default=None, help="default: the reference lr of the method")
    opt.add_argument(
        "--method", default=None, help="pick the reference lr of this method instead of the checkpoint's (e.g. supcon)"
    )
    opt.add_argument(
        "--lr_decay_steps",
        type=int,
        nargs="+",
        default=None,
        help="epochs of the x0.1 steps (default: 60%% and 80%% of --max_epochs)",
    )
    opt.add_argument("--weight_decay", type=float, default=0.0)
    opt.add_argument("--momentum", type=float, default=0.9)
    opt.add_argument("--batch_size", type=int, default=256)
    opt.add_argument("--optimizer", choices=["sgd"], default="sgd", help="the reference uses SGD")
    opt.add_argument("--scheduler", choices=["step"], default="step", help="the reference uses step decay")
    opt.add_argument("--knn", action="store_true", help="also report weighted kNN (k 20; cosine, euclidean)")
    opt.add_argument("--seed", type=int, default=None, help="default: the checkpoint's seed")

    run = p.add_argument_group("hardware and output")
    run.add_argument("--num_workers", type=int, default=None, help="default: the checkpoint's")
    run.add_argument(
        "--accelerator", default="auto", help="auto, cpu, gpu (the last of --gpus / --accelerator / --devices wins)"
    )
    run.add_argument("--gpus", default=None, help="the original's spelling: GPU ids; linear evaluation uses one GPU")
    run.add_argument("--devices", default="1", help="linear evaluation uses one device")
    run.add_argument(
        "--cpu_threads", type=int, default=0, help="torch threads of a CPU evaluation (0: torch's default)"
    )
    run.add_argument(
        "--lars", action="store_true", help="not supported: the probe uses SGD, as the reference's linear scripts"
    )
    run.add_argument("--precision", default="auto", help="auto (bf16 on GPUs that support it), 32, 16, bf16")
    run.add_argument(
        "--encoder",
        "--backbone",
        dest="backbone",
        default=None,
        help="checked against the checkpoint (the architecture comes from the checkpoint)",
    )
    run.add_argument(
        "--dali",
        action="store_true",
        help="augmented probe on image folders / DomainNet: batches through NVIDIA DALI when it "
        "is installed (bicubic crop, flip, last batch dropped, as the reference); without "
        "DALI the same augmentation in torchvision workers",
    )
    run.add_argument(
        "--image_cache_gb",
        type=float,
        default=4.0,
        help="image folders: keep the decoded, test-transformed images in memory (up to this "
        "size) so every checkpoint of a run reuses them; 0 decodes on every pass",
    )
    run.add_argument("--output_dir", default=None)
    run.add_argument("--save_checkpoint", action="store_true", help="also save the trained classifier")
    run.add_argument("--progress_bar", action="store_true")
    run.add_argument("--name", default=None)
    run.add_argument("--wandb", action="store_true")
    run.add_argument("--wandb_online", action="store_true", help="default: offline, `wandb sync` later")
    run.add_argument("--project", default="cassle")
    run.add_argument("--entity", default=None)
    add_original_flags(p, linear=True)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    from cassle.utils.args import check_wandb, device_count, resolve_devices

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    opts = parser.parse_args(argv)
    check_wandb(parser, opts)
    if sum(map(bool, (opts.pretrained_feature_extractor, opts.run_dir, opts.compare))) != 1:
        parser.error(
            "give exactly one of --pretrained_feature_extractor PATH (one checkpoint), "
            "--run_dir DIR (every task of a run) and --compare RUN [RUN ...] (a table of runs)"
        )
    if opts.compare and not opts.output_dir:
        parser.error("--compare needs --output_dir DIR (where the comparison files go)")
    resolve_devices(opts, argv, parser)
    if (device_count(opts.devices) or 1) > 1:
        if opts.gpus is None or "--devices" in argv or any(a.startswith("--devices=") for a in argv):
            parser.error(f"--devices {opts.devices}: linear evaluation runs on one device")
        print(f"note: --gpus {opts.gpus}: linear evaluation runs on one GPU", file=sys.stderr)
    opts.devices = 1
    if opts.lars:
        parser.error("--lars: the linear probe uses SGD (as the reference's linear scripts); drop --lars")
    from cassle.eval import eval_protocol

    if opts.run_dir and opts.eval_protocol is None and opts.mode is None and opts.protocol == "linear":
        opts.eval_protocol = "fast"
    eval_protocol.apply(opts, parser)
    if opts.checkpoint_dir and not opts.output_dir:  # the original wrote to CHECKPOINT_DIR/linear
        opts.output_dir = os.path.join(opts.checkpoint_dir, "linear")
    return opts


def main(argv=None) -> int:
    from cassle.eval.report import format_results
    from cassle.eval.run_eval import evaluate_checkpoint, evaluate_run_dir
    from cassle.utils.cpu_threads import apply_cpu_threads

    opts = parse_args(argv)
    try:
        apply_cpu_threads(opts.cpu_threads)
        if opts.compare:
            from cassle.eval.compare import compare_runs

            res = compare_runs(opts.compare, opts.output_dir)
            print(res["markdown"])
            print(f"-> {res['output_dir']}/comparison.{{csv,md,png,json}}")
            return 0
        if opts.run_dir:
            res = evaluate_run_dir(opts)
            # "[eval]" lines are the ones job_launcher.py shows on its console
            print("\n".join(f"[eval] {line}" for line in format_results(res).splitlines()))
            print(f"[eval] test transform: {res['protocol']['test_transform']}")
            F, T = res["F"], res["T"]
            why_no_t = " (not defined for --protocol online)" if res["extra"].get("T_undefined") else ""
            print(
                f"[eval] A = {res['A']:.2f}  F = {'n/a' if F is None else f'{F:.2f}'}  "
                f"T = {'n/a' if T is None else f'{T:.2f}'}{why_no_t}  [{res['protocol']['label']}]  "
                f"-> {res['output_dir']}"
            )
        else:
            res = evaluate_checkpoint(opts)
            print(
                f"{res['protocol']['name']}: top-1 {res['acc1']:.2f} [{res['protocol']['label']}] (test transform: "
                f"{res['protocol']['test_transform']})"
            )
            for name, acc in zip(res["task_names"], res["per_task"]):
                print(f"  {name}: {acc:.2f}")
            for d, acc in res.get("knn", {}).items():
                print(f"  kNN ({d}): {acc:.2f}")
            for d, acc in res.get("domain_aware", {}).items():
                print(f"  domain-aware {d}: {acc:.2f}")
            print(f"-> {res['output']}")
    except (ValueError, FileNotFoundError) as err:  # EvalInputError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    for noisy in (
        ".*does not have many workers.*",
        ".*`srun` command is available.*",
        ".*smaller than the logging interval.*",
    ):
        warnings.filterwarnings("ignore", noisy)
    sys.exit(main())
