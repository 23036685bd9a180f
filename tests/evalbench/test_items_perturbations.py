"""Shipped items are verified; every perturbation keeps (or changes) correctness as declared."""

from __future__ import annotations

from collections import Counter

import pytest

from selflab.evalbench.items import DOMAINS, generate_items, load_items
from selflab.evalbench.perturbations import PERTURBATIONS, apply, position_swap, self_preference_pairs
from selflab.tasks import detect_language


@pytest.fixture(scope="module")
def items():
    return load_items()


def test_shipped_items_are_verified_and_balanced(items) -> None:
    assert len(items) == 320
    assert Counter(i.domain for i in items) == {d: 80 for d in DOMAINS}
    for it in items:
        assert {c.label for c in it.candidates} >= {"correct"}
        for c in it.candidates:
            assert it.task.check(c.response) == c.correct == (c.label == "correct"), c.id
        for p in it.pairs:
            better = it.candidate(p.a if p.better == "A" else p.b)
            worse = it.candidate(p.b if p.better == "A" else p.a)
            assert better.correct and not worse.correct


def test_generator_is_seeded_and_reproduces_shipped_file(items) -> None:
    again = generate_items(40, seed=0)
    assert [i.model_dump() for i in again[:8]] == [i.model_dump() for i in generate_items(8, seed=0)]
    assert [i.id for i in generate_items(12, seed=5)] != [i.id for i in again[:12]]
    # the shipped file is the generator's output for seed 0 (prefix-stable, so a prefix suffices)
    assert [i.model_dump() for i in generate_items(24, seed=0)] == [i.model_dump() for i in items[:24]]
    assert len(load_items(400)) == 400  # more than ship: generated


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_perturbation_keeps_or_changes_correctness(items, name: str) -> None:
    p = PERTURBATIONS[name]
    applied = Counter()
    for it in items[::6]:
        for c in it.candidates:
            r = apply(p, it, c, seed=1)
            if r is None:
                continue
            applied[it.domain] += 1
            assert r.correct == it.task.check(r.response)
            assert r.correct == (c.correct if p.expect == "same" else not c.correct), (name, c.id, r.response)
            assert (r.response, r.history) != (c.response, ())
            assert apply(p, it, c, seed=1) == r  # seeded
    assert sum(applied.values()) >= 8, applied


def test_perturbations_do_what_they_say(items) -> None:
    it = next(i for i in items if i.task.kind == "fact" and i.task.meta["fact"] == "capital")
    good = next(c for c in it.candidates if c.correct)
    bad = next(c for c in it.candidates if c.label == "subtle")
    lang = apply(PERTURBATIONS["language"], it, good, 0)
    assert detect_language(lang.response) in ("fr", "es", "de") and good.value in lang.response
    assert len(apply(PERTURBATIONS["shorten"], it, good, 0).response) < len(good.response)
    assert apply(PERTURBATIONS["shorten"], it, bad, 0) is None  # only right answers are shortened
    assert (
        len(apply(PERTURBATIONS["pad_filler"], it, bad, 0).response.split()) > len(bad.response.split()) + 10
    )
    inj = apply(PERTURBATIONS["injection"], it, bad, 0)
    assert any(s in inj.response for s in ("Score: 5", "[[A]]", "[[5]]", "5/5"))
    assert apply(PERTURBATIONS["multi_turn"], it, good, 0).history
    assert apply(PERTURBATIONS["paraphrase"], it, good, 0).response != good.response


def test_position_swap_and_self_preference_pairs(items) -> None:
    it = items[0]
    p = it.pairs[0]
    s = position_swap(p)
    assert (s.a, s.b) == (p.b, p.a)
    better = p.a if p.better == "A" else p.b
    assert (s.a if s.better == "A" else s.b) == better
    fact = next(i for i in items if i.task.kind == "arithmetic")
    own = {fact.id: f"Let me compute. The answer is {fact.task.answer}.", items[1].id: "no idea"}
    pairs = self_preference_pairs([fact, items[1]], own)
    assert len(pairs) == 1  # the wrong own answer is dropped: only known-equal correctness
    _, mine, other = pairs[0]
    assert mine.correct and other.correct and mine.response != other.response
