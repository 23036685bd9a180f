"""Small text helpers shared by the verifiers: accent folding, whole-word search, numbers, words."""

from __future__ import annotations

import re
import unicodedata

# "-" or the typeset minus "−" (U+2212): read without its sign, "−3" would be 3.
_NUMBER = re.compile(r"(?<![\w.])[-\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d])")


def invisible(ch: str) -> bool:
    """Format characters (zero-width spaces and joiners, soft hyphens, byte-order marks) do not
    show, so a word with one inside ("hon\u00adey") must still read as that word."""
    return unicodedata.category(ch) == "Cf"


def fold(text: str) -> str:
    """Lowercase, strip accents and drop invisible format characters, so "Brasília" matches
    "brasilia" and "hon\u00adey" matches "honey"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c) and not invisible(c)).lower()


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
        s = m.group(0).replace(",", "").replace("\u2212", "-")
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
