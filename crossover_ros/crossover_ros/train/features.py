"""The training cache: every scan's frozen features computed once, so training never re-runs
backbones (``<cache_dir>/<scan_id>.safetensors``; what is extracted: ``model.features``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from crossover_ros.datasets.scan import Scan
from crossover_ros.datasets.sequence import SequenceScan
from crossover_ros.errors import DataError
from crossover_ros.mapdb.build import list_scans
from crossover_ros.model.features import (
    FeatureCfg,
    ImageFeatureEncoder,
    TextFeatureEncoder,
    extract_scan_features,
    feature_metadata,
    is_current,
    save_scan_features,
    scan_rng,
)
from crossover_ros.model.global_descriptor import ImageDescriptorEncoder
from crossover_ros.model.text_backbone import TextBackbone


def cache_building_features(
    building_dir: Path | str,
    cache_dir: Path | str,
    cfg: FeatureCfg | None = None,
    progress: bool = True,
    *,
    scan_ids: Sequence[str] | None = None,
    layout: str = "auto",
    image_encoder: ImageFeatureEncoder | None = None,
    text_encoder: TextFeatureEncoder | None = None,
    num_threads: int | None = 1,
) -> list[Path]:
    """Write ``<cache_dir>/<scan_id>.safetensors`` for each scan of a scan folder (a generated
    building, or ScanNet / 3RScan scans: ``layout``); return the paths in order.

    A file that exists with the same format, cfg and extractor fingerprints is kept as it is.
    Encoders default to the package's frozen ones; pass them in to share one load between calls.
    ``num_threads`` caps torch's intra-op threads while extracting (None: leave as set): on a
    shared 2-core machine one thread ran the backbone 3-7x faster than two fighting for cores.
    """
    cfg = cfg or FeatureCfg()
    cache_dir = Path(cache_dir)
    scans = [s.source for s in list_scans(Path(building_dir), layout, include_rescans=True)]
    if scan_ids is not None:
        known = {scan.scan_id: scan for scan in scans}
        unknown = sorted(set(scan_ids) - set(known))
        if unknown:
            raise DataError(f"no scans {unknown} in {building_dir}")
        scans = [known[s] for s in scan_ids]
    image_encoder = image_encoder or ImageDescriptorEncoder()
    text_encoder = text_encoder or TextBackbone()
    fingerprints = {"image": image_encoder.fingerprint, "text": text_encoder.fingerprint}
    previous_threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        return _cache_scans(
            scans, cache_dir, cfg, fingerprints, image_encoder, text_encoder, progress
        )
    finally:
        torch.set_num_threads(previous_threads)


def _cache_scans(
    scans: Sequence[Scan | SequenceScan],
    cache_dir: Path,
    cfg: FeatureCfg,
    fingerprints: dict[str, str],
    image_encoder: ImageFeatureEncoder,
    text_encoder: TextFeatureEncoder,
    progress: bool,
) -> list[Path]:
    paths = []
    for scan in tqdm(scans, desc="features", unit="scan", disable=not progress):
        path = cache_dir / f"{scan.scan_id}.safetensors"
        paths.append(path)
        if is_current(path, cfg, fingerprints):
            continue
        start = time.perf_counter()
        arrays = extract_scan_features(
            scan, image_encoder, text_encoder, cfg, scan_rng(scan.scan_id, cfg)
        )
        save_scan_features(path, arrays, feature_metadata(scan, arrays, cfg, fingerprints))
        if progress:
            tqdm.write(f"{scan.scan_id}: {time.perf_counter() - start:.2f} s")
    return paths
