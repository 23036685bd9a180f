"""The shipped target words with their clue associations. Word matching (which decides who wins
Adversarial Taboo) is the shared helper `selflab.envs.words`: whole tokens, documented
inflection rules and exceptions."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from selflab.envs.words import forms, mentions, obfuscated_mentions, tokens

WORDS_FILE = Path(__file__).with_name("words.txt")
__all__ = ["associations", "targets", "forms", "mentions", "obfuscated_mentions", "tokens", "same_word"]


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


ARTICLES = frozenset({"a", "an", "the"})


def same_word(guess: str, target: str) -> bool:
    """A guess names the target if, articles and punctuation aside, it is the target or one of its
    inflections: the WHOLE guess, so "apple or banana" and "not apple" are not the target."""
    toks = [t for t in tokens(guess) if t not in ARTICLES]
    want = tokens(target)
    if not toks or len(toks) != len(want):
        return False
    return toks[:-1] == want[:-1] and toks[-1] in forms(want[-1])
