"""The recognition pipeline's configuration: one tree, read by the node, the evaluations and the
benchmarks alike.

Each group is the configuration dataclass of the stage it sets; the settings in it
(``crossover_ros.config.setting``) are the ``scene_recognizer``'s ROS parameters under dotted
names (``recognizer.hysteresis.switch_after_windows``), the keys of ``config/*.yaml``, and what
``crossover_ros eval`` passes on. :class:`RecordingPipelineCfg` is the ``map_recorder``'s: the
same stream, keyframe and fusion groups.
"""

from __future__ import annotations

from dataclasses import dataclass

from crossover_ros.config import group, setting
from crossover_ros.model import modalities as mod
from crossover_ros.pipeline.changes import ChangeCfg
from crossover_ros.pipeline.fusion import FusionCfg
from crossover_ros.pipeline.keyframes import KeyframeCfg
from crossover_ros.pipeline.map_update import MapUpdateCfg
from crossover_ros.pipeline.object_ranking import ObjectRankingCfg
from crossover_ros.pipeline.recognizer import RecognizerCfg
from crossover_ros.pipeline.recording import RecordingCfg
from crossover_ros.pipeline.relocalize import RelocalizerCfg
from crossover_ros.pipeline.stats import HealthCfg
from crossover_ros.pipeline.stream import StreamCfg
from crossover_ros.pipeline.verification import VerificationCfg
from crossover_ros.runtime.backends import BACKENDS

MAP_MODALITIES = ("", *mod.UNIFIED_MODALITIES, mod.SCENE)


@dataclass(frozen=True)
class ModelCfg:
    """Which model embeds the frames, and how it runs."""

    name: str = setting(
        "global_descriptor",
        "global_descriptor, crossover (the shipped CrossOver model) or a checkpoint path; must"
        " be the model the map was built with.",
    )
    backend: str = setting(
        "auto",
        "Inference runtime: tensorrt, onnxruntime, torch or auto (the fastest here).",
        choices=BACKENDS,
    )
    num_threads: int = setting(2, "CPU threads for the encoder.", 1, 64)


@dataclass(frozen=True)
class RecognitionModelCfg(ModelCfg):
    """The model, and the stored modality the recogniser ranks the frames against."""

    map_modality: str = setting(
        "",
        "Stored modality the frames are ranked against: point_cloud, rgb, floorplan, referral"
        " or scene; '' the model's own (point_cloud; rgb for the global descriptor).",
        choices=MAP_MODALITIES,
    )


@dataclass(frozen=True)
class MapCfg:
    """Where the map database is."""

    path: str = setting(
        "",
        "Map database: SQLite file or postgresql:// URL ('map build'). May be changed at run"
        " time; ~/reload_map then opens the new one.",
        read_only=False,
    )
    password_file: str = setting(
        "",
        "File whose first line is the PostgreSQL password (keep it mode 600). Empty: libpq's"
        " PGPASSWORD, PGPASSFILE or ~/.pgpass; never put a password in map.path, which ps and"
        " 'ros2 param get' show.",
    )


@dataclass(frozen=True)
class RecognitionMapCfg(MapCfg):
    """The map, and whether the recogniser may add the current visit to it."""

    allow_updates: bool = setting(
        False,
        "Keep a recording of the current visit so that ~/update_map can add it to the map as"
        " a new scan of the recognised room (opens the map writable).",
    )


@dataclass(frozen=True)
class SensorPipelineCfg:
    """What both nodes share: the model, the map, how sensor messages become keyframes."""

    model: ModelCfg = group(ModelCfg)
    map: MapCfg = group(MapCfg)
    stream: StreamCfg = group(StreamCfg)
    keyframes: KeyframeCfg = group(KeyframeCfg)
    fusion: FusionCfg = group(FusionCfg)


@dataclass(frozen=True)
class PipelineCfg(SensorPipelineCfg):
    """Everything the ``scene_recognizer`` runs between its subscriptions and its publishers."""

    model: RecognitionModelCfg = group(RecognitionModelCfg)
    map: RecognitionMapCfg = group(RecognitionMapCfg)
    recognizer: RecognizerCfg = group(RecognizerCfg)
    ranking: ObjectRankingCfg = group(ObjectRankingCfg)
    verification: VerificationCfg = group(VerificationCfg)
    relocalization: RelocalizerCfg = group(RelocalizerCfg)
    changes: ChangeCfg = group(ChangeCfg)
    map_update: MapUpdateCfg = group(MapUpdateCfg)
    health: HealthCfg = group(HealthCfg)


@dataclass(frozen=True)
class RecordingPipelineCfg(SensorPipelineCfg):
    """Everything the ``map_recorder`` runs: the shared groups, and the recording."""

    recording: RecordingCfg = group(RecordingCfg)
