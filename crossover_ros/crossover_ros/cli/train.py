"""``crossover_ros train``: cache frozen features of generated buildings, train the stages."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path


def add_parser(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("train", help="train the CrossOver model on generated buildings")
    parser.add_argument("--buildings", type=Path, nargs="+", required=True)
    parser.add_argument("--cache", type=Path, required=True, help="frozen-feature cache folder")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder (resumable)")
    parser.add_argument("--stages", nargs="+", default=["stage1", "stage2", "stage3"])
    parser.add_argument(
        "--instance-baseline",
        action="store_true",
        help="train the Instance Baseline instead (stage 1 without the object transformer)",
    )
    parser.add_argument(
        "--point-pairs",
        type=float,
        default=1.0,
        help="share of objects whose image-point pair is seen in stage 1 (missing-modality study)",
    )
    parser.add_argument(
        "--epochs-scale", type=float, default=1.0, help="multiply every stage's epochs"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(command=train_command)


def train_command(args: argparse.Namespace) -> int:
    import torch

    from crossover_ros.errors import CrossoverError
    from crossover_ros.model.crossover import CrossOverCfg
    from crossover_ros.train.pipeline import instance_baseline_cfg, load_features, train_crossover
    from crossover_ros.train.stages import TrainCfg

    if not 0.0 < args.point_pairs <= 1.0:
        raise CrossoverError("--point-pairs must be in (0, 1]")
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # started by torchrun
    if distributed:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    scenes = load_features(args.buildings, args.cache, progress=not distributed)
    torch.set_num_threads(os.cpu_count() or 1)  # feature caching ran single-threaded
    cfg = TrainCfg(seed=args.seed)
    cfg = replace(
        cfg,
        **{
            name: replace(
                getattr(cfg, name),
                epochs=max(1, round(getattr(cfg, name).epochs * args.epochs_scale)),
            )
            for name in ("stage1", "stage2", "stage3")
        },
    )
    cfg = replace(cfg, stage1=replace(cfg.stage1, drop_point_pairs=1.0 - args.point_pairs))
    model_cfg = CrossOverCfg()
    stages = tuple(args.stages)
    if args.instance_baseline:
        model_cfg, stages = instance_baseline_cfg(model_cfg), ("stage1",)
    try:
        _, histories = train_crossover(scenes, args.out, cfg, model_cfg, stages)
    finally:
        if distributed:
            torch.distributed.destroy_process_group()
    if distributed and int(os.environ.get("RANK", "0")) != 0:
        return 0
    for stage, history in histories.items():
        print(f"{stage}: loss {history[0]:.3f} -> {history[-1]:.3f} over {len(history)} epochs")
    print(f"model written to {args.out / 'model.safetensors'}")
    return 0
