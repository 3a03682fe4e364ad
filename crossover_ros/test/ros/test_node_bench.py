"""`crossover_ros bench node` stays runnable (a few tiny frames; the numbers are not checked)."""

from crossover_ros.bench.node_bench import _frames, _messages, measure_overhead


def test_overhead_part_measures_every_step():
    frames = _frames(8, 64, 48)
    samples = measure_overhead(frames, _messages(frames), fusion_stride=1)
    assert set(samples) == {"deserialise", "sync", "convert", "fusion", "total"}
    assert all(len(v) == 3 and min(v) >= 0.0 for v in samples.values())
