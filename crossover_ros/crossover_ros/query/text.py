"""Find a map's rooms and objects by a sentence: "the lamp on the table next to the window".

A sentence is parsed (``query.parse``) into the object it asks for and its relations; the
words that name objects are matched to the map's own labels by their MiniLM embeddings (so
"couch" finds a map's "sofa", and a ScanNet map's labels work as well as generated ones). Each
stored instance is then scored by how well its label, its colour (the median of the map's
cloud inside its box) and the relations (on, near, in the corner, bigger / smaller, checked on
the stored boxes) fit, plus the CrossOver similarity of the sentence, embedded by the model's
referral encoders, to the instance's and the room's stored embeddings, which also ranks what the
words alone leave level. A room scores by the best fit of each object the sentence names in it.

Everything per instance and per pair of instances in a room is computed once at construction,
so a query is one text-backbone call (cached words skipped) and a few vector operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from crossover_ros.errors import QueryError
from crossover_ros.mapdb.base import MapBase, fingerprint_error
from crossover_ros.mapdb.open import open_map
from crossover_ros.model import modalities as mod
from crossover_ros.model.crossover import CrossOverModel
from crossover_ros.model.registry import checkpoint_path, model_for_fingerprint
from crossover_ros.model.text_backbone import TextBackbone
from crossover_ros.query.parse import (
    BIGGER,
    CORNER,
    ON,
    SMALLER,
    Description,
    Relation,
    colour_rgb,
    parse,
    words,
)

# Parts of a room (not objects): found in the stored cloud when the map has no instances of them.
_CACHE_SIZE = 20000  # phrase vectors kept between queries (1.5 kB each)
_WINDOW_WORDS = frozenset({"window", "windowsill", "glass"})
_DOOR_WORDS = frozenset({"door", "doorway", "entrance", "entry", "exit", "way"})


@dataclass(frozen=True)
class TextQueryCfg:
    """Weights and distances of the scoring; chosen on the validation buildings (seed 400)."""

    label_low: float = 0.45  # MiniLM cosine of a word and a label that means "not this"
    label_high: float = 0.85  # ... and "this" (an exact label or plural is 1)
    min_label: float = 0.5  # a run of words names a label at all
    longer_bonus: float = 0.1  # per word: "office chair" before "chair"
    label_weight: float = 2.0
    colour_weight: float = 0.8
    colour_sigma: float = 0.2  # sRGB distance (0..1 per channel) of a colour a quarter off
    relation_weight: float = 1.0
    near_m: float = 0.5  # a footprint gap that still counts as next to
    on_tolerance_m: float = 0.12  # bottom of one box to the top of the other
    wall_m: float = 0.2
    opening_near_m: float = 1.0  # an object this near a window or door is by it
    object_embedding_weight: float = 0.5
    scene_embedding_weight: float = 1.0
    scene_modalities: tuple[str, ...] = (mod.SCENE, mod.POINT_CLOUD)


@dataclass(frozen=True)
class RoomHit:
    """A ranked room. ``centre``: the middle of its floor, in the building (map) frame when
    ``in_map_frame`` (the map knows the room's pose in the building), else in the room's."""

    scene_id: str
    building_id: str
    room_id: str
    score: float
    centre: tuple[float, float, float]
    in_map_frame: bool


@dataclass(frozen=True)
class ObjectHit:
    """A ranked map instance; ``position`` and the axis-aligned box as for :class:`RoomHit`."""

    scene_id: str
    building_id: str
    room_id: str
    instance_id: int
    label: str
    score: float
    position: tuple[float, float, float]
    box_min: tuple[float, float, float]
    box_max: tuple[float, float, float]
    in_map_frame: bool


class TextEmbedder(Protocol):
    """What a text backbone must offer (``model.text_backbone.TextBackbone`` does)."""

    def encode(self, sentences: list[str]) -> np.ndarray:
        """(N, 384) unit vectors."""
        ...


def _closeness(distance: np.ndarray, scale: float) -> np.ndarray:
    """1 at 0 m, 0.5 at ``scale``, falling off smoothly."""
    return 1.0 / (1.0 + (np.maximum(distance, 0.0) / scale) ** 2)


def _singular(word: str) -> str:
    for tail, repl in (("ies", "y"), ("shes", "sh"), ("ches", "ch"), ("ses", "s"), ("s", "")):
        if word.endswith(tail) and len(word) > len(tail) + 2:
            return word[: -len(tail)] + repl
    return word


def _to_map(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ pose[:3, :3].T + pose[:3, 3]


class TextQuery:
    """An open map's rooms and instances, ready to be searched by sentences.

    ``text`` embeds words and sentences (the model's MiniLM ``TextBackbone``); ``model`` is the
    map's CrossOver model, whose referral encoders compare the sentence with the stored
    embeddings (None: a map of another model, found by labels and geometry alone). The map is
    read once: scenes added later are seen by a new ``TextQuery``.
    """

    def __init__(
        self,
        mapdb: MapBase,
        text: TextEmbedder,
        model: CrossOverModel | None = None,
        cfg: TextQueryCfg | None = None,
    ) -> None:
        self.cfg = cfg or TextQueryCfg()
        self._text = text
        self._model = model
        self.records = mapdb.scenes()
        self._read_instances(mapdb)
        self._pairs()
        self._read_embeddings(mapdb)
        self.vocab = sorted(set(self.labels))
        self._vocab_index = {label: i for i, label in enumerate(self.vocab)}
        self.label_index = np.array([self._vocab_index[x] for x in self.labels], np.int64)
        self._cache: dict[str, np.ndarray] = {}
        vectors = self._text.encode(self.vocab) if self.vocab else np.zeros((0, 384), np.float32)
        self._vocab_vectors = vectors
        self._cache.update(zip(self.vocab, vectors, strict=True))
        self._sizes()

    # -- construction ------------------------------------------------------------------------
    def _read_instances(self, mapdb: MapBase) -> None:
        """Per instance: scene, label, box, colour; per scene: its extent and pose."""
        scene_of, labels, ids, lows, highs, colours = [], [], [], [], [], []
        window_m: list[float] = []  # horizontal distance to the nearest window, door
        door_m: list[float] = []
        self.extents = np.zeros((len(self.records), 2, 3))
        self.poses = np.tile(np.eye(4), (len(self.records), 1, 1))
        self.in_map_frame = np.zeros(len(self.records), bool)
        self.building_ids = np.array([r.building_id for r in self.records])
        for s, record in enumerate(self.records):
            if record.frame_to_building is not None:
                self.poses[s] = np.asarray(record.frame_to_building, np.float64).reshape(4, 4)
                self.in_map_frame[s] = True
            instances = mapdb.instances(record.scene_id)
            cloud = mapdb.point_cloud(record.scene_id)
            for inst in instances:
                centre = np.asarray(inst["centroid"], np.float64)
                lows.append(np.asarray(inst.get("box_min", centre - 0.1), np.float64))
                highs.append(np.asarray(inst.get("box_max", centre + 0.1), np.float64))
                labels.append(" ".join(words(str(inst["label"]))) or "object")
                ids.append(int(inst["id"]))
                scene_of.append(s)
            boxes = (np.array(lows[-len(instances) :]), np.array(highs[-len(instances) :]))
            self.extents[s] = _extent(cloud, boxes if instances else None)
            windows, doors = _openings(cloud, self.extents[s])
            for inst_low, inst_high in zip(*boxes, strict=True) if instances else ():
                centre = (inst_low[:2] + inst_high[:2]) / 2
                window_m.append(_nearest(centre, windows))
                door_m.append(_nearest(centre, doors))
            for low, high in zip(*boxes, strict=True) if instances else ():
                colours.append(_box_colour(cloud, low, high, self.extents[s, 0, 2]))
        self.scene_of = np.array(scene_of, np.int64)
        self._scene_owner, self._scene_start = np.unique(self.scene_of, return_index=True)
        self.labels = labels
        self.instance_ids = np.array(ids, np.int64)
        self.box_min = np.array(lows).reshape(-1, 3)
        self.box_max = np.array(highs).reshape(-1, 3)
        self.colours = np.array(colours).reshape(-1, 3)
        ext = self.extents[self.scene_of]  # (N, 2, 3)
        dx = np.minimum(self.box_min[:, 0] - ext[:, 0, 0], ext[:, 1, 0] - self.box_max[:, 0])
        dy = np.minimum(self.box_min[:, 1] - ext[:, 0, 1], ext[:, 1, 1] - self.box_max[:, 1])
        self.corner = _closeness(np.maximum(dx, dy), self.cfg.near_m)
        raised = self.box_min[:, 2] - ext[:, 0, 2] > 0.3
        self.on_wall = _closeness(np.minimum(dx, dy), self.cfg.wall_m) * raised
        self.near_wall = _closeness(np.minimum(dx, dy), self.cfg.near_m)
        self.on_floor = _closeness(self.box_min[:, 2] - ext[:, 0, 2], self.cfg.on_tolerance_m)
        near = self.cfg.opening_near_m
        self.near_window = _closeness(np.array(window_m) - near, near / 2)
        self.near_door = _closeness(np.array(door_m) - near, near / 2)

    def _pairs(self) -> None:
        """Every ordered pair of instances of one room: footprint gap, and whether the first
        stands on the second."""
        firsts, seconds = [], []
        starts = np.searchsorted(self.scene_of, np.arange(len(self.records) + 1))
        for s in range(len(self.records)):
            idx = np.arange(starts[s], starts[s + 1])
            a, b = np.meshgrid(idx, idx, indexing="ij")
            keep = a != b
            firsts.append(a[keep])
            seconds.append(b[keep])
        self.pair_i = np.concatenate(firsts) if firsts else np.zeros(0, np.int64)
        self.pair_j = np.concatenate(seconds) if seconds else np.zeros(0, np.int64)
        lo_i, hi_i = self.box_min[self.pair_i], self.box_max[self.pair_i]
        lo_j, hi_j = self.box_min[self.pair_j], self.box_max[self.pair_j]
        apart = np.maximum(0.0, np.maximum(lo_i[:, :2] - hi_j[:, :2], lo_j[:, :2] - hi_i[:, :2]))
        self.pair_gap = np.linalg.norm(apart, axis=1)
        # pairs come grouped by their first instance: where each group starts, and whose it is
        self._pair_owner, self._pair_start = np.unique(self.pair_i, return_index=True)
        centre = (lo_i[:, :2] + hi_i[:, :2]) / 2
        inside = np.all((centre >= lo_j[:, :2] - 0.05) & (centre <= hi_j[:, :2] + 0.05), axis=1)
        on_top = _closeness(np.abs(lo_i[:, 2] - hi_j[:, 2]), self.cfg.on_tolerance_m)
        # or on a shelf of it: inside its footprint, above its bottom, below its top
        within = np.all(
            (lo_i[:, :2] >= lo_j[:, :2] - 0.05) & (hi_i[:, :2] <= hi_j[:, :2] + 0.05), 1
        )
        shelf = within & (lo_i[:, 2] > lo_j[:, 2] + 0.05) & (lo_i[:, 2] < hi_j[:, 2])
        self.pair_on = inside * np.maximum(on_top, 0.9 * shelf)

    def _sizes(self) -> None:
        """Per instance: is it the biggest / smallest of its label in its room (0..1)."""
        volume = np.prod(np.maximum(self.box_max - self.box_min, 1e-3), axis=1)
        self.bigger = np.full(len(volume), 0.25)
        self.smaller = np.full(len(volume), 0.25)
        same = self.label_index[self.pair_i] == self.label_index[self.pair_j]
        others_max = np.zeros(len(volume))
        others_min = np.full(len(volume), np.inf)
        np.maximum.at(others_max, self.pair_i[same], volume[self.pair_j[same]])
        np.minimum.at(others_min, self.pair_i[same], volume[self.pair_j[same]])
        has = np.isfinite(others_min)
        self.bigger[has] = np.where(volume[has] > others_max[has], 0.5, 0.0)
        self.bigger[has & (volume > 1.15 * others_max)] = 1.0
        self.smaller[has] = np.where(volume[has] < others_min[has], 0.5, 0.0)
        self.smaller[has & (volume < others_min / 1.15)] = 1.0

    def _read_embeddings(self, mapdb: MapBase) -> None:
        """Stored vectors the sentence is compared with: instances' 'point_cloud', scenes' in
        ``scene_modalities`` (mean of a scene's rows, unit length; absent: zeros)."""
        self.instance_vectors: np.ndarray | None = None
        self.scene_vectors: dict[str, np.ndarray] = {}
        if self._model is None:
            return
        dim = self._model.instance.out_dim
        rows = np.zeros((len(self.scene_of), dim), np.float32)
        starts = np.searchsorted(self.scene_of, np.arange(len(self.records) + 1))
        for s, record in enumerate(self.records):
            ids, vectors = mapdb.instance_embeddings(record.scene_id, mod.POINT_CLOUD)
            where = {int(i): r for r, i in enumerate(ids)}
            for row in range(starts[s], starts[s + 1]):
                if int(self.instance_ids[row]) in where:
                    rows[row] = vectors[where[int(self.instance_ids[row])]]
        # [contextual | token] / sqrt(2) against the sentence's token t as [t | t] / sqrt(2):
        # (contextual + token) . t / 2, at half the cost per query
        half = rows.shape[1] // 2
        self.instance_vectors = (rows[:, :half] + rows[:, half:]) / np.float32(2.0)
        for modality in self.cfg.scene_modalities:
            matrix = np.zeros((len(self.records), self._model.cfg.embed_dim), np.float32)
            for s, record in enumerate(self.records):
                stored = mapdb.scene_embeddings(record.scene_id).get(modality)
                if stored is not None and len(stored):
                    mean = stored.mean(axis=0)
                    matrix[s] = mean / max(float(np.linalg.norm(mean)), 1e-9)
            self.scene_vectors[modality] = matrix

    # -- text ----------------------------------------------------------------------------------
    def _embed(self, phrases: Sequence[str]) -> None:
        """Fill the cache with the phrases it lacks, in one backbone call."""
        missing = sorted({p for p in phrases if p not in self._cache})
        if len(self._cache) + len(missing) > _CACHE_SIZE:  # keep the labels, drop the rest
            self._cache = dict(zip(self.vocab, self._vocab_vectors, strict=True))
        if missing:
            self._cache.update(zip(missing, self._text.encode(missing), strict=True))

    def _label_match(self, content: list[str]) -> np.ndarray | None:
        """How well a run of words names each label (0..1), or None if it names none."""
        best, best_key = None, (-1.0, 0)
        for n in range(min(3, len(content)), 0, -1):
            for start in range(len(content) - n + 1):
                span = content[start : start + n]
                phrase = " ".join(span)
                sims = self._vocab_vectors @ self._cache[phrase]
                for form in (phrase, " ".join([*span[:-1], _singular(span[-1])])):
                    if form in self._vocab_index:
                        sims[self._vocab_index[form]] = 1.0
                top = float(sims.max()) if len(sims) else 0.0
                key = (top + self.cfg.longer_bonus * (n - 1), n)
                if key > best_key:
                    best, best_key = sims, key
        if best is None or float(best.max()) < self.cfg.min_label:
            return None
        # The label the words name best is "this" even when the backbone rates the pair low
        # (houseplant / plant): the others are scaled against it.
        high = min(self.cfg.label_high, float(best.max()))
        low = min(self.cfg.label_low, high - 0.1)
        return np.clip((best - low) / (high - low), 0.0, 1.0)

    def _parse(self, text: str) -> tuple[list[Description[np.ndarray]], np.ndarray]:
        """The sentence's descriptions, label matches resolved, and its MiniLM vector."""
        text = " ".join(str(text).split())
        if not text:
            raise QueryError("the text is empty: say what to look for")
        runs: list[list[str]] = []
        parse(text, lambda content: runs.append(content))
        spans = {
            " ".join(run[s : s + n])
            for run in runs
            for n in range(1, min(3, len(run)) + 1)
            for s in range(len(run) - n + 1)
        }
        self._embed([text, *spans])
        return parse(text, self._label_match), self._cache[text]

    # -- scoring -------------------------------------------------------------------------------
    def _relation(self, relation: Relation[np.ndarray]) -> np.ndarray:
        """(N,) how well each instance stands in ``relation``."""
        n = len(self.scene_of)
        if relation.kind == CORNER:
            return self.corner
        if relation.kind in (BIGGER, SMALLER):
            return self.bigger if relation.kind == BIGGER else self.smaller
        if relation.anchor is None:  # a place the map has no object for
            landmark = {_singular(w) for w in relation.landmark.split()}
            if "wall" in landmark:
                return self.on_wall if relation.kind == ON else self.near_wall
            if "floor" in landmark and relation.kind == ON:
                return self.on_floor
            if landmark & _WINDOW_WORDS:
                return self.near_window
            if landmark & _DOOR_WORDS:
                return self.near_door
            return np.full(n, 0.5)
        anchor = relation.anchor[self.label_index[self.pair_j]]
        if relation.kind == ON:
            fit = anchor * self.pair_on
        else:
            fit = anchor * _closeness(self.pair_gap - self.cfg.near_m / 2, self.cfg.near_m)
        out = np.zeros(n)
        if len(fit):
            out[self._pair_owner] = np.maximum.reduceat(fit, self._pair_start)
        return out

    def _describe(self, description: Description[np.ndarray]) -> np.ndarray:
        """(N,) how well each instance fits one description (words and geometry)."""
        cfg = self.cfg
        score = np.zeros(len(self.scene_of))
        if description.target is not None:
            score += cfg.label_weight * description.target[self.label_index]
        if description.colour:
            distance = np.linalg.norm(
                self.colours - np.asarray(colour_rgb(description.colour)), axis=1
            )
            fit = np.exp(-0.5 * (distance / cfg.colour_sigma) ** 2)
            score += cfg.colour_weight * np.nan_to_num(fit, nan=0.5)
        for relation in description.relations:
            score += cfg.relation_weight * self._relation(relation)
        return score

    def _sentence_vectors(self, sentence: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The sentence as an instance query (against ``instance_vectors``) and as a scene
        query (D)."""
        if self._model is None:
            return None
        with torch.no_grad():
            x = torch.from_numpy(np.asarray(sentence, np.float32))[None]
            token = self._model.instance.heads[mod.REFERRAL](x)[0]
            scene = self._model.encode_referrals(x[None], torch.ones(1, 1, dtype=torch.bool))[0]
        token = torch.nn.functional.normalize(token, dim=0).numpy()
        scene = torch.nn.functional.normalize(scene, dim=0).numpy()
        return np.sqrt(2.0, dtype=np.float32) * token, scene

    def _scene_similarity(self, vector: np.ndarray) -> np.ndarray:
        if not self.scene_vectors:
            return np.zeros(len(self.records))
        return np.mean([m @ vector for m in self.scene_vectors.values()], axis=0)

    def _mask(self, building: str | None) -> np.ndarray:
        """Scenes to search."""
        if not building:
            return np.ones(len(self.records), bool)
        mask = self.building_ids == building
        if not mask.any():
            known = ", ".join(sorted(set(self.building_ids.tolist()))) or "none"
            raise QueryError(f"no building {building!r} in the map (buildings: {known})")
        return mask

    @staticmethod
    def _check_k(k: int) -> int:
        if int(k) < 1:
            raise QueryError(f"k must be at least 1, got {k}")
        return int(k)

    def object_scores(self, text: str) -> np.ndarray:
        """(N,) score of every instance (rows of ``scene_of``) for ``text``."""
        descriptions, sentence = self._parse(text)
        score = self._describe(descriptions[0])
        if len(descriptions) > 1:  # what else is said to be in the room
            room = self._room_scores(descriptions[1:])
            score += 0.5 * room[self.scene_of]
        vectors = self._sentence_vectors(sentence)
        if vectors is not None and self.instance_vectors is not None:
            score += self.cfg.object_embedding_weight * (self.instance_vectors @ vectors[0])
        return score

    def _room_scores(self, descriptions: list[Description[np.ndarray]]) -> np.ndarray:
        """(S,) per room: the best fit in it of each description, summed; with counts."""
        total = np.zeros(len(self.records))
        for description in descriptions:
            per = np.zeros(len(self.records))
            if len(self.scene_of):
                fit = self._describe(description)
                per[self._scene_owner] = np.maximum.reduceat(fit, self._scene_start)
            total += per
            if description.count > 1 and description.target is not None:
                named = np.bincount(
                    self.scene_of,
                    weights=description.target[self.label_index] >= 0.5,
                    minlength=len(self.records),
                )
                want = description.count
                total += np.where(
                    named == want, 1.0, np.where(named > want, 0.5, -(want - named) / want)
                )
        return total

    def room_scores(self, text: str) -> np.ndarray:
        """(S,) score of every scene (rows of ``records``) for ``text``."""
        descriptions, sentence = self._parse(text)
        score = self._room_scores(descriptions)
        vectors = self._sentence_vectors(sentence)
        if vectors is not None:
            score += self.cfg.scene_embedding_weight * self._scene_similarity(vectors[1])
        return score

    # -- the API -------------------------------------------------------------------------------
    def find_rooms(self, text: str, k: int = 5, building: str | None = None) -> list[RoomHit]:
        """The ``k`` rooms that fit ``text`` best, best first; QueryError on bad input."""
        k = self._check_k(k)
        mask = self._mask(building)
        score = np.where(mask, self.room_scores(text), -np.inf)
        order = [s for s in np.argsort(-score, kind="stable")[:k] if mask[s]]
        out = []
        for s in order:
            record = self.records[s]
            low, high = self.extents[s]
            floor = np.array([(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]])
            centre = _to_map(self.poses[s], floor[None])[0]
            out.append(
                RoomHit(
                    record.scene_id,
                    record.building_id,
                    record.room_id,
                    float(score[s]),
                    tuple(float(v) for v in centre),
                    bool(self.in_map_frame[s]),
                )
            )
        return out

    def find_objects(self, text: str, k: int = 5, building: str | None = None) -> list[ObjectHit]:
        """The ``k`` instances that fit ``text`` best, best first; QueryError on bad input."""
        k = self._check_k(k)
        mask = self._mask(building)[self.scene_of] if len(self.scene_of) else np.zeros(0, bool)
        score = np.where(mask, self.object_scores(text), -np.inf)
        out = []
        for row in [r for r in np.argsort(-score, kind="stable")[:k] if mask[r]]:
            s = int(self.scene_of[row])
            record, pose = self.records[s], self.poses[s]
            corners = np.array(
                [
                    [x, y, z]
                    for x in self.box_min[row, :1].tolist() + self.box_max[row, :1].tolist()
                    for y in (self.box_min[row, 1], self.box_max[row, 1])
                    for z in (self.box_min[row, 2], self.box_max[row, 2])
                ]
            )
            corners = _to_map(pose, corners)
            centre = _to_map(pose, ((self.box_min[row] + self.box_max[row]) / 2)[None])[0]
            out.append(
                ObjectHit(
                    record.scene_id,
                    record.building_id,
                    record.room_id,
                    int(self.instance_ids[row]),
                    self.labels[row],
                    float(score[row]),
                    tuple(float(v) for v in centre),
                    tuple(float(v) for v in corners.min(axis=0)),
                    tuple(float(v) for v in corners.max(axis=0)),
                    bool(self.in_map_frame[s]),
                )
            )
        return out


def text_query_for(mapdb: MapBase, encoder: object, cfg: TextQueryCfg | None = None) -> TextQuery:
    """The text query of a map and the encoder it was built with: a CrossOver encoder lends its
    model (its referral encoders), any other encoder none (labels and geometry only)."""
    model = getattr(encoder, "model", None)
    return TextQuery(
        mapdb, TextBackbone(), model if isinstance(model, CrossOverModel) else None, cfg
    )


def open_text_query(
    location: str | Path,
    model: str | None = None,
    cfg: TextQueryCfg | None = None,
    password_file: str = "",
) -> TextQuery:
    """The text query of a map file or URL, read once and closed again. ``model``: the map's
    CrossOver checkpoint (default: told by the map's fingerprint: the shipped model, or none for
    a global-descriptor map); MapDatabaseError if it is not the map's."""
    with open_map(location, password_file=password_file, read_only=True) as mapdb:
        name = model or model_for_fingerprint(mapdb.model_fingerprint)
        crossover = None
        if name != "global_descriptor":
            crossover = CrossOverModel.load(checkpoint_path(name))[0]
            if crossover.fingerprint() != mapdb.model_fingerprint:
                raise fingerprint_error(
                    str(mapdb.path), mapdb.model_fingerprint, crossover.fingerprint()
                )
        return TextQuery(mapdb, TextBackbone(), crossover, cfg)


def _extent(
    cloud: tuple[np.ndarray, np.ndarray] | None, boxes: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """(2, 3) the room's extent: its cloud's (robust to stray points), else its boxes'."""
    if cloud is not None and len(cloud[0]) >= 10:
        xyz = np.asarray(cloud[0], np.float64)
        return np.stack([np.percentile(xyz, 0.5, axis=0), np.percentile(xyz, 99.5, axis=0)])
    if boxes is not None:
        return np.stack([boxes[0].min(axis=0), boxes[1].max(axis=0)])
    return np.zeros((2, 3))


def _box_colour(
    cloud: tuple[np.ndarray, np.ndarray] | None, low: np.ndarray, high: np.ndarray, floor: float
) -> np.ndarray:
    """Median sRGB (0..1) of the cloud inside a box, floor left out; NaN without points."""
    if cloud is None:
        return np.full(3, np.nan)
    xyz, rgb = cloud
    inside = np.all((xyz >= low) & (xyz <= high), axis=1) & (xyz[:, 2] > floor + 0.03)
    if inside.sum() < 3:
        return np.full(3, np.nan)
    return np.median(np.asarray(rgb, np.float64)[inside], axis=0) / 255.0


def _nearest(point: np.ndarray, places: np.ndarray) -> float:
    if not len(places):
        return np.inf
    return float(np.min(np.linalg.norm(places - point, axis=1)))


def _openings(
    cloud: tuple[np.ndarray, np.ndarray] | None, extent: np.ndarray, cell: float = 0.15
) -> tuple[np.ndarray, np.ndarray]:
    """(windows, doors): (K, 2) horizontal centres of the openings in the room's four walls.

    A wall is the cloud's points within a few centimetres of one side of the room's extent. A
    column of it (``cell`` wide) with no points at window height but wall below is part of a
    window; with no points from the floor to door height, part of a door, unless something in
    front of the wall hides it (then it is unknown, not an opening). Runs of at least
    0.45 m of such columns are the openings.
    """
    none = np.zeros((0, 2))
    if cloud is None or len(cloud[0]) < 100:
        return none, none
    xyz = np.asarray(cloud[0], np.float64)
    low, high = extent
    z = xyz[:, 2] - low[2]
    windows, doors = [], []
    for axis in (0, 1):
        along = 1 - axis
        for side, plane in ((1.0, low[axis]), (-1.0, high[axis])):
            depth = (xyz[:, axis] - plane) * side  # inward distance from the wall
            on_wall = np.abs(depth) < 0.08
            in_front = (depth > 0.2) & (depth < 0.6)  # past the wall, its frames and sills
            edges = np.arange(low[along] + 0.2, high[along] - 0.2, cell)
            if len(edges) < 4:
                continue
            column = np.digitize(xyz[:, along], edges) - 1
            ok = (column >= 0) & (column < len(edges) - 1)
            columns = (column, ok, z, len(edges) - 1)
            wall_low = _filled(columns, on_wall, 0.15, 0.7)
            wall_mid = _filled(columns, on_wall, 1.2, 1.8)
            hidden_mid = _filled(columns, in_front, 1.2, 1.8)
            hidden = hidden_mid | _filled(columns, in_front, 0.15, 0.7)
            for kind, empty in (
                (windows, ~wall_mid & wall_low & ~hidden_mid),
                (doors, ~wall_mid & ~wall_low & ~hidden),
            ):
                for start, stop in _runs(empty, 3):
                    u = (edges[start] + edges[stop]) / 2
                    kind.append((plane, u) if axis == 0 else (u, plane))
    return np.array(windows).reshape(-1, 2), np.array(doors).reshape(-1, 2)


def _filled(columns: tuple, mask: np.ndarray, z_low: float, z_high: float) -> np.ndarray:
    """Which wall columns hold points of ``mask`` between the two heights."""
    column, ok, z, count = columns
    pick = mask & ok & (z > z_low) & (z < z_high)
    return np.bincount(column[pick], minlength=count) > 0


def _runs(flags: np.ndarray, min_length: int) -> list[tuple[int, int]]:
    """[start, stop) of the runs of True at least ``min_length`` long."""
    out, start = [], None
    for i, flag in enumerate([*flags.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= min_length:
                out.append((start, i))
            start = None
    return out
