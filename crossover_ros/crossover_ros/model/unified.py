"""Stage 3: unified encoders that need no instance segmentation at inference.

Trained against the frozen scene vector F_S, so a robot embeds what it sees (a handful of RGB
frames) and the map embeds what it stored (a scene point cloud, a floorplan, referral text), and
both land in the same space.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from crossover_ros.model.layers import ProjectionHead, masked_mean, mlp
from crossover_ros.model.point_encoder import PointEncoder, PointEncoderCfg


@dataclass(frozen=True)
class FrameSetEncoderCfg:
    in_dim: int = 2560  # per-frame pooled features of the frozen image backbone (EfficientNet's)
    hidden_dim: int = 512
    embed_dim: int = 256
    dropout: float = 0.2  # on the frozen features while training: a few hundred scenes overfit


class FrameSetEncoder(nn.Module):
    """2D encoder: frames (B, F, in_dim) + mask (B, F) -> (B, D): frame MLP, mean, head.

    The paper uses the same 2D encoder for floorplan images (a set of one frame).
    """

    def __init__(self, cfg: FrameSetEncoderCfg | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or FrameSetEncoderCfg()
        self.dropout = nn.Dropout(cfg.dropout)
        self.frame_mlp = mlp([cfg.in_dim, 2 * cfg.hidden_dim, cfg.hidden_dim])
        self.head = ProjectionHead(cfg.hidden_dim, cfg.embed_dim, cfg.hidden_dim)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(masked_mean(self.frame_mlp(self.dropout(frames)), mask, dim=1))


@dataclass(frozen=True)
class TextSetEncoderCfg:
    in_dim: int = 384  # MiniLM sentence embeddings
    hidden_dim: int = 512
    embed_dim: int = 256


class TextSetEncoder(nn.Module):
    """1D encoder: referral sentences (B, R, in_dim) + mask (B, R) -> (B, D)."""

    def __init__(self, cfg: TextSetEncoderCfg | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or TextSetEncoderCfg()
        self.sentence_mlp = mlp([cfg.in_dim, cfg.hidden_dim, cfg.hidden_dim])
        self.head = ProjectionHead(cfg.hidden_dim, cfg.embed_dim, cfg.hidden_dim)

    def forward(self, sentences: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(masked_mean(self.sentence_mlp(sentences), mask, dim=1))


@dataclass(frozen=True)
class ScenePointEncoderCfg:
    point: PointEncoderCfg = field(
        default_factory=lambda: PointEncoderCfg(
            in_channels=6,
            num_groups=64,
            group_size=24,
            local_widths=(64, 128),
            global_widths=(256, 512),
        )
    )
    embed_dim: int = 256


class ScenePointEncoder(nn.Module):
    """3D encoder: a scene's point cloud (B, N, 6) (xyz metres, rgb 0..1) -> (B, D).

    The paper's sparse-convolution ResNet does not export to ONNX/TensorRT; this one does.
    Points are centred on their mean, so the room's placement in its frame does not matter.
    """

    def __init__(self, cfg: ScenePointEncoderCfg | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ScenePointEncoderCfg()
        self.encoder = PointEncoder(cfg.point)
        self.head = ProjectionHead(self.encoder.out_dim, cfg.embed_dim, self.encoder.out_dim)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        xyz = points[..., :3] - points[..., :3].mean(dim=1, keepdim=True)
        return self.head(self.encoder(torch.cat([xyz, points[..., 3:]], dim=-1)))
