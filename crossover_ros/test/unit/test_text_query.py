"""Text queries: the sentence parser, rooms and objects found by words and geometry, the
evaluation of both sentence sets, the benchmark's map growing and the CLI verbs."""

from __future__ import annotations

import numpy as np
import pytest

from crossover_ros.cli.main import main
from crossover_ros.errors import QueryError
from crossover_ros.mapdb import SceneRecord, SQLiteMapDatabase
from crossover_ros.query.parse import BIGGER, CORNER, NEAR, ON, parse
from crossover_ros.query.text import TextQuery, _openings

LABELS = {"lamp", "table", "chair", "desk", "whiteboard", "sofa", "plant", "office chair"}


def _resolve(words: list[str]) -> str | None:
    """A resolver over LABELS: the longest run of words that is a label (plural 's' too)."""
    for n in range(len(words), 0, -1):
        for start in range(len(words) - n + 1):
            phrase = " ".join(words[start : start + n])
            for form in (phrase, phrase.removesuffix("s")):
                if form in LABELS:
                    return form
    return None


def test_parser_splits_target_relations_colours_and_counts():
    (lamp,) = parse("the red lamp on the table, next to the window", _resolve)
    assert (lamp.target, lamp.colour) == ("lamp", "red")
    assert [(r.kind, r.anchor, r.landmark) for r in lamp.relations] == [
        (ON, "table", ""),
        (NEAR, None, "window"),
    ]
    room = parse("the room with the whiteboard and two desks", _resolve)
    assert [(d.target, d.count) for d in room] == [("whiteboard", 0), ("desk", 2)]
    (chair,) = parse("the bigger office chair in the corner", _resolve)
    assert chair.target == "office chair"
    assert [r.kind for r in chair.relations] == [BIGGER, CORNER]
    # "than the other chairs" names the same kind, not a second object
    (chair,) = parse("the chair that is bigger than the other chairs", _resolve)
    assert chair.target == "chair" and [r.kind for r in chair.relations] == [BIGGER]
    items = parse("a room with a lamp, a sofa and a light grey plant", _resolve)
    assert [(d.target, d.colour) for d in items] == [
        ("lamp", ""),
        ("sofa", ""),
        ("plant", "light grey"),
    ]


def _box(centre, size):
    centre, size = np.asarray(centre, float), np.asarray(size, float)
    return (centre - size / 2).tolist(), (centre + size / 2).tolist()


def _instance(inst_id, label, centre, size):
    low, high = _box(centre, size)
    return {
        "id": inst_id,
        "label": label,
        "centroid": list(centre),
        "box_min": low,
        "box_max": high,
    }


def _room_cloud(rng, objects, window_x=None):
    """A 4 x 4 x 2.5 m room's walls (with a window hole in the y = 4 wall) and coloured boxes."""
    points, colours = [], []
    step = 0.05
    u = np.arange(0.0, 4.0 + 1e-9, step)
    h = np.arange(0.0, 2.5 + 1e-9, step)
    uu, hh = np.meshgrid(u, h)
    uu, hh = uu.ravel(), hh.ravel()
    for wall in range(4):
        keep = np.ones(len(uu), bool)
        if wall == 1 and window_x is not None:  # the y = 4 wall
            keep = ~((np.abs(uu - window_x) < 0.5) & (hh > 0.9) & (hh < 2.0))
        x, z = uu[keep], hh[keep]
        fixed = np.zeros(len(x)) if wall in (0, 2) else np.full(len(x), 4.0)
        xyz = np.stack([x, fixed, z], 1) if wall < 2 else np.stack([fixed, x, z], 1)
        points.append(xyz)
        colours.append(np.full((len(xyz), 3), 200))
    floor = np.stack(np.meshgrid(u, u), -1).reshape(-1, 2)
    points.append(np.c_[floor, np.zeros(len(floor))])
    colours.append(np.full((len(floor), 3), 120))
    for inst, colour in objects:
        low, high = np.asarray(inst["box_min"]), np.asarray(inst["box_max"])
        inside = low + rng.random((300, 3)) * (high - low)
        points.append(inside)
        colours.append(np.tile(colour, (300, 1)))
    return np.concatenate(points).astype(np.float32), np.concatenate(colours).astype(np.uint8)


