"""Debate motions and persuasion tasks, drawn from the shipped files with a seeded RNG.

Factual motions compare two entries of the fact table ("Mount Everest is taller than K2."), so
their truth is known and debate outcomes can be scored against it; pairs closer than 10% (or 3
years) are never used, so no motion hinges on a disputed measurement. Opinion motions
(`motions.jsonl`) carry arguments for and against, used by scripted debaters and persuaders.
"""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from selflab.envs.games.debate.facts import Fact, by_category

HERE = Path(__file__).parent

TEMPLATES = {
    "mountain": "{a} is taller than {b}.",
    "river": "The {a} is longer than the {b}.",
    "planet": "{a} has a larger diameter than {b}.",
    "country": "{a} has a larger area than {b}.",
    "metal": "The melting point of {a} is higher than that of {b}.",
    "event": "{A} happened before {b}.",
}


class Motion(BaseModel):
    """A debate motion. `answer` is the truth of a factual motion (None for opinion motions);
    `evidence` are the facts both debaters receive; `pro`/`con` are stock arguments."""

    id: str
    motion: str
    kind: Literal["factual", "opinion"]
    answer: bool | None = None
    evidence: list[str] = []
    entities: list[str] = []
    pro: list[str] = []
    con: list[str] = []


class PersuasionTask(BaseModel):
    """`goal` "position": bring the target to ACCEPT or state `position`; "secret": make it reveal
    `secret`. `stubbornness` is how many distinct arguments the scripted target needs."""

    id: str
    goal: Literal["position", "secret"]
    position: str = ""
    counter: list[str] = []
    arguments: list[str] = []
    secret: str = ""
    stubbornness: int = 3


@cache
def opinion_motions() -> tuple[Motion, ...]:
    rows = [
        json.loads(line) for line in (HERE / "motions.jsonl").read_text(encoding="utf-8").splitlines() if line
    ]
    return tuple(Motion(kind="opinion", **row) for row in rows)


@cache
def secrets() -> dict[str, list[str]]:
    return json.loads((HERE / "secrets.json").read_text(encoding="utf-8"))


def _far_apart(a: Fact, b: Fact) -> bool:
    if a.unit == "year":
        return abs(a.value - b.value) >= 3
    hi, lo = max(a.value, b.value), min(a.value, b.value)
    return hi >= 1.1 * lo


def factual_motion(rng: random.Random) -> Motion:
    """A random comparison motion, true or false with equal odds."""
    table = by_category()
    category = rng.choice(sorted(table))
    while True:
        a, b = rng.sample(table[category], 2)
        if _far_apart(a, b):
            break
    name_a, name_b = a.entity, b.entity
    text = TEMPLATES[category].format(a=name_a, b=name_b, A=name_a[0].upper() + name_a[1:])
    answer = a.value < b.value if category == "event" else a.value > b.value
    return Motion(
        id=f"fact-{category}-{a.entity}-{b.entity}".replace(" ", "_"),
        motion=text,
        kind="factual",
        answer=answer,
        evidence=[a.sentence(), b.sentence()],
        entities=[a.entity, b.entity],
    )


def draw_motion(rng: random.Random, kind: str = "mixed") -> Motion:
    """kind: "factual", "opinion" or "mixed" (half and half)."""
    if kind == "factual" or (kind == "mixed" and rng.random() < 0.5):
        return factual_motion(rng)
    return rng.choice(opinion_motions())


def draw_persuasion(rng: random.Random, goal: str) -> PersuasionTask:
    if goal == "secret":
        pool = secrets()["words"] + secrets()["numbers"]
        secret = rng.choice(pool)
        return PersuasionTask(id=f"secret-{secret}", goal="secret", secret=secret, stubbornness=99)
    m = rng.choice(opinion_motions())
    return PersuasionTask(
        id=f"position-{m.id}",
        goal="position",
        position=m.motion,
        arguments=list(m.pro),
        counter=list(m.con),
        stubbornness=rng.randint(2, 4),
    )
