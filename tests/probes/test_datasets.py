"""Statement datasets: balanced, seeded, spans right, and no entity leaks across splits."""

from __future__ import annotations

import pytest

from selflab.errors import SelflabError
from selflab.probes import datasets as ds

NAMES = ["cities", "neg_cities", "numeric", "arithmetic", "translations", "capitals", "kg"]


@pytest.mark.parametrize("name", NAMES)
def test_balanced_seeded_and_spans(name: str) -> None:
    data = ds.build(name, n=120, seed=3)
    assert len(data) == 120
    assert sum(data.labels()) == 60
    assert [s.text for s in ds.build(name, n=120, seed=3).statements] == [s.text for s in data.statements]
    assert [s.text for s in ds.build(name, n=120, seed=4).statements] != [s.text for s in data.statements]
    for s in data.statements:
        a, b = s.span
        assert 0 <= a < b <= len(s.text)
        assert s.text[a:b].strip() == s.text[a:b]
    # every entity carries exactly one true and one false statement (cities, numbers, ...) or
    # equally many of each (kg: several facts per person)
    per_entity: dict[str, list[int]] = {}
    for s in data.statements:
        per_entity.setdefault(s.entity, []).append(s.label)
    assert all(sum(v) * 2 == len(v) for v in per_entity.values())


def test_statement_truth_values_are_right() -> None:
    for s in ds.build("arithmetic", n=60).statements:
        lhs, rhs = s.text.rstrip(".").split(" = ")
        a, op, b = lhs.split()
        value = int(a) + int(b) if op == "+" else int(a) - int(b)
        assert (value == int(rhs)) == bool(s.label)
    for s in ds.build("numeric", n=60).statements:
        a, _, _, _, b = s.text.rstrip(".").split()
        assert (int(a) > int(b)) == bool(s.label)
    cities = {s.text: s.label for s in ds.build("cities").statements}
    assert cities["The city of Paris is in France."] == 1
    neg = {s.text: s.label for s in ds.build("neg_cities").statements}
    assert neg["The city of Paris is not in France."] == 0


@pytest.mark.parametrize("name", NAMES)
def test_entity_split_has_no_leakage(name: str) -> None:
    data = ds.build(name, n=300, seed=1)
    idx = ds.split_indices(data.statements, seed=1)
    ents = {k: {data.statements[i].entity for i in v} for k, v in idx.items()}
    texts = {k: {data.statements[i].text for i in v} for k, v in idx.items()}
    assert (
        not (ents["train"] & ents["test"])
        and not (ents["train"] & ents["val"])
        and not (ents["val"] & ents["test"])
    )
    assert not (texts["train"] & texts["test"])
    assert sum(len(v) for v in idx.values()) == len(data)
    # roughly the requested fractions (0.5 / 0.2 / 0.3)
    assert 0.35 < len(idx["train"]) / len(data) < 0.65


def test_split_is_consistent_across_datasets() -> None:
    """A city in cities-train is never in neg_cities-test: splits depend on the entity only."""
    a, b = ds.build("cities"), ds.build("neg_cities")
    split_a = {s.entity: ds.entity_split(s.entity, 0) for s in a.statements}
    for s in b.statements:
        assert ds.entity_split(s.entity, 0) == split_a[s.entity]


def test_balance_downsamples_whole_classes() -> None:
    st = [ds.Statement(f"t{i}", int(i < 8), f"e{i}", "x", (0, 1)) for i in range(10)]
    out = ds.balance(st, seed=0)
    assert sum(s.label for s in out) == 2 and len(out) == 4


def test_bad_requests_are_user_errors() -> None:
    with pytest.raises(SelflabError):
        ds.build("nope")
    with pytest.raises(SelflabError):
        ds.build("cities", n=2)
    with pytest.raises(SelflabError):
        ds.entity_split("x", fractions=(0.5, 0.5, 0.5))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_fact_in_two_datasets_lands_in_one_split(seed: int) -> None:
    """'The city of Manila is in Philippines.' (cities) and 'The capital of Philippines is Manila.'
    (capitals) state one fact: a probe trained on one must never be tested on the other."""
    cities = {s.entity for s in ds.build("cities").statements}
    shared = 0
    for s in ds.build("capitals").statements:
        capital = s.text[s.span[0] : s.span[1]] if s.label == 1 else None
        if capital in cities:
            shared += 1
            assert ds.entity_split(s.entity, seed) == ds.entity_split(capital, seed), capital
    assert shared > 10  # the two tables do overlap, so the check above is not vacuous
