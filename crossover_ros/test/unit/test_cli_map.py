"""``crossover_ros map`` verbs end to end on a small building (global-descriptor maps)."""

import numpy as np
import pytest

from crossover_ros.cli.main import main
from crossover_ros.datasets.scan import load_building
from crossover_ros.mapdb import open_map


@pytest.fixture(scope="module")
def built(small_building, tmp_path_factory):
    out = tmp_path_factory.mktemp("maps") / "map.sqlite"
    assert main(["map", "build", "--scans", str(small_building), "--out", str(out)]) == 0
    return out


def test_build_info_add_remove(built, small_building, capsys, tmp_path):
    scans = load_building(small_building).scans
    references = sorted(s.scan_id for s in scans if s.scan_index == 0)
    rescan = next(s.scan_id for s in scans if s.scan_index == 1)
    with open_map(built) as db:
        assert [s.scene_id for s in db.scenes()] == references
    assert main(["map", "info", str(built), "--verify"]) == 0
    assert f"scenes: {len(references)}" in capsys.readouterr().out

    copy = tmp_path / "copy.sqlite"
    assert main(["map", "export", str(built), "--to", str(copy)]) == 0
    assert (
        main(
            [
                "map",
                "add-scan",
                "--map",
                str(copy),
                "--scans",
                str(small_building),
                "--scan-id",
                rescan,
            ]
        )
        == 0
    )
    assert main(["map", "remove-scene", "--map", str(copy), references[0]]) == 0
    with open_map(copy) as db:
        assert sorted(s.scene_id for s in db.scenes()) == sorted([*references[1:], rescan])

    # import adds only what is missing; exporting onto an existing map is refused
    assert main(["map", "import", str(copy), "--from", str(built)]) == 0
    with open_map(copy) as db:
        assert sorted(s.scene_id for s in db.scenes()) == sorted([*references, rescan])
    capsys.readouterr()
    assert main(["map", "export", str(built), "--to", str(copy)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_unknown_scan_and_scene_are_one_line_errors(built, small_building, capsys, tmp_path):
    copy = tmp_path / "c.sqlite"
    assert main(["map", "export", str(built), "--to", str(copy)]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "map",
                "add-scan",
                "--map",
                str(copy),
                "--scans",
                str(small_building),
                "--scan-id",
                "nowhere_00",
            ]
        )
        == 1
    )
    assert main(["map", "remove-scene", "--map", str(copy), "nowhere_00"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("ERROR: ") for line in errors)


def test_record_adds_one_scene_per_room_of_a_mapping_bag(small_building, capsys, tmp_path):
    from crossover_ros.bags.reader import read_ground_truth
    from crossover_ros.synthetic.query_bag import QueryBagCfg, record_query_bag

    bag = record_query_bag(
        small_building,
        tmp_path / "mapping",
        QueryBagCfg(seconds_per_room=2.0, scans="reference"),
        progress=False,
    )
    visits = read_ground_truth(bag)["visits"]
    assert all(v["query_scan_id"] == v["scene_id"] for v in visits), "walks the references"
    out = tmp_path / "recorded.sqlite"
    assert main(["map", "record", "--bag", str(bag), "--out", str(out)]) == 0
    with open_map(out) as db:
        scenes = db.scenes()
        assert [s.scene_id for s in scenes] == [v["scene_id"] for v in visits]
        assert [s.room_id for s in scenes] == [str(v["room_id"]) for v in visits]
        for scene in scenes:
            assert scene.building_id == "test" and scene.frame == "odom"
            assert scene.frame_to_building == pytest.approx(tuple(np.eye(4).reshape(-1)))
            assert len(db.point_cloud(scene.scene_id)[0]) > 100
    capsys.readouterr()
    args = ["map", "record", "--bag", str(bag), str(bag), "--out", str(out), "--scene-id", "x"]
    assert main(args) == 1
    assert "one bag" in capsys.readouterr().err
    assert main(["map", "record", "--bag", str(bag), "--out", str(out)]) == 1, "ids taken"


def test_build_resume_goes_on_where_a_killed_build_stopped(small_building, capsys, tmp_path):
    out = tmp_path / "resumed.sqlite"
    assert main(["map", "build", "--scans", str(small_building), "--out", str(out)]) == 0
    with open_map(out) as db:
        every = [s.scene_id for s in db.scenes()]
        db.remove_scene(every[-1])  # as if killed before the last scan was committed
        added_at = db._fetch("SELECT scene_id, added_at FROM {s}.scenes")
    capsys.readouterr()

    assert main(["map", "build", "--scans", str(small_building), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and "--resume" in err and "--overwrite" in err

    assert (
        main(["map", "build", "--scans", str(small_building), "--out", str(out), "--resume"]) == 0
    )
    with open_map(out) as db:
        assert [s.scene_id for s in db.scenes()] == every
        kept = dict(db._fetch("SELECT scene_id, added_at FROM {s}.scenes"))
    assert all(kept[scene_id] == when for scene_id, when in added_at), "committed scenes kept"

    other_model = ["--model", "crossover", "--resume"]
    args = ["map", "build", "--scans", str(small_building), "--out", str(out), *other_model]
    assert main(args) == 1
    assert "model" in capsys.readouterr().err

    assert (
        main(["map", "build", "--scans", str(small_building), "--out", str(out), "--overwrite"])
        == 0
    )
    with open_map(out) as db:
        assert [s.scene_id for s in db.scenes()] == every


def test_a_map_copied_without_its_wal_says_what_is_missing(small_building, capsys, tmp_path):
    import shutil

    from crossover_ros.mapdb import SQLiteMapDatabase

    live = tmp_path / "live.sqlite"
    writer = SQLiteMapDatabase.create(live, "m", 8)  # open: the tables are in live.sqlite-wal
    try:
        copy = tmp_path / "copy.sqlite"
        shutil.copy(live, copy)
        assert main(["map", "info", str(copy)]) == 1
    finally:
        writer.close()
    err = capsys.readouterr().err.strip()
    assert err.startswith("ERROR: ") and len(err.splitlines()) == 1
    assert "no such table" not in err and "copy.sqlite-wal" in err and "no map tables" in err
