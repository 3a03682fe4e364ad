"""``map update`` and ``map scans`` end to end on the tiny generated building."""

import pytest

from crossover_ros.cli.main import main
from crossover_ros.mapdb import open_map


@pytest.fixture(scope="module")
def built(small_building, tmp_path_factory):
    from crossover_ros.synthetic.query_bag import QueryBagCfg, record_query_bag

    root = tmp_path_factory.mktemp("update")
    out = root / "map.sqlite"
    assert main(["map", "build", "--scans", str(small_building), "--out", str(out)]) == 0
    bag = record_query_bag(
        small_building, root / "bag", QueryBagCfg(seconds_per_room=3.0), progress=False
    )
    return out, bag


def test_update_adds_each_recognised_visit_as_a_rescan(built, capsys, tmp_path):
    original, bag = built
    out = tmp_path / "updated.sqlite"
    args = ["map", "update", "--bag", str(bag), "--map", str(original), "--out", str(out)]
    # short visits of a tiny building: no pose needed, and what the lag leaves is enough
    args += ["--quiet", "--set", "map_update.require_pose=false"]
    args += ["--set", "map_update.min_keyframes=1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "scan(s) added" in printed and f"updated map written to {out}" in printed
    with open_map(original, read_only=True) as db:
        before = {s.scene_id: s for s in db.scenes()}
    with open_map(out, read_only=True) as db:
        after = {s.scene_id: s for s in db.scenes()}
    added = [s for s in after.values() if s.scene_id not in before]
    assert added and set(before) <= set(after), "the original scans are kept"
    for scan in added:
        parent = before[scan.parent_scene]
        assert scan.scene_id == f"{parent.scene_id}@1" and scan.scan_index == 1
        assert (scan.room_id, scan.building_id) == (parent.room_id, parent.building_id)
        assert scan.source == f"bag {bag.name}" and scan.scan_time is not None
        assert scan.frame == "odom"  # no confirmed pose needed here: stored unplaced
    assert all(s.source == "map build" and s.parent_scene is None for s in before.values())

    assert main(["map", "scans", "--map", str(out), "--room", added[0].room_id]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["scene", "building", "room", "scan"]
    assert lines[0].endswith("parent  source") or lines[0].rstrip().endswith("source")
    # newest first: the new scan, then the one it is a rescan of
    assert [line.split()[0] for line in lines[1:]] == [added[0].scene_id, added[0].parent_scene]
    assert f"bag {bag.name}" in lines[1] and "map build" in lines[2]

    # never over an existing --out; nothing else is written
    assert main(args) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["map", "remove-scene", "--map", str(out), added[0].scene_id]) == 0
    with open_map(out, read_only=True) as db:
        assert added[0].scene_id not in {s.scene_id for s in db.scenes()}


def test_a_bag_that_adds_nothing_leaves_no_output(built, capsys, tmp_path):
    original, bag = built
    out = tmp_path / "updated.sqlite"
    args = ["map", "update", "--bag", str(bag), "--map", str(original), "--out", str(out)]
    args += ["--quiet", "--set", "map_update.min_keyframes=10000"]  # no visit is long enough
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: no visit was added to the map: only ") and err.count("\n") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []
    missing = ["map", "update", "--bag", str(tmp_path / "nope"), "--map", str(original)]
    assert main([*missing, "--in-place"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["map", "scans", "--map", str(original), "--room", "nowhere"]) == 1
    assert "no scans of room nowhere" in capsys.readouterr().err
