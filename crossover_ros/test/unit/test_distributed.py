"""Data-parallel training under torchrun: two processes, on the CPU (gloo) and, where torch sees
a GPU, on it (gloo on one GPU, which NCCL refuses to share between ranks; NCCL with more)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import os
    import sys
    from pathlib import Path

    import numpy as np
    import torch

    from crossover_ros.cli.train import process_group_backend, training_device
    from crossover_ros.model.crossover import CrossOverModel
    from crossover_ros.train.stages import StageCfg, TrainCfg, train_stage
    from crossover_ros.train.synthetic import synthetic_scenes

    gpus, local_rank = torch.cuda.device_count(), int(os.environ["LOCAL_RANK"])
    device = training_device(sys.argv[2], torch.cuda.is_available(), local_rank, gpus)
    torch.distributed.init_process_group(process_group_backend(device, 2, gpus))
    rank = torch.distributed.get_rank()
    torch.manual_seed(rank)  # different random inits: training must broadcast rank 0's
    scenes = synthetic_scenes(8, np.random.default_rng(0))
    fast = StageCfg(epochs=2, batch_size=2, num_scene_points=128, num_object_points=32)
    cfg = TrainCfg(stage1=fast, stage2=fast, stage3=fast)
    model = CrossOverModel().to(device)
    out = Path(sys.argv[1])
    history = train_stage("stage3", model, scenes, cfg, out, progress=False)
    torch.save(model.cpu().frames.state_dict(), out / f"frames_rank{rank}.pt")
    print("history", rank, history)
    torch.distributed.destroy_process_group()
    """
)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_two_processes_stay_in_step_and_rank0_writes_the_checkpoint(tmp_path: Path, device):
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU; torch sees none")

    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(tmp_path),
            device,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if "Address family not supported" in result.stderr:
        pytest.skip("no loopback networking for gloo here")
    assert result.returncode == 0, result.stderr[-3000:]
    first = torch.load(tmp_path / "frames_rank0.pt", weights_only=True)
    second = torch.load(tmp_path / "frames_rank1.pt", weights_only=True)
    for name, tensor in first.items():
        torch.testing.assert_close(tensor, second[name], msg=f"{name} differs between ranks")
    assert (tmp_path / "stage3.safetensors").is_file()
    histories = [line for line in result.stdout.splitlines() if line.startswith("history")]
    assert len(histories) == 2 and histories[0].split(" ", 2)[2] == histories[1].split(" ", 2)[2]


def test_each_process_takes_a_gpu_and_nccl_only_where_none_shares_one():
    from crossover_ros.cli.train import process_group_backend, training_device
    from crossover_ros.errors import CrossoverError

    assert training_device("auto", False, 3, 0) == "cpu"
    assert training_device("cpu", True, 1, 8) == "cpu"
    assert training_device("auto", True, 3, 8) == "cuda:3"
    assert training_device("cuda", True, 3, 2) == "cuda:1"  # 4 processes on 2 GPUs
    with pytest.raises(CrossoverError, match="sees no CUDA GPU"):
        training_device("cuda", False, 0, 0)
    assert process_group_backend("cpu", 2, 0) == "gloo"
    assert process_group_backend("cuda:0", 8, 8) == "nccl"
    assert process_group_backend("cuda:0", 2, 1) == "gloo"


LAYOUT_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch

    from crossover_ros.cli.train import process_group_backend
    from crossover_ros.model.crossover import CrossOverModel
    from crossover_ros.train.pipeline import load_features
    from crossover_ros.train.stages import StageCfg, TrainCfg, train_stage

    torch.distributed.init_process_group(process_group_backend("cpu", 2, 0))
    rank = torch.distributed.get_rank()
    folders = [Path(p) for p in sys.argv[3:]]
    scenes = load_features(folders, Path(sys.argv[2]), progress=False)  # cached by the test
    fast = StageCfg(epochs=1, batch_size=2, num_scene_points=128, num_object_points=32)
    model = CrossOverModel()
    out = Path(sys.argv[1])
    history = train_stage("stage1", model, scenes, TrainCfg(stage1=fast), out, progress=False)
    print("history", rank, len(scenes), history)
    torch.distributed.destroy_process_group()
    """
)


def test_stage1_trains_on_scannet_and_3rscan_layout_scans_in_two_processes(layouts, tmp_path):
    """``train --layout``: the datasets' own layouts through the same readers, under torchrun."""
    from crossover_ros.train.pipeline import load_features

    folders = [layouts["scannet"], layouts["3rscan"]]
    scenes = load_features(folders, tmp_path / "cache", progress=False)
    assert len(scenes) == 12  # 3 rooms x 2 scans, in each layout
    assert not any(s.has_referrals for s in scenes)  # the datasets have none: a missing modality
    assert all(s.object_points_mask.any() and s.object_image_mask.any() for s in scenes)
    script = tmp_path / "train_layouts.py"
    script.write_text(LAYOUT_SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(script), str(tmp_path), str(tmp_path / "cache")]
    result = subprocess.run(
        command + [str(f) for f in folders], capture_output=True, text=True, timeout=300
    )
    if "Address family not supported" in result.stderr:
        pytest.skip("no loopback networking for gloo here")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "stage1.safetensors").is_file()
    histories = [line for line in result.stdout.splitlines() if line.startswith("history")]
    assert len(histories) == 2 and histories[0].split(" ", 2)[2] == histories[1].split(" ", 2)[2]
