"""Contrastive distillation (SimCLR, MoCoV2+, SupCon): InfoNCE between cat(g(z1), g(z2)) and
cat(z_bar1, z_bar2); the positive is the same image and view, the other 2N rows are negatives;
averaged over both directions."""

from cassle.distillers.base import Distiller
from cassle.losses import contrastive_distill_loss


class ContrastiveDistiller(Distiller):
    default_temperature = 0.2

    def loss(self, p, z_bar, frozen):
        return contrastive_distill_loss(p[0], p[1], z_bar[0], z_bar[1], temperature=self.temperature)
