"""The continual task loop: plan (pure), manifest (run record), launcher (local / SLURM).

Layer: orchestration. Imports data and utils only; the model (method, distiller, strategies) is
assembled by ``main_continual.py``, which the launcher runs as a process per task.
"""

from cassle.continual.plan import PlanError, TaskRun, merge_args, parse_script, plan_tasks

__all__ = ["PlanError", "TaskRun", "merge_args", "parse_script", "plan_tasks"]
