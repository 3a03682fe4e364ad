"""What the recogniser and the map builder need of a model, for each model the package ships.

An encoder turns each keyframe into a frame feature, turns the window of frame features into
query vectors, and turns a stored scan into the scene embeddings (and instance embeddings) a map
holds, and a mapping run (``pipeline.recording.SceneRecording``: keyframes, where their cells
lie, the fused cloud) into a recorded scene's. ``map_modality`` is the stored modality the
queries are ranked against.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from crossover_ros.errors import DataError, ModelError
from crossover_ros.model import modalities as mod

if TYPE_CHECKING:  # torch is imported only once an encoder is built
    from crossover_ros.model.crossover import CrossOverModel
    from crossover_ros.model.global_descriptor import ImageDescriptorEncoder
    from crossover_ros.pipeline.objects import QueryObject
    from crossover_ros.runtime.adapters import BackendImageEncoder, WithFallback
    from crossover_ros.runtime.backends import RuntimeCfg


class SceneEncoder(Protocol):
    modality: str
    map_modality: str
    fingerprint: str
    dim: int  # scene vectors
    instance_dim: int  # instance vectors
    finds_objects: bool  # frame_objects works (a region encoder): the node ranks by objects
    cell_grid: tuple[int, int] | None  # where it finds objects in a frame (None: it does not)

    def frame_features(self, images: list[np.ndarray]) -> np.ndarray: ...

    def query(self, window: np.ndarray) -> np.ndarray: ...

    def embed_scan(self, scan: Any) -> tuple[dict[str, np.ndarray], dict[int, dict[str, list]]]: ...

    def embed_recording(self, recording: Any) -> tuple[dict[str, np.ndarray], list[dict]]: ...


class GlobalDescriptorEncoder:
    """The place-recognition baseline: one GeM vector per frame, matched frame to frame."""

    modality = mod.RGB
    map_modality = mod.RGB
    finds_objects = False
    cell_grid = None

    def __init__(self, num_threads: int | None = None, runtime: RuntimeCfg | None = None) -> None:
        from crossover_ros.model.global_descriptor import ImageDescriptorEncoder
        from crossover_ros.runtime.backends import RuntimeCfg

        runtime = runtime or RuntimeCfg(num_threads=num_threads)
        self.backbone = _runtime_encoders(
            ImageDescriptorEncoder(num_threads=num_threads), None, runtime
        )[0]
        self.backend = self.backbone.backend.name
        self.fingerprint = self.backbone.fingerprint
        self.dim = self.instance_dim = self.backbone.dim  # (it stores no instances)

    def frame_features(self, images: list[np.ndarray]) -> np.ndarray:
        return self.backbone.encode(images)

    def query(self, window: np.ndarray) -> np.ndarray:
        """Every keyframe is a query vector; a scene scores the mean of their best matches."""
        return window

    def embed_scan(self, scan: Any) -> tuple[dict[str, np.ndarray], dict[int, dict[str, list]]]:
        images = (
            list(scan.color_images())
            if hasattr(scan, "color_images")
            else [frame.color for frame in scan.frames()]
        )
        if not images:
            raise DataError(f"scan {getattr(scan, 'scan_id', '?')} has no colour frames")
        return {mod.RGB: self.backbone.encode(images)}, {}

    def embed_recording(self, recording: Any) -> tuple[dict[str, np.ndarray], list[dict]]:
        """A mapping run: every kept keyframe's descriptor, no instances."""
        return self.embed_scan(recording)[0], []


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
        import torch

        from crossover_ros.model.crossover import CrossOverModel
        from crossover_ros.model.image_backbone import image_encoder_for_model
        from crossover_ros.runtime.backends import RuntimeCfg

        choices = (*mod.UNIFIED_MODALITIES, mod.SCENE)
        if map_modality not in choices:
            raise ModelError(f"map_modality must be one of {choices}, not {map_modality}")
        if num_threads:
            torch.set_num_threads(num_threads)
        self.model, metadata = CrossOverModel.load(checkpoint)
        runtime = runtime or RuntimeCfg(num_threads=num_threads)
        image = image_encoder_for_model(
            self.model.cfg, metadata, image_weights, where=str(checkpoint)
        )
        self.backbone, self._graphs = _runtime_encoders(image, self.model, runtime)
        self.backend = self.backbone.backend.name
        self.map_modality = map_modality
        self.fingerprint = self.model.fingerprint()
        self.dim = self.model.cfg.embed_dim
        self.instance_dim = self.model.instance.out_dim
        self.finds_objects = self.model.regions is not None  # frame_objects works
        # recordings keep where the cells of this grid lie, to place the objects found in them
        self.cell_grid = self.model.regions.cfg.grid if self.finds_objects else None
        self._text = None

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
        frames = self.backbone.encoder.preprocess(images).numpy()
        seen = self._graphs["frame_regions"].run({"images": frames})
        out = self._graphs["regions"].run({"regions": seen["regions"]})  # every frame in one run
        return seen["pooled"], out["embedding"], regions_encoder.cfg.shows_object(out["objectness"])

    def query(self, window: np.ndarray) -> np.ndarray:
        """(F, I) frame features -> (1, D): the frame-set encoder, in the chosen backend."""
        frames = np.asarray(window, dtype=np.float32)[None]
        mask = np.ones(frames.shape[:2], dtype=np.float32)
        return self._graphs["frames"].run({"frames": frames, "mask": mask})["embedding"]

    def embed_objects(self, objects: list[QueryObject]) -> np.ndarray:
        """(K, instance_dim) point-cloud embeddings of objects segmented from the robot's cloud.

        The same stage-1 path the map's instances took (object point encoder, then the spatial
        transformer over all objects of the view), so they match the map's 'point_cloud'
        instance embeddings. Sampled with a fixed seed: the same view, the same embeddings.
        """
        import torch

        from crossover_ros.pipeline.objects import object_point_sets
        from crossover_ros.train.features import FeatureCfg

        if not objects:
            return np.zeros((0, self.instance_dim), np.float32)
        points = object_point_sets(objects, FeatureCfg().object_points, np.random.default_rng(0))
        centroids = np.stack([obj.centroid for obj in objects]).astype(np.float32)
        with torch.no_grad():
            embeddings = self.model.instance(
                {mod.POINT_CLOUD: torch.from_numpy(points)[None]},
                {mod.POINT_CLOUD: torch.ones(1, len(objects), dtype=torch.bool)},
                torch.from_numpy(centroids)[None],
            )
        return embeddings[mod.POINT_CLOUD][0].numpy()

    def embed_scan(self, scan: Any) -> tuple[dict[str, np.ndarray], dict[int, dict[str, list]]]:
        """All unified embeddings + F_S of a generated scan, and its objects' embeddings."""
        import torch

        from crossover_ros.model.text_backbone import TextBackbone
        from crossover_ros.train.batches import make_batch
        from crossover_ros.train.features import (
            FeatureCfg,
            ScanFeatures,
            extract_scan_features,
            feature_metadata,
            scan_features_from_arrays,
            scan_rng,
        )
        from crossover_ros.train.stages import scene_vectors, unified_embeddings

        if not hasattr(scan, "referrals"):
            raise DataError("CrossOver maps are built from the generated layout for now")
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
            scene = {m: v.numpy() for m, v in unified_embeddings(self.model, batch).items()}
            scene[mod.SCENE] = scene_vectors(self.model, batch).numpy()
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
        (``pipeline.recording.merge_region_objects``)."""
        from crossover_ros.pipeline.recording import merge_region_objects

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
        import torch

        keep = np.linspace(0, len(xyz) - 1, min(num_points, len(xyz))).astype(int)
        points = np.concatenate(
            [np.asarray(xyz, np.float32)[keep], np.asarray(rgb, np.float32)[keep] / 255.0], axis=1
        )
        with torch.no_grad():
            return self.model.encode_points(torch.from_numpy(points)[None]).numpy()


MODELS = ("global_descriptor", "crossover")


def default_model_path() -> Path:
    """The shipped CrossOver checkpoint: in the installed share folder, else the source tree."""
    name = "crossover.safetensors"
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("crossover_ros")) / "models" / name
        if installed.is_file():
            return installed
    except Exception:  # no ament index (plain pip install): fall back to the source tree
        pass
    return Path(__file__).resolve().parents[2] / "models" / name


def _runtime_encoders(
    image: ImageDescriptorEncoder, model: CrossOverModel | None, runtime: RuntimeCfg
) -> tuple[BackendImageEncoder, dict[str, WithFallback]]:
    """The image backbone and (with a CrossOver model) its graphs the recogniser runs, in one
    backend choice: the image encoder as ``ImageDescriptorEncoder``'s drop-in; the frame-set
    encoder and, with a region encoder, frame regions and regions, as graphs by name."""
    from crossover_ros.runtime.adapters import BackendImageEncoder, WithFallback
    from crossover_ros.runtime.backends import create_backends
    from crossover_ros.runtime.graphs import (
        FRAME_REGIONS,
        FRAMES,
        IMAGE,
        REGIONS,
        crossover_graphs,
        frame_regions_graph,
        image_graph,
    )

    graphs = {IMAGE: image_graph(image)}
    if model is not None:
        model_graphs = crossover_graphs(model)
        graphs[FRAMES] = model_graphs[FRAMES]
        if model.regions is not None:
            graphs[FRAME_REGIONS] = frame_regions_graph(image, model.regions.cfg.grid)
            graphs[REGIONS] = model_graphs[REGIONS]
    backends = create_backends(graphs, runtime)
    encoder = BackendImageEncoder(image, graphs[IMAGE], backends[IMAGE])
    return encoder, {
        name: WithFallback(graph, backends[name]) for name, graph in graphs.items() if name != IMAGE
    }


def load_encoder(
    model: str = "global_descriptor",
    map_modality: str | None = None,
    num_threads: int | None = None,
    backend: str = "torch",
    cache_dir: Path | None = None,
    image_weights: Path | None = None,
) -> SceneEncoder:
    """``model``: "global_descriptor", "crossover" (the shipped checkpoint) or a checkpoint path.

    ``backend``: "torch", "onnxruntime", "tensorrt" or "auto" (the fastest this machine has) for
    the image backbone and the frame-set encoder; ONNX files and TensorRT engines are made on
    first use in ``cache_dir`` (default ~/.cache/crossover_ros). Embeddings agree across backends.
    ``image_weights``: the DINOv2 weights file of a checkpoint trained on DINOv2 features
    (default ``$CROSSOVER_IMAGE_WEIGHTS``, else the path stored in the checkpoint).
    """
    from crossover_ros.runtime.backends import RuntimeCfg

    runtime = RuntimeCfg(backend=backend, num_threads=num_threads, cache_dir=cache_dir)
    if model == "global_descriptor":
        return GlobalDescriptorEncoder(num_threads, runtime)
    path = default_model_path() if model == "crossover" else Path(model)
    if not path.is_file():
        raise ModelError(
            f"CrossOver checkpoint {path} not found (train one with 'crossover_ros train')"
        )
    return CrossOverEncoder(
        path, map_modality or mod.POINT_CLOUD, num_threads, runtime, image_weights
    )
