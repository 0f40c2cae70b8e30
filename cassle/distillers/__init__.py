"""CaSSLe distillers. The key is the `--distiller` value.

Layer: model, above methods. One file per distiller over ``Distiller``; imports methods and
losses; never strategies, continual or eval.
"""
from cassle.distillers.base import DistillMixin, Distiller, add_distiller_args, make_distill_wrapper
from cassle.distillers.contrastive import ContrastiveDistiller
from cassle.distillers.decorrelative import DecorrelativeDistiller
from cassle.distillers.knowledge import KnowledgeDistiller
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

distill_wrapper = make_distill_wrapper(DISTILLERS)

__all__ = ["DISTILLERS", "DEFAULT_DISTILLER", "DistillMixin", "Distiller", "add_distiller_args",
           "distill_wrapper"]
