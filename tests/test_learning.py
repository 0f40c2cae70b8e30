"""SSL training learns: for every method, a linear probe on the trained backbone beats one on the
very same backbone before training, on the procedural shapes set (cassle.data.shapes).

The shapes set is built so that a random conv net's probe is weak (colour and texture dominate its
features) and the SSL augmentations teach what the probe needs (benchmarks/RESULTS.md, "Learning
on the shapes set", has the measurements behind the numbers here). Each method trains a fixed
number of steps through the real task runner (``run_task``: the custom-data path, the augmentation
pipeline, the method's optimiser and schedule), deterministically (seeds, no workers, CPU). A
broken loss (negated, detached), a dropped augmentation (identical views: nothing to learn) or a
backbone left out of the optimiser leaves the probe at the random-init level and fails here.

BYOL is not here: after 100 steps its probe is still below random init (its features collapse onto
a few directions first; RESULTS.md has the runs and the diagnosis); it beats random init at 1000
steps, in tests/test_learning_more.py (slow set) with the seven methods of issue 22.
"""

from __future__ import annotations

import pytest
import torch
from pytorch_lightning import Callback

from cassle.data import ContinualDataModule
from cassle.data.demo import write_shape_domains
from cassle.eval.linear import snapshot_state
from cassle.eval.probe import extract_features, probe_accuracy, train_linear_probe_on_features
from cassle.utils.args import parse_args

# Per-method flags: the losses' settings and learning rates of benchmarks/learning_check.py's recipes
# (the CIFAR scripts'), heads shrunk to the tiny backbone, and SGD for every method: with LARS's
# clipped trust ratio the tiny net learns too slowly for a test of 100 steps (RESULTS.md).
RECIPES = {
    "barlow_twins": ["--lr", "0.3", "--weight_decay", "1e-4", "--scale_loss", "0.1"],
    "byol": ["--lr", "1.0", "--weight_decay", "1e-5", "--pred_hidden_dim", "128"],
    "simclr": ["--lr", "0.4", "--weight_decay", "1e-5"],
    "mocov2plus": ["--lr", "0.3", "--weight_decay", "1e-4", "--queue_size", "1024"],
    "swav": [
        "--lr",
        "0.6",
        "--weight_decay",
        "1e-6",
        "--num_prototypes",
        "100",
        "--queue_size",
        "0",
        "--freeze_prototypes_epochs",
        "0",
    ],
    "vicreg": ["--lr", "0.3", "--weight_decay", "1e-4"],
}
IMAGE_SIZE = 16  # 4x cheaper than 32 px, and the tiny net sees whole shapes
PER_CLASS = 200  # 10 classes: 1600 training and 400 test images
STEPS = 100  # batch 64: 4 epochs of the training images
# The probe's gain (points of test accuracy, trained minus random init) each method must reach: about
# half the gain measured with exactly this configuration (benchmarks/RESULTS.md, "Learning on the
# shapes set"), so a change of a few test images does not fail it and a method that stops learning does.
MIN_GAIN = {"simclr": 10.0, "mocov2plus": 5.0, "swav": 3.5, "vicreg": 7.0, "barlow_twins": 2.0}


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    write_shape_domains(root, ["textured"], per_class=PER_CLASS, image_size=IMAGE_SIZE)
    return root


class _InitialBackbone(Callback):
    """Keeps the backbone's weights as they were when training started (the random init)."""

    def on_fit_start(self, trainer, pl_module):
        self.state = snapshot_state(pl_module.backbone)


def _probe(backbone, dm) -> float:
    backbone = backbone.eval()
    xtr, ytr = extract_features(backbone, dm.eval_loader(train=True), "cpu")
    xte, yte = extract_features(backbone, dm.eval_loader(train=False), "cpu")
    probe = train_linear_probe_on_features(xtr, ytr, dm.num_classes, epochs=100, device="cpu")
    return probe_accuracy(probe, xte, yte)


def train_and_probe(
    method: str, data_dir, out_dir, steps: int = STEPS, recipe: list[str] | None = None
) -> tuple[float, float]:
    """(random-init probe accuracy, trained probe accuracy) for ``method`` after ``steps`` steps
    (``recipe``: the method's flags, default ``RECIPES[method]``)."""
    from main_continual import run_task

    argv = [
        "--method",
        method,
        "--dataset",
        "custom",
        "--data_dir",
        str(data_dir),
        "--no-validate_images",
        "--backbone",
        "tiny",
        "--num_tasks",
        "1",
        "--task_idx",
        "0",
        "--max_steps",
        str(steps),
        "--max_epochs",
        "100",
        "--batch_size",
        "64",
        "--optimizer",
        "sgd",
        "--num_workers",
        "0",
        "--accelerator",
        "cpu",
        "--devices",
        "1",
        "--precision",
        "32",
        "--seed",
        "0",
        "--scheduler",
        "warmup_cosine",
        "--warmup_epochs",
        "1",
        "--proj_hidden_dim",
        "128",
        "--output_dim",
        "128",
        "--crop_size",
        str(IMAGE_SIZE),
        "--min_scale",
        "0.5",
        "--horizontal_flip_prob",
        "0.5",
        "--brightness",
        "0.8",
        "--contrast",
        "0.8",
        "--saturation",
        "0.8",
        "--hue",
        "0.5",
        "--gray_scale_prob",
        "0.5",
        "--solarization_prob",
        "0.0",
        "--gaussian_prob",
        "0.0",
        "--check_val_every_n_epoch",
        "1000",
        "--num_sanity_val_steps",
        "0",
        "--no_progress_bar",
        "--checkpoint_dir",
        str(out_dir),
        *(RECIPES[method] if recipe is None else recipe),
    ]
    args = parse_args(argv)
    init = _InitialBackbone()
    trainer = run_task(args, extra_callbacks=[init])
    model = trainer.lightning_module
    dm = ContinualDataModule.from_args(args)
    dm.setup()
    trained = _probe(model.backbone, dm)
    model.backbone.load_state_dict(init.state)
    return _probe(model.backbone, dm), trained


@pytest.fixture
def one_thread():
    # One intra-op thread: the same sums in the same order on every machine, so the same numbers.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("method", list(MIN_GAIN))
def test_ssl_training_beats_random_init(method, shapes_dir, tmp_path, one_thread):
    random_acc, trained_acc = train_and_probe(method, shapes_dir, tmp_path)
    print(f"LEARN {method} random {random_acc:.1f} trained {trained_acc:.1f}")
    assert trained_acc - random_acc >= MIN_GAIN[method], (
        f"{method}: linear probe {trained_acc:.1f}% after {STEPS} steps vs {random_acc:.1f}% at random init "
        f"(gain {trained_acc - random_acc:+.1f}, needed {MIN_GAIN[method]:+.1f})"
    )
