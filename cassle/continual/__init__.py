"""The continual task loop: plan (pure), manifest (run record), launcher (local / SLURM)."""

from cassle.continual.plan import PlanError, TaskRun, merge_args, parse_script, plan_tasks

__all__ = ["PlanError", "TaskRun", "merge_args", "parse_script", "plan_tasks"]
