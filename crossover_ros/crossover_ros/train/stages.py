"""The training stages of CrossOver, one generic loop, resumable checkpoints.

Stage 1 trains the instance encoder (object embeddings of every modality against the image
modality). Stage 2 freezes it and trains the scene fusion so F_S is stable when modalities are
missing. Stage 3 freezes both and trains the unified encoders (frames, scene point cloud,
floorplan, referral text) against F_S, plus image-anchored pairs between the unified encoders.
The region stage (``regions``, ours, needing stage 1 only) trains the region encoder against the
frozen object descriptors, so objects can be found in frames without instance masks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from tqdm import tqdm

from crossover_ros.datasets.scan import room_key
from crossover_ros.errors import ModelError
from crossover_ros.model import modalities as mod
from crossover_ros.model.batches import SceneBatch, make_batch
from crossover_ros.model.crossover import CrossOverModel
from crossover_ros.model.features import ScanFeatures
from crossover_ros.model.instance_encoder import object_descriptors
from crossover_ros.model.losses import anchored_info_nce, info_nce, object_set_info_nce


@dataclass(frozen=True)
class StageCfg:
    epochs: int
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    frame_count: tuple[int, int] = (3, 10)
    num_scene_points: int = 1024
    num_object_points: int = 256
    drop_point_pairs: float = 0.0  # share of scans trained without object point clouds
    crop_subsets: bool = False  # objects' images from random subsets of their crops


@dataclass(frozen=True)
class TrainCfg:
    seed: int = 0
    stage1: StageCfg = field(
        default_factory=lambda: StageCfg(epochs=40, batch_size=8, crop_subsets=True)
    )
    stage2: StageCfg = field(default_factory=lambda: StageCfg(epochs=20, batch_size=16))
    stage3: StageCfg = field(default_factory=lambda: StageCfg(epochs=80, batch_size=16))
    # targets: objects' descriptors as a map stores them (all their points)
    regions: StageCfg = field(
        default_factory=lambda: StageCfg(epochs=15, batch_size=8, num_object_points=512)
    )
    image_anchored_unified_pairs: bool = True
    object_set_weight: float = 1.0  # stage 1: weight of the scene-by-object-set InfoNCE
    object_set_temperature: float = 0.05


def _same_place(batch: SceneBatch, device: torch.device) -> torch.Tensor:
    """(B, B): True where two scans of the batch show the same room."""
    rooms = [room_key(scan_id) for scan_id in batch.scan_ids]
    return torch.tensor([[a == b for b in rooms] for a in rooms], device=device)


def stage1_loss(model: CrossOverModel, batch: SceneBatch, cfg: TrainCfg) -> torch.Tensor:
    """InfoNCE of every object modality against the image crops, over all objects of the batch.

    The per-object tokens (before the object transformer) are contrasted across the whole batch;
    the contextualised embeddings within each scene, against the other objects of that scene:
    contrasted across scenes, the transformer takes a shortcut (it tells scenes apart by their
    context) and the objects of one scene blur together, which is the opposite of what instance
    matching needs. With ``object_set_weight``, scenes are also contrasted by their object sets
    (``object_set_info_nce`` on the descriptors that scene retrieval compares), so that a room
    is told from the other rooms by what stands in it, and where.
    """
    tokens, context = model.instance.encode(
        batch.object_inputs, batch.object_masks, batch.centroids
    )
    scale = model.logit_scales["stage1"]()
    flat = {m: e.reshape(-1, e.shape[-1]) for m, e in tokens.items()}
    masks = {m: batch.object_masks[m].reshape(-1) for m in tokens}
    loss = anchored_info_nce(flat, masks, mod.RGB, scale)[0]
    for i in range(len(batch)):
        scene = {m: e[i] for m, e in context.items()}
        scene_masks = {m: batch.object_masks[m][i] for m in context}
        loss = loss + anchored_info_nce(scene, scene_masks, mod.RGB, scale)[0] / len(batch)
    if cfg.object_set_weight > 0:
        loss = loss + cfg.object_set_weight * object_set_info_nce(
            object_descriptors(tokens, context),
            batch.object_masks,
            mod.RGB,
            cfg.object_set_temperature,
            _same_place(batch, scale.device),
        )
    return loss


def _random_modality_subset(
    masks: dict[str, torch.Tensor], generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Per scene, keep each modality with probability 1/2 (at least one present one kept)."""
    names = list(masks)
    keep = torch.rand(len(names), masks[names[0]].shape[0], generator=generator) < 0.5
    keep = keep.to(masks[names[0]].device)  # the generator draws on the CPU, for any device
    present = torch.stack([masks[m].any(dim=1) for m in names])
    keep &= present
    first_present = present.float().argmax(dim=0)
    none_kept = ~keep.any(dim=0)
    keep[first_present[none_kept], none_kept.nonzero().flatten()] = True
    return {m: masks[m] & keep[i].unsqueeze(1) for i, m in enumerate(names)}


