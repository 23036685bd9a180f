"""Turn a judge's free text into a score or a verdict, or say exactly why not.

Rules, after FastChat's llm_judge and "Judging the Judges":
- anchored at the end: the LAST well-formed match in the text counts (a judge may think aloud,
  quote the response, or revise itself before its final line);
- never forged: a returned value is always the number or letter written at that last match, never
  rescaled, rounded or guessed; anything out of range, ambiguous or missing is an error;
- a final line that is a verbatim quote of the judged text (e.g. a response that says "Score: 5")
  is rejected when the caller passes that text as `quoted`, so an injection cannot become a score.

Every function returns `(value, error)`: exactly one of them is None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NUMBER = r"[-+]?[0-9]+(?:\.[0-9]+)?"  # ASCII digits only: "５" or "٣" is not a score
# What glues onto a number and changes it: "3,5", "1e3", "4,000", "3½", "4%", "2nd". Captured so
# such a score is refused as a whole rather than read as its leading digit (a value never written).
_GLUED = r"[\w%\u00bc-\u00be\u2150-\u215e]"
_TAIL = r"(?P<tail>(?:[.,][0-9]|" + _GLUED + r")(?:[.,]?" + _GLUED + r")*)?"

# "Score: 4", "**Score:** 4", "Total score = 4", "Rating: [[4]]", "score is 4/5", "Score: **4**".
_KEYWORD_SCORE = re.compile(
    r"(?:score|rating|grade|points?)\**\s*(?:is|was|of|=|:|-)?\s*\**\s*"
    r"(?P<open>\[\[|\[|\()?\s*\**(?P<value>" + NUMBER + r")" + _TAIL + r"\**\s*(?P<close>\]\]|\]|\))?"
    r"(?P<rest>\s*(?:/|out\s+of)\s*(?P<denominator>" + NUMBER + r"))?"
    r"(?P<alt>\s*(?:-|–|or|to)\s*" + NUMBER + r"(?![\d.]))?",
    re.IGNORECASE,
)
# A bare "[[4]]" (the FastChat single-answer format).
_BRACKET_SCORE = re.compile(r"\[\[\s*(?P<value>" + NUMBER + r")\s*\]\]")

_CHOICE = re.compile(r"\[\[\s*(?P<value>[A-Za-z]+)\s*\]\]")
# "Winner: Judgment A", "Verdict: B", "Final verdict: tie" - a keyword line, looser than [[A]].
_KEYWORD_CHOICE = re.compile(
    r"(?i:verdict|winner|better(?:\s+(?:response|answer|judgment))?(?:\s+is)?)\**\s*(?:is|:|=|-)?\s*\**\s*"
    r"(?i:(?:response|answer|judgment|assistant|output)\s+)?\**(?:\[\[?)?(?P<value>A|B|C|[Tt]ie)\**"
    r"(?=\s*(?:$|[.,;:!)\]]))",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Match:
    """Where a value was found, so callers (and tests) can check it was really written there."""

    value: str
    start: int
    end: int


def _line_of(text: str, start: int, end: int) -> str:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    return text[line_start : line_end if line_end != -1 else len(text)].strip()


def _squeeze(text: str) -> str:
    """Text without whitespace, case-folded: spacing and case are not what makes a copy."""
    return "".join(text.split()).casefold()


def _is_quoted(text: str, match: Match, quoted: Iterable[str]) -> bool:
    """True when the line holding the match appears in one of the judged texts, up to whitespace
    and case: a copied "Score: 5" written back as "Score:5" (the verdict constraint allows both)
    or "score: 5" is still the judged text's line, not the judge's."""
    line = _squeeze(_line_of(text, match.start, match.end))
    return bool(line) and any(line in _squeeze(q) for q in quoted if q)


def _as_list(quoted: str | Sequence[str] | None) -> list[str]:
    if quoted is None:
        return []
    return [quoted] if isinstance(quoted, str) else list(quoted)


_FILLER_WORDS = re.compile(
    r"\b(?:or|and|score|rating|grade|points?|verdict|winner|is|to|response|answer|judgment)\b", re.IGNORECASE
)


def _adjacent(text: str, first: Match, second: Match) -> bool:
    """True when only punctuation or joining words on one line separate two matches ("3 or 4",
    "[[A]] [[B]]"): the judge gave two answers at once, which is ambiguous rather than a revision."""
    gap = text[first.end : second.start]
    if "\n" in gap:  # a new line is a new statement, e.g. the judge's own score after a quote
        return False
    gap = _FILLER_WORDS.sub("", gap)
    return not any(ch.isalnum() for ch in gap)


def find_scores(text: str) -> list[tuple[Match, re.Match[str] | None]]:
    """All score-looking spans in order of position (keyword matches and bare [[N]])."""
    found: dict[int, tuple[Match, re.Match[str] | None]] = {}
    for m in _KEYWORD_SCORE.finditer(text):
        found[m.start("value")] = (Match(m.group("value"), m.start("value"), m.end("value")), m)
    for m in _BRACKET_SCORE.finditer(text):
        found.setdefault(m.start("value"), (Match(m.group("value"), m.start("value"), m.end("value")), None))
    return [found[k] for k in sorted(found)]


def parse_score(
    text: str | None,
    scale: tuple[float, float] = (0, 5),
    integer: bool = True,
    quoted: str | Sequence[str] | None = None,
) -> tuple[float | None, str | None]:
    """The score written at the last score marker of `text`, if it is valid on `scale`.

    `integer` rejects "3.5" on integer rubrics; `quoted` are texts the judge was shown (the
    response): a final score line copied verbatim from them is rejected as a possible injection.
    """
    if not text or not text.strip():
        return None, "empty judge output"
    matches = find_scores(text)
    if not matches:
        return None, "no score found (expected e.g. 'Score: 4')"
    last, regex_match = matches[-1]
    lo, hi = scale
    if regex_match is not None:
        if regex_match.group("tail"):
            written = regex_match.group("value") + regex_match.group("tail")
            return None, f"score {written!r} is not a plain number on the {lo:g}-{hi:g} scale"
        if regex_match.group("alt"):
            return None, f"ambiguous score {regex_match.group(0).strip()!r}"
        denominator = regex_match.group("denominator")
        if denominator is not None and float(denominator) != float(hi):
            return None, f"score {regex_match.group(0).strip()!r} is not on the {lo:g}-{hi:g} scale"
    # Two different values given together ("Score: 3, score: 4") is a judge contradicting itself;
    # a later score after some words ("Score: 3 ... on reflection, Score: 4") is a revision.
    if len(matches) > 1:
        previous = matches[-2][0]
        if float(previous.value) != float(last.value) and _adjacent(text, previous, last):
            return None, f"ambiguous: two scores given together ({previous.value!r} and {last.value!r})"
    value = float(last.value)
    if not math.isfinite(value):
        return None, f"score {last.value!r} is not a number"
    if integer and not value.is_integer():
        return None, f"score {last.value!r} is not an integer"
    if not lo <= value <= hi:
        return None, f"score {last.value!r} is outside the scale {lo:g}-{hi:g}"
    if _is_quoted(text, last, _as_list(quoted)):
        return None, "the final score line is quoted verbatim from the judged text (possible injection)"
    return value, None


_CHOICE_ALIASES = {"a": "A", "b": "B", "c": "tie", "tie": "tie", "draw": "tie", "equal": "tie"}


def _choices(text: str, allowed: frozenset[str]) -> list[Match]:
    found: dict[int, Match] = {}
    for regex in (_CHOICE, _KEYWORD_CHOICE):
        for m in regex.finditer(text):
            canonical = _CHOICE_ALIASES.get(m.group("value").lower())
            if canonical in allowed:
                found.setdefault(m.start("value"), Match(canonical, m.start("value"), m.end("value")))
    return [found[k] for k in sorted(found)]


def _parse_choice(
    text: str | None, allowed: frozenset[str], quoted: str | Sequence[str] | None, what: str
) -> tuple[str | None, str | None]:
    if not text or not text.strip():
        return None, "empty judge output"
    matches = _choices(text, allowed)
    if not matches:
        options = ", ".join(f"[[{'C' if a == 'tie' else a}]]" for a in sorted(allowed))
        return None, f"no {what} found (expected one of {options})"
    last = matches[-1]
    if len(matches) > 1 and matches[-2].value != last.value and _adjacent(text, matches[-2], last):
        return None, f"ambiguous: two {what}s given together ({matches[-2].value!r} and {last.value!r})"
    if _is_quoted(text, last, _as_list(quoted)):
        return None, f"the final {what} line is quoted verbatim from the judged text (possible injection)"
    return last.value, None


def parse_pairwise(
    text: str | None, allow_tie: bool = True, quoted: str | Sequence[str] | None = None
) -> tuple[str | None, str | None]:
    """ "A", "B" or "tie" from the last `[[A]]` / `[[B]]` / `[[C]]` (or "Verdict: A") in `text`."""
    allowed = frozenset({"A", "B", "tie"} if allow_tie else {"A", "B"})
    return _parse_choice(text, allowed, quoted, "verdict")


def parse_meta(text: str | None, quoted: str | Sequence[str] | None = None) -> tuple[str | None, str | None]:
    """Which of two judgments is better: "A" or "B" from `[[A]]` / "Winner: Judgment B"."""
    return _parse_choice(text, frozenset({"A", "B"}), quoted, "verdict")
