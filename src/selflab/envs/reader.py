"""The one bounded action reader every game parses through.

Why: a model's reply is untrusted input. Three failure classes were found in the games (issue 11):
replies long enough to make a regex take quadratic time, numbers long enough to make `int()`
raise out of `step`, and negative numbers silently read as positive by parsers that dropped the
sign with the punctuation. This module removes them at the mechanism:

- `TextEnv.read_action` (core) caps the reply and the extracted action before any game regex
  runs (a clear `ParseError` names the limit); `check_length` caps a field inside an action;
- `read_int` reads one integer with its sign, ASCII digits only, at most `MAX_DIGITS` digits,
  within `[lo, hi]` (out of range is a `RuleViolation` naming the range);
- `INT_RE` is the only integer pattern games use to find numbers in text (`-?` kept, bounded).

Every pattern here is linear: no nested quantifiers, no lazy group followed by an optional class
before `$` (the shape that made `extract_action` quadratic).
"""

from __future__ import annotations

import re

from selflab.envs.core import ParseError, RuleViolation

MAX_DIGITS = 9
"""Integers with more digits are refused: no game has a quantity anywhere near 10**9."""

INT_RE = re.compile(r"(?<![\w.])([+-]?)([0-9]+)(?![\w.])")
"""A whole integer token with an optional sign; ASCII digits only (no '²', no Arabic-Indic)."""


def check_length(text: str, limit: int, what: str = "action") -> str:
    """`text` unchanged, or a `ParseError` when it is longer than `limit` characters."""
    if len(text) > limit:
        raise ParseError(
            f"the {what} is {len(text)} characters long; at most {limit} are read. Keep it short"
        )
    return text


def read_int(token: str, lo: int, hi: int, what: str = "number") -> int:
    """One integer from `token` (surrounding spaces allowed, sign kept): `ParseError` when it is not
    an integer or has more than `MAX_DIGITS` digits, `RuleViolation` when outside `[lo, hi]`."""
    t = token.strip()
    sign = ""
    if t[:1] in ("+", "-"):
        sign, t = t[0], t[1:]
    if not t or not t.isascii() or not t.isdigit():
        raise ParseError(f"the {what} must be a whole number, got {token.strip()[:20]!r}")
    if len(t.lstrip("0")) > MAX_DIGITS:
        raise RuleViolation(f"the {what} {sign}{t[:12]}... is far out of range; it must be {lo} to {hi}")
    value = int(sign + t)
    if not lo <= value <= hi:
        raise RuleViolation(f"the {what} {value} is out of range; it must be {lo} to {hi}")
    return value


def find_ints(text: str, limit: int = 8) -> list[str]:
    """The first `limit` integer tokens of `text` with their signs, as strings for `read_int`."""
    out = []
    for m in INT_RE.finditer(text):
        out.append(m.group(1) + m.group(2))
        if len(out) >= limit:
            break
    return out
