"""Detective deductions: every inference is checked against the clues and statements; oracle
solutions are correct at every step, planted errors are found at their step, odd reasons are
recorded as unparsable, and junk never crashes the verifier."""

from __future__ import annotations

import random
from collections import Counter

from selflab.stepwise import get_family, step_problems
from selflab.stepwise.detective import case_of, cited_traits, statements_clear, traits_of
from selflab.stepwise.types import StepProblem

FAM = get_family("detective")


def _case_with(pred, split: str = "train", n: int = 80) -> StepProblem:  # type: ignore[no-untyped-def]
    for p in step_problems("detective", n, seed=11, split=split):  # type: ignore[arg-type]
        if pred(p):
            return p
    raise AssertionError("no such case in the sample")


def _trait_cleared(p: StepProblem) -> str | None:
    """An innocent whom a clue clears, and the clue trait."""
    m = case_of(p)
    tr = traits_of(m)
    for x in m.names:
        if x != m.culprit and any(tr[x][c.trait] != c.value for c in m.clues):
            return x
    return None


def test_cited_traits_reads_negation_and_spellings() -> None:
    assert cited_traits("does not smoke") == {"smokes": {"no"}}
    assert cited_traits("a non-smoker with gray hair") == {"smokes": {"no"}, "hair": {"grey"}}
    assert cited_traits("smokes, left handed, blond-haired, muddy shoes") == {
        "smokes": {"yes"},
        "handedness": {"left"},
        "hair": {"blonde"},
        "shoes": {"muddy"},
    }
    assert cited_traits("was in the library with Miss Vance") == {}


def test_every_planted_error_kind_is_found_at_its_step() -> None:
    rng = random.Random(3)
    kinds: Counter[str] = Counter()
    for p in step_problems("detective", 40, seed=4, split="heldout"):
        for at in range(len(p.gold_steps)):
            got = FAM.injected(p, at, rng)
            assert got is not None  # every innocent admits at least an irrelevant-trait mistake
            text, kind = got
            lab = FAM.label(p, text)
            assert lab.first_error == at and lab.steps[at].ok is False, (kind, lab.steps)
            assert all(s.ok is True for s in lab.steps[:at])
            kinds[kind] += 1
            # a solution that clears the murderer names an innocent: the outcome is wrong too
            assert lab.answer_ok is (kind != "culprit_cleared")
    assert set(kinds) == {"culprit_cleared", "misread", "irrelevant", "false_alibi"}, kinds


def test_reasons_are_checked_against_the_clues() -> None:
    p = _case_with(lambda q: _trait_cleared(q) is not None)
    m = case_of(p)
    x = _trait_cleared(p)
    assert x is not None
    tr = traits_of(m)[x]
    clue = next(c for c in m.clues if tr[c.trait] != c.value)
    mine = {"handedness": f"{tr['handedness']}-handed", "hair": f"{tr['hair']} hair"}.get(clue.trait)
    if mine is None:
        mine = {"smokes": "does not smoke" if tr["smokes"] == "no" else "smokes"}.get(
            clue.trait, f"{tr['shoes']} shoes"
        )

    def verdict(step: str) -> bool | None:
        return FAM.label(p, f"{step}\nAnswer: {m.culprit}").steps[0].ok

    # the suspect's trait, the clue stated either way round, surname only, chatter before the verb
    assert verdict(f"rule out {x}: {mine}") is True
    assert verdict(f"We can rule out {x.split()[-1]} because {x} is {mine}.") is True
    other = next(v for v in ("left", "right") if v != tr["handedness"])
    assert verdict(f"rule out {x}: {other}-handed") is False  # misreads the suspect's trait
    # the murderer described against the clue is a wrong step even if the suspect part is right
    if clue.trait == "handedness":
        assert verdict(f"rule out {x}: {mine}, but the murderer is {tr['handedness']}-handed") is False
    # the murderer cannot be ruled out, whatever the reason
    assert verdict(f"rule out {m.culprit}: the statements clear {m.culprit}") is False
    # no reason, unknown suspect, no verb: recorded as unparsable, never guessed
    assert verdict(f"rule out {x}") is None
    assert verdict("rule out Inspector Nobody: left-handed") is None
    assert verdict("the weather was cold that night") is None


def test_statement_reasons_need_statements_that_clear() -> None:
    def by_statements(p: StepProblem) -> bool:
        m = case_of(p)
        return any(statements_clear(m, x) for x in m.names if x != m.culprit)

    p = _case_with(by_statements)
    m = case_of(p)
    x = next(x for x in m.names if x != m.culprit and statements_clear(m, x))
    lab = FAM.label(p, f"rule out {x}: the statements clear {x} (alibi)\nAnswer: {m.culprit}")
    assert lab.steps[0].ok is True
    q = _case_with(
        lambda q: any(
            not statements_clear(case_of(q), y) for y in case_of(q).names if y != case_of(q).culprit
        )
    )
    mq = case_of(q)
    y = next(y for y in mq.names if y != mq.culprit and not statements_clear(mq, y))
    assert FAM.label(q, f"rule out {y}: {y} has an alibi\nAnswer: {mq.culprit}").steps[0].ok is False


def test_repeats_and_conclusions() -> None:
    p = step_problems("detective", 1, seed=0, split="train")[0]
    m = case_of(p)
    first = p.gold_steps[0]
    lab = FAM.label(p, "\n".join([first, first, f"Answer: {m.culprit}"]))
    assert [s.ok for s in lab.steps] == [True, False] and "already" in lab.steps[1].reason
    early = FAM.label(p, f"{m.culprit} is the murderer\nAnswer: {m.culprit}")
    assert early.steps[0].ok is False and "too early" in early.steps[0].reason
    done = FAM.label(p, "\n".join([*p.gold_steps, f"So {m.culprit} is the murderer", f"Answer: {m.culprit}"]))
    assert done.first_error == -1 and done.answer_ok
    innocent = next(n for n in m.names if n != m.culprit)
    assert FAM.label(p, f"The murderer is {innocent}\nAnswer: {innocent}").steps[0].ok is False


def test_answers_name_exactly_one_suspect() -> None:
    p = step_problems("detective", 1, seed=0, split="heldout")[0]
    m = case_of(p)
    steps = "\n".join(p.gold_steps)
    assert FAM.label(p, f"{steps}\nAnswer: {m.culprit.split()[-1]}.").answer_ok
    assert not FAM.label(p, f"{steps}\nAnswer: {' or '.join(m.names)}").answer_ok
    assert FAM.answer_key(p, f"{steps}\nAnswer: {m.culprit.upper()}") == m.culprit
    assert FAM.answer_key(p, steps) is None


def test_garbage_never_crashes() -> None:
    p = step_problems("detective", 1, seed=2, split="train")[0]
    names = case_of(p).names
    rng = random.Random(1)
    words = ["rule", "out", ":", "but", "the", "murderer", "is", "left-handed", "red", "hair", "says",
             "with", "smokes", "not", "clear", "Answer:", "\n", *names, "(", "**", "1."]  # fmt: skip
    for _ in range(300):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 30)))
        lab = FAM.label(p, text)
        assert lab.status in ("ok", "empty", "no_steps", "no_answer")
        assert all(s.ok in (True, False, None) for s in lab.steps)
    assert FAM.label(p, "rule out " + "x" * 5000).steps[0].ok is None
