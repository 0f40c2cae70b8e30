"""cassle: continual self-supervised learning (CaSSLe, Fini et al., CVPR 2022)."""

from setuptools import find_packages, setup

setup(
    name="cassle",
    version="0.1.0",
    description="Self-supervised models are continual learners: CaSSLe on PyTorch Lightning 2",
    packages=find_packages(include=["cassle", "cassle.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1,<3",
        "torchvision>=0.16",
        "pytorch-lightning>=2.0,<3",
        "torchmetrics>=1.0",
        "einops",
        "timm>=1.0,<2",  # the ViT backbones (cassle/backbones/vit.py; dynamic_img_size, tested 1.0.31)
        "scikit-learn",
        "wandb",
        "matplotlib",
        "pillow",
        "numpy",
    ],
    extras_require={
        # timm: also the LARS reference test; pytest-xdist: pytest.ini's two workers; ruff: CI's lint
        "dev": ["pytest>=7", "pytest-xdist", "scipy", "timm>=1.0,<2", "ruff==0.17.6"],
        # DALI from PyPI; pick the build matching the machine's CUDA (cuda120 for CUDA 12.x).
        "dali": ["nvidia-dali-cuda120"],
        "dali-cuda130": ["nvidia-dali-cuda130"],
    },
)
