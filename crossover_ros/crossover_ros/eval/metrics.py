"""Retrieval and matching metrics of the CrossOver paper (CVPR 2025), in plain numpy.

Shared definitions, used by every metric here:

- Similarity is the cosine of L2-normalised vectors. Only rows that take part (mask true) must be
  finite and non-zero; rows masked out may hold anything (missing modalities are often zero-filled).
- Ranking is by similarity, highest first. The rank of a query's answer is
  ``1 + #{wrong candidates whose similarity >= that of the best acceptable candidate}``: ties with a
  wrong candidate count against the method (pessimistic), so degenerate embeddings (all equal) do
  not score well. Ties among acceptable candidates cost nothing.
- A query is a hit at k when its rank <= k. When k exceeds the number of candidates, recall@k is
  recall over the whole candidate list (every query whose answer is a candidate is a hit): k is
  clamped to the database size, not rejected.
- Recalls are fractions in [0, 1]; the paper prints percentages (see ``report.py``).
- Queries that cannot be scored (modality missing, no acceptable candidate left) are not evaluated
  and are reported as counts, never silently folded into the denominator.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from crossover_ros.errors import CrossoverError

__all__ = [
    "CategoryRecallResult",
    "InstanceMatchingResult",
    "InstanceScene",
    "IntraCategoryResult",
    "MetricsError",
    "RecallResult",
    "SceneInstanceResult",
    "TemporalInstanceResult",
    "category_recall",
    "cosine_similarity",
    "instance_matching",
    "intra_category_recall",
    "scene_retrieval_recall",
    "temporal_instance_matching",
    "temporal_recall",
]

Targets = Sequence[int | Iterable[int]] | np.ndarray
"""Per query: the database index of the true entry, or a collection of acceptable indices."""


class MetricsError(CrossoverError, ValueError):
    """Bad input to a metric: a ValueError, and a package error so the CLI prints one line."""


# ---------------------------------------------------------------------------------------------
# Results


def _recall_dict(recall: Mapping[int, float]) -> dict[str, float]:
    return {f"R@{k}": float(v) for k, v in recall.items()}


@dataclass(frozen=True)
class RecallResult:
    """Recall@k of a retrieval. ``ranks`` is 1-based per query, 0 for queries not evaluated."""

    recall: dict[int, float]
    num_queries: int  # rows given
    num_evaluated: int  # rows in the denominator
    num_query_missing: int  # query modality missing (query mask false)
    num_no_target: int  # no acceptable entry among the candidates (missing, excluded or none)
    ranks: np.ndarray = field(repr=False, compare=False)

    def table_row(self) -> dict[str, float]:
        """The headline numbers, as columns of a metric table."""
        return _recall_dict(self.recall)

    def to_dict(self, per_query: bool = False) -> dict[str, Any]:
        """JSON-serialisable; per-query ranks only when asked."""
        out: dict[str, Any] = {
            "recall": _recall_dict(self.recall),
            "num_queries": self.num_queries,
            "num_evaluated": self.num_evaluated,
            "num_query_missing": self.num_query_missing,
            "num_no_target": self.num_no_target,
        }
        if per_query:
            out["ranks"] = [int(r) for r in self.ranks]
        return out


@dataclass(frozen=True)
class CategoryRecallResult(RecallResult):
    """Category recall: a hit when a top-k entry shares the query's category."""


@dataclass(frozen=True)
class IntraCategoryResult:
    """Recall when each query is ranked only among database entries of its own category.

    ``recall`` is the mean over categories of the per-category recall (the paper's code averages
    categories); ``recall_over_queries`` pools all evaluated queries.
    """

    recall: dict[int, float]
    recall_over_queries: dict[int, float]
    per_category: dict[Hashable, dict[int, float]]
    num_queries_per_category: dict[Hashable, int]
    overall: RecallResult = field(repr=False)

    def table_row(self) -> dict[str, float]:
        return _recall_dict(self.recall)

    def to_dict(self, per_query: bool = False) -> dict[str, Any]:
        return {
            "recall": _recall_dict(self.recall),
            "recall_over_queries": _recall_dict(self.recall_over_queries),
            "per_category": {str(c): _recall_dict(r) for c, r in self.per_category.items()},
            "num_queries_per_category": {
                str(c): n for c, n in self.num_queries_per_category.items()
            },
            "counts": {k: v for k, v in self.overall.to_dict(per_query).items() if k != "recall"},
        }


