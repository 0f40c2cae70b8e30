"""Predictive MSE distillation (VICReg): MSE(g(z), z_bar), averaged over views; lamb 25 like
VICReg's invariance weight."""

from cassle.distillers.base import Distiller
from cassle.losses import predictive_mse_distill_loss


class PredictiveMSEDistiller(Distiller):
    default_lamb = 25.0

    def loss(self, p, z_bar, frozen):
        return predictive_mse_distill_loss(p[0], p[1], z_bar[0], z_bar[1])
