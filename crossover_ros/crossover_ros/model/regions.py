"""Region encoder: objects from plain RGB frames, no instance masks.

Each frame's backbone feature map is pooled on a coarse grid (``RegionEncoderCfg.grid``); every
cell (region) is embedded into the instance descriptor space (``object_descriptors``, 512-d)
and scored for objectness, after a small transformer over the frame's cells (attention biased
by their offsets, as the object transformer's by object offsets) has told each cell what else
the frame shows: the descriptor it must land on is contextual too (it says where the object
stands among the others). It is trained (stage ``regions``) to land on the descriptor of the
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

from crossover_ros.model.instance_encoder import SpatialAttentionLayer
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
    # transformer layers over a frame's cells (0: each cell alone, as checkpoints before them)
    context_layers: int = 2
    num_heads: int = 4

    @property
    def cells(self) -> int:
        return self.grid[0] * self.grid[1]

    def shows_object(self, logits):
        """Where objectness ``logits`` (a torch or numpy array) reach ``min_objectness``: the
        one rule for PyTorch and for the exported graphs (sigmoid(x) >= p iff x >= logit(p))."""
        p = self.min_objectness
        threshold = -math.inf if p <= 0.0 else math.inf if p >= 1.0 else math.log(p / (1.0 - p))
        return logits >= threshold


class RegionEncoder(nn.Module):
    """Frames' region features (..., cells, in_dim), cells in row-major grid order ->
    (unit embeddings (..., cells, embed_dim), objectness logits (..., cells))."""

    def __init__(self, cfg: RegionEncoderCfg | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or RegionEncoderCfg()
        self.dropout = nn.Dropout(cfg.dropout)
        self.body = nn.Sequential(mlp([cfg.in_dim, cfg.hidden_dim, cfg.hidden_dim]), nn.GELU())
        self.layers = nn.ModuleList(
            SpatialAttentionLayer(cfg.hidden_dim, cfg.num_heads) for _ in range(cfg.context_layers)
        )
        if cfg.context_layers:
            # where a cell is in the frame (floor below, ceiling above), and the cells' offsets
            # (x right, y down, in frame widths / heights) that bias the attention between them
            self.position = nn.Parameter(torch.zeros(cfg.cells, cfg.hidden_dim))
            rows, cols = cfg.grid
            y, x = torch.meshgrid(
                (torch.arange(rows) + 0.5) / rows, (torch.arange(cols) + 0.5) / cols, indexing="ij"
            )
            offsets = torch.stack([x.flatten(), y.flatten(), torch.zeros(cfg.cells)], dim=-1)
            self.register_buffer("cell_centres", offsets, persistent=False)
        self.embed = nn.Linear(cfg.hidden_dim, cfg.embed_dim)
        self.objectness = nn.Linear(cfg.hidden_dim, 1)
        self.logit_scale = LogitScale()  # of the training loss

    def forward(self, regions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(self.dropout(regions))
        if self.layers:
            frames = hidden.reshape(-1, self.cfg.cells, hidden.shape[-1]) + self.position
            # one frame's worth of centres and mask, broadcast over the frames (no batch size
            # in the exported graph)
            centres = self.cell_centres[None]
            every_cell = torch.ones(1, self.cfg.cells, dtype=torch.bool, device=frames.device)
            for layer in self.layers:
                frames = layer(frames, centres, every_cell)
            hidden = frames.reshape(hidden.shape)
        return F.normalize(self.embed(hidden), dim=-1), self.objectness(hidden).squeeze(-1)

    @torch.no_grad()
    def object_set(self, regions: torch.Tensor) -> torch.Tensor:
        """The embeddings of the regions of frames (F, cells, in_dim) that show an object:
        (K, embed_dim)."""
        embeddings, logits = self(regions)
        return embeddings[self.cfg.shows_object(logits)]
