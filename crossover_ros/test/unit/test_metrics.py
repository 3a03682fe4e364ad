"""Metrics of the CrossOver paper on small cases whose answers were worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crossover_ros.eval.metrics import (
    InstanceScene,
    MetricsError,
    category_recall,
    cosine_similarity,
    instance_matching,
    intra_category_recall,
    scene_retrieval_recall,
    temporal_instance_matching,
    temporal_recall,
)
from crossover_ros.eval.report import format_markdown_table, results_to_dict, table_rows

# Database: four unit vectors on the axes of the plane.
DB = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
# Query 0 ranks the database 0, 1, 3, 2; query 1 also 0, 1, 3, 2; query 2 ranks it 3, 0, 2, 1.
QUERIES = np.array([[1.0, 0.1], [1.0, 0.5], [0.2, -1.0]])


# --- scene retrieval -------------------------------------------------------------------------


def test_scene_recall_hand_computed():
    # True entries 0, 1, 2 sit at ranks 1, 2, 3; k=5 exceeds the database (4): every query hits.
    r = scene_retrieval_recall(QUERIES, DB, [0, 1, 2], ks=(1, 2, 3, 5))
    assert r.recall == {1: 1 / 3, 2: 2 / 3, 3: 1.0, 5: 1.0}
    assert r.ranks.tolist() == [1, 2, 3]
    assert (r.num_queries, r.num_evaluated, r.num_query_missing, r.num_no_target) == (3, 3, 0, 0)


def test_scene_recall_is_cosine_so_scale_does_not_matter():
    a = scene_retrieval_recall(QUERIES * 7.0, DB * 0.1, np.array([0, 1, 2]), ks=(1, 2))
    assert a.recall == {1: 1 / 3, 2: 2 / 3}


def test_precomputed_similarity_ranks_like_the_embeddings():
    sim = cosine_similarity(QUERIES, DB)
    by_matrix = scene_retrieval_recall(None, None, [0, 1, 2], ks=(1, 2), similarity=sim)
    assert by_matrix.ranks.tolist() == [1, 2, 3]
    t = temporal_recall(None, None, [[1], [0], [1]], query_db_index=[0, 1, 2], similarity=sim)
    assert t.ranks.tolist() == [1, 1, 3]  # query 2 ranks 3 and 0 above 1 (itself is excluded)
    with pytest.raises(ValueError, match="not both"):
        scene_retrieval_recall(QUERIES, DB, [0, 1, 2], similarity=sim)
    with pytest.raises(ValueError, match="or a similarity matrix"):
        scene_retrieval_recall(None, DB, [0, 1, 2])
    with pytest.raises(ValueError, match="NaN or inf"):
        scene_retrieval_recall(None, None, [0, 1, 2], similarity=np.where(sim > 0.9, np.nan, sim))
    # a missing row may hold anything: it is masked out of every ranking
    holes = sim.copy()
    holes[:, 3] = -np.inf
    masked = scene_retrieval_recall(
        None, None, [0, 1, 2], similarity=holes, database_mask=np.array([1, 1, 1, 0], bool)
    )
    assert masked.ranks.tolist() == [1, 2, 2]


def test_cosine_similarity_values():
    sim = cosine_similarity(np.array([[3.0, 4.0]]), np.array([[1.0, 0.0], [0.0, 2.0]]))
    np.testing.assert_allclose(sim, [[0.6, 0.8]])


def test_scene_recall_set_of_acceptable_entries():
    # Query 2 accepts 2 or 0: entry 0 is second (only entry 3 is above it).
    r = scene_retrieval_recall(QUERIES, DB, [0, 1, {2, 0}], ks=(1, 2))
    assert r.ranks.tolist() == [1, 2, 2]
    assert r.recall == {1: 1 / 3, 2: 1.0}


def test_scene_recall_ties_count_against_the_method():
    db = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    r = scene_retrieval_recall(np.array([[1.0, 0.0]]), db, [1], ks=(1, 2))
    assert r.ranks.tolist() == [2]
    assert r.recall == {1: 0.0, 2: 1.0}
    # ties among acceptable entries cost nothing
    r = scene_retrieval_recall(np.array([[1.0, 0.0]]), db, [[0, 1]], ks=(1,))
    assert r.recall == {1: 1.0}


def test_scene_recall_masks_missing_modalities():
    db = DB.copy()
    db[0] = np.nan  # a missing row may hold anything
    qm = np.array([True, True, False])
    dm = np.array([False, True, True, True])
    r = scene_retrieval_recall(QUERIES, db, [0, 1, 2], ks=(1,), query_mask=qm, database_mask=dm)
    # q0: its target is missing -> no target; q1: entry 0 gone, entry 1 is first; q2: no modality
    assert r.recall == {1: 1.0}
    assert (r.num_evaluated, r.num_query_missing, r.num_no_target) == (1, 1, 1)
    assert r.ranks.tolist() == [0, 1, 0]


def test_scene_recall_exclusion_matrix():
    ex = np.zeros((3, 4), dtype=bool)
    ex[2, 3] = True  # q2 may not retrieve entry 3: its order becomes 0, 2, 1
    r = scene_retrieval_recall(QUERIES, DB, [0, 1, 2], ks=(1, 2), exclude=ex)
    assert r.ranks.tolist() == [1, 2, 2]


# --- temporal scene recall ---------------------------------------------------------------------

# Scene A: scans 0, 1; scene B: scans 2, 3. Queries are the scans themselves.
SCANS = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [-0.6, 0.8]])


def test_temporal_recall_excludes_the_query_itself():
    # Without self: q0 -> 1 (.8) first; q1 -> 2 (.96), 0 (.8): rank 2;
    # q2 -> 1 (.96), 0 (.6), 3 (.28): rank 3; q3 -> 2 (.28) first.
    r = temporal_recall(
        SCANS, SCANS, [[1], [0], [3], [2]], query_db_index=[0, 1, 2, 3], ks=(1, 2, 3)
    )
    assert r.ranks.tolist() == [1, 2, 3, 1]
    assert r.recall == {1: 0.5, 2: 0.75, 3: 1.0}
    same = temporal_recall(
        SCANS, SCANS, [[1], [0], [3], [2]], exclude=np.eye(4, dtype=bool), ks=(1, 2, 3)
    )
    assert same.ranks.tolist() == [1, 2, 3, 1]
    # without exclusion every query would find itself
    plain = scene_retrieval_recall(SCANS, SCANS, [0, 1, 2, 3], ks=(1,))
    assert plain.recall == {1: 1.0}


def test_temporal_recall_skips_scans_without_rescan():
    r = temporal_recall(SCANS, SCANS, [[1], [0], [], [2]], query_db_index=[0, 1, 2, 3], ks=(1,))
    assert r.recall == {1: 2 / 3}
    assert (r.num_evaluated, r.num_no_target) == (3, 1)


def test_temporal_recall_errors():
    with pytest.raises(ValueError, match="must not match itself"):
        temporal_recall(SCANS, SCANS, [[1], [0], [3], [2]])
    with pytest.raises(ValueError, match="excluded"):
        temporal_recall(SCANS, SCANS, [[0], [0], [3], [2]], query_db_index=[0, 1, 2, 3])


# --- category and intra-category recall -------------------------------------------------------

DB_CATS = ["bed", "kitchen", "kitchen", "bed"]


def test_category_recall_with_and_without_own_scene():
    # Own scene excluded: q0 (bed) 1 kitchen, 3 bed -> rank 2; q1 (kitchen) 0, 3 bed, 2 kitchen
    # -> rank 3; q2 (kitchen) 3, 0 bed, 1 kitchen -> rank 3.
    r = category_recall(
        QUERIES, DB, ["bed", "kitchen", "kitchen"], DB_CATS, query_db_index=[0, 1, 2], ks=(1, 2, 3)
    )
    assert r.ranks.tolist() == [2, 3, 3]
    assert r.recall == {1: 0.0, 2: 1 / 3, 3: 1.0}
    # Own scene kept: q0 -> 0 bed rank 1; q1 -> 0 bed, 1 kitchen rank 2; q2 -> 3, 0, 2: rank 3.
    r = category_recall(QUERIES, DB, ["bed", "kitchen", "kitchen"], DB_CATS, ks=(1, 2))
    assert r.ranks.tolist() == [1, 2, 3]
    assert r.recall == {1: 1 / 3, 2: 2 / 3}


def test_intra_category_recall_ranks_within_the_category():
    queries = np.vstack([QUERIES, [[0.2, -1.0]]])
    cats = ["bed", "kitchen", "kitchen", "kitchen"]
    # bed: q0 among {0, 3} -> rank 1. kitchen among {1, 2}: q1 -> 1 (.447 vs -.894) rank 1;
    # q2 -> 2 (-.196 vs -.98) rank 1; q3 (target 1) -> rank 2.
    r = intra_category_recall(queries, DB, [0, 1, 2, 1], cats, DB_CATS, ks=(1, 3))
    assert r.overall.ranks.tolist() == [1, 1, 1, 2]
    assert r.per_category == {"bed": {1: 1.0, 3: 1.0}, "kitchen": {1: 2 / 3, 3: 1.0}}
    assert r.num_queries_per_category == {"bed": 1, "kitchen": 3}
    assert r.recall[1] == pytest.approx(5 / 6)  # mean over the two categories
    assert r.recall_over_queries[1] == 0.75  # pooled over queries
    with pytest.raises(ValueError, match="has category 'bed'"):
        intra_category_recall(queries, DB, [0, 0, 2, 1], cats, DB_CATS)


# --- scene retrieval errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": np.zeros((0, 2))}, "empty"),
        ({"database": np.zeros((4, 3)) + 1}, "dimension mismatch"),
        ({"query": np.array([[1.0, np.nan], [1.0, 0.0], [0.0, 1.0]])}, "NaN"),
        ({"query": np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])}, "zero vectors"),
        ({"targets": [0, [1, 1], 2]}, "duplicate ground-truth"),
        ({"targets": [0, 1, 4]}, "outside the database"),
        ({"targets": [0, 1]}, "2 entries for 3 queries"),
        ({"ks": (0,)}, "positive integer"),
        ({"ks": ()}, "empty"),
        ({"ks": (1, 1)}, "duplicates"),
        ({"query_mask": np.zeros(3, dtype=bool)}, "no query left"),
        ({"query_mask": np.ones(3)}, "boolean"),
        ({"database": np.ones(2)}, "2-D"),
    ],
)
def test_scene_recall_errors(kwargs, message):
    args = {"query": QUERIES, "database": DB, "targets": [0, 1, 2]} | kwargs
    with pytest.raises(ValueError, match=message):
        scene_retrieval_recall(**args)


def test_errors_are_package_errors_too():
    from crossover_ros.errors import CrossoverError

    assert issubclass(MetricsError, CrossoverError)
    assert issubclass(MetricsError, ValueError)


# --- instance matching ------------------------------------------------------------------------

EYE4 = np.eye(4)
IDENTITY4 = [(0, 0), (1, 1), (2, 2), (3, 3)]


def _scene1(**kw) -> InstanceScene:
    # q0 -> t1 first (same label chair), q1 -> t2 first (table vs chair), q2, q3 correct.
    labels = ["chair", "chair", "table", "lamp"]
    q = np.array([[1.0, 3, 0, 0], [0, 1, 2, 0], [0, 0, 1, 0], [0, 0, 1, 2]])
    args = {"query_labels": labels, "target_labels": labels, "scene_id": "s1"} | kw
    return InstanceScene(q, EYE4, IDENTITY4, **args)


def _scene2() -> InstanceScene:
    # q0 correct; q1 ranks t0, t3, t2, t1 (rank 4); q2 ranks t3, t2 (rank 2); q3 t0, t3 (rank 2).
    labels = ["sofa", "bed", "tv", "sofa"]
    q = np.array([[1.0, 0, 0, 0], [2, 0.5, 1, 1.5], [0, 0, 1, 3], [3, 0, 0, 1]])
    return InstanceScene(q, EYE4, IDENTITY4, labels, labels, scene_id="s2")


def _scene3() -> InstanceScene:
    labels = ["a", "b", "c"]
    return InstanceScene(EYE4[:3], EYE4[:3], [(0, 0), (1, 1), (2, 2)], labels, labels)


def _empty_scene() -> InstanceScene:
    return InstanceScene(EYE4[:1], EYE4[:1], [], ["a"], ["a"], scene_id="empty")


def test_instance_matching_hand_computed():
    r = instance_matching([_scene1(), _scene2(), _scene3(), _empty_scene()])
    s1, s2, s3, s4 = r.scenes
    assert (s1.hits, s1.top1_ratio, s1.same_label_errors, s1.different_label_errors) == (
        {1: 2, 3: 4},
        0.5,
        1,
        1,
    )
    assert (s2.hits, s2.top1_ratio, s2.same_label_errors, s2.different_label_errors) == (
        {1: 1, 3: 3},
        0.25,
        1,
        2,
    )
    assert (s3.hits, s3.top1_ratio, s3.scene_id) == ({1: 3, 3: 3}, 1.0, "#2")
    assert s4.num_objects == 0
    # pooled over 11 objects
    assert r.recall == {1: 6 / 11, 3: 10 / 11}
    assert r.recall_scene_mean[1] == pytest.approx((0.5 + 0.25 + 1.0) / 3)
    assert r.recall_scene_mean[3] == pytest.approx((1.0 + 0.75 + 1.0) / 3)
    # ratios 0.5, 0.25, 1.0: boundaries count (0.25 >= 0.25, 0.5 >= 0.5)
    assert r.scene_recall == {0.25: 1.0, 0.5: 2 / 3, 0.75: 1 / 3}
    assert (r.same_label_error, r.different_label_error) == (2 / 11, 3 / 11)
    assert r.same_label_error + r.different_label_error == pytest.approx(1 - r.recall[1])
    assert (r.num_objects, r.num_scenes, r.num_scenes_skipped) == (11, 3, 1)


def test_scene_level_recall_thresholds_at_the_boundary():
    # 3 of 4 correct is exactly 75 %: counts for R@75. 2 of 3 (66.7 %) does not.
    q = np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0.5, 0.1]])
    r = instance_matching([InstanceScene(q, EYE4, IDENTITY4)])
    assert r.scenes[0].hits[1] == 3
    assert r.scene_recall == {0.25: 1.0, 0.5: 1.0, 0.75: 1.0}
    q3 = np.array([[1.0, 0, 0], [0, 1, 0], [0, 1, 0.5]])
    r = instance_matching([InstanceScene(q3, np.eye(3), [(0, 0), (1, 1), (2, 2)])])
    assert r.scene_recall == {0.25: 1.0, 0.5: 1.0, 0.75: 0.0}
    # 1 of 5 (20 %) is below R@25
    q5 = np.zeros((5, 5))
    q5[:, 0] = 1.0
    r = instance_matching([InstanceScene(q5, np.eye(5), [(i, i) for i in range(5)])])
    assert r.scene_recall[0.25] == 0.0
    assert r.same_label_error is None


def test_instance_matching_missing_modality_drops_the_object():
    tm = np.array([True, False, True, True])
    target = EYE4.copy()
    target[1] = np.nan
    r = instance_matching([_scene1(target_mask=tm)], ks=(1,))
    # object 1 is neither a query nor a candidate, so q0 now finds t0 first
    s = r.scenes[0]
    assert (s.num_objects, s.num_candidates, s.num_pairs_missing, s.hits) == (3, 3, 1, {1: 3})
    assert r.recall == {1: 1.0}


def test_unpaired_targets_ignored_or_distractors():
    q = np.array([[1.0, 0, 2], [0, 1, 0]])
    scene = InstanceScene(q, np.eye(3), [(0, 0), (1, 1)])
    assert instance_matching([scene], ks=(1,)).recall == {1: 1.0}
    r = instance_matching([scene], ks=(1,), unmatched_targets="distractor")
    assert r.recall == {1: 0.5}


@pytest.mark.parametrize(
    ("scene", "message"),
    [
        (InstanceScene(EYE4, EYE4, [(0, 0), (1, 0)]), "duplicate ground truth"),
        (InstanceScene(EYE4, EYE4, [(0, 0), (0, 1)]), "duplicate ground truth"),
        (InstanceScene(EYE4, EYE4, [(0, 4)]), "outside"),
        (InstanceScene(EYE4, np.eye(3), [(0, 0)]), "dimension mismatch"),
        (InstanceScene(EYE4 * np.nan, EYE4, [(0, 0)]), "NaN"),
        (InstanceScene(np.zeros((0, 4)), EYE4, []), "empty"),
        (InstanceScene(EYE4, EYE4, [], scene_id="x"), "no object left"),
        (InstanceScene(EYE4, EYE4, IDENTITY4, query_labels=list("abcd")), "both query_labels"),
    ],
)
def test_instance_matching_errors(scene, message):
    with pytest.raises(ValueError, match=message):
        instance_matching([scene])


def test_instance_matching_argument_errors():
    with pytest.raises(ValueError, match="no scenes"):
        instance_matching([])
    with pytest.raises(ValueError, match="thresholds"):
        instance_matching([_scene3()], thresholds=(0.0,))
    with pytest.raises(ValueError, match="unmatched_targets"):
        instance_matching([_scene3()], unmatched_targets="keep")  # type: ignore[arg-type]


# --- temporal instance matching ---------------------------------------------------------------


def test_temporal_instance_matching_static_dynamic_split():
    scene = _scene1(pair_states=["static", "static", "static", "moved"])
    # static: ranks 2, 2, 1 (scene 1) and 1, 1, 1 (scene 2, all static); moved: rank 1
    s3 = _scene3()
    unlabelled = InstanceScene(s3.query, s3.target, s3.pairs, pair_states=["static"] * 3)
    with pytest.raises(ValueError, match="some scenes only"):
        temporal_instance_matching([scene, unlabelled])
    s3 = InstanceScene(
        s3.query, s3.target, s3.pairs, s3.query_labels, s3.target_labels, pair_states=["static"] * 3
    )
    r = temporal_instance_matching([scene, s3], ks=(1,))
    assert (r.num_static, r.num_dynamic) == (6, 1)
    assert r.static_recall == {1: 4 / 6}
    assert r.dynamic_recall == {1: 1.0}
    assert r.overall.recall == {1: 5 / 7}
    assert r.overall.scene_recall == {0.25: 1.0, 0.5: 1.0, 0.75: 0.5}


def test_temporal_instance_matching_without_moved_objects():
    s3 = _scene3()
    s3 = InstanceScene(s3.query, s3.target, s3.pairs, pair_states=["static"] * 3)
    r = temporal_instance_matching([s3])
    assert r.dynamic_recall is None
    assert r.static_recall == {1: 1.0, 3: 1.0}


def test_temporal_instance_matching_state_errors():
    with pytest.raises(ValueError, match="one state per pair"):
        temporal_instance_matching([_scene3()])
    bad = InstanceScene(EYE4[:2], EYE4[:2], [(0, 0), (1, 1)], pair_states=["static", "new"])
    with pytest.raises(ValueError, match="'new' is not"):
        temporal_instance_matching([bad])


# --- reporting --------------------------------------------------------------------------------


def test_markdown_table_and_json():
    a = scene_retrieval_recall(QUERIES, DB, [0, 1, 2], ks=(1, 5))
    b = instance_matching([_scene1()])
    rows = table_rows({"I->P": a})
    assert rows == {"I->P": {"R@1": 1 / 3, "R@5": 1.0}}
    table = format_markdown_table(rows | {"P->R": {"R@1": 0.5}}, row_header="pair")
    assert table == (
        "| pair | R@1 | R@5 |\n|---|---|---|\n| I->P | 33.33 | 100.00 |\n| P->R | 50.00 | - |\n"
    )
    assert format_markdown_table({"x": {"a": 0.2}}, percent=False, digits=1) == (
        "| method | a |\n|---|---|\n| x | 0.2 |\n"
    )
    assert table_rows({"m": b})["m"] == {
        "top1": 0.5,
        "top3": 1.0,
        "R@25%": 1.0,
        "R@50%": 1.0,
        "R@75%": 0.0,
    }
    out = results_to_dict({"scene": a, "instance": b})
    assert out["scene"]["recall"] == {"R@1": 1 / 3, "R@5": 1.0}
    assert out["instance"]["scene_recall"] == {"R@25%": 1.0, "R@50%": 1.0, "R@75%": 0.0}
    json.dumps(out)
    json.dumps(a.to_dict(per_query=True))
    json.dumps(b.to_dict(per_scene=True))
    with pytest.raises(ValueError, match="no rows"):
        format_markdown_table({})


def test_scene_retrieval_per_scan_and_per_room():
    """A query that finds its room's other scan misses at top-1 per scan but hits per room."""
    from crossover_ros.eval.crossover_eval import EmbeddedScans, scene_retrieval_table

    e = np.eye(4, dtype=np.float32)
    rgb = np.stack([e[0], e[1], e[2], e[3]])
    points = np.stack([e[1], e[0], e[2], e[3]])  # room_a's two scans swapped
    emb = EmbeddedScans(
        ["room_a_00", "room_a_01", "room_b_00", "room_b_01"],
        {"rgb": rgb, "point_cloud": points},
        {"rgb": np.ones(4, bool), "point_cloud": np.ones(4, bool)},
    )
    per_scan = scene_retrieval_table("m", emb)["m I->P"]
    per_room = scene_retrieval_table("m", emb, any_scan=True)["m I->P"]
    assert per_scan.recall[1] == pytest.approx(0.5) and per_scan.recall[5] == 1.0
    assert per_room.recall[1] == 1.0


