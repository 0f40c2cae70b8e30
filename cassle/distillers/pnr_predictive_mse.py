"""PNR for VICReg (Cha et al., ICML 2024, section 4.2; public code ``vicreg_pnr``).

::

    L = L_VICReg + distill_lamb * 1/2 sum_v mean (p_v - f_v)^2
                 - pnr_negative_lamb * 1/2 sum_v mean (p_v - f_w)^2         (w the other view)

Defaults are the code's: distill_lamb 25, pnr_negative_lamb 23 (also its CIFAR-100 script). The
subtracted MSE is unbounded below; it is the code's objective, kept in check by the positive term
(the two views' frozen outputs are close).
"""

from cassle.distillers.pnr_base import PNRDistiller
from cassle.losses import pnr_negative_loss, predictive_mse_distill_loss


class PNRPredictiveMSEDistiller(PNRDistiller):
    methods = ("vicreg",)
    default_lamb = 25.0
    default_negative_lamb = 23.0

    def pnr_terms(self, out, p, z_bar):
        reg = predictive_mse_distill_loss(p[0], p[1], z_bar[0], z_bar[1])
        return out.loss, reg, pnr_negative_loss(p[0], p[1], z_bar[0], z_bar[1], kind="mse")
