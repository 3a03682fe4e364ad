"""The temporal filter: one odd window does not flip the room; a real move does."""

import pytest

from crossover_ros.pipeline.hysteresis import HysteresisCfg, SceneHysteresis


def _run(filter_, windows):
    """Feed (best, confidence[, runner-up, its confidence]) windows; scene after each."""
    out = []
    for window in windows:
        ids, confs = list(window[::2]), list(window[1::2])
        out.append(filter_.update(ids, confs))
    return out


def test_one_odd_window_does_not_flip_the_room():
    f = SceneHysteresis(HysteresisCfg(switch_after_windows=3, switch_margin=0.9))
    decisions = _run(
        f,
        [("a", 0.6, "b", 0.4)] * 3  # a wins three in a row: accepted
        + [("b", 0.7, "a", 0.3)]  # one odd window (margin 0.4 < 0.9)
        + [("a", 0.6, "b", 0.4)] * 2,
    )
    scenes = [d.scene_id for d in decisions]
    assert scenes == ["", "", "a", "a", "a", "a"]
    assert [d.changed for d in decisions] == [False, False, True, False, False, False]
    assert decisions[3].challenger == "b" and decisions[3].streak == 1
    assert decisions[4].challenger == "" and decisions[4].streak == 0, "a's win ends the challenge"
    assert f.switches == 1


def test_switch_after_n_consecutive_windows():
    f = SceneHysteresis(HysteresisCfg(switch_after_windows=3, switch_margin=1.0))
    _run(f, [("a", 0.9)] * 3)
    decisions = _run(f, [("b", 0.9, "a", 0.1)] * 3)
    assert [d.scene_id for d in decisions] == ["a", "a", "b"]
    assert decisions[-1].changed


def test_a_third_scene_restarts_the_streak():
    f = SceneHysteresis(HysteresisCfg(switch_after_windows=2, switch_margin=1.0))
    _run(f, [("a", 0.9)] * 2)
    decisions = _run(f, [("b", 0.5), ("c", 0.5), ("b", 0.5), ("b", 0.5)])
    assert [d.scene_id for d in decisions] == ["a", "a", "a", "b"]


def test_a_confident_margin_switches_at_once():
    f = SceneHysteresis(HysteresisCfg(switch_after_windows=5, switch_margin=0.5))
    assert f.update(["a", "b"], [0.95, 0.05]).scene_id == "a", "first answer by margin"
    decision = f.update(["b", "a"], [0.8, 0.2])  # margin 0.6 > 0.5
    assert decision.scene_id == "b" and decision.changed
    # the current scene fell out of the candidates: it counts 0
    assert f.update(["c", "d"], [0.55, 0.45]).scene_id == "c"


def test_unconfident_windows_abstain():
    f = SceneHysteresis(
        HysteresisCfg(switch_after_windows=2, switch_margin=1.0, min_confidence=0.5)
    )
    _run(f, [("a", 0.9)] * 2)
    decisions = _run(f, [("b", 0.6), ("b", 0.3), ("b", 0.6)])
    assert [d.voted for d in decisions] == [True, False, True]
    assert [d.scene_id for d in decisions] == ["a", "a", "b"], "an abstention does not break it"


def test_one_window_means_no_filter_and_reset_forgets():
    f = SceneHysteresis(HysteresisCfg(switch_after_windows=1))
    assert [f.update([s], [0.4]).scene_id for s in "abab"] == list("abab")
    f.reset()
    assert f.current == "" and f.update([], []).scene_id == ""


def test_bad_configuration_and_input_are_refused():
    with pytest.raises(ValueError, match="switch_after_windows"):
        HysteresisCfg(switch_after_windows=0)
    with pytest.raises(ValueError, match="switch_margin"):
        HysteresisCfg(switch_margin=1.5)
    with pytest.raises(ValueError, match="confidences"):
        SceneHysteresis().update(["a"], [])
