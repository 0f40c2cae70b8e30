"""Knowledge distillation (SwAV): the frozen prototypes' soft assignment of z_bar is the teacher
for a new learnable prototype layer applied to g(z). Both are weight-normalised prototype layers
with a learnable gain, like SwAV's own (the frozen one is its snapshot), as in the reference."""
import torch.nn.functional as F

from cassle.distillers.base import Distiller
from cassle.losses import knowledge_distill_loss


class KnowledgeDistiller(Distiller):
    default_temperature = 0.1
    frozen_attrs = ("prototypes",)

    @classmethod
    def check_method(cls, method, args) -> None:
        if not hasattr(method, "prototypes"):
            raise ValueError("the knowledge distiller needs a method with prototypes (swav), "
                             f"not {args.method!r}")

    def __init__(self, method, args):
        super().__init__(method, args)
        from cassle.methods.prototypes import Prototypes
        self.prototypes = Prototypes(args.output_dim, args.num_prototypes)

    def loss(self, p, z_bar, frozen):
        from cassle.methods.swav import prototype_scores  # float32 scores, also under autocast

        student = [prototype_scores(self.prototypes, F.normalize(pi.float(), dim=-1)) for pi in p]
        teacher = [prototype_scores(frozen["prototypes"], F.normalize(zb.float(), dim=-1))
                   for zb in z_bar]
        return knowledge_distill_loss(student, teacher, temperature=self.temperature)
