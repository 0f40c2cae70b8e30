"""Predictive distillation (BYOL): 2 - 2 cos(g(z), z_bar), averaged over views."""

from cassle.distillers.base import Distiller
from cassle.losses import predictive_distill_loss


class PredictiveDistiller(Distiller):
    def param_groups(self) -> list[dict]:
        # The reference's predictive distiller (only it): when distill_lamb < 1 the predictor's lr
        # is the scaled --lr divided by distill_lamb, so g still learns at the base rate although
        # its loss is scaled down.
        groups = super().param_groups()
        if self.lamb < 1:
            groups[0]["lr_factor"] = 1 / self.lamb
        return groups

    def loss(self, p, z_bar, frozen):
        return predictive_distill_loss(p[0], p[1], z_bar[0], z_bar[1])
