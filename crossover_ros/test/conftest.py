"""Shared fixtures: a small generated building, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_building(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three rooms (two look-alike), one rescan each, few small frames: seconds to make."""
    from crossover_ros.synthetic.building import BuildingConfig, generate_building

    out = tmp_path_factory.mktemp("building") / "bldg"
    cfg = BuildingConfig(
        seed=7,
        num_rooms=3,
        num_lookalike_rooms=2,
        rescans_per_room=1,
        frames_per_scan=6,
        image_width=160,
        image_height=120,
        building_id="test",
    )
    return generate_building(out, cfg, progress=False)


@pytest.fixture(scope="session")
def layouts(small_building: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``small_building`` written in the ScanNet and the 3RScan on-disk layouts."""
    from crossover_ros.synthetic.layouts import write_rscan_layout, write_scannet_layout

    root = tmp_path_factory.mktemp("layouts")
    write_scannet_layout(small_building, root / "scannet")
    write_rscan_layout(small_building, root / "3rscan")
    return {"generated": small_building, "scannet": root / "scannet", "3rscan": root / "3rscan"}
