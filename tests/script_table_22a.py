"""Issue 22's SimSiam, NNCLR, ReSSL and W-MSE scripts in tests/test_bash_scripts.py's tables (kept
here so that file stays under 400 lines)."""

MORE_22A = ("simsiam", "nnclr", "ressl", "wmse")  # shipped in bash_files/continual/{cifar,digits}
# file stem -> (--method, the distiller of its kind of objective; README, "Methods beyond the paper's six")
PAPER_22A = {
    "simsiam": ("simsiam", "predictive"),
    "nnclr": ("nnclr", "contrastive"),
    "ressl": ("ressl", "relational"),
    "wmse": ("wmse", "predictive"),
}
# solo-learn's bash_files/pretrain/cifar/{simsiam,nnclr,ressl,wmse}.sh (Nov 2021, commit 95886b6), in
# test_bash_scripts.CIFAR_RECIPE's layout
CIFAR_RECIPE_22A = {
    "simsiam": ("sgd", 0.5, 0.1, 1e-5, False, 0.0, (0.4, 0.4, 0.4, 0.1), [0.0], 0.08),
    "nnclr": ("lars", 0.4, 0.1, 1e-5, True, 0.0, (0.4, 0.4, 0.2, 0.1), [0.0, 0.2], 0.08),
    "ressl": ("sgd", 0.05, 0.1, 1e-4, False, 0.0, (0.4, 0.4, 0.2, 0.1), [0.0], 0.08),
    "wmse": ("adam", 3e-3, 3e-3, 1e-6, False, 0.0, (0.4, 0.4, 0.2, 0.1), [0.0], 0.2),
}
CIFAR_WARMUP_22A = {"wmse": (2, 0.0)}  # (epochs, start lr)

# Issue 22's seven methods on ImageNet-100 (bash_files/continual/imagenet-100/{class,data}): stem ->
# optimizer, scheduler, lr, weight_decay, classifier_lr, (warmup epochs, warmup start lr), min_lr,
# view-1 jitter b/c/s/h, blur per view, solarisation per view, min_scale. Sources: solo-learn's
# bash_files/pretrain/imagenet-100/<method>.sh (Nov 2021, commit 95886b6) and, for MoCo v3, its
# scripts/pretrain/imagenet-100/mocov3.yaml + augmentations/asymmetric.yaml; W-MSE at 128 per GPU.
MORE_22 = ("dino", "deepclusterv2", "mocov3") + MORE_22A
IN100_RECIPE_22 = {
    "simsiam": ("sgd", "warmup_cosine", 0.5, 1e-5, 0.1, (10, 0.003), 0.0, (0.4, 0.4, 0.4, 0.1), [0.5], [0.0], 0.08),
    "nnclr": (
        "lars",
        "warmup_cosine",
        0.4,
        1e-5,
        0.3,
        (10, 0.003),
        0.0,
        (0.4, 0.4, 0.2, 0.1),
        [1.0, 0.1],
        [0.0, 0.2],
        0.08,
    ),
    "ressl": ("sgd", "warmup_cosine", 0.3, 1e-4, 0.1, (10, 0.003), 0.0, (0.4, 0.4, 0.4, 0.1), [0.5, 0.0], [0.0], 0.08),
    "wmse": ("adam", "warmup_cosine", 2e-3, 1e-6, 3e-3, (2, 0.0), 0.0, (0.8, 0.8, 0.8, 0.2), [0.2], [0.0], 0.08),
    "dino": (
        "lars",
        "warmup_cosine",
        0.3,
        1e-6,
        0.1,
        (10, 0.003),
        0.0,
        (0.4, 0.4, 0.2, 0.1),
        [1.0, 0.1],
        [0.0, 0.2],
        0.08,
    ),
    "deepclusterv2": (
        "lars",
        "warmup_cosine",
        0.6,
        1e-6,
        0.1,
        (11, 0.0),
        6e-4,
        (0.8, 0.8, 0.8, 0.2),
        [0.5],
        [0.0],
        0.08,
    ),
    "mocov3": (
        "lars",
        "warmup_cosine",
        0.3,
        1e-6,
        0.3,
        (10, 0.003),
        0.0,
        (0.4, 0.4, 0.2, 0.1),
        [1.0, 0.1],
        [0.0, 0.2],
        0.08,
    ),
}
