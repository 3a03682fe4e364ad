"""Stage 1: instance-level encoders, one per modality, plus the object transformer.

Each modality's frozen features (image crops, text) or raw points (object point clouds, mesh
surface samples) are projected into one shared space; the tokens of a scene's objects then pass
through a small transformer whose attention is biased by the pairwise positions of the objects,
so an object's embedding also says where it stands among the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from crossover_ros.model import modalities as mod
from crossover_ros.model.layers import ProjectionHead, mlp
from crossover_ros.model.point_encoder import PointEncoder, PointEncoderCfg


@dataclass(frozen=True)
class InstanceEncoderCfg:
    embed_dim: int = 256
    image_dim: int = 2560  # the image backbone's pooled width: EfficientNet-Lite0 [GeM | mean]
    text_dim: int = 384  # MiniLM
    point: PointEncoderCfg = field(default_factory=PointEncoderCfg)
    mesh: PointEncoderCfg = field(default_factory=lambda: PointEncoderCfg(in_channels=3))
    num_layers: int = 2
    num_heads: int = 4


class SpatialAttentionLayer(nn.Module):
    """Pre-norm transformer layer whose attention logits get a bias from object offsets."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.pair_bias = mlp([4, 32, num_heads])  # (dx, dy, dz, distance) -> one bias per head
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = mlp([dim, 2 * dim, dim])
        # Zero-initialised residual branches: the layer starts as the identity, so object
        # identity survives and context is added only as far as it helps the loss.
        for layer in (self.proj, self.ffn[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, centroids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, k, d = x.shape
        q, key, v = self.qkv(self.norm1(x)).reshape(b, k, 3, self.num_heads, -1).unbind(2)
        q, key, v = (t.transpose(1, 2) for t in (q, key, v))  # (B, H, K, d_h)
        offsets = centroids.unsqueeze(2) - centroids.unsqueeze(1)  # (B, K, K, 3)
        pairs = torch.cat([offsets, offsets.norm(dim=-1, keepdim=True)], dim=-1)
        bias = self.pair_bias(pairs).permute(0, 3, 1, 2)  # (B, H, K, K)
        logits = q @ key.transpose(-1, -2) / q.shape[-1] ** 0.5 + bias
        logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
        attended = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, k, d)
        x = x + self.proj(attended)
        return x + self.ffn(self.norm2(x))


class InstanceEncoder(nn.Module):
    """Per-modality object embeddings, unit length, from a batch of scenes: ``encode`` gives
    the tokens (D) and contextual embeddings (D) that training and scene fusion use,
    ``forward`` the two joined (``out_dim`` = 2D), which matching uses."""

    def __init__(self, cfg: InstanceEncoderCfg | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or InstanceEncoderCfg()
        self.point_encoder = PointEncoder(cfg.point)
        self.mesh_encoder = PointEncoder(cfg.mesh)
        self.heads = nn.ModuleDict(
            {
                mod.RGB: ProjectionHead(cfg.image_dim, cfg.embed_dim, 512),
                mod.POINT_CLOUD: ProjectionHead(self.point_encoder.out_dim, cfg.embed_dim),
                mod.MESH: ProjectionHead(self.mesh_encoder.out_dim, cfg.embed_dim),
                mod.REFERRAL: ProjectionHead(cfg.text_dim, cfg.embed_dim),
            }
        )
        self.modality_tokens = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros(cfg.embed_dim)) for m in mod.INSTANCE_MODALITIES}
        )
        self.layers = nn.ModuleList(
            SpatialAttentionLayer(cfg.embed_dim, cfg.num_heads) for _ in range(cfg.num_layers)
        )

    def project(self, modality: str, inputs: torch.Tensor) -> torch.Tensor:
        """Object-wise projection of one modality: (B, K, ...) -> (B, K, D), no context."""
        b, k = inputs.shape[:2]
        flat = inputs.reshape(b * k, *inputs.shape[2:])
        if modality == mod.POINT_CLOUD:
            flat = self.point_encoder(flat)
        elif modality == mod.MESH:
            flat = self.mesh_encoder(flat)
        return self.heads[modality](flat).reshape(b, k, -1)

    def contextualise(
        self, modality: str, tokens: torch.Tensor, centroids: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Pass one modality's object tokens through the spatial transformer."""
        attend_to = mask | ~mask.any(dim=1, keepdim=True)  # a scene without the modality: no NaN
        x = tokens + self.modality_tokens[modality]
        for layer in self.layers:
            x = layer(x, centroids, attend_to)
        return F.normalize(x, dim=-1)

    def encode(
        self,
        inputs: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
        centroids: torch.Tensor,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(per-object tokens without context, contextualised embeddings), per modality."""
        tokens = {m: self.project(m, x) for m, x in inputs.items()}
        context = {m: self.contextualise(m, t, centroids, masks[m]) for m, t in tokens.items()}
        return tokens, context

    @property
    def out_dim(self) -> int:
        """Width of ``forward``'s object embeddings: [contextual | token]."""
        return 2 * self.cfg.embed_dim

    def forward(
        self,
        inputs: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
        centroids: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """inputs/masks per modality (any subset of INSTANCE_MODALITIES) -> the (B, K, out_dim)
        object embeddings that instances and object sets are matched by (``object_descriptors``).
        """
        return object_descriptors(*self.encode(inputs, masks, centroids))


def object_descriptors(
    tokens: dict[str, torch.Tensor], context: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Unit vectors that objects (and scenes, object by object) are matched by, from
    ``InstanceEncoder.encode``.

    [contextual embedding | token] / sqrt(2): the cosine of two descriptors is the mean of the
    two cosines, so an object is judged by what it is and by where it stands among the others.
    The token alone survives furniture being moved (rescans), the context alone tells
    look-alike objects apart; on validation buildings the pair beat either part, both for
    instance matching (every pair, rescans too) and for scene retrieval by object sets.
    """
    return {
        m: torch.cat([context[m], F.normalize(tokens[m], dim=-1)], dim=-1) / 2**0.5 for m in context
    }
