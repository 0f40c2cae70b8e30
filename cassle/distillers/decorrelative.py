"""Decorrelative distillation (Barlow Twins): Barlow loss between g(z) and the frozen z_bar."""

from cassle.distillers.base import Distiller
from cassle.losses import decorrelative_distill_loss


class DecorrelativeDistiller(Distiller):
    def __init__(self, method, args):
        super().__init__(method, args)
        self.barlow_lamb = args.distill_barlow_lamb
        self.scale_loss = args.distill_scale_loss
        self.global_batch = method.global_batch_loss  # Barlow's multi-process semantics

    def loss(self, p, z_bar, frozen):
        return decorrelative_distill_loss(
            p[0],
            p[1],
            z_bar[0],
            z_bar[1],
            lamb=self.barlow_lamb,
            scale_loss=self.scale_loss,
            global_batch=self.global_batch,
        )
