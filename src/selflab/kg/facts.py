"""The graph as (subject, relation, object) triples, with sentences and seeded false variants.

Why: probes and judges need statements whose truth value is known. `facts()` yields only true
triples; `false_fact` swaps the object for another value of the same relation that is false for
that subject; `sentence` renders either as plain English.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import NamedTuple

from selflab.kg.people import (
    CONTINENTS,
    CURRENT_YEAR,
    ERA_NAMES,
    FIELDS,
    OCCUPATIONS,
    Person,
    load_countries,
    load_people,
)

RELATIONS = (
    "gender",
    "nationality",
    "continent",
    "field",
    "occupation",
    "era",
    "birth_year",
    "death_year",
    "alive",
    "nobel_prize",
    "known_for",
)


class Fact(NamedTuple):
    """One triple. `object` is a str for categorical relations, an int for years, a bool for flags."""

    subject: str
    relation: str
    object: str | int | bool


def person_facts(p: Person) -> list[Fact]:
    """The true triples about one person. Years are left out when approximate (`circa`)."""
    out = [
        Fact(p.name, "gender", p.gender),
        Fact(p.name, "nationality", p.nationality),
        Fact(p.name, "continent", p.continent),
        Fact(p.name, "field", p.field),
        Fact(p.name, "occupation", p.occupation),
        Fact(p.name, "era", p.era),
    ]
    if not p.circa:
        out.append(Fact(p.name, "birth_year", p.birth_year))
        if p.death_year is not None:
            out.append(Fact(p.name, "death_year", p.death_year))
    out += [
        Fact(p.name, "alive", p.alive),
        Fact(p.name, "nobel_prize", p.nobel_prize),
        Fact(p.name, "known_for", p.known_for),
    ]
    return out


def facts(people: list[Person] | None = None) -> Iterator[Fact]:
    """Every true triple of the graph (or of `people`), person by person in file order."""
    for p in load_people() if people is None else people:
        yield from person_facts(p)


def _values(relation: str, people: list[Person]) -> list[str | int | bool]:
    if relation == "gender":
        return ["male", "female"]
    if relation == "nationality":
        return sorted(load_countries())
    if relation == "continent":
        return list(CONTINENTS)
    if relation == "field":
        return list(FIELDS)
    if relation == "occupation":
        return sorted(OCCUPATIONS)
    if relation == "era":
        return list(ERA_NAMES)
    if relation in ("alive", "nobel_prize"):
        return [True, False]
    if relation == "known_for":
        return sorted({p.known_for for p in people})
    raise ValueError(f"no value list for relation {relation!r}")


def false_fact(fact: Fact, rng: random.Random, people: list[Person] | None = None) -> Fact:
    """A false triple with the same subject and relation: another value from the relation's
    vocabulary (years shifted by 3 to 60 years, `known_for` taken from another person)."""
    people = load_people() if people is None else people
    if fact.relation in ("birth_year", "death_year"):
        assert isinstance(fact.object, int)
        shift = rng.randint(3, 60) * rng.choice((-1, 1))
        year = fact.object + shift
        if year > CURRENT_YEAR:
            year = fact.object - abs(shift)
        return Fact(fact.subject, fact.relation, year if year != 0 else year + 1)
    if fact.relation == "occupation":
        # Prefer an occupation of the same field, so the false statement is not trivially absurd.
        same_field = [
            o for o, f in OCCUPATIONS.items() if f == OCCUPATIONS[str(fact.object)] and o != fact.object
        ]
        pool: list[str | int | bool] = list(same_field or [o for o in OCCUPATIONS if o != fact.object])
    else:
        pool = [v for v in _values(fact.relation, people) if v != fact.object]
    return Fact(fact.subject, fact.relation, rng.choice(pool))


def _year(y: int) -> str:
    return f"{-y} BCE" if y < 0 else str(y)


def sentence(fact: Fact) -> str:
    """The triple as one English sentence (true or false, as given)."""
    s, r, o = fact
    if r == "gender":
        return f"{s} is a {'man' if o == 'male' else 'woman'}."
    if r == "nationality":
        return f"{s} is from {o}."
    if r == "continent":
        return f"{s} is from {o}."
    if r == "field":
        return f"{s} is known for work in {o}."
    if r == "occupation":
        article = "an" if str(o)[0] in "aeiou" else "a"
        return f"{s} is known as {article} {o}."
    if r == "era":
        return (
            f"{s} was born in the {o} era."
            if o in ("ancient", "medieval", "early modern")
            else f"{s} was born in the {o}."
        )
    if r == "birth_year":
        return f"{s} was born in {_year(int(o))}."
    if r == "death_year":
        return f"{s} died in {_year(int(o))}."
    if r == "alive":
        return f"{s} is alive." if o else f"{s} is no longer alive."
    if r == "nobel_prize":
        return f"{s} was awarded a Nobel Prize." if o else f"{s} never received a Nobel Prize."
    if r == "known_for":
        return f"{s} is known for {o}."
    raise ValueError(f"unknown relation {r!r}")
