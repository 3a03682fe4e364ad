"""Text queries scored on a generated building: top-1 / top-5 for rooms and for objects.

Two sets of sentences, both resolved against the building's ground truth scene graph (its
instances' labels, colours, supports and the relations ``synthetic.referrals`` derives):

- **generated**: the building's own referrals (``referrals.json``) as object queries, and, as
  room queries, "the room with ..." joining up to three of a room's referrals (those that fit
  no other room first);
- **paraphrases**: sentences written by hand in other words (``eval/paraphrases.json``:
  templates with slots, synonyms for the labels), filled from instances where what they say
  holds.

A sentence often fits several rooms or objects (look-alike rooms hold the same furniture):
"right" counts an answer the sentence describes correctly ("fits"), "exact" only the room or
object it was written about. Both are reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from crossover_ros.datasets.scan import Building, read_json
from crossover_ros.errors import DataError
from crossover_ros.query.text import TextQuery
from crossover_ros.synthetic.referrals import ReferralObject, relations

ObjectKey = tuple[str, int]  # scene id, instance id
_NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


@dataclass
class Facts:
    """What the scene graph says of one instance."""

    key: ObjectKey
    label: str
    colour: str
    support: str = ""  # label of what it stands on ("" on the floor; "wall")
    neighbours: set[str] = field(default_factory=set)
    flags: set[str] = field(default_factory=set)  # door, window, corner, bigger, smaller
    phrases: list[str] = field(default_factory=list)

    def sentences(self) -> set[str]:
        """Every sentence the referral generator could say of it (its grammar)."""
        out = set()
        for colour in ("", f"{self.colour} ") if self.colour != "colourful" else ("",):
            out.add(f"the {colour}{self.label}")
            for first in self.phrases:
                out.add(f"the {colour}{self.label} {first}")
                for second in self.phrases:
                    if second != first:
                        out.add(f"the {colour}{self.label} {first} and {second}")
        return out


@dataclass(frozen=True)
class TextCase:
    """One sentence, the room or object it was made from, and all it correctly describes."""

    text: str
    exact: str | ObjectKey
    fits: frozenset


def building_facts(building: Building) -> dict[str, list[Facts]]:
    """Facts of every instance of each reference scan, by scene id."""
    out: dict[str, list[Facts]] = {}
    for info in building.scans:
        if info.scan_index != 0:
            continue
        scan = building.scan(info.scan_id)
        objects = [
            ReferralObject(i.id, i.label, i.color_name, i.box_min, i.box_max, i.support)
            for i in scan.instances
        ]
        door = np.asarray(scan.meta["door"]["center"], np.float64)
        windows = [np.asarray(w["center"], np.float64) for w in scan.meta["windows"]]
        facts = []
        for obj in objects:
            phrases = relations(obj, objects, scan.room_size, door, windows)
            fact = Facts(
                (info.scan_id, obj.instance_id), obj.label, obj.color_name, phrases=phrases
            )
            for phrase in phrases:
                if phrase.startswith("on the "):
                    fact.support = phrase[len("on the ") :]
                elif phrase.startswith("next to the "):
                    fact.neighbours.add(phrase[len("next to the ") :])
                elif phrase == "near the door":
                    fact.flags.add("door")
                elif phrase == "by the window":
                    fact.flags.add("window")
                elif phrase == "in the corner":
                    fact.flags.add("corner")
                elif "bigger" in phrase:
                    fact.flags.add("bigger")
                elif "smaller" in phrase:
                    fact.flags.add("smaller")
            facts.append(fact)
        out[info.scan_id] = facts
    if not out:
        raise DataError(f"{building.path} has no reference scans")
    return out


def generated_cases(
    building: Building, facts: dict[str, list[Facts]], seed: int, rooms_per_scene: int = 3
) -> tuple[list[TextCase], list[TextCase]]:
    """(room cases, object cases) from the building's own referrals: every referral, and
    ``rooms_per_scene`` room sentences joining one to three of a room's referrals."""
    rng = np.random.default_rng(seed)
    valid = {f.key: f.sentences() for scene in facts.values() for f in scene}
    fits_of: dict[str, frozenset] = {}

    def fits(text: str) -> frozenset:
        if text not in fits_of:
            fits_of[text] = frozenset(k for k, s in valid.items() if text in s)
        return fits_of[text]

    objects, rooms = [], []
    for scene_id in facts:
        referrals = [
            (int(r["instance_id"]), str(r["text"]))
            for r in building.scan(scene_id).referrals
            if (scene_id, int(r["instance_id"])) in valid
        ]
        for instance_id, text in referrals:
            objects.append(TextCase(text, (scene_id, instance_id), fits(text)))
        texts = sorted({t for _, t in referrals})
        distinctive = [t for t in texts if {k[0] for k in fits(t)} == {scene_id}]
        rest = [t for t in texts if t not in distinctive]
        for _ in range(rooms_per_scene if texts else 0):
            chosen = [*rng.permutation(distinctive).tolist(), *rng.permutation(rest).tolist()]
            chosen = chosen[: int(rng.integers(1, 4))]
            text = "the room with " + " and ".join(chosen)
            room_fits = frozenset.intersection(*(frozenset(k[0] for k in fits(t)) for t in chosen))
            rooms.append(TextCase(text, scene_id, room_fits))
    return rooms, objects


