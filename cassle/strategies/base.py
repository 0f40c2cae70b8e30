"""The continual-strategy interface and the mixin that applies strategies to any SSL method.

A ``Strategy`` (an ``nn.Module``: its parameters are optimised, its buffers checkpointed) may use
four seams, each called by ``StrategyMixin`` (methods stay untouched):

* ``on_task_start(model)``: before a task is trained from scratch (not on a mid-task resume);
* ``batch_hook(model, views, ctx) -> views``: replay strategies add or mix buffer images
  (``forward_done(model, ctx)`` follows the method's forward, before any strategy's loss);
* ``loss(model, views, out, ctx) -> (term, logs)``: an extra loss term (already weighted);
* ``after_step(model, indexes, targets, out, ctx)``: e.g. offer the batch to the buffer;
* ``on_task_end(model, trainer)``: after the task's last step and *before* the final checkpoint
  is written (``TaskEndCallback``), e.g. EWC's Fisher;
* ``before_optimizer_step(model)`` / ``after_optimizer_step(model)``: around each optimiser step
  (gradients unscaled, before Lightning's clipping / after the step), e.g. SI's path integral.

Each strategy's loss term is logged as ``train/<name>_loss`` and shown on the console with the
extra step logs it names in ``console_keys``; ``cassle.strategies.monitor`` adds the replay share
of the batch (and LUMP's lambda) at every step and the buffer report at each task end.

Three kinds share this interface: frozen-model regularisers (``needs_frozen``: they read the
previous task's frozen backbone, the same snapshot the CaSSLe mixin uses when combined with a
distiller), weight penalties (EWC) and replay strategies (a ``ReservoirBuffer``).
"""

from __future__ import annotations

import copy
import math

import pytorch_lightning as pl
import torch
from torch import nn

from cassle.methods.base import StepOutput
from cassle.strategies.monitor import console_metrics as _console_metrics
from cassle.strategies.monitor import start_step, step_logs, task_end_report

# Parameter-name prefixes that are not the SSL model itself (EWC ignores them).
NOT_SSL_MODEL = ("classifier.", "frozen_", "strategies.", "distiller.", "momentum_")


class Strategy(nn.Module):
    name = ""
    kind = "regularizer"  # "regularizer" (frozen model), "penalty" (weights) or "replay"
    needs_frozen = False  # reads frozen_backbone from task 1 on
    console_keys: tuple[str, ...] = ()  # step logs shown on the console besides <name>_loss

    def __init__(self, model, args):
        super().__init__()
        self.task_idx = int(args.task_idx)

    @classmethod
    def uses_frozen(cls, args) -> bool:
        """Whether this run reads the frozen backbone (``needs_frozen``; Osiris: its D variant only)."""
        return cls.needs_frozen

    def on_task_start(self, model) -> None: ...

    def on_train_start(self, model) -> None: ...

    def batch_hook(self, model, views: list[torch.Tensor], ctx: dict) -> list[torch.Tensor]:
        return views

    def forward_done(self, model, ctx: dict) -> None: ...

    def loss(self, model, views, out: StepOutput, ctx: dict):
        return None, {}

    def after_step(self, model, indexes, targets, out: StepOutput, ctx: dict) -> None: ...

    def on_task_end(self, model, trainer) -> None: ...

    def before_optimizer_step(self, model) -> None: ...

    def after_optimizer_step(self, model) -> None: ...


def adaptive_factor(task_idx: int) -> float:
    """sqrt(|old| / |new|) of LUCIR and PODNet with equal-size tasks: sqrt(t) at task t."""
    return math.sqrt(max(task_idx, 0))


def _freeze(module: nn.Module) -> nn.Module:
    module = copy.deepcopy(module)
    for p in module.parameters():
        p.requires_grad = False
    return module


