from crossover_ros.eval.visits import ObservedMatch, format_visits, summarize_visits


def test_matches_are_assigned_to_visits_by_stamp():
    visits = [
        {"room_id": "r0", "scene_id": "A", "start_ns": 0, "end_ns": 100},
        {"room_id": "r1", "scene_id": "B", "start_ns": 200, "end_ns": 300},
        {"room_id": "r2", "scene_id": "C", "start_ns": 400, "end_ns": 500},
    ]
    matches = [
        ObservedMatch(10, "B", 0.5, 0.2, 0.010),
        ObservedMatch(90, "A", 0.9, 0.8, 0.030),
        ObservedMatch(150, "A", 0.9, 0.8, None),  # in transit: no visit
        ObservedMatch(250, "A", 0.9, 0.8, 0.020),
    ]
    r0, r1, r2 = summarize_visits(visits, matches)
    assert (r0.final_scene, r0.correct, r0.top1_share, r0.num_matches) == ("A", True, 0.5, 2)
    assert r0.latency_p50_ms == 20.0
    assert (r1.final_scene, r1.correct) == ("A", False)
    assert (r2.final_scene, r2.correct, r2.latency_p50_ms) == ("", False, None)
    table = format_visits([r0, r1, r2])
    assert "rooms recognised: 1/3" in table
    assert "(none)" in table