def stage2_loss(model: CrossOverModel, batch: SceneBatch, cfg: TrainCfg) -> torch.Tensor:
    """F_S from all modalities must stay itself (and unlike other scenes) from random subsets."""
    with torch.no_grad():
        embeddings = model.contextual_embeddings(batch)
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,))))
    full = model.fusion(embeddings, batch.object_masks)
    scale = model.logit_scales["stage2"]()
    subset_a = model.fusion(embeddings, _random_modality_subset(batch.object_masks, generator))
    subset_b = model.fusion(embeddings, _random_modality_subset(batch.object_masks, generator))
    return info_nce(full, subset_a, scale) + info_nce(subset_a, subset_b, scale)


def stage3_loss(model: CrossOverModel, batch: SceneBatch, cfg: TrainCfg) -> torch.Tensor:
    """Each unified modality against F_S, plus (optionally) image-anchored pairs among them."""
    with torch.no_grad():
        target = model.scene_vectors(batch)
    unified = model.unified_embeddings(batch)
    scale = model.logit_scales["stage3"]()
    has_referral = batch.referral_mask.any(dim=1)
    same_place = _same_place(batch, target.device)
    loss = target.new_zeros(())
    for modality, vectors in unified.items():
        rows = has_referral if modality == mod.REFERRAL else torch.ones_like(has_referral)
        loss = loss + info_nce(vectors[rows], target[rows], scale, same_place[rows][:, rows])
    if cfg.image_anchored_unified_pairs:
        masks = {m: torch.ones_like(has_referral) for m in unified}
        masks[mod.REFERRAL] = has_referral
        pairs, _ = anchored_info_nce(unified, masks, mod.RGB, scale, same_place)
        loss = loss + pairs
    return loss


def region_targets(model: CrossOverModel, batch: SceneBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K, D) descriptors the regions learn to land on, and (B, K) which objects have one:
    the object's point-cloud descriptor (what a map stores), its image descriptor without one."""
    with torch.no_grad():
        descriptors = model.instance(batch.object_inputs, batch.object_masks, batch.centroids)
    has_points = batch.object_masks[mod.POINT_CLOUD]
    targets = torch.where(
        has_points.unsqueeze(-1), descriptors[mod.POINT_CLOUD], descriptors[mod.RGB]
    )
    return targets, has_points | batch.object_masks[mod.RGB]


def regions_loss(model: CrossOverModel, batch: SceneBatch, cfg: TrainCfg) -> torch.Tensor:
    """Each region an object covers must find that object's descriptor among all objects of
    the batch (InfoNCE, one way); objectness learns which regions an object covers."""
    assert model.regions is not None and batch.regions is not None
    targets, present = region_targets(model, batch)
    embeddings, objectness = model.regions(batch.regions)
    objects, k = batch.region_objects, targets.shape[1]
    scene = torch.arange(len(batch), device=objects.device).view(-1, 1, 1).expand_as(objects)
    covered = (objects >= 0) & (batch.region_shares >= model.regions.cfg.min_share)
    covered &= present[scene, objects.clamp(min=0)]
    # rows of the present objects in the flattened batch: the classes of the InfoNCE
    index = torch.full((len(batch) * k,), -1, dtype=torch.int64, device=objects.device)
    index[present.flatten()] = torch.arange(int(present.sum()), device=objects.device)
    labels = index[(scene * k + objects)[covered]]
    logits = model.regions.logit_scale() * embeddings[covered] @ targets[present].T
    match = F.cross_entropy(logits, labels) if len(labels) else logits.sum()
    return match + F.binary_cross_entropy_with_logits(objectness, covered.float())


STAGES: dict[str, tuple[Callable, Callable[[CrossOverModel], list[nn.Module]]]] = {
    "stage1": (stage1_loss, lambda m: [m.instance, m.logit_scales["stage1"]]),
    "stage2": (stage2_loss, lambda m: [m.fusion, m.logit_scales["stage2"]]),
    "stage3": (
        stage3_loss,
        lambda m: [m.frames, m.scene_points, m.text, m.logit_scales["stage3"]],
    ),
    "regions": (regions_loss, lambda m: [m.regions]),
}


def _distributed_rank_and_size() -> tuple[int, int]:
    """(rank, world size) under torchrun, (0, 1) otherwise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _average_gradients(params: list[torch.Tensor], world: int) -> None:
    """Data parallelism: every process applies the mean gradient of all processes' batches."""
    for parameter in params:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        torch.distributed.all_reduce(parameter.grad)
        parameter.grad /= world


