"""Text queries against a small hand-made map: rooms and objects found by their words."""

from __future__ import annotations

import numpy as np
import pytest

from crossover_ros.errors import CrossoverError
from crossover_ros.mapdb import SceneRecord, SQLiteMapDatabase
from crossover_ros.model.text_backbone import TextBackbone
from crossover_ros.query.text import TextQuery

ROOMS = {
    "bedroom": [
        ("bed", (1.0, 1.0, 0.0), (2.0, 3.0, 0.5)),
        ("lamp", (2.2, 0.2, 0.0), (2.5, 0.5, 1.5)),
    ],
    "office": [
        ("desk", (0.5, 0.5, 0.0), (1.7, 1.2, 0.75)),
        ("whiteboard", (0.0, 2.0, 0.8), (0.05, 3.5, 2.0)),
        ("chair", (0.8, 1.3, 0.0), (1.3, 1.8, 0.9)),
    ],
}


@pytest.fixture(scope="module")
def query(tmp_path_factory: pytest.TempPathFactory) -> TextQuery:
    path = tmp_path_factory.mktemp("text") / "map.sqlite"
    rng = np.random.default_rng(0)
    with SQLiteMapDatabase.create(path, "hand-made", 8) as db:
        for room, objects in ROOMS.items():
            instances = [
                {
                    "id": i + 1,
                    "label": label,
                    "centroid": [(a + b) / 2 for a, b in zip(low, high, strict=True)],
                    "box_min": list(low),
                    "box_max": list(high),
                }
                for i, (label, low, high) in enumerate(objects)
            ]
            floor = np.c_[rng.uniform(0, 4, (2000, 2)), np.zeros(2000)].astype(np.float32)
            cloud = (floor, np.full((2000, 3), 128, np.uint8))
            vector = rng.standard_normal((1, 8)).astype(np.float32)
            db.add_scene(SceneRecord(room, "home", room), {"rgb": vector}, instances, cloud)
    with SQLiteMapDatabase.open(path, read_only=True) as db:
        return TextQuery(db, TextBackbone())


def test_a_room_is_found_by_what_it_holds(query: TextQuery) -> None:
    assert query.find_rooms("the room with the whiteboard and a desk", k=2)[0].scene_id == "office"
    assert query.find_rooms("where the bed is", k=2)[0].scene_id == "bedroom"


def test_an_object_is_found_by_its_name_or_a_synonym(query: TextQuery) -> None:
    hit = query.find_objects("the lamp", k=1)[0]
    assert (hit.scene_id, hit.label) == ("bedroom", "lamp")
    assert query.find_objects("the writing desk in the office", k=1)[0].label == "desk"


def test_bad_requests_are_query_errors(query: TextQuery) -> None:
    with pytest.raises(CrossoverError):
        query.find_rooms("", k=1)
    with pytest.raises(CrossoverError):
        query.find_rooms("the bed", k=0)


def test_query_verb_on_a_missing_map_is_one_error_line(tmp_path, capsys) -> None:
    from crossover_ros.cli.main import main

    assert main(["query", "--map", str(tmp_path / "none.sqlite"), "the bed"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ERROR:")
