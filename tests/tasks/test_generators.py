"""Generators: seeded, unique ids, references pass and wrong answers fail their own verifiers."""

from __future__ import annotations

import random

import pycountry
import pytest

from selflab.errors import SelflabError
from selflab.tasks import (
    Task,
    arithmetic_tasks,
    check,
    fact_statements,
    fact_tasks,
    instruction_tasks,
    load_fact_table,
    word_problem_tasks,
)
from selflab.tasks.facts import FACT_KINDS
from selflab.tasks.instructions import CONSTRAINT_KINDS, respond


def test_fact_table_is_sane() -> None:
    table = load_fact_table()
    assert len(table) >= 60
    assert len({c.iso2 for c in table}) == len(table)
    for c in table:
        assert pycountry.countries.get(alpha_2=c.iso2) is not None, c.iso2
        assert pycountry.currencies.get(alpha_3=c.currency_code) is not None, c.currency_code
        assert c.capital and c.continents
        assert c.population_m is None or 0.1 < c.population_m < 2000
        assert c.independence_year is None or 1700 < c.independence_year < 2025
    fr = next(c for c in table if c.iso2 == "FR")
    assert (fr.capital, fr.alpha3, fr.currency_code) == ("Paris", "FRA", "EUR")


@pytest.mark.parametrize("gen", [arithmetic_tasks, word_problem_tasks, fact_tasks, instruction_tasks])
def test_seeded_unique_and_reference_passes(gen) -> None:
    a, b = gen(40, seed=3), gen(40, seed=3)
    assert [t.model_dump() for t in a] == [t.model_dump() for t in b]
    assert len({t.id for t in a}) == 40
    for t in a:
        assert t.check(t.reference), (t.id, t.reason(t.reference))
        assert check(t, t.reference)
        assert Task.model_validate_json(t.model_dump_json()).check(t.reference)
    assert [t.prompt for t in gen(40, seed=4)] != [t.prompt for t in a]


def test_numeric_answers_are_computed() -> None:
    for t in arithmetic_tasks(30, seed=1):
        expr = t.meta["expression"].replace("/", "//")
        assert eval(expr) == t.answer  # noqa: S307 - our own generated expression
        assert not t.check(f"The answer is {t.answer + 1}.")
    for t in word_problem_tasks(30, seed=1):
        assert not t.check(f"The answer is {t.answer + 2}.")


def test_fact_tasks_cover_kinds_and_reject_wrong_values() -> None:
    tasks = fact_tasks(70, seed=0)
    assert {t.meta["fact"] for t in tasks} == set(FACT_KINDS)
    table = {c.iso2: c for c in load_fact_table()}
    for t in tasks:
        c = table[t.meta["country"]]
        kind = t.meta["fact"]
        if kind == "capital":
            other = next(o for o in table.values() if o.iso2 != c.iso2)
            assert not t.check(f"The capital is {other.capital}.")
            assert not t.check(f"It is {c.capital} or {other.capital}.")
        elif kind == "independence_year":
            assert not t.check(f"In {c.independence_year + 1}.")
        elif kind == "population_approx":
            assert not t.check(f"About {c.population_m * 2:g} million.")
        elif kind == "population_compare":
            small = table[t.meta["other"]] if t.meta["larger"] == c.iso2 else c
            assert not t.check(small.name)


def test_fact_tasks_exhausts_without_duplicates() -> None:
    tasks = fact_tasks(10_000, seed=0)
    assert len(tasks) == len({t.id for t in tasks}) > 300


def test_unknown_kinds_are_user_errors() -> None:
    with pytest.raises(SelflabError):
        fact_tasks(3, kinds=("capital", "bogus"))
    with pytest.raises(SelflabError):
        instruction_tasks(3, kinds=("bogus",))


@pytest.mark.parametrize("kind", CONSTRAINT_KINDS)
def test_instruction_modes(kind: str) -> None:
    for t in instruction_tasks(6, seed=11, kinds=(kind,)):
        for seed in range(3):
            assert t.check(respond(t, random.Random(seed), "correct"))
            assert not t.check(respond(t, random.Random(seed), "subtle")), respond(
                t, random.Random(seed), "subtle"
            )
            assert not t.check(respond(t, random.Random(seed), "off"))


def test_fact_statements_balanced() -> None:
    st = fact_statements(40, seed=2)
    assert sum(1 for _, truth, _ in st if truth) == 20
    table = {c.iso2: c for c in load_fact_table()}
    for text, truth, meta in st:
        c = table[meta["country"]]
        if meta["fact"] == "capital":
            assert (meta["value"] == c.capital) == truth, text