def _mean_over_processes(losses: list[float], world: int, device: torch.device) -> float:
    total = torch.tensor([sum(losses), len(losses)], dtype=torch.float64, device=device)
    if world > 1:
        torch.distributed.all_reduce(total)
    return float(total[0] / total[1]) if total[1] > 0 else float("nan")


def _schedule(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def hide_point_clouds(scenes: list[ScanFeatures], share: float, seed: int) -> list[ScanFeatures]:
    """The missing-modality ablation: a fixed ``share`` of the scans, chosen once by ``seed``,
    lose their object point clouds for the whole stage, as in a data set where only some scans
    have them. (A new random subset every batch would show every image-point pair in time.)"""
    if share <= 0:
        return scenes
    rng = np.random.default_rng([seed, 1])
    hidden = set(rng.permutation(len(scenes))[: round(share * len(scenes))].tolist())
    return [
        replace(s, object_points_mask=np.zeros_like(s.object_points_mask)) if i in hidden else s
        for i, s in enumerate(scenes)
    ]


def train_stage(
    name: str,
    model: CrossOverModel,
    scenes: list[ScanFeatures],
    cfg: TrainCfg,
    out_dir: Path,
    progress: bool = True,
) -> list[float]:
    """Train one stage (others frozen); resumes from ``out_dir/<name>.*`` if present.

    Returns the mean loss of every epoch (including epochs done before a resume). Batches go
    to the model's device. Under ``torchrun`` (a process group initialised), each process
    trains on its share of the batches, gradients are averaged across processes, and rank 0
    writes the checkpoints.
    """
    device = next(model.parameters()).device
    stage_cfg: StageCfg = getattr(cfg, name)
    scenes = hide_point_clouds(scenes, stage_cfg.drop_point_pairs, cfg.seed)
    loss_fn, trainable = STAGES[name]
    modules = trainable(model)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    params = [p for module in modules for p in module.parameters()]
    for parameter in params:
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        params, lr=stage_cfg.lr, betas=(0.9, 0.98), weight_decay=stage_cfg.weight_decay
    )
    steps_per_epoch = math.ceil(len(scenes) / stage_cfg.batch_size)
    total = stage_cfg.epochs * steps_per_epoch
    warmup = max(1, int(stage_cfg.warmup_fraction * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _schedule(step, total, warmup)
    )
    checkpoint = out_dir / f"{name}.safetensors"
    state_file = out_dir / f"{name}.state.pt"
    history: list[float] = []
    start_epoch = 0
    if checkpoint.is_file() and state_file.is_file():
        loaded, metadata = CrossOverModel.load(checkpoint)
        if loaded.cfg != model.cfg:  # e.g. another image backbone: its features differ
            raise ModelError(f"{checkpoint} was trained with another model config; use a new --out")
        model.load_state_dict(loaded.state_dict())
        state = torch.load(state_file, weights_only=True)  # tensors and numbers only
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = json.loads(metadata["history"])
        start_epoch = len(history)
        if json.loads(metadata["train_cfg"]) != json.loads(json.dumps(asdict(cfg))):
            raise ModelError(f"{checkpoint} was trained with another config; use a new --out")
    rank, world = _distributed_rank_and_size()
    if world > 1:  # identical start on every process
        for tensor in model.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)
    model.train()
    bar = tqdm(
        range(start_epoch, stage_cfg.epochs),
        desc=name,
        unit="epoch",
        disable=not progress or rank != 0,
    )
    for epoch in bar:
        rng = np.random.default_rng([cfg.seed, epoch, list(STAGES).index(name)])
        torch.manual_seed(int(rng.integers(2**31)))
        order = rng.permutation(len(scenes))
        starts = list(range(0, len(order), stage_cfg.batch_size))
        starts = starts[: len(starts) // world * world][rank::world]  # equal steps per process
        losses = []
        for start in starts:
            chosen = [scenes[i] for i in order[start : start + stage_cfg.batch_size]]
            if len(chosen) < 2:
                continue
            batch = make_batch(
                chosen,
                rng,
                frame_count=stage_cfg.frame_count,
                num_scene_points=stage_cfg.num_scene_points,
                num_object_points=stage_cfg.num_object_points,
                crop_subsets=stage_cfg.crop_subsets,
                regions=name == "regions",
            ).to(device)
            loss = loss_fn(model, batch, cfg)
            optimizer.zero_grad()
            loss.backward()
            if world > 1:
                _average_gradients(params, world)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        history.append(_mean_over_processes(losses, world, device))
        bar.set_postfix(loss=f"{history[-1]:.3f}")
        if rank != 0:
            continue
        model.save(
            checkpoint,
            {"history": json.dumps(history), "train_cfg": json.dumps(asdict(cfg))},
        )
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, state_file
        )
    model.eval()
    return history
