"""In-memory search over one modality's vectors: exact, or a FAISS inverted file for large maps.

Scenes may hold several rows (the image baseline: one per mapped frame); a scene's score for
query rows (Q, D) is the mean over the query rows of the best cosine among the scene's rows.
Exact search reads the whole matrix per query (about 23 ms for 100k x 512 float32 on the 2-core
development machine: memory bound), so from ``SearchCfg.ivf_min_rows`` rows on, a FAISS
``IndexIVFFlat`` (inner product, ``nprobe`` cells scanned) shortlists rows; the scenes they belong
to are then scored exactly, so an answer's score is always the exact one.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
from scipy.optimize import linear_sum_assignment

from crossover_ros.mapdb.records import InstanceMatch, InstanceMatching


@dataclass(frozen=True)
class SearchCfg:
    """How the embedded backend searches.

    ``crossover_ros bench map`` measures latency and recall@10 against exact search at these
    settings (docs/benchmarks.md).
    """

    ivf_min_rows: int = 20_000  # below this, exact search is already fast enough
    rows_per_cell: int = 256  # inverted-file cells = rows / rows_per_cell (at most 65536)
    nprobe: int = 16  # cells scanned per query row
    shortlist: int = 64  # rows taken per query row (at least 4 x top_k) before exact scoring
    seed: int = 0


class ModalityIndex:
    """Rows of one modality with the scene, building and room each belongs to; ``matrix``
    arrives ordered by scene, ``counts`` rows each."""

    def __init__(
        self,
        scene_ids: list[str],
        building_ids: list[str],
        room_ids: list[str],
        matrix: np.ndarray,
        counts: np.ndarray,
        cfg: SearchCfg,
    ) -> None:
        self.scene_ids = scene_ids
        self.building_ids = np.asarray(building_ids, dtype=object)
        self.room_ids = room_ids
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.counts = np.asarray(counts, np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.row_scene = np.repeat(np.arange(len(scene_ids)), self.counts)
        self.single_row = bool(len(self.counts) and (self.counts == 1).all())
        self.cfg = cfg
        self._ivf: faiss.IndexIVFFlat | None = None

    # -- exact -------------------------------------------------------------------------------
    def _scores(self, query: np.ndarray, scenes: np.ndarray) -> np.ndarray:
        """Exact scores of the given scene indices."""
        if self.single_row:
            return (query @ self.matrix[scenes].T).mean(axis=0)
        counts = self.counts[scenes]
        rows = np.repeat(self.starts[scenes] - np.cumsum(counts) + counts, counts)
        rows += np.arange(counts.sum())
        similarity = query @ self.matrix[rows].T
        group_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return np.maximum.reduceat(similarity, group_starts, axis=1).mean(axis=0)

    def exact(self, query: np.ndarray, top_k: int, scenes: np.ndarray | None = None):
        """(scene indices, scores) best first; ``scenes`` restricts the search (a filter)."""
        if scenes is None:  # one pass over the matrix, no gather
            scenes = np.arange(len(self.scene_ids))
            similarity = query @ self.matrix.T
            if self.single_row:
                return _top(scenes, similarity.mean(axis=0), top_k)
            scores = np.maximum.reduceat(similarity, self.starts, axis=1).mean(axis=0)
            return _top(scenes, scores, top_k)
        scores = self._scores(query, scenes) if len(scenes) else np.zeros(0, np.float32)
        return _top(scenes, scores, top_k)

    # -- approximate -------------------------------------------------------------------------
    def _build_ivf(self) -> faiss.IndexIVFFlat:
        """An inverted file over every row, trained on a sample (39 rows per cell, as FAISS
        asks for), searched by inner product: the rows are unit vectors, so that is the cosine."""
        n, dim = self.matrix.shape
        cells = int(min(65536, max(1, n // self.cfg.rows_per_cell)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, cells, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = self.cfg.seed
        rng = np.random.default_rng(self.cfg.seed)
        sample = rng.choice(n, size=min(n, 39 * cells), replace=False)
        index.train(self.matrix[np.sort(sample)])
        index.add(self.matrix)
        return index

    def approximate(self, query: np.ndarray, top_k: int):
        """The scenes of each query row's shortlisted rows, scored exactly."""
        if self._ivf is None:
            self._ivf = self._build_ivf()
        self._ivf.nprobe = min(self.cfg.nprobe, self._ivf.nlist)
        shortlist = max(self.cfg.shortlist, 4 * top_k)
        _, rows = self._ivf.search(np.ascontiguousarray(query, dtype=np.float32), shortlist)
        candidates = np.unique(self.row_scene[rows[rows >= 0]])
        return _top(candidates, self._scores(query, candidates), top_k)

    def search(self, query: np.ndarray, top_k: int, building_id: str | None = None):
        if building_id is not None:
            scenes = np.flatnonzero(self.building_ids == building_id)
            return self.exact(query, top_k, scenes)
        if len(self.matrix) >= self.cfg.ivf_min_rows:
            return self.approximate(query, top_k)
        return self.exact(query, top_k)


