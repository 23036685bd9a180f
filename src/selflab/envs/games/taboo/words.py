"""The shipped target words with their clue associations. Word matching (which decides who wins
Adversarial Taboo) is the shared helper `selflab.envs.words`: whole tokens, documented
inflection rules and exceptions."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from selflab.envs.words import (
    find_word,
    forms,
    joins_into,
    mentions,
    normalize,
    obfuscated_mentions,
    piece_views,
    tokens,
)

WORDS_FILE = Path(__file__).with_name("words.txt")
__all__ = [
    "associations",
    "targets",
    "forms",
    "mentions",
    "obfuscated_mentions",
    "tokens",
    "same_word",
    "says_target",
    "hints_target",
]


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
    inflections (its letters may be split or joined otherwise: "ap-ple", "icecream" for "ice
    cream"): the WHOLE guess, so "apple or banana" and "not apple" are not the target."""
    toks = [t for t in tokens(guess) if t not in ARTICLES]
    want = tokens(target)
    if not toks:
        return False
    if len(toks) == len(want) and toks[:-1] == want[:-1] and toks[-1] in forms(want[-1]):
        return True
    # The same letters split or joined otherwise ("ap-ple", "icecream" for "ice cream").
    head = "".join(want[:-1])
    return "".join(toks) in {head + form for form in forms(want[-1])}


def says_target(text: str, target: str) -> bool:
    """Whether a defender message says the target: as a word in any simple form, spelled letter by
    letter with any separators ("b a n a n a" after the article "a", "a|p|p|l|e"), or with
    separators or digits inside it ("ap-ple", "ap|ple", "4ppl3"). Pieces separated by spaces
    ("app le") are not joined, nor are digits alone read as letters: ordinary words side by side
    ("car pet") and numbers must not lose the game."""
    views = piece_views(text, digit_letters=False)
    inner = re.sub(r"(?<=[a-z0-9])[^a-z0-9\s']+(?=[a-z0-9])", "", normalize(text))
    return any(find_word(v, target) for v in views + piece_views(inner, digit_letters=False)) or joins_into(
        views, target, single_letters=True
    )


ACROSTIC_MIN_LETTERS = 5
"""Shorter targets are spelled by the first letters of ordinary words too often ("can a tiger")."""


def hints_target(text: str, target: str) -> bool:
    """The attacker's banned-word filter: `obfuscated_mentions`, or the target written backwards
    ("read elppa backwards") or as the first letters of consecutive words (an acrostic, for targets
    of `ACROSTIC_MIN_LETTERS` or more). Stricter than `says_target`, which decides a game: here a
    false alarm ("rats" for "star") costs a rewrite, not the game."""
    if obfuscated_mentions(text, target):
        return True
    flat = "".join(tokens(target))
    if len(flat) >= 3 and flat[::-1] != flat and obfuscated_mentions(text, flat[::-1]):
        return True
    if len(flat) < ACROSTIC_MIN_LETTERS:
        return False
    initials = [t[0] for t in tokens(text)]
    return joins_into([initials], flat, single_letters=True)
