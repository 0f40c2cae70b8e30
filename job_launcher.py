"""Run a continual bash script task by task (locally or on SLURM) with per-task checks and resume.

    python job_launcher.py --script bash_files/continual/digits/barlow_distill.sh [-- --max_epochs 1]
    python job_launcher.py --experiment_dir experiments/<run>        # resume a recorded run
    python job_launcher.py --script ... --mode slurm --num_gpus 2 --time 2-00:00:00

See `python job_launcher.py --help` and cassle/continual/launcher.py.
"""

import os
import sys

from cassle.continual.launcher import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], repo_root=os.path.dirname(os.path.abspath(__file__))))
