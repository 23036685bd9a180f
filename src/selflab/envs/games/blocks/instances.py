"""Seeded blocks-world instances (initial and goal stacks) with their optimal plan length.

`generate` draws both states uniformly over random stack partitions; `shipped()` reads the fixed
instance file `instances.jsonl` (regenerate it with `python -m selflab.envs.games.blocks.instances`),
so published numbers refer to the same puzzles.
"""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path

from pydantic import BaseModel

from selflab.envs.games.blocks.solver import optimal_length
from selflab.envs.games.blocks.world import Stacks, canonical
from selflab.errors import ConfigError

SHIPPED = Path(__file__).with_name("instances.jsonl")
MAX_BLOCKS = 10


class BlocksInstance(BaseModel):
    """One puzzle. `optimal` is the length of a shortest plan (A* with an admissible bound)."""

    id: str
    initial: list[list[str]]
    goal: list[list[str]]
    optimal: int

    @property
    def initial_stacks(self) -> Stacks:
        return canonical(self.initial)

    @property
    def goal_stacks(self) -> Stacks:
        return canonical(self.goal)


def block_names(n: int) -> list[str]:
    if not 1 <= n <= MAX_BLOCKS:
        raise ConfigError(f"blocks must be between 1 and {MAX_BLOCKS}, got {n}", "pass blocks=3..8")
    return [chr(ord("A") + i) for i in range(n)]


def random_state(names: list[str], rng: random.Random) -> Stacks:
    """Blocks dropped one by one in random order onto a random existing stack or a new one."""
    order = list(names)
    rng.shuffle(order)
    stacks: list[list[str]] = []
    for b in order:
        k = rng.randrange(len(stacks) + 1)
        if k == len(stacks):
            stacks.append([b])
        else:
            stacks[k].append(b)
    return canonical(stacks)


def generate(blocks: int, rng: random.Random, id: str = "") -> BlocksInstance:
    """A puzzle with `blocks` blocks whose goal differs from its start."""
    names = block_names(blocks)
    if blocks == 1:
        raise ConfigError("one block gives no puzzle", "pass blocks=2 or more")
    while True:
        initial, goal = random_state(names, rng), random_state(names, rng)
        if initial != goal:
            break
    return BlocksInstance(
        id=id or f"b{blocks}",
        initial=[list(s) for s in initial],
        goal=[list(s) for s in goal],
        optimal=optimal_length(initial, goal),
    )


@cache
def shipped() -> tuple[BlocksInstance, ...]:
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    return tuple(BlocksInstance.model_validate_json(line) for line in lines if line.strip())


def write_shipped(per_size: int = 20, sizes: tuple[int, ...] = (3, 4, 5, 6, 7), seed: int = 2024) -> Path:
    """Regenerate the shipped instance file (deterministic for a given seed)."""
    rng = random.Random(seed)
    rows = []
    for n in sizes:
        for i in range(per_size):
            rows.append(generate(n, rng, id=f"b{n}-{i:03d}"))
    SHIPPED.write_text("".join(json.dumps(r.model_dump()) + "\n" for r in rows), encoding="utf-8")
    return SHIPPED


if __name__ == "__main__":
    print(write_shipped())
