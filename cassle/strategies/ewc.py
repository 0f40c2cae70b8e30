"""EWC (Kirkpatrick et al., 2017) on the SSL loss: Fisher at task end, quadratic penalty after."""
from __future__ import annotations

import logging

import torch
from pytorch_lightning.utilities import CombinedLoader, move_data_to_device

from cassle.losses.ewc import ewc_penalty, fisher_from_grads
from cassle.strategies.base import NOT_SSL_MODEL, Strategy

log = logging.getLogger(__name__)


def ssl_parameters(model) -> list[tuple[str, torch.nn.Parameter]]:
    """The trainable weights of the SSL model itself: backbone and the method's heads."""
    return [(n, p) for n, p in model.named_parameters()
            if p.requires_grad and not n.startswith(NOT_SSL_MODEL)]


class EWC(Strategy):
    name = "ewc"
    kind = "penalty"

    def __init__(self, model, args):
        super().__init__(model, args)
        self.lamb = args.ewc_lamb
        self.max_batches = args.ewc_fisher_batches
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
            log.warning("--cl_strategy ewc: the previous checkpoint holds no Fisher information (was "
                        "it trained without ewc?); the penalty is zero until this task's end")

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

    def on_task_end(self, model, trainer) -> None:
        """F += mean over the task's batches of (d L_ssl / d theta)^2 (batch-level empirical Fisher)."""
        loader = trainer.train_dataloader
        if isinstance(loader, CombinedLoader):
            loader = loader.iterables
        if isinstance(loader, dict):  # with --online_eval_batch_size: {"ssl": ..., "online_eval": ...}
            loader = loader["ssl"]
        dm = trainer.datamodule
        params = [p for _, p in ssl_parameters(model)]
        # The Fisher pass must not change the model: keep BN statistics, queues, counters.
        saved = {n: b.detach().clone() for n, b in model.named_buffers() if not n.startswith("strategies.")}
        was_training = model.training
        model.train()
        grads = []
        try:
            for b, batch in enumerate(loader):
                if self.max_batches and b >= self.max_batches:
                    break
                batch = move_data_to_device(batch, model.device)
                if dm is not None:
                    batch = dm.on_after_batch_transfer(batch, 0)
                _, views, targets = batch
                views = [model._memory_format(v) for v in views]
                with torch.enable_grad(), trainer.precision_plugin.forward_context():
                    loss = model.plain_ssl_loss(views, targets)
                    g = torch.autograd.grad(loss, params, allow_unused=True)
                grads.append([torch.zeros_like(p) if gi is None else gi.float() for gi, p in zip(g, params)])
        finally:
            self._restore(model, saved)
            model.train(was_training)
        if not grads:
            raise ValueError("--cl_strategy ewc: the task has no training batch to estimate the Fisher on")
        for total, new in zip(self._tensors("fisher"), fisher_from_grads(grads)):
            total.add_(new)
