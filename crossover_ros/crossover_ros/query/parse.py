"""A sentence about a room or an object, split into what it names and how those things relate.

"the red lamp on the table next to the window" -> one description: target "lamp" (red), on
"table", near "window". "the room with the whiteboard and two desks" -> two descriptions
(whiteboard; desk, two of them). Only the words of the relations, colours and counts are
fixed here (plain English); which words name objects is decided by ``resolve``, which the
caller builds from the map's own labels, so the parser holds no object vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Name = TypeVar("Name")

ON, NEAR, CORNER, BIGGER, SMALLER = "on", "near", "corner", "bigger", "smaller"

# Longest phrase first wins; each phrase is whole words.
_CUES: dict[str, str] = {
    **dict.fromkeys(
        (
            "on top of",
            "sitting on",
            "standing on",
            "resting on",
            "lying on",
            "placed on",
            "put on",
            "mounted on",
            "hanging on",
            "hung on",
            "fixed to",
            "attached to",
            "atop",
            "upon",
            "on",
        ),
        ON,
    ),
    **dict.fromkeys(
        (
            "next to",
            "beside",
            "besides",
            "alongside",
            "adjacent to",
            "close to",
            "closest to",
            "nearest to",
            "nearest",
            "near to",
            "near",
            "nearby",
            "right by",
            "by",
            "against",
            "facing",
        ),
        NEAR,
    ),
    **dict.fromkeys(
        ("in the corner", "in a corner", "into the corner", "in one corner", "cornered"),
        CORNER,
    ),
    **dict.fromkeys(
        ("bigger", "larger", "biggest", "largest", "taller", "tallest", "big", "large", "huge"),
        BIGGER,
    ),
    **dict.fromkeys(
        ("smaller", "smallest", "little", "tiny", "small", "shorter", "shortest"), SMALLER
    ),
    **dict.fromkeys(
        (
            "with",
            "that has",
            "which has",
            "that have",
            "containing",
            "contains",
            "where there is",
            "where there are",
            "there is",
            "there are",
            "having",
            "has",
            "holds",
            "holding",
        ),
        "with",
    ),
}
_MAX_CUE_WORDS = max(len(c.split()) for c in _CUES)

#: Basic English colour words and an sRGB value each (a language resource, not a vocabulary of
#: any data set): "light"/"dark"/"pale" before one of them shift its lightness.
COLOUR_WORDS: dict[str, tuple[int, int, int]] = {
    "white": (240, 240, 236),
    "cream": (238, 228, 200),
    "beige": (214, 196, 160),
    "grey": (128, 128, 128),
    "silver": (190, 190, 190),
    "black": (30, 30, 30),
    "red": (190, 40, 40),
    "maroon": (120, 25, 30),
    "orange": (225, 120, 40),
    "yellow": (230, 200, 60),
    "gold": (210, 170, 60),
    "green": (60, 140, 70),
    "olive": (120, 120, 50),
    "teal": (40, 130, 130),
    "turquoise": (60, 190, 180),
    "blue": (50, 90, 180),
    "navy": (30, 40, 90),
    "purple": (110, 60, 140),
    "violet": (140, 90, 180),
    "pink": (225, 150, 170),
    "brown": (125, 85, 50),
    "tan": (190, 150, 100),
    "wooden": (150, 105, 65),
}
_SHADES = {"light": 1.45, "pale": 1.45, "bright": 1.25, "dark": 0.55, "deep": 0.6}
_SYNONYMS = {"gray": "grey", "wood": "wooden"}
_NUMBERS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "several": 2,
    "a couple of": 2,
    "pair of": 2,
}
# Words that never name an object or a place of one.
_STOP_TEXT = """
    the a an of that this is are which who it its one ones other others than and or also in at
    to from for into onto under below above over there here room rooms please find show me
    where i we want go take get some any something thing things object objects stuff what whose
    whichever both each every all just very quite bit most more less whole standing sitting
    lying placed located found kept stored left right side am be been being was were can could
    would will shall should may might do does did you your my our us let need look looking see
    seen as so too like well such then now only own same
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
_WORD = re.compile(r"[a-z0-9]+|[,;:.!?]")
# Words that open a noun phrase, and punctuation: one object's words end there.
_BOUNDARIES = frozenset(
    {"a", "an", "the", "another", "some", "each", "every", ",", ";", ":", ".", "!", "?"}
)


