"""Step families: gold solutions pass every step check, code-made mistakes land exactly where
asked, the train/held-out split shares no template, entity or sentence, and odd model output is
recorded, never guessed."""

from __future__ import annotations

import random
import re

import pytest

from selflab.errors import ConfigError
from selflab.stepwise import FAMILIES, get_family, step_problems
from selflab.stepwise.splitter import split_solution

NAMES = sorted(FAMILIES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("split", ["train", "heldout"])
def test_gold_solutions_are_correct_at_every_step(name: str, split: str) -> None:
    fam = get_family(name)
    for p in step_problems(name, 25, seed=3, split=split):  # type: ignore[arg-type]
        lab = fam.label(p, fam.gold_text(p))
        assert lab.status == "ok" and lab.first_error == -1 and lab.answer_ok, (p.question, lab.steps)


@pytest.mark.parametrize("name", NAMES)
def test_injected_mistakes_are_first_errors_where_asked(name: str) -> None:
    fam = get_family(name)
    rng = random.Random(0)
    made = 0
    for p in step_problems(name, 15, seed=1, split="heldout"):
        for at in range(len(p.gold_steps)):
            got = fam.injected(p, at, rng)
            if got is None:
                continue
            text, kind = got
            lab = fam.label(p, text)
            assert lab.first_error == at and kind
            assert all(s.ok is True for s in lab.steps[:at])
            made += 1
    assert made >= 20


@pytest.mark.parametrize("name", NAMES)
def test_code_continuation_completes_a_correct_prefix(name: str) -> None:
    fam = get_family(name)
    for p in step_problems(name, 10, seed=2, split="train"):
        for k in range(len(p.gold_steps) + 1):
            cont = fam.continue_from(p, p.gold_steps[:k])
            assert cont is not None
            steps, answer = cont
            lab = fam.label(p, "\n".join([*p.gold_steps[:k], *steps, f"Answer: {answer}"]))
            assert lab.first_error == -1 and lab.answer_ok


def _sentences(text: str) -> set[str]:
    return {s.strip() for s in re.split(r"(?<=[.?!])\s+", text) if s.strip()}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z]+", text))


@pytest.mark.parametrize("name", NAMES)
def test_split_shares_no_template_entity_or_sentence(name: str) -> None:
    train = step_problems(name, 120, seed=0, split="train")
    held = step_problems(name, 120, seed=0, split="heldout")
    assert {p.template for p in train}.isdisjoint({p.template for p in held})
    assert {e for p in train for e in p.entities}.isdisjoint({e for p in held for e in p.entities})
    train_sentences = set().union(*(_sentences(p.question) for p in train))
    held_sentences = set().union(*(_sentences(p.question) for p in held))
    assert train_sentences.isdisjoint(held_sentences)
    # held-out entities never appear anywhere in a training question
    held_entities = {e for p in held for e in p.entities if len(e) > 1}
    train_text = " ".join(p.question for p in train)
    assert not [e for e in held_entities if e in train_text]
    assert {p.split for p in train} == {"train"} and {p.split for p in held} == {"heldout"}


@pytest.mark.parametrize("name", NAMES)
def test_generators_are_seeded(name: str) -> None:
    a = step_problems(name, 8, seed=5, split="train")
    assert a == step_problems(name, 8, seed=5, split="train")
    assert a != step_problems(name, 8, seed=6, split="train")
    assert len({p.question for p in a}) == 8 and len({p.id for p in a}) == 8


def test_unknown_family_and_split_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="no step family"):
        get_family("chess")
    with pytest.raises(ConfigError, match="split"):
        step_problems("arithmetic", 2, split="test")  # type: ignore[arg-type]


def test_splitter_strips_decorations_and_counts_trailing_lines() -> None:
    s = split_solution("Step 1: 3 * 4 = 12\n\n2. **12 - 5 = 7**\n- ok\nAnswer: 7.\nthanks!\nbye")
    assert s.steps == ["3 * 4 = 12", "12 - 5 = 7", "ok"]
    assert s.answer == "7" and s.trailing_lines == 2
    assert split_solution("   \n").empty
    assert split_solution("3 + 4 = 7").answer is None


