"""The shipped target words with their clue associations, and word matching with simple
inflections (plural, possessive, -ed, -ing), the rule that decides who wins Adversarial Taboo."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

WORDS_FILE = Path(__file__).with_name("words.txt")
_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")


@cache
def associations() -> dict[str, tuple[str, ...]]:
    """target word -> its clue words (the scripted attacker's and defender's shared knowledge)."""
    table: dict[str, tuple[str, ...]] = {}
    for line in WORDS_FILE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        target, clues = line.split(":", 1)
        table[target.strip().lower()] = tuple(c.strip().lower() for c in clues.split(",") if c.strip())
    return table


def targets() -> list[str]:
    return sorted(associations())


@cache
def forms(word: str) -> frozenset[str]:
    """The word and its simple inflections: apple -> apples, apple's; city -> cities; box -> boxes;
    bake -> baked, baking; run -> running."""
    w = word.lower().strip()
    out = {w, w + "s", w + "'s", w + "s'", w + "es", w + "ed", w + "ing"}
    if w.endswith("y") and len(w) > 2 and w[-2] not in "aeiou":
        out |= {w[:-1] + "ies", w[:-1] + "ied"}
    if w.endswith("e"):
        out |= {w + "d", w[:-1] + "ing"}
    if w.endswith("f"):
        out.add(w[:-1] + "ves")
    if w.endswith("fe"):
        out.add(w[:-2] + "ves")
    if len(w) >= 3 and w[-1] not in "aeiouwxy" and w[-2] in "aeiou" and w[-3] not in "aeiou":
        out |= {w + w[-1] + "ed", w + w[-1] + "ing"}
    if w == "mouse":
        out.add("mice")
    if w == "tooth":
        out.add("teeth")
    if w == "child":
        out.add("children")
    return frozenset(out)


def tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text.lower().replace("\u2019", "'"))


def mentions(text: str, word: str) -> bool:
    """Whether the text says the word (whole word, any case, simple inflections). Multi-word
    targets match as a phrase."""
    parts = word.lower().split()
    toks = tokens(text)
    if len(parts) == 1:
        f = forms(parts[0])
        return any(t in f for t in toks)
    n = len(parts)
    last = forms(parts[-1])
    return any(
        toks[i : i + n - 1] == parts[:-1] and toks[i + n - 1] in last for i in range(len(toks) - n + 1)
    )


def same_word(guess: str, target: str) -> bool:
    """A guess names the target if it is the target or one of its inflections (after trimming
    articles and punctuation)."""
    toks = [t for t in tokens(guess) if t not in {"a", "an", "the"}]
    if not toks:
        return False
    return " ".join(toks) == target.lower() or (len(toks) == 1 and toks[0] in forms(target))
