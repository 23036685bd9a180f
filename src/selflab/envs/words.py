"""The one word-matching helper the games' detectors share: did a message say a word, state a
claim, or give a secret away.

Why one module: substring tests, ad-hoc inflection rules and regexes written per game fired on
ordinary sentences (issue 11). Every detector now goes through these rules:

- **Normalisation** (`normalize`): Unicode NFKC, case folded, diacritics removed, invisible
  characters dropped (format characters such as zero-width spaces, joiners, invisible separators
  and the soft hyphen; private-use; control characters other than whitespace), common
  Cyrillic/Greek look-alike letters mapped to Latin, curly quotes to straight ones. No look-alike
  table is complete, so a filter refuses text with a letter that is still not Latin
  (`foreign_letter`) rather than judging it.
- **Tokens** (`tokens`): maximal runs of ASCII letters and digits, with an inner apostrophe kept
  ("don't"). Matching is by whole token only, never by substring.
- **Inflections** (`forms`): plural -s; -es only after s, x, z, ch, sh or consonant+o; -ies/-ied
  after consonant+y; -ves for -f/-fe; possessives 's and s'; -d/-ing (dropping the e) for words in
  -e; consonant doubling (stop -> stopped, stopping) for short consonant-vowel-consonant words,
  and then NOT the undoubled form (hat -> hatted, never "hated", which is hate + d); -ed/-ing
  otherwise; a short table of irregular plurals. Words of one or two letters get no inflections.
  Surface forms in `NOT_INFLECTIONS` are distinct words the rules would otherwise produce
  ("news" is not a plural of "new", "clothing" not a form of "cloth") and never match.
- **Obfuscation** (`obfuscated_mentions`, for banned-word filters): letters spelled one by one
  with any separators ("a-p-p-l-e", "a|p|p|l|e", "a h o s p i t a l" after the article "a"), a
  word split in any number of pieces ("app le", "st ra wb er ry"), a name of several words written
  as one ("nightclub"), a word spelled in a spelling alphabet ("alfa papa papa lima echo"), digit
  look-alikes ("4ppl3") and a capital I for an l ("appIe") are read before matching
  (`piece_views`, `joins_into`).
- **Negation and quotation** (`is_negated`, `in_quotes`): a match preceded by a negation within
  `NEGATION_WINDOW` tokens, followed by a denial ("... is false"), or inside quotation marks
  does not count as stating a claim.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Unicode categories a reader does not see: format (zero-width spaces, joiners, invisible
# separators, the soft hyphen), private use, surrogates, and control characters (whitespace kept).
_INVISIBLE = frozenset({"Cf", "Co", "Cs", "Cc"})
_LOOKALIKES = str.maketrans(
    {
        "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j",
        "ѕ": "s", "ԁ": "d", "ɡ": "g", "һ": "h", "κ": "k", "ο": "o", "α": "a", "ν": "v", "ρ": "p",
        "τ": "t", "ι": "i", "ε": "e", "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
        "\u00ab": '"', "\u00bb": '"', "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-",
        "\u2014": "-",
    }
)  # fmt: skip
# Spelling alphabets: "alfa papa papa lima echo" spells a word letter by letter.
_SPELLING_ALPHABET = {
    "alfa": "a", "alpha": "a", "bravo": "b", "charlie": "c", "delta": "d", "echo": "e", "foxtrot": "f",
    "golf": "g", "hotel": "h", "india": "i", "juliet": "j", "juliett": "j", "kilo": "k", "lima": "l",
    "mike": "m", "november": "n", "oscar": "o", "papa": "p", "quebec": "q", "romeo": "r", "sierra": "s",
    "tango": "t", "uniform": "u", "victor": "v", "whiskey": "w", "whisky": "w", "xray": "x",
    "yankee": "y", "zulu": "z",
}  # fmt: skip
# A capital I written for a lower-case l inside a word ("appIe"): case folding would read "appie".
_CAPITAL_I_AS_L = re.compile(r"I(?=[a-z])|(?<=[a-z])I")
_LEET = str.maketrans({"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})

IRREGULAR_PLURALS = {
    "mouse": "mice", "tooth": "teeth", "child": "children", "foot": "feet", "man": "men",
    "woman": "women", "person": "people", "goose": "geese", "ox": "oxen", "die": "dice",
}  # fmt: skip
NOT_INFLECTIONS = frozenset(
    {
        "news", "goods", "means", "customs", "manners", "singed", "singeing", "bathed", "bathing",
        "breathed", "breathing", "clothed", "clothing", "teethed", "teething", "wreathed",
        "wreathing", "loathed", "loathing", "sheathed", "sheathing", "arms", "glasses", "spirits",
    }
)  # fmt: skip
"""Surface forms the inflection rules generate that are different words: never a match."""

NEGATIONS = frozenset(
    {
        "not", "never", "no", "don't", "dont", "doesn't", "doesnt", "isn't", "isnt", "won't", "wont",
        "can't", "cant", "cannot", "didn't", "didnt", "aren't", "wasn't", "shouldn't", "wouldn't",
        "disagree", "deny", "reject", "refuse", "doubt", "against", "nor", "neither", "hardly",
        "nobody", "nothing", "false", "wrong", "untrue",
    }
)  # fmt: skip
DENIALS = frozenset({"false", "wrong", "untrue", "nonsense", "incorrect", "mistaken", "not", "isn't", "myth"})
"""Words that, right after a claim ("X is false", "X? not at all"), deny it."""
NEGATION_WINDOW = 5
VOWELS = "aeiou"


def clean_text(text: str) -> str:
    """NFKC without invisible characters: what a message should show, so that a reader sees what
    the matchers judged (a zero-width space splits a word for a matcher, not for a reader)."""
    t = unicodedata.normalize("NFKC", text)
    return "".join(c for c in t if c.isspace() or unicodedata.category(c) not in _INVISIBLE)


def normalize(text: str) -> str:
    """Case-folded, NFKC, without diacritics, invisible characters or look-alike letters."""
    t = clean_text(text).casefold()
    t = "".join(c for c in unicodedata.normalize("NFKD", t) if not unicodedata.combining(c))
    return t.translate(_LOOKALIKES)


def tokens(text: str) -> list[str]:
    """Whole-word tokens of the normalised text."""
    return _TOKEN_RE.findall(normalize(text))


def token_spans(text: str) -> list[tuple[str, int, int]]:
    """(token, start, end) over `normalize(text)` (character offsets into the normalised text)."""
    return [(m.group(0), m.start(), m.end()) for m in _TOKEN_RE.finditer(normalize(text))]


def _cvc(w: str) -> bool:
    return len(w) >= 3 and w[-1] not in VOWELS + "wxy" and w[-2] in VOWELS and w[-3] not in VOWELS


@cache
def forms(word: str) -> frozenset[str]:
    """The word and its simple inflections under the module's documented rules."""
    w = normalize(word).strip()
    if len(w) <= 2:
        return frozenset({w})
    out = {w, w + "s", w + "'s", w + "s'"}
    if w.endswith(("s", "x", "z", "ch", "sh")) or (w.endswith("o") and w[-2] not in VOWELS):
        out.add(w + "es")
    if w.endswith("y") and w[-2] not in VOWELS:
        out |= {w[:-1] + "ies", w[:-1] + "ied"}
    if w.endswith("fe"):
        out.add(w[:-2] + "ves")
    elif w.endswith("f"):
        out.add(w[:-1] + "ves")
    if w.endswith("e"):
        out |= {w + "d", w[:-1] + "ing"}
    elif _cvc(w) and len(w) <= 4:
        out |= {w + w[-1] + "ed", w + w[-1] + "ing"}
    else:
        out |= {w + "ed", w + "ing"}
    if w in IRREGULAR_PLURALS:
        out.add(IRREGULAR_PLURALS[w])
    return frozenset(out - (NOT_INFLECTIONS - {w}))