def load_paraphrases(path: Path | None = None) -> dict:
    """The hand-written paraphrase set (package data by default)."""
    if path is None:
        return json.loads(
            resources.files("crossover_ros.eval").joinpath("paraphrases.json").read_text()
        )
    return read_json(Path(path))


def _plural(word: str) -> str:
    if word.endswith("s"):
        return word
    return word + ("es" if word.endswith(("x", "ch", "sh")) else "s")


def _holds(fact: Facts, needs: Iterable[str], like: Facts) -> bool:
    """Does ``fact`` satisfy what a sentence about ``like`` says (the ``needs``)?"""
    if fact.label != like.label:
        return False
    for need in needs:
        if need == "colour" and fact.colour != like.colour:
            return False
        if need == "support" and (not fact.support or fact.support != like.support):
            return False
        if need == "neighbour" and not (fact.neighbours & like.neighbours):
            return False
        if need in ("door", "window", "corner", "bigger", "smaller") and need not in fact.flags:
            return False
    return True


def _usable(fact: Facts, needs: Iterable[str]) -> bool:
    for need in needs:
        if need == "colour" and fact.colour == "colourful":
            return False
        if need == "support" and fact.support in ("", "wall"):
            return False
        if need == "wall" and fact.support != "wall":
            return False
        if need == "neighbour" and not fact.neighbours:
            return False
        if need in ("door", "window", "corner", "bigger", "smaller") and need not in fact.flags:
            return False
    return True


def paraphrase_cases(
    facts: dict[str, list[Facts]], paraphrases: dict, seed: int, per_template: int = 3
) -> tuple[list[TextCase], list[TextCase]]:
    """(room cases, object cases): each template filled for up to ``per_template`` instances
    (rooms) where what it says holds, labels swapped for a hand-written synonym where one is
    listed."""
    synonyms: dict[str, list[str]] = paraphrases.get("words", {})
    everything = [f for scene in facts.values() for f in scene]

    def name(label: str, rng: np.random.Generator) -> str:
        options = synonyms.get(label, [])
        return str(rng.choice(options)) if options and rng.random() < 0.75 else label

    objects = []
    for index, template in enumerate(paraphrases["objects"]):
        rng = np.random.default_rng([seed, index])
        needs = template.get("needs", [])
        usable = [f for f in everything if _usable(f, needs)]
        for pick in rng.permutation(len(usable))[:per_template]:
            like = usable[int(pick)]
            neighbour = sorted(like.neighbours)[0] if like.neighbours else ""
            text = template["text"].format(
                label=name(like.label, rng),
                colour=like.colour,
                support=name(like.support, rng) if like.support else "",
                neighbour=name(neighbour, rng) if neighbour else "",
            )
            shown = {**vars(like), "neighbours": {neighbour} if neighbour else set()}
            fits = frozenset(
                f.key
                for f in everything
                if _holds(f, needs, Facts(**shown)) and ("wall" not in needs or f.support == "wall")
            )
            objects.append(TextCase(text, like.key, fits))

    rooms = []
    for index, template in enumerate(paraphrases["rooms"]):
        rng = np.random.default_rng([seed, 1000 + index])
        made = 0
        for scene_id in rng.permutation(sorted(facts)).tolist():
            case = _room_case(template, template.get("needs", []), scene_id, facts, rng, name)
            if case is not None:
                rooms.append(case)
                made += 1
                if made >= per_template:
                    break
    return rooms, objects


