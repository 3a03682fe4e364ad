"""Fuzzing the node's message conversions (pipeline/decode.py): random encodings, sizes, steps,
payloads and numbers. Only ConversionError may escape, and whatever is accepted is consistent
with the message it came from."""

from types import SimpleNamespace as Ns

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from crossover_ros.errors import ConversionError  # noqa: E402
from crossover_ros.pipeline.decode import (  # noqa: E402
    ENCODINGS,
    camera_info_to_intrinsics,
    image_to_depth_m,
    image_to_rgb,
    image_view,
    odometry_to_pose,
)

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
ENCODING = st.one_of(
    st.sampled_from(sorted(ENCODINGS)), st.sampled_from(["", "RGB8", "yuv422", "8UC3"]), st.text()
)
NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6).map(float)
)


@st.composite
def images(draw):
    encoding = draw(ENCODING)
    height = draw(st.integers(-2, 24))
    width = draw(st.integers(-2, 24))
    itemsize = (
        ENCODINGS[encoding][0].itemsize * ENCODINGS[encoding][1] if encoding in ENCODINGS else 1
    )
    row_bytes = max(width, 0) * itemsize
    step = draw(st.one_of(st.just(row_bytes), st.integers(-4, 4).map(lambda d: row_bytes + d),
                          st.integers(-8, 200)))  # fmt: skip
    size = max(step, 0) * max(height, 0)
    length = draw(st.one_of(st.just(size), st.integers(0, 2 * size + 8)))
    data = draw(st.binary(min_size=length, max_size=length))
    return Ns(
        encoding=encoding,
        height=height,
        width=width,
        step=step,
        is_bigendian=draw(st.sampled_from([0, 1])),
        data=data,
    )


def _consistent_view(msg, pixels):
    dtype, channels = ENCODINGS[msg.encoding]
    assert msg.height > 0 and msg.width > 0 and len(msg.data) == msg.step * msg.height
    assert msg.step >= msg.width * channels * dtype.itemsize
    expected = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    assert pixels.shape == expected and pixels.dtype.itemsize == dtype.itemsize


@FUZZ
@given(images())
def test_image_conversions_raise_only_conversion_errors(msg):
    try:
        pixels = image_view(msg)
    except ConversionError:
        pixels = None
    else:
        _consistent_view(msg, pixels)
    try:
        rgb = image_to_rgb(msg)
    except ConversionError:
        pass
    else:
        assert pixels is not None and rgb.shape == (msg.height, msg.width, 3)
        assert rgb.dtype == np.uint8
    try:
        depth = image_to_depth_m(msg)
    except ConversionError:
        pass
    else:
        assert pixels is not None and depth.shape == (msg.height, msg.width)
        assert depth.dtype == np.float32
        valid = depth[~np.isnan(depth)]
        assert np.all(np.isfinite(valid)) and np.all(valid > 0), "no inf, zero or negative depth"


@FUZZ
@given(
    width=st.integers(-3, 5000),
    height=st.integers(-3, 5000),
    binning=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    roi=st.tuples(*[st.integers(0, 5000)] * 4),
    k=st.lists(NUMBER, min_size=0, max_size=12),
    p=st.lists(NUMBER, min_size=0, max_size=13),
    rectified=st.booleans(),
    calibrated=st.booleans(),
)
def test_camera_info_conversion_raises_only_conversion_errors(
    width, height, binning, roi, k, p, rectified, calibrated
):
    if calibrated:  # a valid pinhole matrix with random numbers in its free places
        k = [abs(k[0]) + 1 if k else 500.0, 0.0, 160.0, 0.0, 500.0, 120.0, 0.0, 0.0, 1.0]
    msg = Ns(
        width=width,
        height=height,
        binning_x=binning[0],
        binning_y=binning[1],
        roi=Ns(x_offset=roi[0], y_offset=roi[1], width=roi[2], height=roi[3]),
        k=k,
        p=p,
    )
    try:
        cam = camera_info_to_intrinsics(msg, rectified=rectified)
    except ConversionError:
        return
    assert cam.width == width > 0 and cam.height == height > 0
    values = np.array([cam.fx, cam.fy, cam.cx, cam.cy])
    assert np.all(np.isfinite(values)) and cam.fx > 0 and cam.fy > 0


@FUZZ
@given(position=st.tuples(*[NUMBER] * 3), orientation=st.tuples(*[NUMBER] * 4))
def test_odometry_conversion_raises_only_conversion_errors(position, orientation):
    msg = Ns(
        pose=Ns(
            pose=Ns(
                position=Ns(x=position[0], y=position[1], z=position[2]),
                orientation=Ns(
                    x=orientation[0], y=orientation[1], z=orientation[2], w=orientation[3]
                ),
            )
        )
    )
    try:
        pose = odometry_to_pose(msg)
    except ConversionError:
        return
    assert pose.shape == (4, 4) and np.all(np.isfinite(pose))
    rotation = pose[:3, :3]
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
    assert np.isclose(np.linalg.det(rotation), 1.0, atol=1e-6)
