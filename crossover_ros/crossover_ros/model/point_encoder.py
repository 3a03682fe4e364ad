"""Point-cloud encoder written only with ops that export to ONNX and TensorRT.

A PointNet++-style set abstraction: farthest point sampling picks group centres, the k nearest
points of each centre form a local patch, a shared MLP + max pool encodes each patch, and a second
MLP + max pool over patches gives the cloud's vector. FPS and kNN are plain tensor ops (argmax,
matmul, topk, gather), no custom CUDA: the same module runs in PyTorch, ONNX Runtime, TensorRT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from crossover_ros.model.layers import mlp


@dataclass(frozen=True)
class PointEncoderCfg:
    in_channels: int = 6  # xyz + rgb (3 for mesh surface samples)
    num_groups: int = 16
    group_size: int = 16
    local_widths: tuple[int, ...] = (64, 128)
    global_widths: tuple[int, ...] = (256, 256)


def farthest_point_sample(xyz: torch.Tensor, k: int) -> torch.Tensor:
    """(B, N, 3) -> (B, k) indices of points spread as far apart as possible (starts at 0)."""
    batch = torch.arange(xyz.shape[0], device=xyz.device)
    nearest = torch.full(xyz.shape[:2], float("inf"), device=xyz.device, dtype=xyz.dtype)
    current = torch.zeros(xyz.shape[0], dtype=torch.long, device=xyz.device)
    chosen = []
    for _ in range(k):
        chosen.append(current)
        centre = xyz[batch, current].unsqueeze(1)
        nearest = torch.minimum(nearest, ((xyz - centre) ** 2).sum(-1))
        current = nearest.argmax(-1)
    return torch.stack(chosen, dim=1)


def knn(query: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """(B, M, 3), (B, N, 3) -> (B, M, k) indices of each query's k nearest points."""
    squared = (
        (query**2).sum(-1, keepdim=True)
        - 2 * query @ points.transpose(1, 2)
        + (points**2).sum(-1).unsqueeze(1)
    )
    return squared.topk(k, dim=-1, largest=False).indices


def gather(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """points (B, N, C), index (B, ...) -> (B, ..., C)."""
    flat = index.reshape(index.shape[0], -1)
    picked = torch.gather(points, 1, flat.unsqueeze(-1).expand(-1, -1, points.shape[-1]))
    return picked.reshape(*index.shape, points.shape[-1])


class PointEncoder(nn.Module):
    """(B, N, C) points -> (B, out_dim) features (``out_dim`` = last global width)."""

    def __init__(self, cfg: PointEncoderCfg) -> None:
        super().__init__()
        self.cfg = cfg
        # local patch input: offset to centre (3) + the point's other channels (C - 3)
        self.local = mlp([cfg.in_channels, *cfg.local_widths])
        self.norm = nn.LayerNorm(cfg.local_widths[-1])
        self.global_mlp = mlp([cfg.local_widths[-1] + 3, *cfg.global_widths])
        self.out_dim = cfg.global_widths[-1]

    def forward_features(self, points: torch.Tensor) -> torch.Tensor:
        """(B, G, D) per-group features before the final pooling."""
        xyz = points[..., :3]
        centres_index = farthest_point_sample(xyz, self.cfg.num_groups)
        centres = gather(xyz, centres_index)  # (B, G, 3)
        patches = gather(points, knn(centres, xyz, self.cfg.group_size))  # (B, G, S, C)
        offsets = patches[..., :3] - centres.unsqueeze(2)
        local = self.local(torch.cat([offsets, patches[..., 3:]], dim=-1)).amax(dim=2)
        return self.global_mlp(torch.cat([self.norm(local), centres], dim=-1))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.forward_features(points).amax(dim=1)