def colour_rgb(name: str) -> tuple[float, float, float]:
    """sRGB in 0..1 of a colour phrase from :func:`parse` ("light blue", "dark grey")."""
    words = name.split()
    base = COLOUR_WORDS[words[-1]]
    scale = _SHADES.get(words[0], 1.0) if len(words) > 1 else 1.0
    return tuple(min(255.0, c * scale) / 255.0 for c in base)  # type: ignore[return-value]


@dataclass
class Relation(Generic[Name]):
    """One relation of a description: ``kind`` (on, near, corner, bigger, smaller) and the
    thing it is relative to: a resolved name, or the words that named nothing in the map
    ("window", "wall") as ``landmark``."""

    kind: str
    anchor: Name | None = None
    landmark: str = ""


@dataclass
class Description(Generic[Name]):
    """One object the sentence describes: what it is, its colour, how many, its relations."""

    target: Name | None = None
    colour: str = ""
    count: int = 0
    relations: list[Relation[Name]] = field(default_factory=list)


def words(text: str) -> list[str]:
    """Lowercase words, spelling variants unified."""
    return [_SYNONYMS.get(w, w) for w in _WORD.findall(text.lower()) if w.isalnum()]


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, value): cue, colour, count, and, word."""
    ws = [_SYNONYMS.get(w, w) for w in _WORD.findall(text.lower())]
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(ws):
        for n in range(min(_MAX_CUE_WORDS, len(ws) - i), 0, -1):
            phrase = " ".join(ws[i : i + n])
            if phrase in _CUES:
                out.append(("cue", _CUES[phrase]))
                break
            if phrase in _NUMBERS:
                out.append(("count", str(_NUMBERS[phrase])))
                break
        else:
            n = 1
            w = ws[i]
            if w in _SHADES and i + 1 < len(ws) and ws[i + 1] in COLOUR_WORDS:
                out.append(("colour", f"{w} {ws[i + 1]}"))
                n = 2
            elif w in COLOUR_WORDS:
                out.append(("colour", w))
            elif w.isdigit():
                out.append(("count", w))
            elif w == "and":
                out.append(("and", w))
            elif w in _BOUNDARIES:
                out.append(("boundary", w))
            else:
                out.append(("word", w))
        i += n
    return out


def parse(text: str, resolve: Callable[[list[str]], Name | None]) -> list[Description[Name]]:
    """The descriptions of a sentence, in order; the first is the object asked for.

    ``resolve`` takes a run of consecutive content words ("office chair", "couch") and returns
    what in the map they name, or None. A name right after a relation word is that relation's
    anchor; any other name starts a new description, unless the current one has no target yet.
    """
    out: list[Description[Name]] = [Description()]
    pending: str | None = None  # a relation waiting for its anchor
    colour, count = "", 0  # for the next target
    run: list[str] = []

    def flush() -> None:
        nonlocal pending, colour, count
        content = [w for w in run if w not in STOP_WORDS]
        run.clear()
        if not content:
            return
        name = resolve(content)
        current = out[-1]
        if pending in (BIGGER, SMALLER):
            pending = None
            if current.target is not None:  # "than the other chairs": the same kind
                return
        if pending is not None:
            current.relations.append(
                Relation(pending, name, "" if name is not None else " ".join(content))
            )
            pending = None
            colour = ""  # the anchor's colour
            return
        if name is None:
            return
        if current.target is not None:
            current = Description()
            out.append(current)
        current.target, current.colour, current.count = name, colour, count
        colour, count = "", 0

    for kind, value in _tokens(text):
        if kind == "word":
            run.append(value)
            continue
        flush()
        if kind == "colour":
            colour = value
        elif kind == "count":
            count = int(value)
        elif kind == "and":
            pending = None
        elif kind == "boundary":
            pass
        elif value == "with":
            pending = None
        elif value in (CORNER, BIGGER, SMALLER):
            out[-1].relations.append(Relation(value))
            pending = value if value != CORNER else None
        else:
            pending = value
    flush()
    if colour and out[-1].target is not None and not out[-1].colour:
        out[-1].colour = colour  # "the chair that is red"
    elif colour and out[-1].target is None:
        out[-1].colour = colour
    return [d for d in out if d.target is not None or d.relations or d.colour] or out[:1]
