"""Every metric of the paper for a trained CrossOver model and its baselines, on cached scans.

Methods compared on the same held-out scans:
- ``crossover``: the unified encoders (stage 3) for scenes, the instance encoder for objects;
- ``crossover object sets``: the same model, scenes compared object by object (symmetric
  Chamfer similarity of their object descriptors) instead of by scene vectors; it needs the
  query's objects (instance masks), which the unified encoders do not;
- ``crossover object layouts``: as object sets, the 10 best re-ranked by whether the matched
  objects also stand in the same places (``object_layout_similarity``); needs the objects'
  positions too (depth on a robot);
- ``crossover region sets``: as object sets, the image side's objects found in its frames by
  the region encoder (no instance masks): image queries only;
- ``instance_baseline``: a model trained at instance level only, without the object transformer
  and without the scene stages: a scene is the mean of its object embeddings per modality (or,
  as ``object sets``, the set of its object embeddings);
- ``global_descriptor``: frozen EfficientNet-Lite0 GeM descriptors averaged over frames
  (image <-> image only), the place-recognition baseline the node started with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from crossover_ros.datasets.scan import room_key
from crossover_ros.eval.metrics import (
    InstanceScene,
    category_recall,
    cosine_similarity,
    instance_matching,
    scene_retrieval_recall,
    temporal_instance_matching,
    temporal_recall,
)
from crossover_ros.eval.report import format_markdown_table, table_rows
from crossover_ros.mapdb.search import (
    LayoutCfg,
    object_layout_similarity,
    object_set_similarity,
)
from crossover_ros.model import modalities as mod
from crossover_ros.model.batches import make_batch
from crossover_ros.model.crossover import CrossOverModel
from crossover_ros.model.features import ScanFeatures

SHORT = {mod.RGB: "I", mod.POINT_CLOUD: "P", mod.REFERRAL: "R", mod.FLOORPLAN: "F", mod.MESH: "M"}
SCENE_PAIRS = [
    (mod.RGB, mod.POINT_CLOUD),
    (mod.RGB, mod.REFERRAL),
    (mod.POINT_CLOUD, mod.REFERRAL),
    (mod.RGB, mod.FLOORPLAN),
    (mod.POINT_CLOUD, mod.FLOORPLAN),
    (mod.REFERRAL, mod.FLOORPLAN),
]  # same-modal pairs only make sense over time (temporal table): a scan would find itself
INSTANCE_PAIRS = [
    (mod.RGB, mod.POINT_CLOUD),
    (mod.RGB, mod.REFERRAL),
    (mod.POINT_CLOUD, mod.REFERRAL),
    (mod.RGB, mod.MESH),
    (mod.POINT_CLOUD, mod.POINT_CLOUD),
]


def pair_name(a: str, b: str) -> str:
    return f"{SHORT[a]}->{SHORT[b]}"


@dataclass
class EmbeddedScans:
    """Per-scan embeddings of one method; rows follow ``scan_ids``.

    Scenes are compared by the cosine of their ``scenes`` vectors or, with
    ``scenes_by_objects``, object by object (``object_set_similarity`` of their present
    ``objects``); with ``layout`` too, the ``layout.shortlist`` best of those are re-ranked by
    ``object_layout_similarity`` (queries' objects at ``query_centroids``, the database's at
    ``object_centroids``).
    """

    scan_ids: list[str]
    scenes: dict[str, np.ndarray]  # modality -> (S, D) unit rows
    scene_masks: dict[str, np.ndarray]  # modality -> (S,) bool
    objects: list[dict[str, np.ndarray]] = field(
        default_factory=list
    )  # per scan: modality -> (K, D)
    object_masks: list[dict[str, np.ndarray]] = field(default_factory=list)
    scenes_by_objects: bool = False
    query_modalities: tuple[str, ...] | None = None  # None: every modality may be a query
    layout: LayoutCheck | None = None
    _object_set_scores: dict[tuple[str, str], np.ndarray] = field(
        default_factory=dict, init=False, repr=False
    )

    def has(self, modality: str) -> bool:
        return modality in self.scene_masks

    def has_pair(self, a: str, b: str) -> bool:
        """Whether queries in modality ``a`` can be searched among scans in modality ``b``."""
        queries = self.query_modalities
        return self.has(a) and self.has(b) and (queries is None or a in queries)

    def scene_scores(self, a: str, b: str) -> np.ndarray:
        """(S, S) scores of every scan in modality ``a`` against every scan in ``b``; pairs where
        a side lacks its modality score -inf (the masks keep them out of every ranking)."""
        qm, dm = self.scene_masks[a], self.scene_masks[b]
        if not self.scenes_by_objects:
            return cosine_similarity(self.scenes[a], self.scenes[b], qm, dm)
        if (a, b) not in self._object_set_scores:  # every table asks again; S^2 set matchings
            scores = np.full((len(qm), len(dm)), -np.inf)
            for q in np.flatnonzero(qm):
                for d in np.flatnonzero(dm):
                    scores[q, d] = object_set_similarity(
                        self.objects[q][a][self.object_masks[q][a]],
                        self.objects[d][b][self.object_masks[d][b]],
                    )
            if self.layout is not None:
                scores = self.layout.rerank(self, a, b, scores)
            self._object_set_scores[(a, b)] = scores
        return self._object_set_scores[(a, b)]


@dataclass(frozen=True)
class LayoutCheck:
    """Object sets re-ranked by layout: each query's ``shortlist`` best scans get
    ``object_layout_similarity`` (which is at most 1 + ``cfg.set_weight``); the rest keep their
    object-set order below them."""

    query_centroids: list[np.ndarray]  # per scan (K, 3): the query side, in a frame of its own
    object_centroids: list[np.ndarray]  # per scan (K, 3): the database side (map frame)
    shortlist: int = 10
    cfg: LayoutCfg = field(default_factory=LayoutCfg)

    def rerank(self, emb: EmbeddedScans, a: str, b: str, scores: np.ndarray) -> np.ndarray:
        reranked = np.where(np.isfinite(scores), scores - 10.0, scores)  # below any layout score
        for q in np.flatnonzero(np.isfinite(scores).any(axis=1)):
            query_mask = emb.object_masks[q][a]
            for d in np.argsort(-scores[q], kind="stable")[: self.shortlist]:
                if not np.isfinite(scores[q, d]):
                    break
                scene_mask = emb.object_masks[d][b]
                reranked[q, d] = object_layout_similarity(
                    emb.objects[q][a][query_mask],
                    self.query_centroids[q][query_mask],
                    emb.objects[d][b][scene_mask],
                    self.object_centroids[d][scene_mask],
                    self.cfg,
                )
        return reranked


def _batches(scenes: list[ScanFeatures], size: int, num_scene_points: int | None):
    for start in range(0, len(scenes), size):
        yield make_batch(scenes[start : start + size], num_scene_points=num_scene_points)


@torch.no_grad()
def embed_crossover(
    model: CrossOverModel, scenes: list[ScanFeatures], num_scene_points: int | None = 1024
) -> EmbeddedScans:
    model.eval()
    out = EmbeddedScans([s.scan_id for s in scenes], {}, {})
    collected: dict[str, list[np.ndarray]] = {m: [] for m in mod.UNIFIED_MODALITIES}
    for batch in _batches(scenes, 16, num_scene_points):
        for m, vectors in model.unified_embeddings(batch).items():
            collected[m].append(vectors.numpy())
        objects = model.instance(batch.object_inputs, batch.object_masks, batch.centroids)
        for i in range(len(batch)):
            k = int(batch.object_valid[i].sum())
            out.objects.append({m: e[i, :k].numpy() for m, e in objects.items()})
            out.object_masks.append({m: batch.object_masks[m][i, :k].numpy() for m in objects})
    out.scenes = {m: np.concatenate(v) for m, v in collected.items()}
    out.scene_masks = {m: np.ones(len(scenes), bool) for m in collected}
    out.scene_masks[mod.REFERRAL] = np.array([s.has_referrals for s in scenes])
    return out


def by_object_sets(
    emb: EmbeddedScans, query_modalities: tuple[str, ...] | None = None
) -> EmbeddedScans:
    """The same scans, scenes compared by their object sets (no instance tables again)."""
    masks = {m: np.array([mask[m].any() for mask in emb.object_masks]) for m in emb.objects[0]}
    return EmbeddedScans(
        emb.scan_ids,
        {},
        masks,
        objects=emb.objects,
        object_masks=emb.object_masks,
        scenes_by_objects=True,
        query_modalities=query_modalities,
    )


def by_object_layouts(
    emb: EmbeddedScans, scenes: list[ScanFeatures], seed: int = 0
) -> EmbeddedScans:
    """``emb``'s scans compared by object sets re-ranked by layout. Each query's objects are
    moved into a frame of its own (a random yaw and shift per scan, as a robot's odometry frame
    is not the map's), so a score cannot lean on the frames the generated scans share."""
    rng = np.random.default_rng(seed)
    query_centroids = []
    for scene in scenes:
        yaw, shift = rng.uniform(-np.pi, np.pi), np.append(rng.uniform(-10.0, 10.0, 2), 0.0)
        cos, sin = np.cos(yaw), np.sin(yaw)
        rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        query_centroids.append(scene.object_centroids @ rotation.T + shift)
    found = by_object_sets(emb)
    found.layout = LayoutCheck(query_centroids, [s.object_centroids for s in scenes])
    return found


@torch.no_grad()
def by_region_sets(
    model: CrossOverModel, scenes: list[ScanFeatures], emb: EmbeddedScans
) -> EmbeddedScans:
    """``emb``'s scans compared by object sets, each scan's image objects being the regions of
    its frames that the region encoder finds objects in (no instance masks needed); only the
    image side changes, so only image queries are asked."""
    assert model.regions is not None
    model.eval()
    objects, masks = [], []
    for scene, found, found_masks in zip(scenes, emb.objects, emb.object_masks, strict=True):
        regions = torch.from_numpy(scene.frame_regions.astype(np.float32))
        seen = model.regions.object_set(regions).numpy()
        objects.append({**found, mod.RGB: seen})
        masks.append({**found_masks, mod.RGB: np.ones(len(seen), bool)})
    return by_object_sets(EmbeddedScans(emb.scan_ids, {}, {}, objects, masks), (mod.RGB,))


@torch.no_grad()
def embed_instance_baseline(model: CrossOverModel, scenes: list[ScanFeatures]) -> EmbeddedScans:
    """Object embeddings without scene context; a scene is their masked mean per modality."""
    model.eval()
    out = EmbeddedScans([s.scan_id for s in scenes], {}, {})
    means: dict[str, list[np.ndarray]] = {m: [] for m in mod.INSTANCE_MODALITIES}
    present: dict[str, list[bool]] = {m: [] for m in mod.INSTANCE_MODALITIES}
    for batch in _batches(scenes, 16, None):
        objects = model.instance(batch.object_inputs, batch.object_masks, batch.centroids)
        for i in range(len(batch)):
            k = int(batch.object_valid[i].sum())
            masks = {m: batch.object_masks[m][i, :k] for m in objects}
            out.objects.append({m: e[i, :k].numpy() for m, e in objects.items()})
            out.object_masks.append({m: mask.numpy() for m, mask in masks.items()})
            for m, e in objects.items():
                mask = masks[m]
                mean = e[i, :k][mask].mean(0) if mask.any() else torch.zeros(e.shape[-1])
                means[m].append(F.normalize(mean, dim=0).numpy())
                present[m].append(bool(mask.any()))
    out.scenes = {m: np.stack(v) for m, v in means.items()}
    out.scene_masks = {m: np.array(v) for m, v in present.items()}
    return out


def embed_global_descriptor(scenes: list[ScanFeatures]) -> EmbeddedScans:
    """Mean of the frames' L2-normalised GeM descriptors (first half of the cached features)."""
    rows = []
    for s in scenes:
        gem = s.frame_features[:, : s.frame_features.shape[1] // 2]
        gem = gem / np.linalg.norm(gem, axis=1, keepdims=True)
        mean = gem.mean(0)
        rows.append(mean / np.linalg.norm(mean))
    vectors = np.stack(rows).astype(np.float32)
    return EmbeddedScans(
        [s.scan_id for s in scenes], {mod.RGB: vectors}, {mod.RGB: np.ones(len(scenes), bool)}
    )


def scene_retrieval_table(method: str, emb: EmbeddedScans, any_scan: bool = False) -> dict:
    """Query one scan in modality A among all scans in modality B. The true scene is the scan
    itself, or with ``any_scan`` any scan of its room (3RScan's sense of a scene: one space,
    scanned several times; what a robot asking "which room?" needs)."""
    if any_scan:
        keys = [room_key(s) for s in emb.scan_ids]
        targets = [[j for j, k in enumerate(keys) if k == key] for key in keys]
    else:
        targets = np.arange(len(emb.scan_ids))
    rows = {}
    for a, b in SCENE_PAIRS:
        if not emb.has_pair(a, b):
            continue
        result = scene_retrieval_recall(
            None,
            None,
            targets,
            similarity=emb.scene_scores(a, b),
            query_mask=emb.scene_masks[a],
            database_mask=emb.scene_masks[b],
        )
        rows[f"{method} {pair_name(a, b)}"] = result
    return rows


def temporal_table(method: str, emb: EmbeddedScans, pairs) -> dict[str, dict]:
    """Rescans (scan index >= 1) as queries; positives: the other scans of the same room."""
    keys = [room_key(s) for s in emb.scan_ids]
    queries = [i for i, s in enumerate(emb.scan_ids) if not s.endswith("_00")]
    positives = [[j for j, k in enumerate(keys) if k == keys[q] and j != q] for q in queries]
    rows = {}
    for a, b in pairs:
        if not emb.has_pair(a, b):
            continue
        rows[f"{method} {pair_name(a, b)}"] = temporal_recall(
            None,
            None,
            positives,
            similarity=emb.scene_scores(a, b)[queries],
            query_db_index=queries,
            query_mask=emb.scene_masks[a][queries],
            database_mask=emb.scene_masks[b],
        )
    return rows


def category_table(method: str, emb: EmbeddedScans, categories: list[str], pairs) -> dict:
    rows = {}
    for a, b in pairs:
        if emb.has_pair(a, b):
            rows[f"{method} {pair_name(a, b)}"] = category_recall(
                None,
                None,
                categories,
                categories,
                query_db_index=np.arange(len(categories)),
                query_mask=emb.scene_masks[a],
                database_mask=emb.scene_masks[b],
                similarity=emb.scene_scores(a, b),
            )
    return rows


def instance_table(method: str, emb: EmbeddedScans, scenes: list[ScanFeatures]) -> dict:
    """Within-scan object matching for each modality pair (ground truth: the same object)."""
    rows = {}
    for a, b in INSTANCE_PAIRS:
        if a == b:
            continue
        items = [
            InstanceScene(
                query=objects[a],
                target=objects[b],
                pairs=[(i, i) for i in range(len(scene.object_ids))],
                query_labels=scene.object_labels,
                target_labels=scene.object_labels,
                query_mask=masks[a],
                target_mask=masks[b],
                scene_id=scene.scan_id,
            )
            for scene, objects, masks in zip(scenes, emb.objects, emb.object_masks, strict=True)
        ]
        rows[f"{method} {pair_name(a, b)}"] = instance_matching(items)
    return rows


def temporal_instance_table(
    method: str, emb: EmbeddedScans, scenes: list[ScanFeatures], states: dict[str, dict[int, str]]
) -> dict:
    """P->P between a rescan and its reference scan; objects paired by instance id."""
    index = {s.scan_id: i for i, s in enumerate(scenes)}
    items = []
    for q, scene in enumerate(scenes):
        reference = f"{room_key(scene.scan_id)}_00"
        if scene.scan_id == reference or reference not in index:
            continue
        r = index[reference]
        ref_ids = {int(i): j for j, i in enumerate(scenes[r].object_ids)}
        pairs, pair_states = [], []
        for i, object_id in enumerate(scene.object_ids):
            state = states.get(scene.scan_id, {}).get(int(object_id), "static")
            if int(object_id) in ref_ids and state in ("static", "moved"):
                pairs.append((i, ref_ids[int(object_id)]))
                pair_states.append(state)
        if not pairs:
            continue
        items.append(
            InstanceScene(
                query=emb.objects[q][mod.POINT_CLOUD],
                target=emb.objects[r][mod.POINT_CLOUD],
                pairs=pairs,
                query_labels=scene.object_labels,
                target_labels=scenes[r].object_labels,
                query_mask=emb.object_masks[q][mod.POINT_CLOUD],
                target_mask=emb.object_masks[r][mod.POINT_CLOUD],
                pair_states=pair_states,
                scene_id=scene.scan_id,
            )
        )
    return {f"{method} P->P": temporal_instance_matching(items, unmatched_targets="distractor")}


TEMPORAL_PAIRS = [
    (mod.RGB, mod.POINT_CLOUD),
    (mod.RGB, mod.RGB),
    (mod.POINT_CLOUD, mod.POINT_CLOUD),
]


def evaluate_models(
    model: CrossOverModel,
    baseline: CrossOverModel | None,
    scenes: list[ScanFeatures],
    categories: list[str],
    states: dict[str, dict[int, str]],
) -> dict[str, dict]:
    """Every table of the report: {table title: {row name: metric result}}."""
    crossover = embed_crossover(model, scenes)
    methods = {
        "CrossOver": crossover,
        "CrossOver object sets": by_object_sets(crossover),
        "CrossOver object layouts": by_object_layouts(crossover, scenes),
    }
    if model.regions is not None:
        methods["CrossOver region sets"] = by_region_sets(model, scenes, crossover)
    if baseline is not None:
        methods["Instance baseline"] = embed_instance_baseline(baseline, scenes)
        methods["Instance baseline object sets"] = by_object_sets(methods["Instance baseline"])
        methods["Instance baseline object layouts"] = by_object_layouts(
            methods["Instance baseline"], scenes
        )
    methods["Global descriptor"] = embed_global_descriptor(scenes)
    tables: dict[str, dict] = {
        "Scene retrieval (same scan)": {},
        "Scene retrieval (same room: any of its scans)": {},
        "Temporal scene retrieval (rescan -> other scans of the room)": {},
        "Category recall (room type)": {},
        "Instance matching (within a scan)": {},
        "Temporal instance matching (rescan -> reference)": {},
    }
    titles = list(tables)
    for name, emb in methods.items():
        tables[titles[0]].update(scene_retrieval_table(name, emb))
        tables[titles[1]].update(scene_retrieval_table(name, emb, any_scan=True))
        tables[titles[2]].update(temporal_table(name, emb, TEMPORAL_PAIRS))
        tables[titles[3]].update(category_table(name, emb, categories, TEMPORAL_PAIRS))
        if emb.objects and not emb.scenes_by_objects:  # instance tables once per model
            tables[titles[4]].update(instance_table(name, emb, scenes))
            tables[titles[5]].update(temporal_instance_table(name, emb, scenes, states))
    return tables


def format_report(tables: dict[str, dict]) -> str:
    """Markdown: one table per title, values in percent."""

    parts = []
    for title, rows in tables.items():
        if rows:
            parts.append(f"### {title}\n\n{format_markdown_table(table_rows(rows))}\n")
    return "\n".join(parts)