@dataclass(frozen=True)
class InstanceScene:
    """The objects of one scene in two modalities (or one scan and its rescan).

    ``pairs[m] = (i, j)``: query row i and target row j are the same object. Objects without a
    pair (missing in the other modality, new or removed) are never queries. ``query_mask`` /
    ``target_mask`` mark rows whose modality is present; a pair touching a masked row is dropped.
    ``pair_states`` (temporal only) is "static" or "moved" per pair.
    """

    query: np.ndarray  # (Na, D)
    target: np.ndarray  # (Nb, D)
    pairs: np.ndarray | Sequence[tuple[int, int]]  # (M, 2)
    query_labels: Sequence[Hashable] | None = None  # (Na,)
    target_labels: Sequence[Hashable] | None = None  # (Nb,)
    query_mask: np.ndarray | None = None  # (Na,) bool
    target_mask: np.ndarray | None = None  # (Nb,) bool
    pair_states: Sequence[str] | None = None  # (M,)
    scene_id: str = ""


@dataclass(frozen=True)
class SceneInstanceResult:
    """Per-scene counts: objects scored, hits per k, and how the wrong top-1 answers split."""

    scene_id: str
    num_objects: int
    num_candidates: int
    hits: dict[int, int]
    top1_ratio: float  # hits[1] / num_objects
    same_label_errors: int | None  # wrong top-1 with the query's label (None: no labels)
    different_label_errors: int | None
    num_pairs_missing: int  # pairs dropped because a row's modality is missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "scene_id": self.scene_id,
            "num_objects": self.num_objects,
            "num_candidates": self.num_candidates,
            "hits": {f"top{k}": v for k, v in self.hits.items()},
            "top1_ratio": self.top1_ratio,
            "same_label_errors": self.same_label_errors,
            "different_label_errors": self.different_label_errors,
            "num_pairs_missing": self.num_pairs_missing,
        }


def _pct_key(t: float) -> str:
    return f"R@{round(t * 100):d}%"


@dataclass(frozen=True)
class InstanceMatchingResult:
    """Instance matching over scenes.

    - ``recall[k]``: share of all scored objects whose partner is in the top k (pooled over
      objects; this is what the paper's tables call top-k recall).
    - ``recall_scene_mean[k]``: the mean over scenes of the per-scene share (how the public code
      averages a batch of scenes).
    - ``scene_recall[t]``: share of scenes whose top-1 ratio is >= t (R@25/50/75 for t = 0.25,
      0.5, 0.75); a ratio exactly at t counts.
    - ``same_label_error`` + ``different_label_error`` = 1 - ``recall[1]`` (shares of all objects).
    """

    recall: dict[int, float]
    recall_scene_mean: dict[int, float]
    scene_recall: dict[float, float]
    same_label_error: float | None
    different_label_error: float | None
    num_objects: int
    num_scenes: int  # scenes with at least one scored object (the R@t denominator)
    num_scenes_skipped: int  # scenes with no scored object
    scenes: tuple[SceneInstanceResult, ...] = field(repr=False)

    def table_row(self) -> dict[str, float | None]:
        row: dict[str, float | None] = {f"top{k}": v for k, v in self.recall.items()}
        row.update({_pct_key(t): v for t, v in self.scene_recall.items()})
        return row

    def to_dict(self, per_scene: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "recall": {f"top{k}": v for k, v in self.recall.items()},
            "recall_scene_mean": {f"top{k}": v for k, v in self.recall_scene_mean.items()},
            "scene_recall": {_pct_key(t): v for t, v in self.scene_recall.items()},
            "same_label_error": self.same_label_error,
            "different_label_error": self.different_label_error,
            "num_objects": self.num_objects,
            "num_scenes": self.num_scenes,
            "num_scenes_skipped": self.num_scenes_skipped,
        }
        if per_scene:
            out["scenes"] = [s.to_dict() for s in self.scenes]
        return out


@dataclass(frozen=True)
class TemporalInstanceResult:
    """Temporal instance matching: all scored objects, then static and moved ones apart.

    ``static_recall`` / ``dynamic_recall`` pool objects over scene pairs (None when there is no
    such object). Scene-level R@t in ``overall`` counts static and moved objects together.
    """

    overall: InstanceMatchingResult
    static_recall: dict[int, float] | None
    dynamic_recall: dict[int, float] | None
    num_static: int
    num_dynamic: int

    def table_row(self) -> dict[str, float | None]:
        row = self.overall.table_row()
        row["static top1"] = self.static_recall[1] if self.static_recall else None
        row["dynamic top1"] = self.dynamic_recall[1] if self.dynamic_recall else None
        return row

    def to_dict(self, per_scene: bool = False) -> dict[str, Any]:
        def fmt(r: dict[int, float] | None) -> dict[str, float] | None:
            return None if r is None else {f"top{k}": v for k, v in r.items()}

        return {
            "overall": self.overall.to_dict(per_scene),
            "static_recall": fmt(self.static_recall),
            "dynamic_recall": fmt(self.dynamic_recall),
            "num_static": self.num_static,
            "num_dynamic": self.num_dynamic,
        }


