"""Seeded spy game instances (location, spy seat, location pool), stored as files."""

from __future__ import annotations

import json
import random
from pathlib import Path

from pydantic import BaseModel

from selflab.envs.games.spy.locations import load_data


class SpyInstance(BaseModel):
    id: str
    seed: int
    players: int = 4
    rounds: int = 1
    location: str
    spy: int
    num_locations: int | None = None

    def env_kwargs(self) -> dict:
        return {"players": self.players, "rounds": self.rounds, "location": self.location, "spy": self.spy,
                "num_locations": self.num_locations}  # fmt: skip


def generate(
    n: int, seed: int, players: int = 4, rounds: int = 1, num_locations: int | None = None
) -> list[SpyInstance]:
    """`n` deals from one seed: each a location, a spy seat and an episode seed."""
    rng = random.Random(seed)
    names = [loc["name"] for loc in load_data()["locations"]]
    return [
        SpyInstance(
            id=f"spy-{seed}-{i}",
            seed=rng.randrange(2**31),
            players=players,
            rounds=rounds,
            location=rng.choice(names),
            spy=rng.randrange(players),
            num_locations=num_locations,
        )  # fmt: skip
        for i in range(n)
    ]


def save(instances: list[SpyInstance], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(i.model_dump_json() + "\n" for i in instances))
    return path


def load(path: str | Path) -> list[SpyInstance]:
    return [SpyInstance(**json.loads(line)) for line in Path(path).read_text().splitlines() if line.strip()]