@pytest.fixture(scope="module")
def text_map(tmp_path_factory):
    """Two rooms side by side in building "b" (room B 10 m along x), one room in building "c"."""
    rng = np.random.default_rng(0)
    red, blue, green = (190, 40, 40), (50, 90, 180), (60, 140, 70)
    room_a = [
        (_instance(1, "table", (2.0, 2.0, 0.375), (1.0, 0.8, 0.75)), (125, 85, 50)),
        (_instance(2, "lamp", (2.0, 2.0, 0.95), (0.3, 0.3, 0.4)), (240, 240, 236)),
        (_instance(3, "chair", (2.0, 1.3, 0.45), (0.5, 0.5, 0.9)), red),
        (_instance(4, "sofa", (0.6, 0.5, 0.4), (1.0, 0.8, 0.8)), blue),
        (_instance(5, "plant", (3.6, 0.4, 0.5), (0.4, 0.4, 1.0)), green),
        (_instance(6, "plant", (2.0, 3.6, 0.5), (0.4, 0.4, 1.0)), green),  # by the window
        (_instance(7, "lamp", (3.0, 2.0, 0.8), (0.3, 0.3, 1.6)), (240, 240, 236)),  # on the floor
    ]
    room_b = [
        (_instance(1, "desk", (1.0, 3.5, 0.375), (1.4, 0.7, 0.75)), (125, 85, 50)),
        (_instance(2, "chair", (1.0, 2.9, 0.45), (0.5, 0.5, 0.9)), blue),  # next to the desk
        (_instance(3, "chair", (3.3, 1.0, 0.45), (0.5, 0.5, 0.9)), blue),
        (_instance(4, "whiteboard", (3.96, 2.0, 1.4), (0.05, 1.5, 1.0)), (240, 240, 236)),
    ]
    room_c = [(_instance(1, "sofa", (2.0, 2.0, 0.4), (2.0, 0.9, 0.8)), red)]
    path = tmp_path_factory.mktemp("text_map") / "map.sqlite"
    shift = np.eye(4)
    shift[0, 3] = 10.0
    with SQLiteMapDatabase.create(path, "test:0", 4, 4) as db:
        for scene_id, building, objects, pose, window in (
            ("a", "b", room_a, np.eye(4), 2.0),
            ("b_room", "b", room_b, shift, None),
            ("c_room", "c", room_c, None, None),
        ):
            frame = None if pose is None else tuple(pose.reshape(-1).tolist())
            record = SceneRecord(scene_id, building, scene_id.upper(), frame_to_building=frame)
            db.add_scene(
                record,
                {"rgb": np.eye(4, dtype=np.float32)[:1]},
                [inst for inst, _ in objects],
                _room_cloud(rng, objects, window),
            )
    return path


@pytest.fixture(scope="module")
def query(text_map):
    from crossover_ros.model.text_backbone import TextBackbone

    with SQLiteMapDatabase.open(text_map, read_only=True) as db:
        return TextQuery(db, TextBackbone())


def _top(hits):
    return (hits[0].scene_id, hits[0].instance_id)


def test_objects_are_found_by_label_relation_colour_and_synonym(query):
    assert _top(query.find_objects("the lamp on the table", 3)) == ("a", 2)
    assert _top(query.find_objects("the chair next to the desk", 3)) == ("b_room", 2)
    assert _top(query.find_objects("the red chair", 3)) == ("a", 3)
    assert _top(query.find_objects("a blue couch", 3)) == ("a", 4)  # sofa, blue one
    assert _top(query.find_objects("the red couch", 3)) == ("c_room", 1)
    # the window is the hole in room a's y = 4 wall; the map has no window instance
    assert _top(query.find_objects("the plant by the window", 3)) == ("a", 6)
    assert _top(query.find_objects("the plant in the corner", 3)) == ("a", 5)
    assert _top(query.find_objects("the whiteboard on the wall", 3)) == ("b_room", 4)


def test_positions_and_boxes_are_in_the_map_frame_where_the_room_has_a_pose(query):
    (chair,) = query.find_objects("the chair next to the desk", 1)
    assert chair.in_map_frame and chair.position == pytest.approx((11.0, 2.9, 0.45))
    assert chair.box_min == pytest.approx((10.75, 2.65, 0.0))
    assert chair.box_max == pytest.approx((11.25, 3.15, 0.9))
    (sofa,) = query.find_objects("the red sofa", 1)
    assert sofa.scene_id == "c_room" and not sofa.in_map_frame


