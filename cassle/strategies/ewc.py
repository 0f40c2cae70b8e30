"""EWC (Kirkpatrick et al., 2017) on the SSL loss: Fisher at task end, quadratic penalty after.

The Fisher is by default the per-sample empirical Fisher, 1/N sum_i (grad l_i)^2 over at most
``--ewc_fisher_samples`` images of the finished task (``cassle.strategies.fisher``), as EWC and
mammoth's ``ewc_on``; ``--ewc_fisher batch`` keeps the square of each batch's mean gradient averaged
over batches (about 1/B of it). Online EWC (Schwarz et al. 2018, mammoth's ``gamma``):
F <- gamma * F + F_task (gamma 1: the Fishers of all tasks summed, Kirkpatrick et al.).
"""

from __future__ import annotations

import logging

import torch
from pytorch_lightning.utilities import CombinedLoader, move_data_to_device

from cassle.losses.ewc import ewc_penalty, fisher_from_grads
from cassle.strategies.base import NOT_SSL_MODEL, Strategy
from cassle.strategies.fisher import sample_fisher

log = logging.getLogger(__name__)


def ssl_parameters(model) -> list[tuple[str, torch.nn.Parameter]]:
    """The trainable weights of the SSL model itself: backbone and the method's heads."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and not n.startswith(NOT_SSL_MODEL)]


class EWC(Strategy):
    name = "ewc"
    kind = "penalty"

    def __init__(self, model, args):
        super().__init__(model, args)
        self.lamb = args.ewc_lamb
        self.max_batches = args.ewc_fisher_batches
        self.variant = getattr(args, "ewc_fisher", "sample")
        self.max_samples = getattr(args, "ewc_fisher_samples", 0)
        self.gamma = getattr(args, "ewc_gamma", 1.0)
        self.param_names = [n for n, _ in ssl_parameters(model)]
        for i, (_, p) in enumerate(ssl_parameters(model)):
            self.register_buffer(f"fisher_{i}", torch.zeros_like(p, requires_grad=False))
            self.register_buffer(f"anchor_{i}", p.detach().clone())

    def _tensors(self, kind: str) -> list[torch.Tensor]:
        return [getattr(self, f"{kind}_{i}") for i in range(len(self.param_names))]

    def on_task_start(self, model) -> None:
        # theta*: the weights this task starts from = the end of the previous task.
        for anchor, (_, p) in zip(self._tensors("anchor"), ssl_parameters(model)):
            anchor.copy_(p.detach())
        if self.task_idx > 0 and not any(bool(f.any()) for f in self._tensors("fisher")):
            log.warning(
                "--cl_strategy ewc: the previous checkpoint holds no Fisher information (was "
                "it trained without ewc?); the penalty is zero until this task's end"
            )

    def loss(self, model, views, out, ctx):
        if self.task_idx == 0 or self.lamb == 0:
            return None, {}
        params = [p for _, p in ssl_parameters(model)]
        return ewc_penalty(params, self._tensors("anchor"), self._tensors("fisher"), self.lamb), {}

    @torch.no_grad()
    def _restore(self, model, saved):
        # Through load_state_dict, so that methods' load hooks run (SwAV recounts its queue).
        persistent = set(model.state_dict().keys())
        model.load_state_dict({k: v for k, v in saved.items() if k in persistent}, strict=False)
        for name, buf in model.named_buffers():
            if name in saved and name not in persistent:
                buf.copy_(saved[name])

    def _batches(self, model, trainer):
        """The finished task's training batches on the device, as the method sees them."""
        loader = trainer.train_dataloader
        if isinstance(loader, CombinedLoader):
            loader = loader.iterables
        if isinstance(loader, dict):  # with --online_eval_batch_size: {"ssl": ..., "online_eval": ...}
            loader = loader["ssl"]
        dm = trainer.datamodule
        for b, batch in enumerate(loader):
            if self.variant == "batch" and self.max_batches and b >= self.max_batches:
                break
            batch = move_data_to_device(batch, model.device)
            if dm is not None:
                batch = dm.on_after_batch_transfer(batch, 0)
            _, views, targets = batch
            yield [model._memory_format(v) for v in views], targets

    def on_task_end(self, model, trainer) -> None:
        """F <- gamma * F + F_task, F_task the empirical Fisher of L_ssl on the finished task."""
        named = dict(ssl_parameters(model))
        params = list(named.values())
        # The Fisher pass must not change the model: keep BN statistics, queues, counters.
        saved = {n: b.detach().clone() for n, b in model.named_buffers() if not n.startswith("strategies.")}
        was_training = model.training
        model.train()
        try:
            if self.variant == "batch":
                grads = []
                for views, targets in self._batches(model, trainer):
                    with torch.enable_grad(), trainer.precision_plugin.forward_context():
                        loss = model.plain_ssl_loss(views, targets)
                        g = torch.autograd.grad(loss, params, allow_unused=True)
                    grads.append([torch.zeros_like(p) if gi is None else gi.float() for gi, p in zip(g, params)])
                if not grads:
                    raise ValueError("--cl_strategy ewc: the task has no training batch to estimate the Fisher on")
                new = _mean_over_processes([f * len(grads) for f in fisher_from_grads(grads)], len(grads), model.device)
            else:

                def batches():
                    for views, targets in self._batches(model, trainer):

                        def loss_fn(views=views, targets=targets):
                            with torch.enable_grad(), trainer.precision_plugin.forward_context():
                                return model.plain_ssl_loss(views, targets)

                        yield views[0].shape[0], loss_fn

                world = max(int(getattr(trainer, "world_size", 1) or 1), 1)  # each process: its share
                per_process = -(-self.max_samples // world) if self.max_samples else 0
                sums, seen = sample_fisher(model, named, batches(), max_samples=per_process)
                new = _mean_over_processes([sums[n] for n in named], seen, model.device)
        finally:
            self._restore(model, saved)
            model.train(was_training)
        for total, f in zip(self._tensors("fisher"), new):
            total.mul_(self.gamma).add_(f.to(total.dtype))


def _mean_over_processes(sums: list[torch.Tensor], seen: int, device) -> list[torch.Tensor]:
    """sum / count over all processes (under DDP each one sees its shard of the task)."""
    count = torch.tensor(float(seen), device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        for s in sums:
            torch.distributed.all_reduce(s)
        torch.distributed.all_reduce(count)
    if float(count) == 0:
        raise ValueError("--cl_strategy ewc: the task has no training batch to estimate the Fisher on")
    return [s / count for s in sums]
