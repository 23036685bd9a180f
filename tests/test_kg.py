"""Knowledge graph: schema validation, vocabularies, year consistency, known facts, triples."""

from __future__ import annotations

import random
from collections import Counter

import pycountry
import pytest
from pydantic import ValidationError

from selflab.kg import (
    CONTINENTS,
    ERA_NAMES,
    FIELDS,
    GENDERS,
    OCCUPATIONS,
    RELATIONS,
    Fact,
    Person,
    era_of,
    facts,
    false_fact,
    find_person,
    load_countries,
    load_people,
    normalize_name,
    person_facts,
    sentence,
)
from selflab.kg.people import CURRENT_YEAR


def test_graph_is_large_and_names_are_unique() -> None:
    people = load_people()
    assert len(people) >= 300
    names = Counter(p.name for p in people)
    assert not [n for n, c in names.items() if c > 1]
    # No alias may point at two people, or guesses would be ambiguous.
    keys = Counter(k for p in people for k in p.names)
    assert not [k for k, c in keys.items() if c > 1]


def test_values_come_from_fixed_vocabularies() -> None:
    countries = load_countries()
    for p in load_people():
        assert p.gender in GENDERS
        assert p.field in FIELDS and OCCUPATIONS[p.occupation] == p.field
        assert p.nationality in countries and countries[p.nationality].continent == p.continent
        assert p.continent in CONTINENTS and p.era in ERA_NAMES
        assert p.known_for.strip()
    for c in countries.values():
        assert pycountry.countries.get(alpha_2=c.iso2) is not None, c
    assert set(FIELDS) == set(OCCUPATIONS.values())


def test_years_are_consistent() -> None:
    for p in load_people():
        assert p.birth_year != 0 and p.death_year != 0
        if p.death_year is not None:
            assert p.birth_year < p.death_year <= CURRENT_YEAR, p.name
            assert p.death_year - p.birth_year <= 110, p.name
        else:
            assert CURRENT_YEAR - p.birth_year <= 105, p.name
        if p.circa:
            assert p.birth_year < 1900, f"{p.name}: modern people have exact years"
    assert Counter(p.alive for p in load_people())[True] > 50
    assert {p.era for p in load_people()} == set(ERA_NAMES)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "Albert Einstein",
            dict(
                nationality="Germany",
                field="science",
                occupation="physicist",
                birth_year=1879,
                death_year=1955,
                nobel_prize=True,
            ),
        ),
        (
            "Marie Curie",
            dict(gender="female", birth_year=1867, death_year=1934, nobel_prize=True, continent="Europe"),
        ),
        (
            "William Shakespeare",
            dict(occupation="playwright", birth_year=1564, death_year=1616, nobel_prize=False),
        ),
        (
            "Frida Kahlo",
            dict(gender="female", nationality="Mexico", continent="North America", occupation="painter"),
        ),
        (
            "Nelson Mandela",
            dict(nationality="South Africa", continent="Africa", nobel_prize=True, death_year=2013),
        ),
        ("Taylor Swift", dict(birth_year=1989, death_year=None, field="music")),
        ("Aristotle", dict(birth_year=-384, death_year=-322, era="ancient", nationality="Greece")),
        ("Akira Kurosawa", dict(nationality="Japan", continent="Asia", occupation="director")),
    ],
)
def test_known_facts(name: str, expected: dict) -> None:
    p = find_person(name)
    assert p is not None
    for key, value in expected.items():
        assert getattr(p, key) == value, (name, key)


def test_era_boundaries_and_name_normalisation() -> None:
    assert [era_of(y) for y in (-384, 499, 500, 1499, 1500, 1799, 1800, 1899, 1900, 1989)] == [
        "ancient", "ancient", "medieval", "medieval", "early modern", "early modern",
        "19th century", "19th century", "20th century", "20th century",
    ]  # fmt: skip
    assert normalize_name("J. K. Rowling") == normalize_name("JK Rowling") == "jk rowling"
    assert normalize_name("Erwin Schrödinger") == "erwin schrodinger"
    assert normalize_name("Søren Kierkegaard") == "soren kierkegaard"
    assert find_person("schrodinger").name == "Erwin Schrödinger"
    assert find_person("Nobody Atall") is None


def test_person_validation_rejects_inconsistent_rows() -> None:
    base = dict(name="X", gender="male", nationality="France", continent="Europe", field="science",
                occupation="physicist", birth_year=1900, death_year=1950, known_for="y")  # fmt: skip
    Person(**base)
    for bad in (
        {"occupation": "painter"},  # belongs to art, not science
        {"occupation": "wizard"},
        {"death_year": 1890},  # dies before birth
        {"birth_year": 1800, "death_year": None},  # alive at 225
        {"gender": "robot"},
    ):
        with pytest.raises(ValidationError):
            Person(**{**base, **bad})


def test_triples_sentences_and_false_variants() -> None:
    einstein = find_person("Albert Einstein")
    triples = person_facts(einstein)
    assert Fact("Albert Einstein", "birth_year", 1879) in triples
    assert Fact("Albert Einstein", "nobel_prize", True) in triples
    assert sentence(Fact("Albert Einstein", "birth_year", 1879)) == "Albert Einstein was born in 1879."
    assert sentence(Fact("Aristotle", "death_year", -322)) == "Aristotle died in 322 BCE."
    # Approximate years are not stated as facts.
    assert not [f for f in person_facts(find_person("Socrates")) if f.relation == "birth_year"]
    all_facts = list(facts())
    assert len(all_facts) > 10 * 300 and {f.relation for f in all_facts} == set(RELATIONS)
    rng = random.Random(0)
    by_name = {p.name: p for p in load_people()}
    for f in rng.sample(all_facts, 400):
        bad = false_fact(f, rng)
        assert bad.subject == f.subject and bad.relation == f.relation and bad.object != f.object
        assert bad not in person_facts(by_name[f.subject])
        assert sentence(bad) != sentence(f)
    assert false_fact(triples[0], random.Random(3)) == false_fact(triples[0], random.Random(3))
