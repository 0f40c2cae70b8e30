"""Relational distillation (ReSSL): ReSSL's relational loss between g(z) and the frozen z_bar, the
batch's other images as the anchors (cassle.losses.relational_distill_loss). The temperatures are
ReSSL's (--temperature_q for g(z), --distill_temperature overriding it; --temperature_k for the
frozen target), so the distillation sharpens the target as the method does."""

from cassle.distillers.base import Distiller
from cassle.losses import relational_distill_loss


class RelationalDistiller(Distiller):
    def __init__(self, method, args):
        super().__init__(method, args)
        if self.temperature is None:
            self.temperature = getattr(args, "temperature_q", 0.1)
        self.temperature_k = getattr(args, "temperature_k", 0.04)

    def loss(self, p, z_bar, frozen):
        return relational_distill_loss(
            p[0], p[1], z_bar[0], z_bar[1], temperature_q=self.temperature, temperature_k=self.temperature_k
        )
