"""PNR for Barlow Twins (Cha et al., ICML 2024, section 4.2; public code ``barlow_pnr``).

::

    L = L_Barlow + distill_lamb * 1/2 sum_v Barlow(p_v, f_v)
                 - pnr_negative_lamb * 1/2 sum_v (-cos(p_v, f_w))          (w the other view)

The code's pseudo-negative here is SimSiam's -cos, not a Barlow term. Defaults are the code's:
distill_lamb 1, pnr_negative_lamb 1 (also its CIFAR-100 script), distill_barlow_lamb 5e-3,
distill_scale_loss 0.1.
"""

from cassle.distillers.pnr_base import PNRDistiller
from cassle.losses import decorrelative_distill_loss, pnr_negative_loss


class PNRDecorrelativeDistiller(PNRDistiller):
    methods = ("barlow_twins",)
    default_negative_lamb = 1.0

    def __init__(self, method, args):
        super().__init__(method, args)
        self.barlow_lamb = args.distill_barlow_lamb
        self.scale_loss = args.distill_scale_loss
        self.global_batch = method.global_batch_loss

    def pnr_terms(self, out, p, z_bar):
        reg = decorrelative_distill_loss(
            p[0],
            p[1],
            z_bar[0],
            z_bar[1],
            lamb=self.barlow_lamb,
            scale_loss=self.scale_loss,
            global_batch=self.global_batch,
        )
        return out.loss, reg, pnr_negative_loss(p[0], p[1], z_bar[0], z_bar[1], kind="cosine")
