"""The CrossOver model as the recogniser and the map builder use it.

An encoder turns each keyframe into a frame feature (and, with a region encoder, the objects in
it), a window of frame features into query vectors, a stored scan into the scene and instance
embeddings a map holds, and a mapping run (``pipeline.recording.SceneRecording``: keyframes,
where their cells lie, the fused cloud) into a recorded scene's. The graphs the node runs per
keyframe go through the chosen backend (PyTorch, ONNX Runtime, TensorRT).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crossover_ros.errors import DataError, ModelError
from crossover_ros.model import modalities as mod
from crossover_ros.model.batches import make_batch
from crossover_ros.model.crossover import CrossOverModel
from crossover_ros.model.features import (
    FeatureCfg,
    ScanFeatures,
    extract_scan_features,
    feature_metadata,
    scan_features_from_arrays,
    scan_rng,
)
from crossover_ros.model.graphs import (
    FRAME_REGIONS,
    FRAMES,
    IMAGE,
    REGIONS,
    crossover_graphs,
    frame_regions_graph,
    image_graph,
)
from crossover_ros.model.image_backbone import image_encoder_for_model
from crossover_ros.model.text_backbone import TextBackbone
from crossover_ros.runtime.backends import RuntimeCfg, WithFallback, create_backends


class CrossOverEncoder:
    """The CrossOver model: a window of RGB frames -> one scene vector, any stored modality.

    ``map_modality`` "point_cloud" ranks the robot's frames against the stored scans' point
    clouds (the cross-modal I->P setting of the paper); "rgb" against the mapped frames.

    The image backbone is the one the checkpoint was trained on (EfficientNet-Lite0, or DINOv2
    with its weights file: ``image_weights``, else ``$CROSSOVER_IMAGE_WEIGHTS``, else the path
    stored in the checkpoint at training; a file of other weights is refused).
    """

    modality = mod.RGB

    def __init__(
        self,
        checkpoint: Path,
        map_modality: str = mod.POINT_CLOUD,
        num_threads: int | None = None,
        runtime: RuntimeCfg | None = None,
        image_weights: Path | None = None,
    ) -> None:
        choices = (*mod.UNIFIED_MODALITIES, mod.SCENE)
        if map_modality not in choices:
            raise ModelError(f"map_modality must be one of {choices}, not {map_modality}")
        if num_threads:
            torch.set_num_threads(num_threads)
        self.model, metadata = CrossOverModel.load(checkpoint)
        runtime = runtime or RuntimeCfg(num_threads=num_threads)
        self.backbone = image_encoder_for_model(
            self.model.cfg, metadata, image_weights, where=str(checkpoint)
        )
        self._graphs = self._run_graphs(runtime)
        self.backend = self.backbone.backend.name
        self.map_modality = map_modality
        self.fingerprint = self.model.fingerprint()
        self.dim = self.model.cfg.embed_dim
        self.instance_dim = self.model.instance.out_dim
        self.finds_objects = self.model.regions is not None  # frame_objects works
        # recordings keep where the cells of this grid lie, to place the objects found in them
        self.cell_grid = self.model.regions.cfg.grid if self.finds_objects else None
        self._text = None

    def _run_graphs(self, runtime: RuntimeCfg) -> dict[str, WithFallback]:
        """The graphs the recogniser runs, in one backend choice: the image backbone (handed to
        it), the frame-set encoder and, with a region encoder, frame regions and regions."""
        model_graphs = crossover_graphs(self.model)
        graphs = {IMAGE: image_graph(self.backbone), FRAMES: model_graphs[FRAMES]}
        if self.model.regions is not None:
            graphs[FRAME_REGIONS] = frame_regions_graph(self.backbone, self.model.regions.cfg.grid)
            graphs[REGIONS] = model_graphs[REGIONS]
        backends = create_backends(graphs, runtime)
        runners = {name: WithFallback(graph, backends[name]) for name, graph in graphs.items()}
        self.backbone.run_in(runners.pop(IMAGE))
        return runners

    def frame_features(self, images: list[np.ndarray]) -> np.ndarray:
        return self.backbone.pooled_features(images)

    def frame_objects(self, images: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """:meth:`frame_features`, and the objects the region encoder finds in each frame
        ((K, instance_dim) unit descriptors each, K may be 0): one backbone pass, both graphs
        in the chosen backend."""
        pooled, cells, shows = self._frame_cells(images)
        return pooled, [e[s] for e, s in zip(cells, shows, strict=True)]

    def _frame_cells(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(F, frame feature), every cell's descriptor (F, cells, instance_dim) and whether it
        shows an object (F, cells)."""
        regions_encoder = self.model.regions
        if regions_encoder is None:
            raise ModelError(
                "this checkpoint has no region encoder (crossover_ros train --stages regions)"
            )
        frames = self.backbone.preprocess(images).numpy()
        seen = self._graphs["frame_regions"].run({"images": frames})
        out = self._graphs["regions"].run({"regions": seen["regions"]})  # every frame in one run
        return seen["pooled"], out["embedding"], regions_encoder.cfg.shows_object(out["objectness"])

    def query(self, window: np.ndarray) -> np.ndarray:
        """(F, I) frame features -> (1, D): the frame-set encoder, in the chosen backend."""
        frames = np.asarray(window, dtype=np.float32)[None]
        mask = np.ones(frames.shape[:2], dtype=np.float32)
        return self._graphs["frames"].run({"frames": frames, "mask": mask})["embedding"]

    def embed_objects(self, points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        """(K, instance_dim) point-cloud embeddings of K objects segmented from the robot's cloud.

        ``points`` (K, N, 6): each object's xyz - centroid and rgb in 0..1 (sampled as the
        training features were), ``centroids`` (K, 3). The same stage-1 path the map's instances
        took (object point encoder, then the spatial transformer over all objects of the view),
        so they match the map's 'point_cloud' instance embeddings.
        """
        if not len(points):
            return np.zeros((0, self.instance_dim), np.float32)
        with torch.no_grad():
            embeddings = self.model.instance(
                {mod.POINT_CLOUD: torch.from_numpy(np.asarray(points, np.float32))[None]},
                {mod.POINT_CLOUD: torch.ones(1, len(points), dtype=torch.bool)},
                torch.from_numpy(np.asarray(centroids, np.float32))[None],
            )
        return embeddings[mod.POINT_CLOUD][0].numpy()

    def embed_scan(self, scan: Any) -> tuple[dict[str, np.ndarray], dict[int, dict[str, list]]]:
        """All unified embeddings + F_S of a scan (generated, ScanNet or 3RScan), and its
        objects' embeddings; a scan without referrals has no referral vector."""
        self._text = self._text or TextBackbone()
        cfg = FeatureCfg()
        fingerprints = {"image": self.backbone.fingerprint, "text": self._text.fingerprint}
        arrays = extract_scan_features(
            scan, self.backbone, self._text, cfg, scan_rng(scan.scan_id, cfg)
        )
        features: ScanFeatures = scan_features_from_arrays(
            arrays, feature_metadata(scan, arrays, cfg, fingerprints)
        )
        batch = make_batch([features], num_scene_points=1024)
        with torch.no_grad():
            scene = {m: v.numpy() for m, v in self.model.unified_embeddings(batch).items()}
            scene[mod.SCENE] = self.model.scene_vectors(batch).numpy()
            objects = self.model.instance(batch.object_inputs, batch.object_masks, batch.centroids)
        if not features.has_referrals:
            scene.pop(mod.REFERRAL)
        instances: dict[int, dict[str, list]] = {}
        for row, object_id in enumerate(features.object_ids):
            instances[int(object_id)] = {
                m: objects[m][0, row].tolist()
                for m in objects
                if bool(batch.object_masks[m][0, row])
            }
        return scene, instances

    def embed_recording(self, recording: Any) -> tuple[dict[str, np.ndarray], list[dict]]:
        """A mapping run, no instance masks: the frame-set vector of its keyframes ('rgb'), the
        scene-cloud vector of its fused cloud ('point_cloud', if it has one) and, with a region
        encoder, the objects found in its keyframes, placed by their cells' depth and merged
        (:func:`merge_region_objects`)."""
        images = recording.color_images()
        if not images:
            raise DataError("the recording has no keyframes")
        instances: list[dict] = []
        if self.finds_objects:
            pooled, cells, shows = self._frame_cells(images)
            descriptors, places = [], []
            for frame_cells, frame_shows, frame_places in zip(
                cells, shows, recording.cell_points(), strict=True
            ):
                if frame_places is None:  # no pose or depth for this keyframe: cannot place
                    continue
                keep = frame_shows & np.isfinite(frame_places).all(axis=1)
                descriptors.append(frame_cells[keep])
                places.append(frame_places[keep])
            if descriptors:
                instances = merge_region_objects(
                    np.concatenate(descriptors), np.concatenate(places)
                )
        else:
            pooled = self.frame_features(images)
        scene = {mod.RGB: self.query(pooled)}
        cloud = recording.cloud()
        if cloud is not None and len(cloud[0]):
            scene[mod.POINT_CLOUD] = self.embed_cloud(*cloud)
        return scene, instances

    def embed_cloud(self, xyz: np.ndarray, rgb: np.ndarray, num_points: int = 1024) -> np.ndarray:
        """(1, D) scene vector of a coloured cloud (any frame: the encoder centres it), from
        ``num_points`` evenly spaced points, as maps built from scans are embedded."""
        keep = np.linspace(0, len(xyz) - 1, min(num_points, len(xyz))).astype(int)
        points = np.concatenate(
            [np.asarray(xyz, np.float32)[keep], np.asarray(rgb, np.float32)[keep] / 255.0], axis=1
        )
        with torch.no_grad():
            return self.model.encode_points(torch.from_numpy(points)[None]).numpy()


@dataclass(frozen=True)
class RegionMergeCfg:
    """When two objects found in keyframes are one instance of the scene."""

    radius_m: float = 0.5  # their places (cells' depth) at most this far apart
    min_cosine: float = 0.8  # and their descriptors this alike
    box_margin_m: float = 0.25  # an instance's box: its cells' places, padded by this


def merge_region_objects(
    descriptors: np.ndarray, places: np.ndarray, cfg: RegionMergeCfg | None = None
) -> list[dict]:
    """Objects found in a run's keyframes -> the scene's instances, as a map stores them.

    ``descriptors`` (N, D) unit vectors, ``places`` (N, 3) in the odometry frame. Greedy, in
    keyframe order: an object joins the most alike instance near it, else starts one. An
    instance keeps the normalised mean of its descriptors, the mean of its places and their
    bounding box; its embedding is stored as 'point_cloud', the space the region encoder was
    trained into (what layout-built maps store for their objects).
    """
    cfg = cfg or RegionMergeCfg()
    sums = np.zeros((0, descriptors.shape[1]), np.float64)
    place_sums = np.zeros((0, 3), np.float64)
    counts: list[int] = []
    lows: list[np.ndarray] = []
    highs: list[np.ndarray] = []
    for descriptor, place in zip(descriptors, places, strict=True):
        if len(counts):
            centres = place_sums / np.asarray(counts)[:, None]
            near = np.linalg.norm(centres - place, axis=1) <= cfg.radius_m
            cosine = sums @ descriptor / np.linalg.norm(sums, axis=1)
            cosine[~near | (cosine < cfg.min_cosine)] = -np.inf
            best = int(np.argmax(cosine))
            if np.isfinite(cosine[best]):
                sums[best] += descriptor
                place_sums[best] += place
                counts[best] += 1
                lows[best] = np.minimum(lows[best], place)
                highs[best] = np.maximum(highs[best], place)
                continue
        sums = np.vstack([sums, descriptor])
        place_sums = np.vstack([place_sums, place])
        counts.append(1)
        lows.append(np.asarray(place, np.float64))
        highs.append(np.asarray(place, np.float64))
    instances = []
    for index, count in enumerate(counts):
        mean = sums[index] / np.linalg.norm(sums[index])
        instances.append(
            {
                "id": index,
                "label": "object",
                "centroid": (place_sums[index] / count).tolist(),
                "box_min": (lows[index] - cfg.box_margin_m).tolist(),
                "box_max": (highs[index] + cfg.box_margin_m).tolist(),
                "embeddings": {mod.POINT_CLOUD: mean.astype(np.float32).tolist()},
            }
        )
    return instances
