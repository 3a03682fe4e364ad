"""Building blocks shared by the CrossOver encoders."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


class ProjectionHead(nn.Module):
    """Linear -> ReLU -> LayerNorm -> Linear -> L2 normalise: the paper's projection head."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden_dim = hidden_dim or out_dim
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.ReLU(),
            nn.LayerNorm(hidden_dim),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=-1)


def mlp(dims: list[int]) -> nn.Sequential:
    """Linear/GELU stack without a final activation."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of ``x`` over ``dim`` counting only rows where ``mask`` is true (0 if none)."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim) / weights.sum(dim).clamp(min=1.0)


class LogitScale(nn.Module):
    """Learnable inverse temperature, initialised to 1/0.07 and clamped at 100 (as CLIP)."""

    def __init__(self, init: float = 1 / 0.07, max_value: float = 100.0) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(init)))
        self.max_value = max_value

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=self.max_value)


def grid_mean(features: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, rows * columns, C): the mean over each cell of a ``grid`` laid on the
    map, row by row, with the cell bounds of ``adaptive_avg_pool2d`` (cells overlap where the
    map does not divide). Written with fixed slices, so it exports to ONNX at any map size."""
    rows, columns = grid
    height, width = features.shape[-2:]
    cells = []
    for r in range(rows):
        # ceil as a floor of positives: ONNX divides integers towards zero, not down
        top, bottom = (r * height) // rows, ((r + 1) * height + rows - 1) // rows
        for c in range(columns):
            left, right = (c * width) // columns, ((c + 1) * width + columns - 1) // columns
            cells.append(features[:, :, top:bottom, left:right].mean(dim=(2, 3)))
    return torch.stack(cells, dim=1)
