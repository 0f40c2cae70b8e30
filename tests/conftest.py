"""Test-session settings.

One intra-op thread per xdist worker (and for the processes the tests start): pytest.ini runs two
workers on the CI's two cores, and torch's default of one thread per core in each of them
oversubscribed the cores (OpenMP threads spinning while their partner waited for a core). Measured on
the 2-core VM, the default set: 6 min 37 s with torch's default threads, 4 min 33 s with one thread
per worker (tests/README.md). A single-process run (``-n 0``) keeps torch's default.
"""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
