"""Region encoder: objects from plain RGB frames, no instance masks.

Each frame's backbone feature map is pooled on a coarse grid (``RegionEncoderCfg.grid``); every
cell (region) is embedded into the instance descriptor space (``object_descriptors``, 512-d)
and scored for objectness. It is trained (stage ``regions``) to land on the descriptor of the
object that covers the region, with the instance encoder frozen, so a robot's frames give an
object set that is matched against the objects a map stores, as scenes are matched by object
sets (``mapdb.search.object_set_similarity``), and no segmentation runs on the robot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from crossover_ros.model.layers import LogitScale, mlp


@dataclass(frozen=True)
class RegionEncoderCfg:
    grid: tuple[int, int] = (4, 5)  # cells (rows, columns) a frame's feature map is pooled on
    in_dim: int = 1280  # per-region features of the frozen backbone (EfficientNet GeM: 1280)
    hidden_dim: int = 512
    embed_dim: int = 512  # the instance descriptor's width: [contextual embedding | token]
    dropout: float = 0.2  # on the frozen features while training
    # a region counts as an object's when the object covers at least this share of it (training)
    min_share: float = 0.3
    min_objectness: float = 0.5  # regions below this probability are not in a frame's object set

    def shows_object(self, logits):
        """Where objectness ``logits`` (a torch or numpy array) reach ``min_objectness``: the
        one rule for PyTorch and for the exported graphs (sigmoid(x) >= p iff x >= logit(p))."""
        p = self.min_objectness
        threshold = -math.inf if p <= 0.0 else math.inf if p >= 1.0 else math.log(p / (1.0 - p))
        return logits >= threshold


class RegionEncoder(nn.Module):
    """Region features (..., in_dim) -> (unit embeddings (..., embed_dim), objectness logits)."""

    def __init__(self, cfg: RegionEncoderCfg | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or RegionEncoderCfg()
        self.dropout = nn.Dropout(cfg.dropout)
        self.body = nn.Sequential(mlp([cfg.in_dim, cfg.hidden_dim, cfg.hidden_dim]), nn.GELU())
        self.embed = nn.Linear(cfg.hidden_dim, cfg.embed_dim)
        self.objectness = nn.Linear(cfg.hidden_dim, 1)
        self.logit_scale = LogitScale()  # of the training loss

    def forward(self, regions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(self.dropout(regions))
        return F.normalize(self.embed(hidden), dim=-1), self.objectness(hidden).squeeze(-1)

    @torch.no_grad()
    def object_set(self, regions: torch.Tensor) -> torch.Tensor:
        """The embeddings of the regions (R, in_dim) that show an object: (K, embed_dim)."""
        embeddings, logits = self(regions.reshape(-1, regions.shape[-1]))
        return embeddings[self.cfg.shows_object(logits)]
