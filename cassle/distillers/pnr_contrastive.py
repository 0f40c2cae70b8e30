"""PNR for SimCLR (Cha et al., ICML 2024, section 4.1; public code ``simclr_pnr``).

::

    L = L_main(z, f) + distill_lamb * L_reg(p, z, f)          (cassle.losses.pnr_infonce_losses)

L_main replaces SimCLR's loss: the frozen outputs f of the batch are extra pseudo-negatives of each
anchor; L_reg is the contrastive distillation of p = g(z) to f with the current outputs z as
pseudo-negatives. Both use ``--distill_temperature`` (default 0.2), as the code (SimCLR's own
``--temperature`` is not used from task 1; the CIFAR script sets both to 0.2). The code has no
weight on L_reg (``distill_lamb`` is parsed, never used): the default 1 is the code.
"""

from cassle.distillers.pnr_base import PNRDistiller
from cassle.losses import pnr_infonce_losses


class PNRContrastiveDistiller(PNRDistiller):
    methods = ("simclr",)
    default_temperature = 0.2

    @classmethod
    def check_method(cls, method, args) -> None:
        super().check_method(method, args)
        if args.supervised:
            raise ValueError("pnr_contrastive: the public PNR code has no supervised (SupCon) variant")

    def pnr_terms(self, out, p, z_bar):
        main, reg = pnr_infonce_losses(p[0], p[1], out.z[0], out.z[1], z_bar[0], z_bar[1], temperature=self.temperature)
        return main, reg, None
