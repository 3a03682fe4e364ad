import numpy as np
import pytest

from crossover_ros.frames import CameraIntrinsics, RGBDFrame
from crossover_ros.pipeline.fusion import FusionCfg, PointCloudFusion, backproject_depth

INTRINSICS = CameraIntrinsics(width=8, height=6, fx=4.0, fy=4.0, cx=3.5, cy=2.5)


def _frame(depth: float | np.ndarray = 2.0, colour=(255, 0, 0)) -> RGBDFrame:
    depth = np.broadcast_to(np.float32(depth), (6, 8)).copy() if np.isscalar(depth) else depth
    color = np.zeros((6, 8, 3), np.uint8)
    color[:] = colour
    return RGBDFrame(color, depth, INTRINSICS)


def _pose(yaw_deg: float = 0.0, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    pose = np.eye(4)
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    pose[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    pose[:3, 3] = t
    return pose


def test_backproject_pinhole_geometry():
    depth = np.full((6, 8), np.nan, np.float32)
    depth[1, 6] = 2.0  # row v=1, column u=6
    xyz, index = backproject_depth(depth, INTRINSICS)
    assert xyz.dtype == np.float32 and xyz.shape == (1, 3)
    np.testing.assert_allclose(xyz[0], [(6 - 3.5) / 4 * 2, (1 - 2.5) / 4 * 2, 2.0], atol=1e-6)
    assert index[0] == 1 * 8 + 6


def test_invalid_depth_is_ignored():
    depth = np.full((6, 8), 1.5, np.float32)
    depth[0, :4] = np.nan
    depth[1, :3] = 0.0
    depth[2, :2] = -1.0
    depth[3, 0] = np.inf
    depth[4, 0] = 9.0  # beyond max_depth_m
    depth[5, 0] = 0.05  # closer than min_depth_m
    xyz, _ = backproject_depth(depth, INTRINSICS, min_depth_m=0.2, max_depth_m=4.0)
    assert len(xyz) == 48 - 4 - 3 - 2 - 1 - 1 - 1
    assert np.all(xyz[:, 2] == np.float32(1.5))


def test_stride_and_shape_checks():
    xyz, _ = backproject_depth(np.ones((6, 8), np.float32), INTRINSICS, stride=2)
    assert len(xyz) == 3 * 4
    with pytest.raises(ValueError):
        backproject_depth(np.ones((5, 8), np.float32), INTRINSICS)


def test_cloud_is_in_the_odometry_frame():
    fusion = PointCloudFusion(FusionCfg(voxel_size_m=0.001, pixel_stride=1))
    pose = _pose(90.0, (1.0, 2.0, 3.0))
    fusion.add(_frame(2.0, (0, 255, 0)), pose)
    xyz, rgb = fusion.cloud()
    expected, _ = backproject_depth(np.full((6, 8), 2.0, np.float32), INTRINSICS)
    expected = expected @ pose[:3, :3].T + pose[:3, 3]
    assert xyz.dtype == np.float32 and rgb.dtype == np.float32
    order = np.lexsort(xyz.T)
    np.testing.assert_allclose(xyz[order], expected[np.lexsort(expected.T)], atol=1e-5)
    # a yaw leaves the optical axis (forward, z) along odometry z: every point is 2 m above
    np.testing.assert_allclose(xyz[:, 2], 3.0 + 2.0, atol=1e-5)
    np.testing.assert_allclose(rgb, np.tile([0.0, 1.0, 0.0], (len(rgb), 1)))


def test_voxel_downsampling_merges_overlapping_frames():
    # pixels 2 m away are 0.5 m apart: 1 m voxels merge them, and the three copies
    fusion = PointCloudFusion(FusionCfg(voxel_size_m=1.0, pixel_stride=1))
    for _ in range(3):
        fusion.add(_frame(2.0), np.eye(4))
    xyz, _ = fusion.cloud()
    single = PointCloudFusion(FusionCfg(voxel_size_m=1.0, pixel_stride=1))
    single.add(_frame(2.0), np.eye(4))
    assert len(xyz) == len(single.cloud()[0]) < 48


def test_window_keeps_the_last_keyframes():
    fusion = PointCloudFusion(FusionCfg(max_keyframes=3, voxel_size_m=0.01, pixel_stride=1))
    for k in range(5):
        fusion.add(_frame(2.0), _pose(t=(10.0 * k, 0.0, 0.0)))
        assert len(fusion) == min(k + 1, 3)
    xyz, _ = fusion.cloud()
    offsets = np.unique(np.round(xyz[:, 0] / 10.0))
    np.testing.assert_array_equal(offsets, [2.0, 3.0, 4.0])


def test_cache_reset_and_empty_frames():
    fusion = PointCloudFusion()
    assert fusion.cloud()[0].shape == (0, 3)
    fusion.add(_frame(np.full((6, 8), np.nan, np.float32)), np.eye(4))
    assert len(fusion) == 1 and fusion.cloud()[0].shape == (0, 3)
    fusion.add(_frame(2.0), np.eye(4))
    first = fusion.cloud()
    assert fusion.cloud() is first  # cached until the next add
    assert not first[0].flags.writeable
    fusion.add(_frame(1.0), np.eye(4))
    assert fusion.cloud() is not first
    fusion.reset()
    assert len(fusion) == 0 and fusion.cloud()[0].shape == (0, 3)


def test_bad_inputs_raise():
    fusion = PointCloudFusion()
    with pytest.raises(ValueError):
        fusion.add(_frame(), np.eye(3))
    bad = np.eye(4)
    bad[3, 0] = 1.0
    with pytest.raises(ValueError):
        fusion.add(_frame(), bad)
    nan_pose = np.eye(4)
    nan_pose[0, 3] = np.nan
    with pytest.raises(ValueError):
        fusion.add(_frame(), nan_pose)
    frame = _frame()
    frame.color = frame.color[:, :4]
    with pytest.raises(ValueError):
        fusion.add(frame, np.eye(4))
    with pytest.raises(ValueError):
        PointCloudFusion(FusionCfg(max_keyframes=0))
