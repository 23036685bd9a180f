"""Edge cases found in review: unicode signs and separators, invisible characters, answers that add
a year or a share after the quantity, and bad generator input."""

from __future__ import annotations

import pytest

from selflab.errors import SelflabError
from selflab.tasks import run_verifier
from selflab.tasks.instructions import attach_constraint, instruction_task
from selflab.tasks.verifiers import check_constraint


def test_unicode_minus_is_a_sign() -> None:
    # "−" (U+2212) is how typeset math writes minus: "−3" is not 3.
    assert not run_verifier("numeric", "50 - 53 = −3", {"answer": 3}).ok
    assert run_verifier("numeric", "50 - 53 = −3", {"answer": -3}).ok


def test_no_commas_counts_non_ascii_commas() -> None:
    for comma in ("，", "﹐", "、", "،"):
        assert not check_constraint(f"Bees collect pollen{comma} and make honey.", {"kind": "no_commas"}).ok
    assert check_constraint("Bees collect pollen and make honey.", {"kind": "no_commas"}).ok


def test_title_must_have_text() -> None:
    assert not check_constraint("<<   >>\nBody text.", {"kind": "title"}).ok
    assert check_constraint("<< A title >>\nBody text.", {"kind": "title"}).ok


def test_invisible_characters_do_not_hide_words() -> None:
    forbid = {"kind": "forbidden_words", "words": ["honey"]}
    for hidden in ("hon\u200bey", "hon\u00adey", "hon\u200dey", "\ufeffhoney"):
        assert not check_constraint(f"Bees make {hidden}.", forbid).ok, repr(hidden)
    end = {"kind": "ends_with", "phrase": "Thank you for reading."}
    assert check_constraint("Body. Thank you for reading.\u200b", end).ok
    assert check_constraint("Body. Thank you for reading. \u200b\n", end).ok
    keys = {"kind": "json_keys", "keys": ["title", "summary"]}
    assert check_constraint('\ufeff{"title": "Bees", "summary": "They fly."}', keys).ok


@pytest.mark.parametrize(
    "answer",
    [
        "About 68 million people (2023 estimate).",
        "France has about 68 million inhabitants as of 2024.",
        "About 68 million, roughly 0.9% of the world population.",
        "Roughly 68 million people, about 0.85 percent of humanity.",
    ],
)
def test_population_ignores_a_trailing_year_or_share(answer: str) -> None:
    assert run_verifier("approx_millions", answer, {"answer": 68, "rel_tol": 0.2}).ok
    assert not run_verifier("approx_millions", answer, {"answer": 30, "rel_tol": 0.2}).ok


def test_population_understands_bn() -> None:
    p = {"answer": 1410, "rel_tol": 0.2}
    assert run_verifier("approx_millions", "About 1.4bn people.", p).ok
    assert run_verifier("approx_millions", "About 1.4B people.", p).ok
    assert not run_verifier("approx_millions", "About 1.4 million people.", p).ok


def test_unknown_kind_or_topic_is_a_user_error() -> None:
    with pytest.raises(SelflabError, match="fix"):
        instruction_task("bogus", 1)
    with pytest.raises(SelflabError, match="fix"):
        attach_constraint("x", "Write about kites.", "bogus", "kites", 1)
    with pytest.raises(SelflabError, match="fix"):
        attach_constraint("x", "Write about unicorns.", "include_keywords", "unicorns", 1)
