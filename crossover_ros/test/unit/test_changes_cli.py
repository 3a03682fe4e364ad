"""``crossover_ros changes``: the node's pipeline over a bag, a report, scores; refusals."""

import json

import pytest

from crossover_ros.cli.main import main


@pytest.fixture(scope="module")
def crossover_bag_and_map(small_building, tmp_path_factory):
    """The small building's rescans walked as a bag, its references mapped with CrossOver."""
    from crossover_ros.mapdb.build import build_map
    from crossover_ros.model.registry import create_encoder
    from crossover_ros.synthetic.query_bag import QueryBagCfg, record_query_bag

    root = tmp_path_factory.mktemp("changes")
    build_map(small_building, root / "map.sqlite", create_encoder("crossover"), progress=False)
    cfg = QueryBagCfg(seed=3, seconds_per_room=6.0)
    return record_query_bag(small_building, root / "bag", cfg, False), root / "map.sqlite"


def test_report_and_scores_and_no_overwrite(
    crossover_bag_and_map, small_building, tmp_path, capsys
):
    bag, map_path = crossover_bag_and_map
    out = tmp_path / "changes.json"
    argv = ["changes", "--bag", str(bag), "--map", str(map_path), "--out", str(out), "--quiet"]
    argv += ["--set", "relocalization.interval_s=0.5"]
    assert main([*argv, "--building", str(small_building)]) == 0
    printed = capsys.readouterr().out
    for kind in ("moved", "removed", "added"):
        assert f"{kind}: precision" in printed
    report = json.loads(out.read_text())
    assert [v["scene_id"] for v in report["visits"]] == [v["scene_id"] for v in report["per_visit"]]
    assert set(report["scores"]) == {"moved", "removed", "added"}
    reported = [v["report"] for v in report["visits"] if "report" in v]
    assert reported, "no visit got a change report"
    for entry in reported:
        assert entry["frame_id"] == "map"
        for change in entry["changes"]:
            assert change["kind"] in ("static", "moved", "removed", "added")
            assert (change["instance_id"] == -1) == (change["kind"] == "added")
    before = out.read_text()
    assert main(argv) == 1  # an existing report is refused, untouched
    assert "already exists" in capsys.readouterr().err and out.read_text() == before
    markdown = tmp_path / "changes.md"
    assert main([*argv[:5], "--out", str(markdown), "--quiet"]) == 0
    assert markdown.read_text().startswith("# Scene changes")


def test_missing_bag_is_one_error_line(tmp_path, capsys):
    assert main(["changes", "--bag", str(tmp_path / "none"), "--map", "m.sqlite"]) == 1
    assert capsys.readouterr().err.strip() == f"ERROR: bag {tmp_path / 'none'} does not exist"
