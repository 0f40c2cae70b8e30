"""PNR for BYOL (Cha et al., ICML 2024, section 4.2; public code ``byol_pnr``).

::

    L = L_BYOL + distill_lamb * 1/2 sum_v (2 - 2 cos(p_v, f_v))
               - pnr_negative_lamb * 1/2 sum_v (2 - 2 cos(p_v, f_w))      (w the other view)

The pseudo-negative f_w is the frozen output of the other view of the anchor. Default weights are
the code's: distill_lamb 1, pnr_negative_lamb 1 (its CIFAR-100 script: 0.5). As CaSSLe's
predictive distiller, g's learning rate is divided by distill_lamb when distill_lamb < 1.
"""

from cassle.distillers.pnr_base import PNRDistiller
from cassle.losses import pnr_negative_loss, predictive_distill_loss


class PNRPredictiveDistiller(PNRDistiller):
    methods = ("byol",)
    default_negative_lamb = 1.0

    def param_groups(self) -> list[dict]:  # as CaSSLe's predictive distiller and PNR's byol_pnr
        groups = super().param_groups()
        if self.lamb < 1:
            groups[0]["lr_factor"] = 1 / self.lamb
        return groups

    def pnr_terms(self, out, p, z_bar):
        reg = predictive_distill_loss(p[0], p[1], z_bar[0], z_bar[1])
        return out.loss, reg, pnr_negative_loss(p[0], p[1], z_bar[0], z_bar[1], kind="byol")