def test_scene_retrieval_by_object_sets():
    """Two rooms with the same mean object but different objects: scene vectors cannot tell
    them apart, their object sets can."""
    from crossover_ros.eval.crossover_eval import (
        EmbeddedScans,
        by_object_sets,
        scene_retrieval_table,
    )

    e = np.eye(4)
    room_a = np.stack([e[0], e[1]])  # the mean of both rooms' objects is (1, 1, 1, 1) / 2
    room_b = np.stack([e[2], e[3]])
    same = np.full((2, 4), 0.5)
    emb = EmbeddedScans(
        ["a_00", "b_00"],
        {"rgb": same, "point_cloud": same},
        {"rgb": np.ones(2, bool), "point_cloud": np.ones(2, bool)},
        objects=[
            {"rgb": room_a, "point_cloud": room_a[::-1]},
            {"rgb": room_b, "point_cloud": room_b},
        ],
        object_masks=[{"rgb": np.ones(2, bool), "point_cloud": np.ones(2, bool)}] * 2,
    )
    by_vector = scene_retrieval_table("m", emb)["m I->P"]
    assert by_vector.ranks.tolist() == [2, 2]  # ties count against the method
    by_objects = scene_retrieval_table("m", by_object_sets(emb))["m I->P"]
    assert by_objects.ranks.tolist() == [1, 1]


