"""The belief over scenes pools a visit's windows: twins split it, a new room takes over."""

import pytest

from crossover_ros.pipeline.belief import BeliefCfg, RoomBelief


def test_memory_zero_is_each_window_alone():
    belief = RoomBelief(BeliefCfg(memory=0.0))
    assert belief.update(["a", "b"], [0.9, 0.1]) == (["a", "b"], [0.9, 0.1])
    assert belief.update(["b", "a"], [0.6, 0.4]) == (["b", "a"], [0.6, 0.4])


def test_consistent_windows_grow_sure_and_twins_split():
    steady = RoomBelief(BeliefCfg(memory=0.8))
    for _ in range(5):
        ids, probs = steady.update(["a", "b", "c"], [0.6, 0.3, 0.1])
    assert ids[0] == "a" and probs[0] > 0.9 and sum(probs) == pytest.approx(1.0)
    twins = RoomBelief(BeliefCfg(memory=0.8))
    for window in range(6):  # look-alikes win in turn
        order = ["a", "b"] if window % 2 else ["b", "a"]
        ids, probs = twins.update([*order, "c"], [0.7, 0.25, 0.05])
    assert set(ids[:2]) == {"a", "b"} and max(probs) < 0.7  # "one of these", not one
    alone = RoomBelief(BeliefCfg(memory=0.0)).update(["a", "b", "c"], [0.7, 0.25, 0.05])
    assert max(probs) < alone[1][0]  # pooled, the twins' windows are less sure than one


def test_a_new_room_takes_over_within_a_few_windows_and_reset_forgets():
    belief = RoomBelief(BeliefCfg(memory=0.8))
    for _ in range(20):
        belief.update(["a", "b"], [0.9, 0.1])
    windows = 0
    while belief.update(["b", "a"], [0.9, 0.1])[0][0] != "b":
        windows += 1
        assert windows < 4
    belief.reset()
    assert belief.update(["c"], [1.0])[0] == ["c"]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        BeliefCfg(memory=1.0)
    with pytest.raises(ValueError):
        BeliefCfg(floor=0.0)
