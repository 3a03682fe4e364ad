"""Data-parallel training under torchrun: two CPU processes on the gloo backend."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np
    import torch

    from crossover_ros.model.crossover import CrossOverModel
    from crossover_ros.train.stages import StageCfg, TrainCfg, train_stage
    from crossover_ros.train.synthetic import synthetic_scenes

    torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank()
    torch.manual_seed(rank)  # different random inits: training must broadcast rank 0's
    scenes = synthetic_scenes(8, np.random.default_rng(0))
    fast = StageCfg(epochs=2, batch_size=2, num_scene_points=128, num_object_points=32)
    cfg = TrainCfg(stage1=fast, stage2=fast, stage3=fast)
    model = CrossOverModel()
    out = Path(sys.argv[1])
    history = train_stage("stage3", model, scenes, cfg, out, progress=False)
    torch.save(model.frames.state_dict(), out / f"frames_rank{rank}.pt")
    print("history", rank, history)
    torch.distributed.destroy_process_group()
    """
)


def test_two_processes_stay_in_step_and_rank0_writes_the_checkpoint(tmp_path: Path):
    import torch

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
