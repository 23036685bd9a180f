"""Seeded Deal or No Deal instances, drawn as in Lewis et al. (2017): 1 to 4 of each item, 5 to 7
items in all, each player's values summing to 10, every item worth something to someone, and at
least one item wanted by both (so there is something to negotiate)."""

from __future__ import annotations

import itertools
import json
import random
from functools import cache
from pathlib import Path

from selflab.envs.games.dealnodeal.game import TOTAL_VALUE, DondInstance

SHIPPED = Path(__file__).with_name("instances.jsonl")


@cache
def value_vectors(counts: tuple[int, int, int]) -> tuple[tuple[int, int, int], ...]:
    """All non-negative integer values with sum(count * value) == 10."""
    ranges = [range(TOTAL_VALUE // c + 1) for c in counts]
    return tuple(
        v
        for v in itertools.product(*ranges)
        if sum(c * x for c, x in zip(counts, v, strict=True)) == TOTAL_VALUE
    )


def valid(counts: tuple[int, int, int], a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    every_item_wanted = all(x > 0 or y > 0 for x, y in zip(a, b, strict=True))
    some_conflict = any(x > 0 and y > 0 for x, y in zip(a, b, strict=True))
    return every_item_wanted and some_conflict


def generate(rng: random.Random, id: str = "") -> DondInstance:
    while True:
        counts = tuple(rng.randint(1, 4) for _ in range(3))
        if not 5 <= sum(counts) <= 7:
            continue
        vectors = value_vectors(counts)  # type: ignore[arg-type]
        a, b = rng.choice(vectors), rng.choice(vectors)
        if valid(counts, a, b):  # type: ignore[arg-type]
            return DondInstance(id=id, counts=counts, values=(a, b))  # type: ignore[arg-type]


@cache
def shipped() -> tuple[DondInstance, ...]:
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    return tuple(DondInstance.model_validate_json(line) for line in lines if line.strip())


def write_shipped(n: int = 200, seed: int = 2017) -> Path:
    rng = random.Random(seed)
    rows = [generate(rng, id=f"dond-{i:03d}") for i in range(n)]
    SHIPPED.write_text("".join(json.dumps(r.model_dump()) + "\n" for r in rows), encoding="utf-8")
    return SHIPPED


if __name__ == "__main__":
    print(write_shipped())
