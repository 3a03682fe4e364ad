"""In-memory search over one modality's vectors: exact, or an IVF index for large maps.

Scenes may hold several rows (the image baseline: one per mapped frame); a scene's score for
query rows (Q, D) is the mean over the query rows of the best cosine among the scene's rows.
Exact search reads the whole matrix per query (about 23 ms for 100k x 512 float32 on the 2-core
development machine: memory bound), so from ``SearchCfg.ivf_min_rows`` rows on, an inverted
file (k-means cells, scanning the ``nprobe`` nearest cells) picks candidate rows. Building the
cells reorders the matrix by cell, so a probe reads contiguous slices (no gathered copy) and the
index costs no memory beyond the centroids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from crossover_ros.mapdb.records import InstanceMatch, InstanceMatching


@dataclass(frozen=True)
class SearchCfg:
    """How the embedded backend searches.

    Defaults, measured with ``bench map`` at 100k scenes on the 2-core machine: top-10 in
    about 2 ms p50 at recall@10 0.95 (nprobe 48: 0.97, 64: 0.98, each costing proportionally).
    """

    ivf_min_rows: int = 20_000  # below this, exact search is already fast enough
    rows_per_cell: int = 256  # k-means cells = rows / rows_per_cell
    nprobe: int = 32  # cells scanned per query row
    kmeans_iters: int = 8
    seed: int = 0


class ModalityIndex:
    """Rows of one modality with the scene, building and room each belongs to.

    ``matrix`` arrives ordered by scene (``counts`` rows each); ``position[r]`` is where the
    scene-ordered row ``r`` lives in ``self.matrix`` (identity until the IVF cells reorder it).
    """

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
        self.matrix = matrix
        self.counts = np.asarray(counts, np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.row_scene = np.repeat(np.arange(len(scene_ids)), self.counts)
        self.position = np.arange(len(matrix))
        self.single_row = bool(len(self.counts) and (self.counts == 1).all())
        self.cfg = cfg
        self._cells: tuple[np.ndarray, np.ndarray] | None = None

    # -- exact -------------------------------------------------------------------------------
    def _scores(self, query: np.ndarray, scenes: np.ndarray) -> np.ndarray:
        """Exact scores of the given scene indices."""
        if self.single_row:
            return (query @ self.matrix[self.position[scenes]].T).mean(axis=0)
        counts = self.counts[scenes]
        rows = np.repeat(self.starts[scenes] - np.cumsum(counts) + counts, counts)
        rows += np.arange(counts.sum())
        similarity = query @ self.matrix[self.position[rows]].T
        group_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return np.maximum.reduceat(similarity, group_starts, axis=1).mean(axis=0)

    def exact(self, query: np.ndarray, top_k: int, scenes: np.ndarray | None = None):
        """(scene indices, scores) best first; ``scenes`` restricts the search (a filter)."""
        if scenes is None:
            scenes = np.arange(len(self.scene_ids))
            if self._cells is None:  # scene order: one pass over the matrix, no gather
                similarity = query @ self.matrix.T
                if self.single_row:
                    return _top(scenes, similarity.mean(axis=0), top_k)
                scores = np.maximum.reduceat(similarity, self.starts, axis=1).mean(axis=0)
                return _top(scenes, scores, top_k)
        scores = self._scores(query, scenes) if len(scenes) else np.zeros(0, np.float32)
        return _top(scenes, scores, top_k)

    # -- approximate -------------------------------------------------------------------------
    def _build_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """k-means cells; reorders ``matrix`` by cell. Returns centroids and cell bounds."""
        rng = np.random.default_rng(self.cfg.seed)
        n = len(self.matrix)
        k = max(1, n // self.cfg.rows_per_cell)
        sample = self.matrix[rng.choice(n, size=min(n, k * 32), replace=False)]
        centroids = sample[rng.choice(len(sample), size=k, replace=False)].copy()
        for _ in range(self.cfg.kmeans_iters):
            assign = np.argmax(sample @ centroids.T, axis=1)
            sums = np.zeros_like(centroids)
            np.add.at(sums, assign, sample)
            empty = np.bincount(assign, minlength=k) == 0
            sums[empty] = centroids[empty]
            centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        assign = np.empty(n, np.int64)
        for begin in range(0, n, 65536):
            assign[begin : begin + 65536] = np.argmax(
                self.matrix[begin : begin + 65536] @ centroids.T, axis=1
            )
        order = np.argsort(assign, kind="stable")
        self.matrix = np.ascontiguousarray(self.matrix[order])
        self.position = np.empty(n, np.int64)
        self.position[order] = np.arange(n)
        self.row_scene = self.row_scene[order]
        bounds = np.searchsorted(assign[order], np.arange(k + 1))
        return centroids.astype(np.float32), bounds

    def approximate(self, query: np.ndarray, top_k: int):
        """Score the rows of the ``nprobe`` nearest cells of every query row.

        Single-row scenes are scored exactly from those rows directly; multi-row scenes found
        there are rescored over all their rows.
        """
        if self._cells is None:
            self._cells = self._build_cells()
        centroids, bounds = self._cells
        nprobe = min(self.cfg.nprobe, len(centroids))
        near = np.argpartition(-(query @ centroids.T), nprobe - 1, axis=1)[:, :nprobe]
        cells = np.unique(near)
        if not self.single_row:
            rows = np.concatenate([np.arange(bounds[c], bounds[c + 1]) for c in cells])
            candidates = np.unique(self.row_scene[rows])
            return _top(candidates, self._scores(query, candidates), top_k)
        similarity = np.concatenate(
            [query @ self.matrix[bounds[c] : bounds[c + 1]].T for c in cells], axis=1
        )
        rows = np.concatenate([np.arange(bounds[c], bounds[c + 1]) for c in cells])
        return _top(self.row_scene[rows], similarity.mean(axis=0), top_k)

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
