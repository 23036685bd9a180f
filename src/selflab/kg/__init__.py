"""A small knowledge graph of well-known people (schema in `selflab.kg.people`): the ground truth
for the guess-the-person game and for true/false statements used by probes."""

from selflab.kg.facts import RELATIONS, Fact, facts, false_fact, person_facts, sentence
from selflab.kg.people import (
    CONTINENTS,
    ERA_NAMES,
    FIELDS,
    GENDERS,
    OCCUPATIONS,
    Country,
    Person,
    era_of,
    find_person,
    load_countries,
    load_people,
    normalize_name,
)

__all__ = [
    "CONTINENTS",
    "ERA_NAMES",
    "FIELDS",
    "GENDERS",
    "OCCUPATIONS",
    "RELATIONS",
    "Country",
    "Fact",
    "Person",
    "era_of",
    "facts",
    "false_fact",
    "find_person",
    "load_countries",
    "load_people",
    "normalize_name",
    "person_facts",
    "sentence",
]
