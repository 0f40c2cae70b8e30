"""POCON's two phases beside fine-tuning and CaSSLe: ``throughput.py --modes pocon``.

    python benchmarks/throughput.py --method barlow_twins --distiller decorrelative \
        --modes finetune,step,strategy,pocon --data_dir DATA

POCON (``--pocon``, ``cassle/strategies/pocon.py``) trains a task in two phases chosen by the epoch;
both are timed at task 1 on the one pre-made batch (as the ``strategy`` mode, with
``step_cost.StepMeasure``): the expert step (the phase forced by an expert-epoch count above any
epoch) and the merge step (forced by an expert-epoch count of 0), which from task 1 also runs the
frozen previous main network F_(t-1). POCON has no ``--distiller``; fine-tuning and CaSSLe
(``--distiller``) are the models beside it, measured here unless an earlier mode of the command
did. The benchmark's recipe (optimiser included) is the same for all, so the difference is the
step's work; POCON's own recipe (SGD lr 0.01, ``bash_files/continual/cifar/barlow_pocon.sh``)
changes only the optimiser update (the ``optim`` mode measures LARS beside SGD).

Extra work per step (module doc of ``cassle/strategies/pocon.py``): expert phase, none beside
fine-tuning (the method's step on the expert backbone instead of the main one); merge phase, one
forward + backward of F per view through g_exp and g_ret (no method projector, no method loss) and
no-grad forwards of the expert E_t and F_(t-1) per view (CaSSLe: F_(t-1) + projector no-grad, its
predictor with gradient). Memory in both phases: the model holds a second backbone (the expert), the
frozen F_(t-1) and the two POCON projectors (``state`` counts; peak on CUDA); the expert phase keeps
the activations of one backbone, the merge phase those of F plus g_exp / g_ret.
"""

from __future__ import annotations

from cassle.strategies.pocon import SUPPORTED as POCON_METHODS

POCON_FLAGS = ("--pocon",)  # its other flags at their defaults = barlow_pocon.sh's (--pocon_retro_lamb 25, ...)
PHASES = {"expert": 10**9, "merge": 0}  # phase -> the expert-epoch count that forces it at epoch 0


def pocon_steps(measure, b, log=print) -> tuple[dict, dict]:
    """(views/s by figure, {phase: cost}) of POCON's expert and merge steps at task 1 beside fine-tuning
    and CaSSLe; ``measure`` a ``step_cost.StepMeasure``."""
    from step_cost import beside, cost_line

    views, cost = {}, {}
    if b.method not in POCON_METHODS:
        log(f"  (pocon skipped: it supports --method {', '.join(POCON_METHODS)})")
        return views, {"skipped": f"--pocon supports --method {', '.join(POCON_METHODS)}"}
    said = {"finetune", "cassle"} & set(measure.figures)  # measured (and printed) by an earlier mode
    finetune = measure("finetune")
    base = measure("cassle", distiller=b.distiller)
    views.update(finetune_step_premade=finetune["views_per_s"], cassle_step_premade=base["views_per_s"])
    if "cassle" not in said:
        log(f"CaSSLe ({b.distiller})".ljust(29) + f" {base['views_per_s']:>12,.0f} views/s")
    for phase, expert_epochs in PHASES.items():
        seen = {}

        def prepare(model, dm, expert_epochs=expert_epochs, seen=seen):
            model.pocon_expert_epochs = expert_epochs
            seen["model"] = model

        figures = measure(f"pocon_{phase}", POCON_FLAGS, prepare=prepare)
        ran = seen["model"].pocon_phase() if seen else phase  # cached figures: checked when measured
        if ran != phase:
            raise RuntimeError(f"POCON's {phase} step was asked for, its {ran} step ran")
        seen.clear()  # off the device before the next measurement
        views[f"pocon_{phase}_step_premade"] = figures["views_per_s"]
        cost[phase] = beside(figures, base, finetune)
        log(cost_line(f"POCON, {phase} step", figures, base, measure.cuda))
    return views, cost
