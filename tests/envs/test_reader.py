"""The shared bounded reader and word helper: integers keep their sign and bounds, lengths are
capped with a clear error, and the inflection rules keep to their documented exceptions."""

from __future__ import annotations

import pytest

from selflab.envs.core import ParseError, RuleViolation, extract_action
from selflab.envs.reader import check_length, read_int
from selflab.envs.registry import make
from selflab.envs.words import forms, mentions, normalize, tokens


@pytest.mark.parametrize(("token", "value"), [("3", 3), (" 07 ", 7), ("+4", 4), ("0", 0), ("10", 10)])
def test_read_int_reads_bounded_integers(token: str, value: int) -> None:
    assert read_int(token, 0, 10) == value


@pytest.mark.parametrize("token", ["-1", "11", "9" * 5000, "-" + "9" * 5000, "000000000000000000011"])
def test_read_int_out_of_range_is_a_rule_violation(token: str) -> None:
    with pytest.raises(RuleViolation, match="out of range"):
        read_int(token, 0, 10)


@pytest.mark.parametrize("token", ["", "-", "3.5", "1e3", "²", "٣", "１２", "three", "0x10"])
def test_read_int_non_integers_are_parse_errors(token: str) -> None:
    with pytest.raises(ParseError):
        read_int(token, 0, 10)


def test_length_caps_are_clear_errors() -> None:
    with pytest.raises(ParseError, match="at most 5"):
        check_length("abcdefg", 5)
    env = make("perudo-v0")
    env.reset(seed=0)
    r = env.step("x" * 20_000)
    assert r.error is not None and "at most 16000" in r.error.reason
    r = env.step("ACTION: " + "bid 3 5 " * 400)
    assert r.error is not None and "at most 2000" in r.error.reason


def test_extract_action_on_adversarial_whitespace() -> None:
    assert extract_action("ACTION: x" + " " * 20_000 + "y") == "x" + " " * 20_000 + "y"
    assert extract_action("think\nACTION: **bid 3 5**.") == "bid 3 5"
    assert extract_action("ACTION: " + " " * 20_000) == "ACTION:"  # no value: the line itself, a parse error


def test_inflection_rules_and_exceptions() -> None:
    assert {"cars", "car's"} <= forms("car") and not {"caring", "cared", "cares"} & forms("car")
    assert {"hatted", "hatting"} <= forms("hat") and "hated" not in forms("hat")
    assert {"baked", "baking"} <= forms("bake") and {"cities"} <= forms("city")
    assert "news" not in forms("new") and "clothing" not in forms("cloth")
    assert forms("ox") == frozenset({"ox"})  # two letters: no inflections
    assert mentions("Three MICE ran", "mouse") and not mentions("mousetrap", "mouse")


def test_normalize_folds_lookalikes_and_invisible_characters() -> None:
    assert normalize("Ápp\u200ble") == "apple" and tokens("аpple") == ["apple"]
