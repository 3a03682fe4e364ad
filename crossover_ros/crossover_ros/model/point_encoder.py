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
    """(B, N, 3) -> (B, k) indices of points spread as far apart as possible (starts at 0).

    Each step takes the point farthest from the centres chosen so far (the first of equal
    maxima), its distance being ``((xyz - centre) ** 2).sum(-1)``.
    """
    return _farthest_point_sample(xyz.transpose(1, 2), k)


def knn(query: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """(B, M, 3), (B, N, 3) -> (B, M, k) indices of each query's k nearest points."""
    return _knn(query, points.transpose(1, 2), k)


# The encoder works on the coordinates as columns, (B, 3, N): the transposed view of the
# (B, N, C) cloud that the kNN matmul takes anyway. In an exported graph each coordinate is then a
# contiguous row: ONNX Runtime runs a slice, gather or broadcast along a 3- or 6-wide last axis
# element by element (taking x out of a (32, 512, 3) cloud costs more than ten FPS steps).


def _farthest_point_sample(columns: torch.Tensor, k: int) -> torch.Tensor:
    """(B, 3, N) -> (B, k). Exported, the loop unrolls into k - 1 copies of its 7-op body (an
    ONNX Loop costs ONNX Runtime more per iteration than the body does, and TensorRT loops take
    no loop-carried tensor that grows), with no Shape, Reshape or Concat per step and every
    broadcast one value per contiguous row. The squared distance sums its terms in the order
    ``((xyz - centre) ** 2).sum(-1)`` does, (dx*dx + dy*dy) + dz*dz, so the indices are bit for
    bit those of that plain loop in PyTorch and ONNX Runtime alike (test_model, test_runtime).
    """
    if k < 1:
        return torch.zeros(columns.shape[0], 0, dtype=torch.long, device=columns.device)
    with torch.no_grad():  # indices carry no gradient; the in-place square needs none
        columns = columns.contiguous()
        per_axis = torch.zeros(1, 3, 1, dtype=torch.long, device=columns.device)
        centre = columns[:, :, :1]  # the first centre is point 0
        nearest = None
        chosen = [torch.zeros_like(columns[:, :1, :1], dtype=torch.long)]
        for _ in range(k - 1):
            offset = columns - centre
            distance = offset.mul_(offset).sum(1, keepdim=True)  # (B, 1, N)
            nearest = distance if nearest is None else torch.minimum(nearest, distance)
            current = nearest.argmax(-1, keepdim=True)  # (B, 1, 1): the first of equal maxima
            chosen.append(current)
            centre = columns.gather(2, current + per_axis)  # (B, 3, 1)
        return torch.cat(chosen, dim=2).reshape(-1, k)


def _knn(query: torch.Tensor, columns: torch.Tensor, k: int) -> torch.Tensor:
    """(B, M, 3), (B, 3, N) -> (B, M, k): |q|^2 - 2 q.p + |p|^2, the k smallest per query."""
    squared = (
        (query**2).sum(-1, keepdim=True)
        - 2 * query @ columns
        + (columns * columns).sum(1, keepdim=True)  # (points ** 2).sum(-1), bit for bit
    )
    return squared.topk(k, dim=-1, largest=False).indices


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
        groups, size, channels = self.cfg.num_groups, self.cfg.group_size, self.cfg.in_channels
        columns = points.transpose(1, 2)[:, :3]  # (B, 3, N)
        # Centres and patches are rows of the flattened (B * N, C) cloud: an ONNX Gather of
        # whole rows, where a per-channel gather needs its index expanded first. Reshapes use
        # the config's sizes and -1 for the batch: constants in the exported graph, not
        # Shape -> Gather -> Concat chains.
        first_row = torch.arange(points.shape[0], device=points.device).mul(points.shape[1])
        first_row = first_row.unsqueeze(1)  # (B, 1): each cloud's point 0 in the flat rows
        flat = points.reshape(-1, channels)
        centre_rows = _farthest_point_sample(columns, groups) + first_row  # (B, G)
        centre_points = flat.index_select(0, centre_rows.reshape(-1))  # (B * G, C)
        centres = centre_points[:, :3]
        neighbours = _knn(centres.reshape(-1, groups, 3), columns, size)  # (B, G, S)
        neighbours = (neighbours + first_row.unsqueeze(2)).reshape(-1)
        patches = flat.index_select(0, neighbours).reshape(-1, size, channels)
        # [xyz - centre, other channels] as one subtraction of the centre point with its other
        # channels zeroed (x - 0 is x exactly): no slice and concat of the patch tensor.
        keep_xyz = torch.tensor([1.0] * 3 + [0.0] * (channels - 3), dtype=points.dtype)
        shift = centre_points * keep_xyz.to(points.device)
        offsets = (patches - shift.unsqueeze(1)).reshape(-1, channels)  # (B * G * S, C)
        # The MLPs run on 2-D (rows, channels), as nn.Linear does inside anyway: in ONNX a 2-D
        # MatMul + Add becomes one Gemm with the bias in the kernel, a 4-D one does not.
        local = self.local(offsets).reshape(-1, size, self.cfg.local_widths[-1]).amax(dim=1)
        merged = torch.cat([self.norm(local), centres], dim=-1)  # (B * G, W + 3)
        return self.global_mlp(merged).reshape(-1, groups, self.out_dim)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.forward_features(points).amax(dim=1)