def _top(scenes: np.ndarray, scores: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_k`` best (scene, score) pairs, best first, ties by scene order."""
    if len(scores) > top_k:
        part = np.argpartition(-scores, top_k - 1)[:top_k]
    else:
        part = np.arange(len(scores))
    order = part[np.lexsort((scenes[part], -scores[part]))]
    return scenes[order], scores[order]


def hungarian_match(
    query: np.ndarray, instance_ids: list[int], stored: np.ndarray, threshold: float
) -> InstanceMatching:
    """One-to-one assignment maximising total cosine; pairs below ``threshold`` stay unmatched."""
    if len(query) == 0 or len(instance_ids) == 0:
        return InstanceMatching([], list(range(len(query))), sorted(instance_ids))
    similarity = query @ stored.T
    # Pairs below the threshold gain nothing, so they cannot pull a good pair apart.
    gain = np.where(similarity >= threshold, similarity - threshold + 1e-6, 0.0)
    rows, cols = linear_sum_assignment(-gain)
    matches = [
        InstanceMatch(int(r), int(instance_ids[c]), float(similarity[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if similarity[r, c] >= threshold
    ]
    matched_q = {m.query_index for m in matches}
    matched_i = {m.instance_id for m in matches}
    return InstanceMatching(
        sorted(matches, key=lambda m: m.query_index),
        [i for i in range(len(query)) if i not in matched_q],
        sorted(i for i in instance_ids if i not in matched_i),
    )


def object_set_similarity(query: np.ndarray, scene: np.ndarray) -> float:
    """How well two sets of unit object vectors, (M, D) and (N, D), explain each other.

    The mean, over both sets, of each object's best cosine in the other set (a symmetric
    Chamfer similarity). Comparing scenes object by object keeps what a mean-pooled scene vector
    blurs: which objects are there, each with its own appearance. An object that has no partner
    (moved out, occluded) costs its share and no more; both directions count, so a scene is not
    chosen for holding many objects.
    """
    if len(query) == 0 or len(scene) == 0:
        raise ValueError("object_set_similarity needs at least one object on each side")
    cosine = query @ scene.T
    return float(0.5 * (cosine.max(axis=1).mean() + cosine.max(axis=0).mean()))


@dataclass(frozen=True)
class LayoutCfg:
    """How two object sets are checked for a common placement (``object_layout_similarity``).

    Chosen on the validation buildings with the shipped model (model card, "Object layouts"):
    of radii 0.2-0.75 m, 0.5 m lost to plain object sets on no modality pair and gained the
    most on average; weights of the set similarity up to 1 and more candidates gained nothing.
    """

    radius: float = 0.5  # metres, in the floor plane: an object this close to its partner agrees
    candidates: int = 2  # partners tried per query object: its most similar scene objects
    set_weight: float = 0.01  # share of object_set_similarity in the score: breaks near-ties
    max_motions: int = 4096  # motions tried at most: those of the most similar proposal pairs


def object_layout_similarity(
    query: np.ndarray,
    query_xyz: np.ndarray,
    scene: np.ndarray,
    scene_xyz: np.ndarray,
    cfg: LayoutCfg = LayoutCfg(),
) -> float:
    """How well two object sets agree in what the objects are *and where they stand*.

    Look-alike rooms hold the same objects in nearly the same places, and a room's later scan
    differs from it by a few moved, missing and new objects: similar sets, told apart by which
    objects sit where. Each query object proposes its ``candidates`` most similar scene objects;
    every two proposals of different objects fix a rigid motion in the floor plane (yaw and
    shift: a robot knows gravity, not the map's frame); the motion that places the most
    similarity (each query object's best cosine among its proposals that land within
    ``radius``) wins. Score: that sum over sqrt(M N), plus ``set_weight`` times the
    object-set similarity. Frames need not agree: the score is the same under any yaw and shift
    of either side. Objects are (M, D) / (N, D) unit rows, positions (M, 3) / (N, 3).
    """
    if len(query) == 0 or len(scene) == 0:
        raise ValueError("object_layout_similarity needs at least one object on each side")
    if len(query_xyz) != len(query) or len(scene_xyz) != len(scene):
        raise ValueError("object_layout_similarity needs one position per object")
    cosine = query @ scene.T
    per_object = min(cfg.candidates, len(scene))
    partner = np.argsort(-cosine, axis=1)[:, :per_object].ravel()  # M x C proposals
    owner = np.repeat(np.arange(len(query)), per_object)  # the query object of each proposal
    weight = np.clip(cosine[owner, partner], 0.0, None)
    source, target = query_xyz[owner, :2], scene_xyz[partner, :2]
    first, second = np.triu_indices(len(owner), 1)
    distinct = (owner[first] != owner[second]) & (partner[first] != partner[second])
    first, second = first[distinct], second[distinct]
    if len(first) > cfg.max_motions:  # large scans: keep the pairs of most similar proposals
        strength = weight[first] * weight[second]
        keep = np.sort(np.argsort(-strength, kind="stable")[: cfg.max_motions])
        first, second = first[keep], second[keep]
    placed = 0.0
    if len(first):
        # the motion taking proposal `first` onto its partner and `second`'s direction onto its
        u, v = source[second] - source[first], target[second] - target[first]
        yaw = np.arctan2(v[:, 1], v[:, 0]) - np.arctan2(u[:, 1], u[:, 0])
        cos, sin = np.cos(yaw), np.sin(yaw)
        rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
        shift = target[first] - np.einsum("hij,hj->hi", rotation, source[first])
        moved = np.einsum("hij,nj->hni", rotation, source) + shift[:, None]
        agrees = np.linalg.norm(moved - target[None], axis=2) < cfg.radius
        per_query = (agrees * weight).reshape(len(first), len(query), per_object).max(axis=2)
        placed = float(per_query.sum(axis=1).max())
    chamfer = object_set_similarity(query, scene)
    return placed / np.sqrt(len(query) * len(scene)) + cfg.set_weight * chamfer
