"""Predictive distillation (BYOL): 2 - 2 cos(g(z), z_bar), averaged over views."""
from cassle.distillers.base import Distiller
from cassle.losses import predictive_distill_loss


class PredictiveDistiller(Distiller):
    def loss(self, p, z_bar, frozen):
        return predictive_distill_loss(p[0], p[1], z_bar[0], z_bar[1])
