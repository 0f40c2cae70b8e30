"""SwAV's prototype layer: a bias-free linear layer with weight normalisation, as in the reference.

Each prototype k is ``w_k = g_k * v_k / ||v_k||`` with a learnable direction ``v_k`` and a learnable
gain ``g_k``, so the score of a normalised projection z is ``g_k * cos(z, v_k)``. ``v`` starts with
``nn.Linear``'s init (uniform in +-1/sqrt(D)) and ``g`` with the initial rows' norms (about
sqrt(1/3) = 0.58 for any D), so the layer starts as the plain linear layer it reparametrises. Both
are trained (in the optimizer like any parameter).

The parameters are named ``weight_g`` (K, 1) and ``weight_v`` (K, D), the names
``torch.nn.utils.weight_norm`` gives them, so state dicts read like the original code's
(``prototypes.weight_g`` / ``prototypes.weight_v``). Written by hand because torch's
``weight_norm`` is deprecated (it warns) and its parametrize successor renames the parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Prototypes(nn.Module):
    def __init__(self, dim: int, num_prototypes: int):
        super().__init__()
        v = torch.empty(num_prototypes, dim)
        nn.init.kaiming_uniform_(v, a=math.sqrt(5))  # nn.Linear's default init
        self.weight_v = nn.Parameter(v)  # (K, D) directions
        self.weight_g = nn.Parameter(v.norm(dim=1, keepdim=True))  # (K, 1) gains

    @property
    def weight(self) -> torch.Tensor:
        """(K, D) effective prototypes g * v / ||v||."""
        return self.weight_v * (self.weight_g / self.weight_v.norm(dim=1, keepdim=True))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, K) scores; g * cos(z, v) for a normalised z."""
        return F.linear(z, self.weight)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints of this project before weight normalisation stored one `weight` whose rows
        # were normalised on the fly: the same function as gain 1.
        old = state_dict.pop(prefix + "weight", None)
        if old is not None and prefix + "weight_v" not in state_dict:
            state_dict[prefix + "weight_v"] = old
            state_dict[prefix + "weight_g"] = torch.ones(old.shape[0], 1, dtype=old.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
