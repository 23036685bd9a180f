"""Small text helpers shared by the verifiers: accent folding, whole-word search, numbers, words."""

from __future__ import annotations

import re
import unicodedata

_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d])")


def fold(text: str) -> str:
    """Lowercase and strip accents so "Brasília" matches "brasilia"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def contains_term(text: str, term: str) -> bool:
    """Whole-word, case- and accent-insensitive search for `term` (which may span words)."""
    term_f = fold(term).strip()
    if not term_f:
        return False
    pattern = r"(?<![a-z0-9])" + re.escape(term_f).replace(r"\ ", r"\s+") + r"(?![a-z0-9])"
    return re.search(pattern, fold(text)) is not None


def first_position(text: str, term: str) -> int | None:
    """Character offset of the first whole-word occurrence of `term`, or None."""
    term_f = fold(term).strip()
    if not term_f:
        return None
    pattern = r"(?<![a-z0-9])" + re.escape(term_f).replace(r"\ ", r"\s+") + r"(?![a-z0-9])"
    m = re.search(pattern, fold(text))
    return m.start() if m else None


def numbers(text: str) -> list[float]:
    """All numbers in the text, in order ("1,234.5" -> 1234.5). Ignores digits glued to letters."""
    out: list[float] = []
    for m in _NUMBER.finditer(text):
        s = m.group(0).replace(",", "")
        try:
            out.append(float(s))
        except ValueError:  # pragma: no cover - the regex only matches numerals
            continue
    return out


def words(text: str) -> list[str]:
    """Whitespace-separated tokens that contain at least one letter or digit."""
    return [w for w in text.split() if any(ch.isalnum() for ch in w)]


def word_tokens(text: str) -> list[str]:
    """Lowercased alphabetic word tokens (for stopword language detection)."""
    return re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", text.lower())