def _phrase_at(toks: list[str], i: int, parts: list[str]) -> bool:
    n = len(parts)
    return toks[i : i + n - 1] == parts[:-1] and toks[i + n - 1] in forms(parts[-1])


def find_word(toks: list[str], word: str) -> list[int]:
    """Indices in `toks` where `word` (one word or a phrase, last word inflected) starts."""
    parts = [p for p in tokens(word)]
    if not parts:
        return []
    return [i for i in range(len(toks) - len(parts) + 1) if _phrase_at(toks, i, parts)]


def mentions(text: str, word: str) -> bool:
    """Whether the text says `word` as a whole word or phrase, in any simple inflection."""
    return bool(find_word(tokens(text), word))


def spelled_view(text: str) -> str:
    """Runs of single letters separated by spaces, dashes, dots or commas joined ('a-p-p-l-e' ->
    'apple'), on the normalised text."""
    return re.sub(r"\b([a-z])[\s\-.,_*/]+(?=[a-z]\b)", r"\1", normalize(text))


def foreign_letter(text: str) -> str | None:
    """The first letter of `text` that is not Latin after `normalize` (a look-alike from another
    alphabet the table does not map, e.g. Latin alpha or Cherokee A), or None. Why filters refuse
    such text instead of judging it: any unmapped look-alike would hide a word from the matcher."""
    return next((c for c in normalize(text) if c.isalpha() and not c.isascii()), None)


