"""The continual task loop: plan (pure), manifest (run record), launcher (local / SLURM).

* the plan, pure: ``bash_script`` (script -> argv), ``flags`` (argv as flag groups, ``PlanError``),
  ``plan`` (argv + manifest -> one ``TaskRun`` per task; re-exports the other two);
* the run record: ``manifest``, ``progress`` (a checkpoint's schedule), ``trust``, ``recovery``;
* the launcher: ``launcher`` (the ``job_launcher.py`` command line; still exports ``run_local``,
  ``run_task``, ``run_eval``, ... from the modules below), ``command_line``, ``invocation`` (checks,
  before anything is written), ``execution``, ``local_executor``, ``task_process``,
  ``stop_signals``, ``eval_step``, ``slurm``, ``grid``, ``console``.

Layer: orchestration. Imports data and utils only; the model (method, distiller, strategies) is
assembled by ``main_continual.py``, which the launcher runs as a process per task.
"""

from cassle.continual.plan import PlanError, TaskRun, merge_args, parse_script, plan_tasks

__all__ = ["PlanError", "TaskRun", "merge_args", "parse_script", "plan_tasks"]