# ---------------------------------------------------------------------------------------------
# Validation and the shared ranking rule


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks:
        raise MetricsError("ks is empty: ask for at least one k")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise MetricsError(f"every k must be a positive integer, got {k!r}")
    if len(set(ks)) != len(ks):
        raise MetricsError(f"ks has duplicates: {ks}")
    return tuple(int(k) for k in ks)


def _check_mask(mask: np.ndarray | Sequence[bool] | None, n: int, name: str) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    m = np.asarray(mask)
    if m.shape != (n,):
        raise MetricsError(f"{name} has shape {m.shape}, expected ({n},)")
    if m.dtype != bool:
        raise MetricsError(f"{name} must be boolean, got dtype {m.dtype}")
    return m


def _check_embeddings(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise MetricsError(f"{name} must be 2-D (rows, dim), got shape {a.shape}")
    if a.shape[0] == 0:
        raise MetricsError(f"{name} is empty (0 rows)")
    if a.shape[1] == 0:
        raise MetricsError(f"{name} has dimension 0")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise MetricsError(f"{name} must be real numbers, got dtype {a.dtype}")
    return a.astype(np.float64, copy=False)


def _normalise_active(x: np.ndarray, active: np.ndarray, name: str) -> np.ndarray:
    """L2-normalise the active rows; inactive rows become zero and are never ranked."""
    out = np.zeros_like(x)
    rows = x[active]
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        idx = np.flatnonzero(active)[bad]
        raise MetricsError(f"{name} has NaN or inf in rows {idx[:10].tolist()}")
    norms = np.linalg.norm(rows, axis=1)
    if (norms == 0).any():
        idx = np.flatnonzero(active)[norms == 0]
        raise MetricsError(f"{name} has zero vectors in rows {idx[:10].tolist()}: cannot normalise")
    out[active] = rows / norms[:, None]
    return out


def _scores(
    query: np.ndarray | None,
    database: np.ndarray | None,
    query_mask: np.ndarray | None,
    database_mask: np.ndarray | None,
    similarity: np.ndarray | None,
) -> np.ndarray:
    """(Q, S) scores: the cosine of the embedding rows, or ``similarity`` as given by a scorer
    that is not the cosine of two vectors (scenes compared by their object sets)."""
    if similarity is None:
        if query is None or database is None:
            raise MetricsError("give query and database embeddings, or a similarity matrix")
        return cosine_similarity(query, database, query_mask, database_mask)
    if query is not None or database is not None:
        raise MetricsError("give query and database embeddings or a similarity matrix, not both")
    sim = np.asarray(similarity)
    if sim.ndim != 2 or 0 in sim.shape:
        raise MetricsError(f"similarity must be a non-empty (Q, S) matrix, got shape {sim.shape}")
    if not np.issubdtype(sim.dtype, np.floating) and not np.issubdtype(sim.dtype, np.integer):
        raise MetricsError(f"similarity must be real numbers, got dtype {sim.dtype}")
    qm = _check_mask(query_mask, sim.shape[0], "query_mask")
    dm = _check_mask(database_mask, sim.shape[1], "database_mask")
    if not np.isfinite(sim[np.ix_(qm, dm)]).all():
        raise MetricsError("similarity has NaN or inf between present query and database rows")
    return sim.astype(np.float64, copy=False)


def cosine_similarity(
    query: np.ndarray,
    database: np.ndarray,
    query_mask: np.ndarray | None = None,
    database_mask: np.ndarray | None = None,
) -> np.ndarray:
    """(Q, S) cosine similarities of L2-normalised rows; masked-out rows give 0 (never used)."""
    q = _check_embeddings(query, "query")
    d = _check_embeddings(database, "database")
    if q.shape[1] != d.shape[1]:
        raise MetricsError(f"dimension mismatch: query has {q.shape[1]}, database {d.shape[1]}")
    qm = _check_mask(query_mask, q.shape[0], "query_mask")
    dm = _check_mask(database_mask, d.shape[0], "database_mask")
    return _normalise_active(q, qm, "query") @ _normalise_active(d, dm, "database").T


def _best_ranks(sim: np.ndarray, acceptable: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Per row: 1 + #{wrong candidates >= best acceptable candidate}; 0 if none acceptable."""
    good = acceptable & candidate
    has = good.any(axis=1)
    best = np.where(good, sim, -np.inf).max(axis=1)
    wrong = candidate & ~acceptable
    beaten = (wrong & (sim >= best[:, None])).sum(axis=1)
    return np.where(has, beaten + 1, 0)


def _targets_matrix(targets: Targets, num_queries: int, num_db: int, name: str) -> np.ndarray:
    """(Q, S) bool: which database entries are an acceptable answer for each query."""
    if isinstance(targets, np.ndarray) and targets.ndim != 1:
        raise MetricsError(f"{name} must be one entry per query, got shape {targets.shape}")
    if len(targets) != num_queries:
        raise MetricsError(f"{name} has {len(targets)} entries for {num_queries} queries")
    out = np.zeros((num_queries, num_db), dtype=bool)
    for q, t in enumerate(targets):
        idx = [t] if isinstance(t, int | np.integer) else list(t)
        for i in idx:
            if isinstance(i, bool) or not isinstance(i, int | np.integer):
                raise MetricsError(f"{name}[{q}] holds {i!r}, not an integer index")
            if not 0 <= i < num_db:
                raise MetricsError(f"{name}[{q}] = {i} is outside the database (size {num_db})")
        if len(set(int(i) for i in idx)) != len(idx):
            raise MetricsError(f"{name}[{q}] has duplicate ground-truth indices: {idx}")
        out[q, idx] = True
    return out


def _exclusion_matrix(
    num_queries: int,
    num_db: int,
    query_db_index: Sequence[int] | np.ndarray | None,
    exclude: np.ndarray | None,
) -> np.ndarray:
    """(Q, S) bool of database entries a query may not retrieve (for example itself)."""
    out = np.zeros((num_queries, num_db), dtype=bool)
    if exclude is not None:
        ex = np.asarray(exclude)
        if ex.shape != (num_queries, num_db) or ex.dtype != bool:
            raise MetricsError(
                f"exclude must be a ({num_queries}, {num_db}) boolean array, "
                f"got {ex.dtype} {ex.shape}"
            )
        out |= ex
    if query_db_index is not None:
        own = np.asarray(query_db_index)
        if own.shape != (num_queries,) or not np.issubdtype(own.dtype, np.integer):
            raise MetricsError(f"query_db_index must be {num_queries} integers, got {own.shape}")
        if (own < 0).any() or (own >= num_db).any():
            raise MetricsError(f"query_db_index is outside the database (size {num_db})")
        out[np.arange(num_queries), own] = True
    return out


def _recall_from_ranks(ranks: np.ndarray, ks: tuple[int, ...]) -> dict[int, float]:
    return {k: float(np.mean(ranks <= k)) for k in ks}


def _retrieve(
    sim: np.ndarray,
    acceptable: np.ndarray | None,
    targets: Targets | None,
    *,
    ks: Sequence[int],
    query_mask: np.ndarray | None,
    database_mask: np.ndarray | None,
    excluded: np.ndarray | None,
    restrict: np.ndarray | None = None,
    result_type: type[RecallResult] = RecallResult,
) -> RecallResult:
    ks = _check_ks(ks)
    nq, ns = sim.shape
    qm = _check_mask(query_mask, nq, "query_mask")
    dm = _check_mask(database_mask, ns, "database_mask")
    if acceptable is None:
        assert targets is not None
        acceptable = _targets_matrix(targets, nq, ns, "targets")
    candidate = np.broadcast_to(dm, (nq, ns)).copy()
    if excluded is not None:
        candidate &= ~excluded
    if restrict is not None:
        candidate &= restrict
    ranks = np.where(qm, _best_ranks(sim, acceptable, candidate), 0)
    evaluated = ranks > 0
    n_missing = int((~qm).sum())
    n_no_target = int((qm & ~evaluated).sum())
    if not evaluated.any():
        raise MetricsError(
            f"no query left to evaluate: {nq} queries, {n_missing} with the modality missing, "
            f"{n_no_target} without an acceptable database entry"
        )
    return result_type(
        recall=_recall_from_ranks(ranks[evaluated], ks),
        num_queries=nq,
        num_evaluated=int(evaluated.sum()),
        num_query_missing=n_missing,
        num_no_target=n_no_target,
        ranks=ranks,
    )


# ---------------------------------------------------------------------------------------------
# Scene retrieval


def scene_retrieval_recall(
    query: np.ndarray | None,
    database: np.ndarray | None,
    targets: Targets,
    *,
    ks: Sequence[int] = (1, 5, 10, 20),
    query_mask: np.ndarray | None = None,
    database_mask: np.ndarray | None = None,
    similarity: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> RecallResult:
    """Cross-modal scene retrieval: recall@k of the true scene among the database.

    Hit at k: an entry of ``targets[q]`` (an index or a collection of indices) ranks <= k among
    the database rows whose modality is present (``database_mask``) and not in ``exclude[q]``.
    Queries without their modality, or whose acceptable entries are all missing or excluded, are
    not evaluated (counted). The public code keeps only scans that have *both* modalities, on both
    sides; pass ``query_mask & database_mask`` as both masks to reproduce that.

    Every function of this section ranks by the cosine of ``query`` and ``database`` rows, or by
    a precomputed (Q, S) ``similarity`` (then both embeddings are ``None``): scores of a scorer
    that is not the cosine of two vectors, such as scenes compared by their object sets.
    """
    sim = _scores(query, database, query_mask, database_mask, similarity)
    return _retrieve(
        sim,
        None,
        targets,
        ks=ks,
        query_mask=query_mask,
        database_mask=database_mask,
        excluded=exclude,
    )


def temporal_recall(
    query: np.ndarray | None,
    database: np.ndarray | None,
    positives: Targets,
    *,
    query_db_index: Sequence[int] | np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    ks: Sequence[int] = (1, 5, 10),
    query_mask: np.ndarray | None = None,
    database_mask: np.ndarray | None = None,
    similarity: np.ndarray | None = None,
) -> RecallResult:
    """Temporal scene recall: from one scan, find another scan of the same place.

    ``positives[q]``: database indices of the other scans of the query's scene. The query's own
    entry (``query_db_index[q]``) and anything in ``exclude[q]`` cannot be retrieved; at least one
    of the two must be given. Queries with no positive left (scene scanned once) are not
    evaluated (counted as ``num_no_target``), as in the public code. A positive that is also
    excluded is an error.
    """
    if query_db_index is None and exclude is None:
        raise MetricsError(
            "temporal recall needs query_db_index or exclude: the query must not match itself"
        )
    sim = _scores(query, database, query_mask, database_mask, similarity)
    nq, ns = sim.shape
    ex = _exclusion_matrix(nq, ns, query_db_index, exclude)
    acceptable = _targets_matrix(positives, nq, ns, "positives")
    clash = np.argwhere(acceptable & ex)
    if len(clash):
        q, s = clash[0]
        raise MetricsError(f"positives[{q}] holds {s}, which is excluded (the query itself?)")
    return _retrieve(
        sim,
        acceptable,
        None,
        ks=ks,
        query_mask=query_mask,
        database_mask=database_mask,
        excluded=ex,
    )


def _check_categories(cats: Sequence[Hashable], n: int, name: str) -> np.ndarray:
    if len(cats) != n:
        raise MetricsError(f"{name} has {len(cats)} entries for {n} rows")
    out = np.empty(n, dtype=object)
    for i, c in enumerate(cats):
        out[i] = c
    return out


def _same_category(qc: np.ndarray, dc: np.ndarray) -> np.ndarray:
    return np.array([[a == b for b in dc] for a in qc], dtype=bool).reshape(len(qc), len(dc))


def category_recall(
    query: np.ndarray | None,
    database: np.ndarray | None,
    query_categories: Sequence[Hashable],
    database_categories: Sequence[Hashable],
    *,
    query_db_index: Sequence[int] | np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    ks: Sequence[int] = (1, 5, 10),
    query_mask: np.ndarray | None = None,
    database_mask: np.ndarray | None = None,
    similarity: np.ndarray | None = None,
) -> CategoryRecallResult:
    """Category recall: hit at k when a top-k database entry has the query's category (room type).

    The public code removes the query's own scene from the ranking, so a hit means *another*
    scene of the same type: pass ``query_db_index`` to do the same. Without it, retrieving the
    true scene is also a hit.
    """
    sim = _scores(query, database, query_mask, database_mask, similarity)
    nq, ns = sim.shape
    qc = _check_categories(query_categories, nq, "query_categories")
    dc = _check_categories(database_categories, ns, "database_categories")
    ex = _exclusion_matrix(nq, ns, query_db_index, exclude)
    result = _retrieve(
        sim,
        _same_category(qc, dc),
        None,
        ks=ks,
        query_mask=query_mask,
        database_mask=database_mask,
        excluded=ex,
        result_type=CategoryRecallResult,
    )
    assert isinstance(result, CategoryRecallResult)
    return result


def intra_category_recall(
    query: np.ndarray | None,
    database: np.ndarray | None,
    targets: Targets,
    query_categories: Sequence[Hashable],
    database_categories: Sequence[Hashable],
    *,
    ks: Sequence[int] = (1, 3, 5),
    query_mask: np.ndarray | None = None,
    database_mask: np.ndarray | None = None,
    similarity: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> IntraCategoryResult:
    """Intra-category recall: the true scene ranked only among database scenes of the query's
    category, so the metric measures telling apart rooms of one type.

    Per category: recall over its evaluated queries; ``recall`` is their unweighted mean over
    categories (as in the public code). A target whose category differs from the query's is an
    error (it could never be found).
    """
    sim = _scores(query, database, query_mask, database_mask, similarity)
    nq, ns = sim.shape
    qc = _check_categories(query_categories, nq, "query_categories")
    dc = _check_categories(database_categories, ns, "database_categories")
    same = _same_category(qc, dc)
    acceptable = _targets_matrix(targets, nq, ns, "targets")
    off = np.argwhere(acceptable & ~same)
    if len(off):
        q, s = off[0]
        raise MetricsError(f"targets[{q}] = {s} has category {dc[s]!r} but the query has {qc[q]!r}")
    overall = _retrieve(
        sim,
        acceptable,
        None,
        ks=ks,
        query_mask=query_mask,
        database_mask=database_mask,
        excluded=None if exclude is None else _exclusion_matrix(nq, ns, None, exclude),
        restrict=same,
    )
    ks_t = tuple(overall.recall)
    evaluated = overall.ranks > 0
    per_category: dict[Hashable, dict[int, float]] = {}
    counts: dict[Hashable, int] = {}
    for c in dict.fromkeys(qc[evaluated].tolist()):
        sel = evaluated & np.array([x == c for x in qc], dtype=bool)
        per_category[c] = _recall_from_ranks(overall.ranks[sel], ks_t)
        counts[c] = int(sel.sum())
    macro = {k: float(np.mean([r[k] for r in per_category.values()])) for k in ks_t}
    return IntraCategoryResult(
        recall=macro,
        recall_over_queries=dict(overall.recall),
        per_category=per_category,
        num_queries_per_category=counts,
        overall=overall,
    )


# ---------------------------------------------------------------------------------------------
# Instance matching


def _check_pairs(
    pairs: np.ndarray | Sequence[tuple[int, int]], na: int, nb: int, sid: str
) -> np.ndarray:
    p = np.asarray(pairs)
    if p.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if p.ndim != 2 or p.shape[1] != 2 or not np.issubdtype(p.dtype, np.integer):
        raise MetricsError(f"scene {sid!r}: pairs must be (M, 2) integers, got {p.dtype} {p.shape}")
    if (p[:, 0] < 0).any() or (p[:, 0] >= na).any():
        raise MetricsError(f"scene {sid!r}: a pair's query index is outside 0..{na - 1}")
    if (p[:, 1] < 0).any() or (p[:, 1] >= nb).any():
        raise MetricsError(f"scene {sid!r}: a pair's target index is outside 0..{nb - 1}")
    for col, side in ((0, "query"), (1, "target")):
        vals, cnt = np.unique(p[:, col], return_counts=True)
        if (cnt > 1).any():
            raise MetricsError(
                f"scene {sid!r}: duplicate ground truth, {side} object {int(vals[cnt > 1][0])} "
                "appears in more than one pair"
            )
    return p.astype(np.int64)


def _score_scene(
    scene: InstanceScene,
    index: int,
    ks: tuple[int, ...],
    unmatched_targets: Literal["ignore", "distractor"],
) -> tuple[SceneInstanceResult, np.ndarray, np.ndarray]:
    """Score one scene; also return the per-pair ranks (0 = dropped) and the kept pairs mask."""
    sid = scene.scene_id or f"#{index}"
    qa = _check_embeddings(scene.query, f"scene {sid!r} query")
    tb = _check_embeddings(scene.target, f"scene {sid!r} target")
    if qa.shape[1] != tb.shape[1]:
        raise MetricsError(
            f"scene {sid!r}: dimension mismatch, query {qa.shape[1]} vs target {tb.shape[1]}"
        )
    na, nb = len(qa), len(tb)
    pairs = _check_pairs(scene.pairs, na, nb, sid)
    qm = _check_mask(scene.query_mask, na, f"scene {sid!r} query_mask")
    tm = _check_mask(scene.target_mask, nb, f"scene {sid!r} target_mask")
    kept = qm[pairs[:, 0]] & tm[pairs[:, 1]]
    p = pairs[kept]
    candidate = tm.copy()
    if unmatched_targets == "ignore":
        candidate = np.zeros(nb, dtype=bool)
        candidate[p[:, 1]] = True
    elif unmatched_targets != "distractor":
        raise MetricsError(
            f"unmatched_targets must be 'ignore' or 'distractor', got {unmatched_targets!r}"
        )
    q_active = np.zeros(na, dtype=bool)
    q_active[p[:, 0]] = True
    qn = _normalise_active(qa, q_active, f"scene {sid!r} query")
    tn = _normalise_active(tb, candidate, f"scene {sid!r} target")
    sim = qn[p[:, 0]] @ tn.T  # (M', Nb)
    acceptable = np.zeros_like(sim, dtype=bool)
    acceptable[np.arange(len(p)), p[:, 1]] = True
    ranks = _best_ranks(sim, acceptable, np.broadcast_to(candidate, sim.shape))
    all_ranks = np.zeros(len(pairs), dtype=np.int64)
    all_ranks[kept] = ranks

    same_err = diff_err = None
    if scene.query_labels is not None or scene.target_labels is not None:
        if scene.query_labels is None or scene.target_labels is None:
            raise MetricsError(f"scene {sid!r}: give both query_labels and target_labels, or none")
        ql = _check_categories(scene.query_labels, na, f"scene {sid!r} query_labels")
        tl = _check_categories(scene.target_labels, nb, f"scene {sid!r} target_labels")
        same_err = diff_err = 0
        if len(p):
            # the top-1 answer: highest similarity, ties to a wrong candidate (pessimistic)
            order_sim = np.where(candidate, sim, -np.inf)
            for m in np.flatnonzero(ranks != 1):
                row = order_sim[m].copy()
                row[p[m, 1]] = -np.inf
                top = int(np.argmax(row))
                if ql[p[m, 0]] == tl[top]:
                    same_err += 1
                else:
                    diff_err += 1
    n = len(p)
    hits = {k: int((ranks <= k).sum()) for k in ks}
    res = SceneInstanceResult(
        scene_id=sid,
        num_objects=n,
        num_candidates=int(candidate.sum()),
        hits=hits,
        top1_ratio=hits[1] / n if n else 0.0,
        same_label_errors=same_err,
        different_label_errors=diff_err,
        num_pairs_missing=int((~kept).sum()),
    )
    return res, all_ranks, kept


def _check_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    ts = tuple(float(t) for t in thresholds)
    if not ts:
        raise MetricsError("thresholds is empty")
    if any(not 0.0 < t <= 1.0 for t in ts):
        raise MetricsError(f"thresholds must lie in (0, 1], got {ts}")
    return ts


def _summarise(
    scenes: list[SceneInstanceResult], ks: tuple[int, ...], thresholds: tuple[float, ...]
) -> InstanceMatchingResult:
    scored = [s for s in scenes if s.num_objects > 0]
    if not scored:
        raise MetricsError(f"no object left to match in {len(scenes)} scenes")
    total = sum(s.num_objects for s in scored)
    recall = {k: sum(s.hits[k] for s in scored) / total for k in ks}
    scene_mean = {k: float(np.mean([s.hits[k] / s.num_objects for s in scored])) for k in ks}
    # ratio >= t, compared as hits >= t * n with a tolerance so that exact boundaries count
    scene_recall = {
        t: sum(s.hits[1] >= t * s.num_objects - 1e-9 for s in scored) / len(scored)
        for t in thresholds
    }
    labelled = [s.same_label_errors is not None for s in scored]
    if any(labelled) and not all(labelled):
        raise MetricsError("labels are given for some scenes only: give them for all or none")
    same = diff = None
    if all(labelled):
        same = sum(s.same_label_errors or 0 for s in scored) / total
        diff = sum(s.different_label_errors or 0 for s in scored) / total
    return InstanceMatchingResult(
        recall=recall,
        recall_scene_mean=scene_mean,
        scene_recall=scene_recall,
        same_label_error=same,
        different_label_error=diff,
        num_objects=total,
        num_scenes=len(scored),
        num_scenes_skipped=len(scenes) - len(scored),
        scenes=tuple(scenes),
    )


def instance_matching(
    scenes: Sequence[InstanceScene],
    *,
    ks: Sequence[int] = (1, 3),
    thresholds: Sequence[float] = (0.25, 0.5, 0.75),
    unmatched_targets: Literal["ignore", "distractor"] = "ignore",
) -> InstanceMatchingResult:
    """Cross-modal instance matching inside each scene.

    Each paired query object is ranked against the scene's target objects; a hit at k when its
    partner ranks <= k. Candidates are the target objects that have a pair (objects missing in
    either modality are ignored, as in the public code); ``unmatched_targets="distractor"`` keeps
    unpaired, present target objects as wrong candidates. Scenes with no scored object are
    skipped (counted). Wrong top-1 answers split by whether the answer's label equals the query's.
    """
    ks_t = _check_ks(ks)
    if 1 not in ks_t:
        ks_t = (1, *ks_t)  # top-1 drives R@t and the error split
    ts = _check_thresholds(thresholds)
    if len(scenes) == 0:
        raise MetricsError("no scenes given")
    results = [_score_scene(s, i, ks_t, unmatched_targets)[0] for i, s in enumerate(scenes)]
    return _summarise(results, ks_t, ts)


def temporal_instance_matching(
    scenes: Sequence[InstanceScene],
    *,
    ks: Sequence[int] = (1, 3),
    thresholds: Sequence[float] = (0.25, 0.5, 0.75),
    unmatched_targets: Literal["ignore", "distractor"] = "ignore",
) -> TemporalInstanceResult:
    """Temporal instance matching: objects of a scan (query) against its rescan (target).

    Same rule as :func:`instance_matching`; ``pairs`` hold only objects present in both scans
    (new and removed objects are not queries, and by default not candidates either; the public
    code keeps new rescan objects as candidates: ``unmatched_targets="distractor"``). Each pair's
    ``pair_states`` entry is "static" or "moved"; recall is also reported per state.
    """
    ks_t = _check_ks(ks)
    if 1 not in ks_t:
        ks_t = (1, *ks_t)
    ts = _check_thresholds(thresholds)
    if len(scenes) == 0:
        raise MetricsError("no scene pairs given")
    results: list[SceneInstanceResult] = []
    static_ranks: list[np.ndarray] = []
    moved_ranks: list[np.ndarray] = []
    for i, scene in enumerate(scenes):
        sid = scene.scene_id or f"#{i}"
        res, ranks, kept = _score_scene(scene, i, ks_t, unmatched_targets)
        if scene.pair_states is None or len(scene.pair_states) != len(ranks):
            raise MetricsError(f"scene {sid!r}: pair_states must give one state per pair")
        states = np.asarray(list(scene.pair_states), dtype=object).reshape(len(ranks))
        bad = [s for s in states if s not in ("static", "moved")]
        if bad:
            raise MetricsError(f"scene {sid!r}: pair state {bad[0]!r} is not 'static' or 'moved'")
        results.append(res)
        static_ranks.append(ranks[kept & (states == "static")])
        moved_ranks.append(ranks[kept & (states == "moved")])
    overall = _summarise(results, ks_t, ts)
    st = np.concatenate(static_ranks)
    mv = np.concatenate(moved_ranks)
    return TemporalInstanceResult(
        overall=overall,
        static_recall=_recall_from_ranks(st, ks_t) if len(st) else None,
        dynamic_recall=_recall_from_ranks(mv, ks_t) if len(mv) else None,
        num_static=len(st),
        num_dynamic=len(mv),
    )


# ---------------------------------------------------------------------------------------------
# Calibration


@dataclass(frozen=True)
class ReliabilityBin:
    """Answers whose confidence fell in [low, high): how many, how sure, how often right."""

    low: float
    high: float
    count: int
    mean_confidence: float | None
    accuracy: float | None


@dataclass(frozen=True)
class Calibration:
    """Whether a confidence of p means right p of the time (Guo et al. 2017, 10 equal bins).

    ``ece``: the expected calibration error, the count-weighted mean gap between confidence and
    accuracy over the bins; 0 is perfect, a robot can act on the number as a probability.
    """

    ece: float | None
    bins: list[ReliabilityBin]
    answers: int


def calibration(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> Calibration:
    """Reliability of ``confidences`` (in [0, 1]) given whether each answer was ``correct``."""
    p = np.asarray(confidences, np.float64)
    right = np.asarray(correct, bool)
    if p.shape != right.shape or p.ndim != 1:
        raise MetricsError(f"{p.shape} confidences for {right.shape} answers")
    if len(p) and (not np.isfinite(p).all() or p.min() < 0 or p.max() > 1):
        raise MetricsError("confidences must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.minimum(np.searchsorted(edges, p, side="right") - 1, bins - 1)
    out, gap = [], 0.0
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        mean = float(p[members].mean()) if count else None
        accuracy = float(right[members].mean()) if count else None
        if count:
            gap += count * abs(mean - accuracy)
        out.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), count, mean, accuracy))
    return Calibration(gap / len(p) if len(p) else None, out, len(p))