def piece_views(text: str, digit_letters: bool) -> list[list[str]]:
    """Tokens of the normalised text (as `tokens`: any character but an inner apostrophe
    separates), as written and with digit look-alikes read as letters in tokens that also hold a
    letter ("4ppl3", not "2024"); with `digit_letters`, lone digits too ("4 p p l 3")."""
    toks = _TOKEN_RE.findall(normalize(text))
    leet = [
        t.translate(_LEET) if any(c.isalpha() for c in t) or (digit_letters and len(t) == 1) else t
        for t in toks
    ]
    return [toks, leet]


def joins_into(views: list[list[str]], word: str, single_letters: bool = False) -> bool:
    """Whether consecutive tokens of a view (`piece_views`), any number of them, join into a form
    of `word` written as one ("st ra wb er ry", "night club" -> "nightclub"); with
    `single_letters`, only runs of one-character tokens (a word spelled letter by letter)."""
    wanted = frozenset(forms("".join(tokens(word))))
    if not wanted:
        return False
    longest = max(map(len, wanted))
    for toks in views:
        for i in range(len(toks)):
            joined = ""
            for tok in toks[i:]:
                if single_letters and len(tok) != 1:
                    break
                joined += tok
                if len(joined) > longest:
                    break
                if joined in wanted:
                    return True
    return False


def obfuscated_mentions(text: str, word: str) -> bool:
    """`mentions`, or the word spelled out (also in a spelling alphabet: "papa"), split into any
    number of pieces with any separators, written as one word where it has several, with digit
    look-alikes, or with a capital I for an l ("appIe"): the banned-word filter's test (a false
    alarm costs a rewrite, a miss lets the word through)."""
    as_l = _CAPITAL_I_AS_L.sub("l", text)
    return any(_obfuscated(view, word) for view in ((text, as_l) if as_l != text else (text,)))


def _obfuscated(text: str, word: str) -> bool:
    if mentions(text, word) or mentions(spelled_view(text), word):
        return True
    leet = normalize(text).translate(_LEET)
    if mentions(leet, word) or mentions(spelled_view(leet), word):
        return True
    views = piece_views(text, digit_letters=True)
    if joins_into(views, word):
        return True
    spelled = [_SPELLING_ALPHABET.get(t, t if len(t) == 1 else "--") for t in views[0]]
    return joins_into([spelled], word, single_letters=True)


def quote_spans(text: str) -> list[tuple[int, int]]:
    """Character spans (over `normalize(text)`) inside double quotes, or single quotes that open
    after a non-letter and close before one (so apostrophes in "don't" do not count)."""
    t = normalize(text)
    spans = [(m.start(), m.end()) for m in re.finditer(r'"[^"\n]*"', t)]
    spans += [(m.start(), m.end()) for m in re.finditer(r"(?<![a-z0-9])'[^'\n]+'(?![a-z0-9])", t)]
    return spans


def in_quotes(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(a <= start and end <= b for a, b in spans)


def is_negated(toks: list[str], start: int, end: int) -> bool:
    """Whether the claim at `toks[start:end]` is negated before (a negation within
    `NEGATION_WINDOW` tokens) or denied right after ("... is false", "... is not true")."""
    before = toks[max(0, start - NEGATION_WINDOW) : start]
    if NEGATIONS & set(before):
        return True
    after = toks[end : end + 3]
    return bool(DENIALS & set(after))
