"""CaSSLe distillers. The key is the `--distiller` value.

Layer: model, above methods. One file per distiller over ``Distiller``; imports methods, backbones and
losses; never strategies, continual or eval.
"""

from cassle.distillers.base import Distiller, DistillMixin, add_distiller_args, make_distill_wrapper
from cassle.distillers.contrastive import ContrastiveDistiller
from cassle.distillers.decorrelative import DecorrelativeDistiller
from cassle.distillers.knowledge import KnowledgeDistiller
from cassle.distillers.pnr_contrastive import PNRContrastiveDistiller
from cassle.distillers.pnr_decorrelative import PNRDecorrelativeDistiller
from cassle.distillers.pnr_moco import PNRMoCoDistiller
from cassle.distillers.pnr_predictive import PNRPredictiveDistiller
from cassle.distillers.pnr_predictive_mse import PNRPredictiveMSEDistiller
from cassle.distillers.predictive import PredictiveDistiller
from cassle.distillers.predictive_mse import PredictiveMSEDistiller
from cassle.distillers.relational import RelationalDistiller

DISTILLERS = {
    "decorrelative": DecorrelativeDistiller,
    "predictive": PredictiveDistiller,
    "predictive_mse": PredictiveMSEDistiller,
    "contrastive": ContrastiveDistiller,
    "knowledge": KnowledgeDistiller,
    "relational": RelationalDistiller,
    # PNR (Cha et al., ICML 2024): pseudo-negatives; each for the methods its public code covers
    "pnr_contrastive": PNRContrastiveDistiller,
    "pnr_moco": PNRMoCoDistiller,
    "pnr_predictive": PNRPredictiveDistiller,
    "pnr_decorrelative": PNRDecorrelativeDistiller,
    "pnr_predictive_mse": PNRPredictiveMSEDistiller,
}

# The distiller the paper pairs with each method (used by the demo and the bash scripts).
DEFAULT_DISTILLER = {
    "barlow_twins": "decorrelative",
    "byol": "predictive",
    "vicreg": "predictive_mse",
    "simclr": "contrastive",
    "mocov2plus": "contrastive",
    "swav": "knowledge",
    # issue 22 (the original code ships no distiller for these; README, "distillers")
    "simsiam": "predictive",
    "nnclr": "contrastive",
    "ressl": "relational",
    "wmse": "predictive",
}
# Beyond the paper (issue 22): the method's own kind of objective, as for the six (README).
DEFAULT_DISTILLER.update({"dino": "knowledge", "deepclusterv2": "knowledge", "mocov3": "contrastive"})

# The PNR distiller of each method PNR's public code covers (its bash_files/continual/cifar).
PNR_DISTILLER = {
    "simclr": "pnr_contrastive",
    "mocov2plus": "pnr_moco",
    "byol": "pnr_predictive",
    "barlow_twins": "pnr_decorrelative",
    "vicreg": "pnr_predictive_mse",
}

distill_wrapper = make_distill_wrapper(DISTILLERS)

__all__ = [
    "DISTILLERS",
    "DEFAULT_DISTILLER",
    "PNR_DISTILLER",
    "DistillMixin",
    "Distiller",
    "add_distiller_args",
    "distill_wrapper",
]
