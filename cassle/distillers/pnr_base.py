"""PNR (Cha, Cho, Moon, ICML 2024): the CaSSLe mixin with pseudo-negatives.

Same frozen snapshot, same predictor g and same task-0 behaviour as CaSSLe (``base.py``); only the
step differs. A PNR distiller returns three terms from the method's step output ``out``, the
predictions p = g(z) and the frozen projections z_bar, and the step's loss is::

    L = L_main + distill_lamb * L_reg - pnr_negative_lamb * L_neg

* InfoNCE methods (section 4.1): L_main replaces the method's own loss (SimCLR's / MoCo's with the
  frozen outputs as extra pseudo-negatives), L_reg is the distillation with the current outputs as
  pseudo-negatives, L_neg = 0 (``pnr_contrastive``, ``pnr_moco``).
* Non-contrastive methods (section 4.2): L_main is the method's loss, L_reg CaSSLe's term and
  L_neg the frozen output of the other view as a one-sided pseudo-negative (``pnr_predictive``,
  ``pnr_decorrelative``, ``pnr_predictive_mse``).

The logs keep CaSSLe's ``distill_loss`` (= L_reg) and add ``pnr_negative_loss`` and, when the
main loss is replaced, ``pnr_main_loss``.
"""

from __future__ import annotations

import torch

from cassle.distillers.base import Distiller, DistillMixin


class PNRMixin(DistillMixin):
    def ssl_step(self, views, targets):
        if not self.distill_active:
            return super().ssl_step(views, targets)  # task 0: the plain method
        out = super(DistillMixin, self).ssl_step(views, targets)  # the method's step, no CaSSLe term
        with torch.no_grad():
            z_bar = [self.frozen_projector(self.frozen_backbone(v)) for v in views]
        p = [self.distiller.predictor(z) for z in out.z]
        main, reg, neg = self.distiller.pnr_terms(out, p, z_bar)
        if main is not out.loss:
            out.logs["pnr_main_loss"] = main.detach()
        out.loss = main + self.distiller.lamb * reg
        if neg is not None:
            out.loss = out.loss - self.distiller.negative_lamb * neg
            out.logs["pnr_negative_loss"] = neg.detach()
        out.logs["distill_loss"] = reg.detach()
        return out


class PNRDistiller(Distiller):
    """Subclasses set ``methods`` (the methods the public code pairs it with) and ``pnr_terms``."""

    mixin = PNRMixin
    methods: tuple[str, ...] = ()
    default_negative_lamb: float | None = None

    @classmethod
    def check_method(cls, method, args) -> None:
        if args.method not in cls.methods:
            raise ValueError(
                f"the PNR distiller {args.distiller!r} needs one of the methods "
                f"{', '.join(cls.methods)}, not {args.method!r} (README: PNR)"
            )

    def __init__(self, method, args):
        super().__init__(method, args)
        given = getattr(args, "pnr_negative_lamb", None)
        self.negative_lamb = given if given is not None else self.default_negative_lamb

    def pnr_terms(self, out, p, z_bar):
        raise TypeError(f"{type(self).__name__} must define pnr_terms(out, p, z_bar)")

    def loss(self, p, z_bar, frozen):  # only the PNR mixin steps these distillers
        raise TypeError("PNR distillers are stepped by PNRMixin.ssl_step, not loss()")