def test_scene_retrieval_by_object_layouts():
    """A room and its look-alike hold the same objects, two swapped in place; a later scan of
    the room, in a frame of its own, ties both by object sets and finds its room by layout."""
    from types import SimpleNamespace

    from crossover_ros.eval.crossover_eval import (
        EmbeddedScans,
        by_object_layouts,
        by_object_sets,
        temporal_table,
    )

    objects = np.eye(5)
    room = np.array([[0, 0, 0], [3, 0, 0], [0, 4, 0], [3, 4, 0], [1.5, 2, 0]], float)
    lookalike = room[[1, 0, 2, 3, 4]]  # the first two objects trade places
    present = {"point_cloud": np.ones(5, bool)}
    emb = EmbeddedScans(
        ["a_00", "a_01", "b_00"],
        {},
        {"point_cloud": np.ones(3, bool)},
        objects=[{"point_cloud": objects}] * 3,
        object_masks=[present] * 3,
    )
    scenes = [SimpleNamespace(object_centroids=c) for c in (room, room, lookalike)]
    pair = [("point_cloud", "point_cloud")]
    by_sets = temporal_table("m", by_object_sets(emb), pair)["m P->P"]
    by_layout = temporal_table("m", by_object_layouts(emb, scenes), pair)["m P->P"]
    assert by_sets.ranks.tolist() == [2]  # a tie counts against the method
    assert by_layout.ranks.tolist() == [1]


def test_calibration_measures_the_gap_between_confidence_and_accuracy():
    from crossover_ros.eval.metrics import calibration

    # right 9 times in 10 at 0.9, 1 in 2 at 0.55: perfectly calibrated
    good = calibration([0.9] * 10 + [0.55] * 2, [True] * 9 + [False] + [True, False])
    assert good.ece == pytest.approx(0.05 * 2 / 12)  # only the 0.55 bin is off (0.5 right)
    assert good.answers == 12 and sum(b.count for b in good.bins) == 12
    # always sure, right half of the time: the overconfident node a robot cannot trust
    sure = calibration([1.0] * 4, [True, False, True, False])
    assert sure.ece == pytest.approx(0.5)
    assert sure.bins[-1].count == 4 and sure.bins[-1].accuracy == 0.5  # 1.0 in the last bin
    assert calibration([], []).ece is None
    with pytest.raises(MetricsError):
        calibration([1.5], [True])
    with pytest.raises(MetricsError):
        calibration([0.5, 0.5], [True])
