"""The one bounded action reader every game parses through.

Why: a model's reply is untrusted input. Three failure classes were found in the games (issue 11):
replies long enough to make a regex take quadratic time, numbers long enough to make `int()`
raise out of `step`, and negative numbers silently read as positive by parsers that dropped the
sign with the punctuation. This module removes them at the mechanism:

- `TextEnv.read_action` (core) caps the reply and the extracted action before any game regex
  runs (a clear `ParseError` names the limit); `check_length` caps a field inside an action;
- `read_int` reads one integer with its sign, ASCII digits only, at most `MAX_DIGITS` digits,
  within `[lo, hi]` (out of range is a `RuleViolation` naming the range);
- games find number tokens with `[+-]?[0-9]+` (sign kept, ASCII digits) and read them here;
- `extract_action` finds the `ACTION: ...` line in a free-text reply.

Every pattern here is linear: no nested quantifiers, no lazy group followed by an optional class
before `$` (the shape that made `extract_action` quadratic).
"""

from __future__ import annotations

import re

from selflab.envs.protocol import ParseError, RuleViolation

MAX_DIGITS = 9
"""Integers with more digits are refused: no game has a quantity anywhere near 10**9."""


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


_NOISE = "[ \\t>*_#`\"']*"
# Linear by construction: the value is a greedy `(.*)` to the end of the line and its trailing
# markdown is stripped in Python (a lazy group before an optional class and `$` was quadratic).
_ACTION_TEMPLATE = r"^{noise}{kw}[ \t*_`\"']*[:=\-]{noise}(.*)$"
_TRAILING_NOISE = " \t*_`\"'."


def _action_re(keyword: str) -> re.Pattern[str]:
    return re.compile(
        _ACTION_TEMPLATE.format(noise=_NOISE, kw=re.escape(keyword)), re.IGNORECASE | re.MULTILINE
    )


_ACTION_RE = _action_re("action")


def extract_action(text: str, keyword: str = "ACTION") -> str:
    """The action from free text: the last line `ACTION: ...` (any case, markdown noise
    tolerated); without one, the last non-empty line, so the game's parser can still try and
    name what is wrong. Never raises."""
    if not isinstance(text, str):
        return ""
    pattern = _ACTION_RE if keyword.lower() == "action" else _action_re(keyword)
    matches = [m.group(1).rstrip(_TRAILING_NOISE).strip() for m in pattern.finditer(text)]
    matches = [m for m in matches if m]
    if matches:
        return matches[-1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
