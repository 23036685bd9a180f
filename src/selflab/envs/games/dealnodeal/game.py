"""Deal or No Deal rules (Lewis et al., 2017), with the objective switch of the DoND self-play paper
(Liao et al., 2024): pure logic shared by the env, the agents and the tests.

Two players split a pool of books, hats and balls. Each has private values that sum to 10 over
the pool. A deal gives each player the value of what it receives; no deal gives both 0. The
objective turns the same game from fully cooperative to strictly competitive:

- "cooperative": each player's reward is the sum of both scores;
- "semi": each player's reward is its own score (the original DoND);
- "competitive": own score minus the other's (zero-sum).
"""

from __future__ import annotations

import itertools
import re
from typing import Literal

from pydantic import BaseModel

from selflab.envs.protocol import ParseError
from selflab.envs.reader import read_int
from selflab.envs.words import tokens

ITEMS: tuple[str, ...] = ("book", "hat", "ball")
TOTAL_VALUE = 10
Objective = Literal["cooperative", "semi", "competitive"]
OBJECTIVES: tuple[str, ...] = ("cooperative", "semi", "competitive")


class DondInstance(BaseModel):
    """A pool and both players' private values (values[p][i] = worth of one item i to player p)."""

    id: str = ""
    counts: tuple[int, int, int]
    values: tuple[tuple[int, int, int], tuple[int, int, int]]


def score(values: tuple[int, ...], allocation: tuple[int, ...]) -> int:
    """Worth of the items a player receives."""
    return sum(v * a for v, a in zip(values, allocation, strict=True))


def complement(counts: tuple[int, ...], allocation: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(c - a for c, a in zip(counts, allocation, strict=True))


def rewards(objective: str, scores: tuple[float, float]) -> tuple[float, float]:
    """Both players' rewards from both scores under the objective (no deal: scores (0, 0))."""
    a, b = scores
    if objective == "cooperative":
        return (a + b, a + b)
    if objective == "semi":
        return (a, b)
    if objective == "competitive":
        return (a - b, b - a)
    raise ValueError(f"unknown objective {objective!r}")


def allocations(counts: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every way to take some of each item."""
    return list(itertools.product(*(range(c + 1) for c in counts)))


def is_pareto_optimal(inst: DondInstance, taker: int, allocation: tuple[int, ...]) -> bool:
    """No other split gives one player more without giving the other less."""
    mine = score(inst.values[taker], allocation)
    theirs = score(inst.values[1 - taker], complement(inst.counts, allocation))
    for alt in allocations(inst.counts):
        m, t = score(inst.values[taker], alt), score(inst.values[1 - taker], complement(inst.counts, alt))
        if m >= mine and t >= theirs and (m > mine or t > theirs):
            return False
    return True


def max_joint(inst: DondInstance) -> int:
    """The best achievable sum of scores (each item to whoever values it more)."""
    return sum(c * max(inst.values[0][i], inst.values[1][i]) for i, c in enumerate(inst.counts))


def describe(counts: tuple[int, ...]) -> str:
    """'2 books, 1 hat, 0 balls'"""
    return ", ".join(f"{c} {name}{'' if c == 1 else 's'}" for c, name in zip(counts, ITEMS, strict=True))


def proposal_text(allocation: tuple[int, ...]) -> str:
    """Canonical action text of a proposal (what the proposer keeps)."""
    return "PROPOSE: " + " ".join(f"{name}s={a}" for name, a in zip(ITEMS, allocation, strict=True))


# After a key, the whole token is read ("1.5", "1/2", "two", fullwidth digits), so that the bounded
# reader refuses what is not a whole number instead of the match failing and the item silently
# counting 0. The counted form ("2 books") only takes ASCII numbers, with their fractional tail.
_MARKUP = "*_`'\""
_KEYED_RES = [
    re.compile(rf"\b{name}s?[{_MARKUP}]*\s*[=:]\s*((?:[^\s,;()]|,(?=[0-9]))+)", re.IGNORECASE)
    for name in ITEMS
]
_COUNTED_RES = [
    re.compile(rf"(?<![\w=:.,/])([+-]?[0-9]+(?:[.,/][0-9]+)*)\s+{name}s?\b", re.IGNORECASE) for name in ITEMS
]
MAX_COUNT = 10


def parse_counts(text: str) -> tuple[int, ...] | None:
    """Item counts from 'books=1 hats=0 balls=2' (or '1 book, 2 balls'); an item not named counts 0;
    None when no item is named at all. Counts keep their sign and are read with the shared bounded
    reader: '-1' or a 5000-digit number is a `RuleViolation`, never a silent positive or a crash.

    The keyed form wins over the counted one (so a gloss like "(you get 1 book)" after the keyed
    counts is harmless), and an item given two different counts in the same form ("books=1
    books=3", "I keep 1 book, you get 2 books") is a `ParseError`: the proposal would parse two
    ways, and taking the first silently would bind the proposer to a split it may not mean."""
    found = False
    out = [0, 0, 0]
    for i in range(len(ITEMS)):
        matches = list(_KEYED_RES[i].finditer(text)) or list(_COUNTED_RES[i].finditer(text))
        values = {
            read_int(m.group(1).strip(_MARKUP).rstrip(".!"), 0, MAX_COUNT, f"number of {ITEMS[i]}s")
            for m in matches
        }
        if len(values) > 1:
            raise ParseError(
                f"{ITEMS[i]}s are given different counts ({', '.join(map(str, sorted(values)))}); "
                "name each item once, with the number YOU keep"
            )
        if values:
            found = True
            out[i] = values.pop()
    return tuple(out) if found else None


Kind = Literal["say", "propose", "accept", "reject"]
_KEYWORD_RE = re.compile(r"^[^\w]*(say|propose)\b[^\w]*[:\-]?\s*(.*)$", re.IGNORECASE | re.DOTALL)


def parse_action(text: str) -> tuple[Kind, str] | None:
    """(kind, rest) by explicit protocol: 'SAY: ...' or 'PROPOSE: ...' at the start, or a message
    that is exactly ACCEPT or REJECT (markdown and final punctuation aside). None otherwise: "I do
    not accept", "Accept? no way" and a keyword in the middle of a sentence are not moves."""
    t = text.strip()
    words = tokens(t)
    if words in (["accept"], ["reject"]) and "?" not in t:
        return words[0], ""  # type: ignore[return-value]
    m = _KEYWORD_RE.match(t)
    if not m:
        return None
    return m.group(1).lower(), m.group(2).strip()  # type: ignore[return-value]
