"""Knowledge distillation (SwAV, DINO, DeepClusterV2): the frozen prototypes' soft assignment of
z_bar is the teacher for a new learnable prototype layer applied to g(z). Both are weight-normalised
prototype layers with a learnable gain, like SwAV's own (the frozen one is its snapshot), as in
the reference. A method with several prototype heads (DeepClusterV2's k-means centroids) gets one
learnable layer per head, and the loss is the mean over heads."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.distillers.base import Distiller
from cassle.losses import knowledge_distill_loss


class KnowledgeDistiller(Distiller):
    default_temperature = 0.1
    frozen_attrs = ("prototypes",)

    @classmethod
    def check_method(cls, method, args) -> None:
        if not hasattr(method, "prototypes"):
            raise ValueError(
                "the knowledge distiller needs a method with prototypes (swav, dino, "
                f"deepclusterv2), not {args.method!r}"
            )

    def __init__(self, method, args):
        super().__init__(method, args)
        from cassle.methods.prototypes import Prototypes

        self.multi_head = isinstance(method.prototypes, nn.ModuleList)
        if self.multi_head:
            self.prototypes = nn.ModuleList(Prototypes(args.output_dim, p.weight.shape[0]) for p in method.prototypes)
        else:
            self.prototypes = Prototypes(args.output_dim, args.num_prototypes)

    def loss(self, p, z_bar, frozen):
        from cassle.methods.swav import prototype_scores  # float32 scores, also under autocast

        p_norm = [F.normalize(pi.float(), dim=-1) for pi in p]
        zb_norm = [F.normalize(zb.float(), dim=-1) for zb in z_bar]
        pairs = (
            zip(self.prototypes, frozen["prototypes"]) if self.multi_head else [(self.prototypes, frozen["prototypes"])]
        )
        losses = [
            knowledge_distill_loss(
                [prototype_scores(student, pn) for pn in p_norm],
                [prototype_scores(teacher, zn) for zn in zb_norm],
                temperature=self.temperature,
            )
            for student, teacher in pairs
        ]
        return torch.stack(losses).mean()