def test_rooms_are_found_by_what_they_hold(query):
    rooms = query.find_rooms("the room with the whiteboard and two chairs", 3)
    assert rooms[0].scene_id == "b_room"
    assert rooms[0].room_id == "B_ROOM" and rooms[0].in_map_frame
    assert rooms[0].centre[0] == pytest.approx(12.0, abs=0.1)  # room centre, moved 10 m
    assert rooms[0].score > rooms[1].score
    assert query.find_rooms("a lamp on a table and a sofa", 1)[0].scene_id == "a"
    only_c = query.find_rooms("the room with the lamp", 5, building="c")
    assert [r.scene_id for r in only_c] == ["c_room"]


@pytest.mark.parametrize(
    ("text", "k", "building", "message"),
    [("   ", 3, None, "empty"), ("the lamp", 0, None, "k must"), ("lamp", 3, "x", "no building")],
)
def test_bad_requests_raise_query_errors(query, text, k, building, message):
    for search in (query.find_rooms, query.find_objects):
        with pytest.raises(QueryError, match=message):
            search(text, k, building)


def test_a_wall_opening_is_a_window_and_a_full_height_one_a_door():
    rng = np.random.default_rng(1)
    xyz, rgb = _room_cloud(rng, [], window_x=1.5)
    extent = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 2.5]])
    windows, doors = _openings((xyz, rgb), extent)
    assert len(windows) == 1 and len(doors) == 0
    assert windows[0] == pytest.approx((1.5, 4.0), abs=0.2)
    door = ~((xyz[:, 1] < 0.01) & (np.abs(xyz[:, 0] - 3.0) < 0.45) & (xyz[:, 2] < 2.1))
    windows, doors = _openings((xyz[door], rgb[door]), extent)
    assert len(doors) == 1 and doors[0] == pytest.approx((3.0, 0.0), abs=0.2)


def test_the_query_verb_prints_a_table_and_bad_input_is_one_error_line(text_map, capsys):
    model = ["--model", "global_descriptor"]
    assert main(["query", "--map", str(text_map), *model, "--k", "2", "the whiteboard"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["rank", "score", "scene"] and out[1].split()[2] == "b_room"
    argv = ["query", "--map", str(text_map), *model, "--objects", "the lamp on the table"]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[2:5] == ["a", "2", "lamp"]
    assert main(["query", "--map", str(text_map), *model, " "]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ERROR:") and "empty" in err[0]


def test_the_benchmark_grows_a_map_of_copies(text_map, tmp_path):
    from crossover_ros.bench.text_bench import grow_map

    grown = tmp_path / "grown.sqlite"
    assert grow_map(str(text_map), grown, 7) == 7
    with SQLiteMapDatabase.open(grown, read_only=True) as db:
        scenes = db.scenes()
        assert len(scenes) == 7 and len({s.scene_id for s in scenes}) == 7
        assert sum(len(db.instances(s.scene_id)) for s in scenes) > 7


@pytest.fixture(scope="module")
def building_map(small_building, tmp_path_factory):
    """The small building's reference scans: instances and clouds only, no model."""
    from crossover_ros.mapdb.build import list_scans
    from crossover_ros.mapdb.records import voxel_downsample

    path = tmp_path_factory.mktemp("building_map") / "map.sqlite"
    with SQLiteMapDatabase.create(path, "test:0", 4, 4) as db:
        for scan in list_scans(small_building):
            xyz, rgb, _ = scan.source.point_cloud()
            db.add_scene(
                scan.record,
                {"rgb": np.eye(4, dtype=np.float32)[:1]},
                scan.instances(),
                voxel_downsample(xyz, rgb, 0.05),
            )
    return path


def test_evaluation_scores_generated_referrals_and_paraphrases(small_building, building_map):
    from crossover_ros.datasets.scan import load_building
    from crossover_ros.eval.text_queries import evaluate_text, load_paraphrases
    from crossover_ros.model.text_backbone import TextBackbone

    paraphrases = load_paraphrases()  # the package's own copy
    assert len(paraphrases["objects"]) + len(paraphrases["rooms"]) >= 50
    with SQLiteMapDatabase.open(building_map, read_only=True) as db:
        query = TextQuery(db, TextBackbone())
    scores = evaluate_text(query, load_building(small_building), paraphrases, seed=3)
    assert set(scores) == {
        "generated rooms",
        "generated objects",
        "paraphrases rooms",
        "paraphrases objects",
    }
    for s in scores.values():
        assert s.n > 0 and s.top1 <= s.top5 and s.exact_top1 <= s.top1
    # three rooms, two look-alikes: words and geometry find most objects
    assert scores["generated objects"].top1 >= 60.0
    assert scores["generated rooms"].top5 == 100.0
