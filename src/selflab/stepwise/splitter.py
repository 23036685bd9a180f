"""Split a model's free-form solution into step lines and an answer line.

The format asked for is one step per line, then `Answer: ...`. Models add numbering, bullets,
bold markers and chatter; the splitter strips the decorations it knows and keeps every other
non-empty line as a step, so the family's step parser decides (and records) what it cannot read.
Nothing is dropped silently: lines after the answer line are counted in `trailing_lines`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# "Step 1:", "1.", "1)", "(1)", "- ", "* ", "• " at the start of a line; emphasis may close inside
# the label ("**Step 1**:", "**1.**").
_DECORATION = re.compile(
    r"^\s*(?:(?:step\s*\d+\s*(?:\*\*|__)?\s*[:.)-]?)|(?:\(?\d{1,2}[.)](?:\*\*|__)?\s+)|(?:[-*•]\s+))",
    re.IGNORECASE,
)
# Markdown that opens a line before its label: a heading's "#"s, bold or italic markers.
_LEAD_MARKUP = re.compile(r"^\s*(?:#{1,6}\s+|\*{1,3}(?=\S)|_{1,3}(?=\S))")
# Lines that are only markup: code fences and horizontal rules carry no step.
_MARKUP_ONLY = re.compile(r"^\s*(?:`{3,}[\w+-]*|~{3,}[\w+-]*|[-*_=]{3,})\s*$")
_ANSWER = re.compile(
    r"^\s*\**\s*(?:the\s+)?(?:final\s+)?answer\b\s*(?:is)?\s*\**\s*[:=]?\s*\**\s*(?P<value>.*?)\**\s*$",
    re.IGNORECASE,
)


@dataclass
class SplitSolution:
    steps: list[str] = field(default_factory=list)
    answer: str | None = None
    empty: bool = False
    trailing_lines: int = 0


def clean_step(line: str) -> str:
    """A step line without numbering, bullets, headings or surrounding bold markers. Markup and
    labels are peeled in turns ("1. **Step 1:** 3 * 4 = 12" -> "3 * 4 = 12"), so a bold label
    never stays glued to the step and makes a correct step unreadable."""
    s = line.strip()
    for _ in range(4):
        before = s
        s = _LEAD_MARKUP.sub("", s, count=1)
        s = _DECORATION.sub("", s, count=1).strip()
        if s == before:
            break
    return s.strip("*_").strip()


def split_solution(text: str) -> SplitSolution:
    """Steps before the first answer line; that line's value; lines after it counted."""
    if not text or not text.strip():
        return SplitSolution(empty=True)
    out = SplitSolution()
    lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln.strip() and not _MARKUP_ONLY.match(ln)]
    for i, line in enumerate(lines):
        m = _ANSWER.match(line)
        if m and re.match(r"^\s*\**\s*(?:the\s+)?(?:final\s+)?answer\b", line, re.IGNORECASE):
            out.answer = m.group("value").strip().rstrip(".").strip() or None
            out.trailing_lines = len(lines) - i - 1
            return out
        step = clean_step(line)
        if step:
            out.steps.append(step)
    return out


def join_steps(steps: list[str], answer: str | None = None) -> str:
    """The canonical text of a solution: one step per line, then the answer line."""
    lines = list(steps)
    if answer is not None:
        lines.append(f"Answer: {answer}")
    return "\n".join(lines)
