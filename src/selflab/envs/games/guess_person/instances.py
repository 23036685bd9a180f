"""Seeded game instances: which people may be the secret (the pool) and which one is.

The pool is the whole graph by default, optionally restricted to one field and/or a random
sample of `pool` people (small pools are listed to the guesser, which makes the game feasible for
small models).
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict

from selflab.errors import ConfigError
from selflab.kg import FIELDS, Person, find_person, load_people


class GuessInstance(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    secret: str
    pool: list[str]


def people_pool(field: str | None = None) -> list[Person]:
    """Every person of the graph, or those of one field."""
    people = load_people()
    if field is None:
        return people
    if field not in FIELDS:
        raise ConfigError(f"unknown field {field!r}", f"use one of {', '.join(FIELDS)} or leave it unset")
    return [p for p in people if p.field == field]


def generate(
    rng: random.Random,
    *,
    pool: int | None = None,
    field: str | None = None,
    person: str | None = None,
    id: str = "guess",
) -> GuessInstance:
    """Draw the pool (all people of `field`, or `pool` of them) and the secret person from `rng`;
    `person` fixes the secret (it is put into the pool if the sample missed it)."""
    people = people_pool(field)
    if pool is not None and not 2 <= pool <= len(people):
        raise ConfigError(
            f"pool must be between 2 and {len(people)}, got {pool}", "pass a smaller pool or none"
        )
    chosen = list(people) if pool is None else rng.sample(people, pool)
    if person is not None:
        target = find_person(person)
        if target is None or (field is not None and target.field != field):
            raise ConfigError(
                f"{person!r} is not a person of the knowledge graph{' in ' + field if field else ''}",
                "pick a name from selflab.kg.load_people()",
            )
        if target not in chosen:
            chosen[rng.randrange(len(chosen))] = target
        secret = target
    else:
        secret = rng.choice(chosen)
    return GuessInstance(id=id, secret=secret.name, pool=[p.name for p in chosen])