class StrategyMixin:
    """Mixed in before a (possibly CaSSLe-wrapped) method class by ``strategy_wrapper``."""

    strategy_classes: tuple[type[Strategy], ...] = ()
    method_cls: type = None  # the plain SSL method (EWC's Fisher uses its loss alone)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        self.frozen_active = args.task_idx > 0
        self._own_frozen = False
        if (
            self.frozen_active
            and any(c.uses_frozen(args) for c in self.strategy_classes)
            and not hasattr(self, "frozen_backbone")
        ):
            # Without a distiller the strategy owns the snapshot; with one it shares CaSSLe's.
            self.frozen_backbone = _freeze(self.backbone)
            self._own_frozen = True
        self.strategies = nn.ModuleDict({c.name: c(self, args) for c in self.strategy_classes})
        self._step_indexes: torch.Tensor | None = None

    # ----------------------------------------------------------------- task seams
    def start_new_task(self) -> None:
        super().start_new_task()
        if self._own_frozen:
            self.frozen_backbone.load_state_dict(self.backbone.state_dict())
        for s in self.strategies.values():
            s.on_task_start(self)

    def on_train_start(self) -> None:
        super().on_train_start()
        for s in self.strategies.values():
            s.on_train_start(self)

    def on_task_end(self, trainer) -> None:
        for s in self.strategies.values():
            s.on_task_end(self, trainer)
        task_end_report(self, trainer)

    def on_before_optimizer_step(self, optimizer) -> None:
        super().on_before_optimizer_step(optimizer)
        for s in self.strategies.values():
            s.before_optimizer_step(self)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(outputs, batch, batch_idx)
        for s in self.strategies.values():
            s.after_optimizer_step(self)

    @property
    def console_metrics(self) -> dict[str, str]:
        """Logged keys the console's epoch line shows besides the SSL loss (ConsoleProgress)."""
        return _console_metrics(self.strategies.values())

    def learnable_params(self) -> list[dict]:
        params = [p for s in self.strategies.values() for p in s.parameters() if p.requires_grad]
        extra = [{"name": "strategies", "params": params}] if params else []
        return super().learnable_params() + extra

    # ----------------------------------------------------------------- frozen BN mode
    def _apply_strategy_frozen_bn(self) -> None:
        if self._own_frozen and self.hparams.distill_bn_eval:
            self.frozen_backbone.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self._apply_strategy_frozen_bn()
        return self

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._apply_strategy_frozen_bn()

    # ----------------------------------------------------------------- the step
    def training_step(self, batch, batch_idx):
        ssl = batch["ssl"] if isinstance(batch, dict) else batch
        self._step_indexes = ssl[0]
        return super().training_step(batch, batch_idx)

    def ssl_step(self, views, targets) -> StepOutput:
        n = views[0].shape[0]
        ctx: dict = {"n": n}
        start_step(self.strategies.values())
        for s in self.strategies.values():
            views = s.batch_hook(self, views, ctx)
        out = super().ssl_step(views, targets)
        for s in self.strategies.values():
            s.forward_done(self, ctx)
        for s in self.strategies.values():
            term, logs = s.loss(self, views, out, ctx)
            if term is not None:
                out.loss = out.loss + term
            # Logged at every step (0 while inactive): a key first logged mid-epoch makes Lightning
            # allocate its accumulators from host data, a stall on GPUs.
            out.logs[f"{s.name}_loss"] = term.detach() if term is not None else out.loss.new_zeros(())
            out.logs.update(logs)
        out.logs.update(step_logs(self.strategies.values(), ctx, out.loss))
        for s in self.strategies.values():
            s.after_step(self, self._step_indexes, targets, out, ctx)
        # The online classifier and the kNN monitor see the current batch only.
        out.feats = [f[:n] for f in out.feats]
        out.z = [z[:n] for z in out.z]
        return out

    def plain_ssl_loss(self, views, targets) -> torch.Tensor:
        """The method's own SSL loss (no distillation, no strategy term)."""
        return self.method_cls.ssl_step(self, views, targets).loss


class TaskEndCallback(pl.Callback):
    """Calls ``model.on_task_end(trainer)``; listed before the checkpoint writer so that what it
    computes (EWC's Fisher) is in the task's final ``last.ckpt``."""

    def on_train_end(self, trainer, pl_module) -> None:
        # Only at the end of the task's whole schedule: a Fisher added by a stopped attempt would
        # be added again when the resumed attempt ends.
        done = trainer.current_epoch >= trainer.max_epochs or (
            trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step
        )
        hook = getattr(pl_module, "on_task_end", None)
        if hook is not None and done:
            hook(trainer)
