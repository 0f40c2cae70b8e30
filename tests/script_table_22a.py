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
