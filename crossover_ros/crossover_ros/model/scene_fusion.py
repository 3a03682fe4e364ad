"""Stage 2: the scene vector F_S from a scene's object embeddings.

Per modality, the object embeddings are averaged (missing objects masked), normalised, and the
modalities are fused by a softmax-weighted sum (weights learnt, missing modalities excluded),
followed by an MLP. The instance encoder stays frozen while this is trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from crossover_ros.model import modalities as mod
from crossover_ros.model.layers import masked_mean, mlp


@dataclass(frozen=True)
class SceneFusionCfg:
    embed_dim: int = 256
    modalities: tuple[str, ...] = mod.INSTANCE_MODALITIES


class SceneFusion(nn.Module):
    def __init__(self, cfg: SceneFusionCfg | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or SceneFusionCfg()
        self.modality_logits = nn.Parameter(torch.zeros(len(cfg.modalities)))
        self.mlp = mlp([cfg.embed_dim, 2 * cfg.embed_dim, cfg.embed_dim])

    def forward(
        self, objects: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """(B, K, D) per modality + (B, K) masks -> (B, D) unit scene vectors."""
        vectors, present = [], []
        for m in self.cfg.modalities:
            if m in objects:
                vectors.append(F.normalize(masked_mean(objects[m], masks[m], dim=1), dim=-1))
                present.append(masks[m].any(dim=1))
            else:
                reference = next(iter(objects.values()))
                vectors.append(reference.new_zeros(reference.shape[0], reference.shape[-1]))
                present.append(reference.new_zeros(reference.shape[0], dtype=torch.bool))
        stacked, present_mask = torch.stack(vectors, dim=1), torch.stack(present, dim=1)
        logits = self.modality_logits.expand_as(present_mask).masked_fill(~present_mask, -1e4)
        fused = (logits.softmax(dim=1).unsqueeze(-1) * stacked).sum(dim=1)
        return F.normalize(fused + self.mlp(fused), dim=-1)
