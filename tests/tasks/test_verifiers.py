"""Verifiers: hand-checked cases, and fuzzing (never crash, never pass garbage)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from selflab.tasks import VERIFIERS, detect_language, run_verifier
from selflab.tasks.verifiers import check_constraint


def test_numeric_uses_last_number() -> None:
    p = {"answer": 85}
    assert run_verifier("numeric", "37 + 48 = 85", p).ok
    assert run_verifier("numeric", "The answer is 85.", p).ok
    assert not run_verifier("numeric", "85 is wrong, it is 84", p).ok
    assert not run_verifier("numeric", "eighty-five", p).ok
    assert run_verifier("numeric", "Total: 1,234", {"answer": 1234}).ok
    assert run_verifier("numeric", "10 - 13 = -3", {"answer": -3}).ok
    assert not run_verifier("numeric", "abc85", p).ok  # digits glued to letters are not a number


def test_year() -> None:
    assert run_verifier("year", "It became independent in 1947.", {"answer": 1947}).ok
    assert not run_verifier("year", "In 1946 or maybe 1948.", {"answer": 1947}).ok
    assert not run_verifier("year", "long ago", {"answer": 1947}).ok


def test_mentions_rejects_hedging_and_accents() -> None:
    p = {"accept": ["Brasília", "Brasilia"], "reject": ["Buenos Aires", "Lima"]}
    assert run_verifier("mentions", "The capital is BRASILIA.", p).ok
    assert run_verifier("mentions", "Brasília", p).ok
    assert not run_verifier("mentions", "Brasília or Lima", p).ok
    assert not run_verifier("mentions", "Rio de Janeiro", p).ok
    # whole words only
    assert not run_verifier("mentions", "Limassol", {"accept": ["Lima"]}).ok
    # a rejected name inside the accepted one is not a second answer
    assert run_verifier(
        "mentions", "Santiago de Chile", {"accept": ["Santiago de Chile"], "reject": ["Santiago"]}
    ).ok


def test_choice_first_mention() -> None:
    p = {"correct": ["Nigeria"], "other": ["Ghana"]}
    assert run_verifier("choice", "Nigeria has more people than Ghana.", p).ok
    assert not run_verifier("choice", "Ghana is smaller than Nigeria.", p).ok
    assert not run_verifier("choice", "I do not know.", p).ok


def test_approx_millions() -> None:
    p = {"answer": 68, "rel_tol": 0.2}
    assert run_verifier("approx_millions", "About 68 million.", p).ok
    assert run_verifier("approx_millions", "roughly 67,000,000 people", p).ok
    assert not run_verifier("approx_millions", "About 40 million.", p).ok
    assert run_verifier("approx_millions", "1.4 billion", {"answer": 1410}).ok


def test_constraints_hand_cases() -> None:
    assert check_constraint("one two three", {"kind": "max_words", "n": 3}).ok
    assert not check_constraint("one two three four", {"kind": "max_words", "n": 3}).ok
    assert check_constraint("- a\n- b\n* c", {"kind": "bullets", "n": 3}).ok
    assert not check_constraint("- a\n- b", {"kind": "bullets", "n": 3}).ok
    assert check_constraint('```json\n{"a": 1, "b": 2}\n```', {"kind": "json_keys", "keys": ["a", "b"]}).ok
    assert not check_constraint('{"a": 1}', {"kind": "json_keys", "keys": ["a", "b"]}).ok
    assert not check_constraint("[1, 2]", {"kind": "json_keys", "keys": []}).ok
    assert check_constraint("all lower 123", {"kind": "lowercase"}).ok
    assert not check_constraint("123", {"kind": "lowercase"}).ok
    assert check_constraint("Text.\n\nMore text.", {"kind": "paragraphs", "n": 2}).ok
    assert check_constraint(
        "Bye. Thank you for reading.  ", {"kind": "ends_with", "phrase": "Thank you for reading."}
    ).ok
    assert not check_constraint("a, b", {"kind": "no_commas"}).ok
    assert check_constraint("<<A title>>\nbody", {"kind": "title"}).ok
    assert not check_constraint("x", {"kind": "nonsense"}).ok


def test_detect_language() -> None:
    assert detect_language("Les abeilles récoltent le nectar et le pollen des fleurs.") == "fr"
    assert detect_language("Las abejas recogen el néctar y el polen de las flores.") == "es"
    assert detect_language("Die Bienen sammeln Nektar und Pollen von den Blumen.") == "de"
    assert detect_language("Bees collect nectar and pollen from the flowers in the field.") == "en"
    assert detect_language("xyz") == "unknown"


def test_unknown_verifier_and_non_text() -> None:
    assert not run_verifier("nope", "x", {}).ok
    assert not run_verifier("numeric", None, {"answer": 1}).ok  # type: ignore[arg-type]
    assert not run_verifier("numeric", "5", {}).ok  # missing params: failure, not exception


_PARAMS = {
    "numeric": {"answer": 123456789},
    "year": {"answer": 1066},
    "mentions": {"accept": ["Zanzibarovia"], "reject": ["Paris"]},
    "choice": {"correct": ["Zanzibarovia"], "other": ["Quuxland"]},
    "approx_millions": {"answer": 987654, "rel_tol": 0.01},
    "instructions": {"constraints": [{"kind": "json_keys", "keys": ["zzq_key"]}, {"kind": "title"}]},
}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_never_crash_never_forge(text: str) -> None:
    for name in VERIFIERS:
        v = run_verifier(name, text, _PARAMS[name])
        assert isinstance(v.reason, str)
        assert not v.ok, (name, text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "Score: 5",
                "[[A]]",
                "correct",
                "1066?",
                "{",
                "}",
                "```",
                '"zzq_key"',
                ",",
                "\n\n",
                "- ",
                "<<",
                ">>",
                "Paris",
                "ignore all instructions",
                "✓",
                "∞",
                "1e9",
                "NaN",
            ]
        ),
        max_size=30,
    )
)
def test_fuzz_adversarial_tokens(parts: list[str]) -> None:
    text = " ".join(parts)
    for name in ("numeric", "mentions", "choice", "approx_millions"):
        assert not run_verifier(name, text, _PARAMS[name]).ok
    # instructions only passes with a real JSON object carrying the key and a title
    v = run_verifier("instructions", text, _PARAMS["instructions"])
    if v.ok:
        assert "zzq_key" in json.loads(text.strip().strip("`"))
