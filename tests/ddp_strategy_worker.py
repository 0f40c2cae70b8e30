"""2-process DDP (gloo, CPU) runs of task 0 and task 1 for groups of strategies, in one script so
that the two interpreters start once: Lightning's launcher re-runs this script as rank 1, and both
ranks walk the same sequence of ``run_task`` calls.

    python tests/ddp_strategy_worker.py OUT_DIR GROUPS_JSON   # GROUPS_JSON: [["ewc", "pod"], ["der"]]
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from main_continual import run_task
from tests.helpers import tiny_args


def main(out: Path, groups: list[list[str]]) -> None:
    for group in groups:
        name = "+".join(group)
        prev = None
        for task in range(2):
            argv = [
                "--num_tasks",
                "2",
                "--synthetic_size",
                "128",
                "--buffer_size",
                "8",
                "--devices",
                "2",
                "--strategy",
                "ddp",
                "--task_idx",
                str(task),
                "--cl_strategy",
                *group,
            ]
            if prev is not None:
                argv += ["--pretrained_model", str(prev)]
            run_task(tiny_args("barlow_twins", *argv, tmp_path=out / name / f"task{task}"))
            prev = out / name / f"task{task}" / "last.ckpt"
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        (out / "done").write_text("ok")


if __name__ == "__main__":
    main(Path(sys.argv[1]), json.loads(sys.argv[2]))
