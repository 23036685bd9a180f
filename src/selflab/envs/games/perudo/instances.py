"""Seeded Perudo instances: table size, options and the first round's roll, as files.

As in clembench, instances are generated once and stored, so an experiment can name exactly the
deals it played. Later rounds are rolled by the env's own RNG from the episode seed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from pydantic import BaseModel, Field


class PerudoInstance(BaseModel):
    id: str
    seed: int
    players: int = Field(2, ge=2, le=6)
    dice: int = Field(5, ge=1, le=10)
    ones_wild: bool = False
    initial_dice: list[list[int]]

    def env_kwargs(self) -> dict:
        return {
            "players": self.players,
            "dice": self.dice,
            "ones_wild": self.ones_wild,
            "initial_dice": self.initial_dice,
        }


def generate(
    n: int, seed: int, players: int = 2, dice: int = 5, ones_wild: bool = False
) -> list[PerudoInstance]:
    """`n` instances from one seed; each gets its own episode seed and first roll."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        episode_seed = rng.randrange(2**31)
        roll = [sorted(rng.randint(1, 6) for _ in range(dice)) for _ in range(players)]
        out.append(
            PerudoInstance(
                id=f"perudo-{seed}-{i}", seed=episode_seed, players=players, dice=dice,
                ones_wild=ones_wild, initial_dice=roll,
            )
        )  # fmt: skip
    return out


def save(instances: list[PerudoInstance], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(i.model_dump_json() + "\n" for i in instances))
    return path


def load(path: str | Path) -> list[PerudoInstance]:
    return [
        PerudoInstance(**json.loads(line)) for line in Path(path).read_text().splitlines() if line.strip()
    ]