def test_splitter_peels_markdown_labels_so_correct_steps_stay_correct() -> None:
    """Instruct models write '**Step 1:** 3 * 4 = 12', headings and code fences; a bold label left
    on the step made a correct step unreadable, so a correct solution got first error 0."""
    for line in (
        "**Step 1:** 3 * 4 = 12",
        "1. **Step 1:** 3 * 4 = 12",
        "- **Step 1**: 3 * 4 = 12",
        "**1.** 3 * 4 = 12",
    ):
        assert split_solution(line).steps == ["3 * 4 = 12"], line
    s = split_solution("### Step 1\n```\n3.5 * 2 = 7\n```\n---\nAnswering that: 7 is it\nAnswer: 7")
    assert s.steps == ["3.5 * 2 = 7", "Answering that: 7 is it"] and s.answer == "7"
    fam = get_family("arithmetic")
    p = step_problems("arithmetic", 1, seed=0, split="heldout")[0]
    text = (
        "\n".join(f"**Step {i + 1}:** {st}" for i, st in enumerate(p.gold_steps))
        + f"\n**Answer:** {p.answer}"
    )
    lab = fam.label(p, text)
    assert lab.first_error == -1 and lab.answer_ok, [s.reason for s in lab.steps]


def test_bad_model_output_is_recorded_never_guessed() -> None:
    fam = get_family("arithmetic")
    p = step_problems("arithmetic", 1, seed=0, split="heldout")[0]
    empty = fam.label(p, "")
    assert empty.status == "empty" and empty.steps == [] and empty.answer_ok is False
    lab = fam.label(p, "Let me think.\n2 + = 4\nthe total is twelve\nAnswer: banana")
    assert [s.ok for s in lab.steps] == [None, None, None]
    assert all(s.reason for s in lab.steps) and lab.first_error == 0 and lab.unparsable == 3
    assert lab.answer_ok is False
    assert fam.label(p, "3 * 4 = 12").status == "no_answer"
    assert fam.label(p, "Answer: 3").status == "no_steps"
    blocks = get_family("blocks")
    bp = step_problems("blocks", 1, seed=0, split="train")[0]
    two = blocks.label(bp, "move A onto B and move C onto table\nAnswer: done")
    assert two.steps[0].ok is None and "more than one" in two.steps[0].reason
    assert blocks.label(bp, "move Z onto table").steps[0].ok is False  # parses, no such block
    dates = get_family("dates")
    dp = step_problems("dates", 1, seed=0, split="train")[0]
    bad = dates.label(dp, "2024-02-30 + 3 days = 2024-03-04\nAnswer: 2024-13-01")
    assert bad.steps[0].ok is None and bad.answer_ok is False


@pytest.mark.parametrize("name", NAMES)
def test_verifiers_never_raise_on_junk(name: str) -> None:
    fam = get_family(name)
    p = step_problems(name, 1, seed=0, split="train")[0]
    rng = random.Random(7)
    alphabet = "0123456789+-*/()=. \nAnswermoveontableABCPQ:-days week2024"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        lab = fam.label(p, text)
        assert lab.status in ("ok", "empty", "no_steps", "no_answer")
    assert fam.label(p, "9" * 400 + " ** 9" * 50 + " = 1\nAnswer: 1").steps[0].ok in (None, False)


def test_arithmetic_steps_with_prose_parse_only_when_unambiguous() -> None:
    from selflab.stepwise.arithmetic import parse_step

    assert parse_step("By Friday she owns 2 * 5 = 10 stickers.") == ("2 * 5", 10.0)
    assert parse_step("Step: (3 + 4) x 2 = 14") == ("(3 + 4) * 2", 14.0)
    assert parse_step("3 * 4 = 12 = 12") == ("3 * 4", 12.0)
    for bad in ("4 days x 2 = 8", "2 * 3 = 6 and 6 + 1 = 7", "twelve = 12", "3 * 4 is 12", "3 * 4 = twelve"):
        assert isinstance(parse_step(bad), str), bad


@pytest.mark.parametrize("name", NAMES)
def test_step_format_constraints_accept_gold_and_reject_prose(name: str) -> None:
    from selflab.models.constraints import text_matches

    fam = get_family(name)
    for p in step_problems(name, 6, seed=0, split="heldout"):
        whole = fam.solution_constraint(p, max_steps=8)
        line = fam.line_constraint(p)
        assert whole is not None and line is not None
        assert text_matches(whole, fam.gold_text(p) + "\n"), fam.gold_text(p)
        for step in p.gold_steps:
            assert text_matches(line, step + "\n"), step
        assert text_matches(line, f"Answer: {p.answer}\n")
        assert not text_matches(line, "Let me think about this.\n")
