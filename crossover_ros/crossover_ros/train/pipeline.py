"""From generated buildings to a trained CrossOver model: features once, then the stages."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import torch

from crossover_ros.datasets.scan import load_building
from crossover_ros.errors import ModelError
from crossover_ros.mapdb.build import detect_layout
from crossover_ros.model.crossover import CrossOverCfg, CrossOverModel
from crossover_ros.model.features import (
    FeatureCfg,
    ImageFeatureEncoder,
    ScanFeatures,
    load_scan_features,
)
from crossover_ros.model.global_descriptor import ImageDescriptorEncoder
from crossover_ros.model.text_backbone import TextBackbone
from crossover_ros.train.features import cache_building_features
from crossover_ros.train.stages import TrainCfg, train_stage

ALL_STAGES = ("stage1", "stage2", "stage3", "regions")


def load_features(
    buildings: list[Path],
    cache_root: Path,
    cfg: FeatureCfg | None = None,
    progress: bool = True,
    image_encoder: ImageFeatureEncoder | None = None,
    layout: str = "auto",
) -> list[ScanFeatures]:
    """Cached frozen features of every scan of the buildings (computed where missing); a
    "building" may be a folder of ScanNet or 3RScan scans (``layout``, default detected).

    ``image_encoder`` defaults to EfficientNet-Lite0, cached in ``<cache_root>/<building>``;
    another backbone's features go to ``<cache_root>/<backbone>/<building>`` so that switching
    backbones does not overwrite (and recompute) the other's cache.
    """
    text_encoder = None
    scenes = []
    for building_dir in buildings:
        is_generated = detect_layout(Path(building_dir)) == "generated"
        building_id = load_building(building_dir).building_id if is_generated else None
        building_id = building_id or Path(building_dir).name
        if image_encoder is None:
            image_encoder = ImageDescriptorEncoder()
        if text_encoder is None:
            text_encoder = TextBackbone()
        backbone = getattr(image_encoder, "backbone", "efficientnet_lite0")
        cache_dir = Path(cache_root) / building_id
        if backbone != "efficientnet_lite0":
            cache_dir = Path(cache_root) / backbone / building_id
        paths = cache_building_features(
            building_dir,
            cache_dir,
            cfg,
            progress,
            layout=layout,
            image_encoder=image_encoder,
            text_encoder=text_encoder,
        )
        scenes.extend(load_scan_features(p) for p in paths)
    return scenes


def instance_baseline_cfg(cfg: CrossOverCfg) -> CrossOverCfg:
    """The paper's Instance Baseline: object encoders without the object transformer."""
    return replace(cfg, instance=replace(cfg.instance, num_layers=0), regions=None)


def train_crossover(
    scenes: list[ScanFeatures],
    out_dir: Path,
    train_cfg: TrainCfg,
    model_cfg: CrossOverCfg | None = None,
    stages: tuple[str, ...] = ALL_STAGES,
    progress: bool = True,
    metadata: dict[str, str] | None = None,
    device: torch.device | str = "cpu",
) -> tuple[CrossOverModel, dict[str, list[float]]]:
    """Train the stages in order on ``device``; the final weights go to
    ``out_dir/model.safetensors``.

    ``metadata`` is added to the final checkpoint's (e.g. where the image backbone's weights are).
    """
    torch.manual_seed(train_cfg.seed)
    model = CrossOverModel(model_cfg or CrossOverCfg())
    _check_image_features(model.cfg, scenes)
    regions = model.cfg.regions
    if "regions" in stages and regions is not None:
        for scene in scenes:
            if tuple(scene.cfg.get("region_grid", ())) != regions.grid:
                raise ModelError(
                    f"features of {scene.scan_id} have regions on a {scene.cfg.get('region_grid')}"
                    f" grid, the model's region encoder takes {regions.grid}"
                )
    earlier = [s for s in ALL_STAGES[: ALL_STAGES.index(stages[0])]]
    done = [
        out_dir / f"{s}.safetensors" for s in earlier if (out_dir / f"{s}.safetensors").is_file()
    ]
    if done:  # e.g. --stages stage3 after stages 1 and 2 were trained into the same folder
        previous = CrossOverModel.load(done[-1])[0]
        # a model from before the region encoder gets a new one (--stages regions)
        if replace(previous.cfg, regions=model.cfg.regions) != model.cfg:
            raise ModelError(f"{done[-1]} was trained with another model config; use a new --out")
        model.load_state_dict(previous.state_dict(), strict=previous.cfg == model.cfg)
    model.to(device)
    histories = {}
    for stage in stages:
        histories[stage] = train_stage(stage, model, scenes, train_cfg, out_dir, progress)
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return model, histories
    model.save(
        out_dir / "model.safetensors",
        {
            "train_cfg": json.dumps(asdict(train_cfg)),
            "history": json.dumps(histories),
            "scans": json.dumps([s.scan_id for s in scenes]),
            **(metadata or {}),
        },
    )
    return model, histories


def _check_image_features(cfg: CrossOverCfg, scenes: list[ScanFeatures]) -> None:
    """Cached image features must come from the backbone the model is configured for."""
    for scene in scenes:
        width = scene.frame_features.shape[-1]
        made_by = scene.fingerprints.get("image", "")
        if width != cfg.frames.in_dim or width != cfg.instance.image_dim:
            raise ModelError(
                f"features of {scene.scan_id} are {width} wide ({made_by}); the model takes "
                f"{cfg.frames.in_dim} ({cfg.image_backbone})"
            )
        if cfg.image_fingerprint and made_by != cfg.image_fingerprint:
            raise ModelError(
                f"features of {scene.scan_id} come from {made_by}, not {cfg.image_fingerprint}"
            )