def _room_case(template, needs, scene_id, facts, rng, name) -> TextCase | None:
    """A room template filled from one room, or None if the room lacks what it needs."""
    here = facts[scene_id]
    parts = [p for p in ("a", "b", "c") if p in needs]
    pool = [f for f in here if _usable(f, [n[2:] for n in needs if n.startswith("a_")])]
    if "count" in needs:
        pool = [f for f in pool if sum(g.label == f.label for g in here) >= 2]
    if not pool:
        return None
    first = pool[int(rng.integers(len(pool)))]
    chosen = [first]
    for _ in parts[1:]:
        rest = [f for f in here if f.label not in {c.label for c in chosen}]
        if not rest:
            return None
        chosen.append(rest[int(rng.integers(len(rest)))])
    count = sum(f.label == first.label for f in here)
    values = {p: name(f.label, rng) for p, f in zip(parts, chosen, strict=True)}
    values |= {
        "a_colour": first.colour,
        "a_support": name(first.support, rng) if first.support else "",
        "n": str(count),
        "n_word": _NUMBER_WORDS.get(count, str(count)),
        "as": _plural(values.get("a", first.label)),
    }
    text = template["text"].format(**values)

    def room_fits(other: list[Facts]) -> bool:
        a_needs = [n[2:] for n in needs if n.startswith("a_")]
        if not any(_holds(f, a_needs, first) for f in other):
            return False
        if "count" in needs and sum(f.label == first.label for f in other) != count:
            return False
        return all(any(f.label == c.label for f in other) for c in chosen[1:])

    fits = frozenset(s for s, other in facts.items() if room_fits(other))
    return TextCase(text, scene_id, fits)


@dataclass(frozen=True)
class TextScores:
    """Percentages over ``n`` sentences: top-1 / top-5 that fit, and exact."""

    n: int
    top1: float
    top5: float
    exact_top1: float
    exact_top5: float


def score(answers: list[list], cases: list[TextCase]) -> TextScores:
    """``answers``: each case's ranked keys (scene ids, or (scene id, instance id))."""
    if not cases:
        return TextScores(0, float("nan"), float("nan"), float("nan"), float("nan"))

    def rate(hit) -> float:
        return 100.0 * float(np.mean([hit(a, c) for a, c in zip(answers, cases, strict=True)]))

    return TextScores(
        len(cases),
        rate(lambda a, c: bool(a[:1]) and a[0] in c.fits),
        rate(lambda a, c: any(x in c.fits for x in a[:5])),
        rate(lambda a, c: a[:1] == [c.exact]),
        rate(lambda a, c: c.exact in a[:5]),
    )


def evaluate_text(
    query: TextQuery, building: Building, paraphrases: dict, seed: int
) -> dict[str, TextScores]:
    """Scores of both sentence sets, rooms and objects, searched over the whole map."""
    facts = building_facts(building)
    sets = {
        "generated": generated_cases(building, facts, seed),
        "paraphrases": paraphrase_cases(facts, paraphrases, seed),
    }
    out = {}
    for name, (rooms, objects) in sets.items():
        room_answers = [[h.scene_id for h in query.find_rooms(c.text, 5)] for c in rooms]
        object_answers = [
            [(h.scene_id, h.instance_id) for h in query.find_objects(c.text, 5)] for c in objects
        ]
        out[f"{name} rooms"] = score(room_answers, rooms)
        out[f"{name} objects"] = score(object_answers, objects)
    return out
