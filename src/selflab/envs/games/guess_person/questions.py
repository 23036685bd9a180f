"""Structured yes/no questions about a person of the knowledge graph, answered by code.

Why structured: the code answerer must always be right, so a question is parsed into a `Query`
over the graph's closed vocabularies and evaluated exactly. Free-text questions are only possible
with an LLM answerer (`parse_query` returns None for them).

Formats (case-insensitive; `_` or spaces between words):
    gender = female            nationality = France       continent = Asia
    field = music              occupation = physicist     era = 19th century
    born_before 1900           born_after 1950            died_before 1800   (years may be "500 BCE")
    alive                      nobel_prize                (optionally "= yes" / "= no")
    name_starts_with A         (first letter of the name as listed)

Answers are "yes", "no" or "unknown": "unknown" when the graph's years are approximate (`circa`)
and the asked year is within 25 years of them.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from selflab.kg import (
    CONTINENTS,
    ERA_NAMES,
    FIELDS,
    GENDERS,
    OCCUPATIONS,
    Person,
    load_countries,
    normalize_name,
)

CATEGORICAL = ("gender", "nationality", "continent", "field", "occupation", "era")
BOOLEAN = ("alive", "nobel_prize")
YEARS = ("born_before", "born_after", "died_before")
UNKNOWN_WINDOW = 25
_SYNONYMS = {
    "country": "nationality",
    "sex": "gender",
    "profession": "occupation",
    "job": "occupation",
    "domain": "field",
    "area": "field",
    "nobel": "nobel_prize",
}
ANSWERS = ("yes", "no", "unknown")
# Common other names of countries (not England/Scotland: the graph only knows the United Kingdom).
COUNTRY_ALIASES = {
    "usa": "United States",
    "us": "United States",
    "u s": "United States",
    "america": "United States",
    "united states of america": "United States",
    "uk": "United Kingdom",
    "u k": "United Kingdom",
    "britain": "United Kingdom",
    "great britain": "United Kingdom",
    "holland": "Netherlands",
    "the netherlands": "Netherlands",
    "czechia": "Czech Republic",
    "cote d'ivoire": "Ivory Coast",
    "côte d'ivoire": "Ivory Coast",
    "russian federation": "Russia",
}


class QuestionError(ValueError):
    """The question looks structured but is malformed (unknown value, bad year, ...)."""


@dataclass(frozen=True)
class Query:
    """One structured question: `attribute` is a categorical or boolean attribute, a year
    comparison (`born_before`, ...) or `name_starts_with`; `value` its argument."""

    attribute: str
    value: str | int | bool

    def text(self) -> str:
        """The canonical question text, which `parse_query` reads back to the same Query."""
        if self.attribute in BOOLEAN:
            return self.attribute if self.value else f"{self.attribute} = no"
        if self.attribute in YEARS:
            year = int(self.value)
            return f"{self.attribute} {-year} BCE" if year < 0 else f"{self.attribute} {year}"
        if self.attribute == "name_starts_with":
            return f"name_starts_with {str(self.value).upper()}"
        return f"{self.attribute} = {self.value}"

    def to_dict(self) -> dict[str, str | int | bool]:
        return {"attribute": self.attribute, "value": self.value}


def vocabulary(attribute: str) -> tuple[str, ...]:
    """The allowed values of a categorical attribute."""
    if attribute == "gender":
        return GENDERS
    if attribute == "nationality":
        return tuple(sorted(load_countries()))
    if attribute == "continent":
        return CONTINENTS
    if attribute == "field":
        return FIELDS
    if attribute == "occupation":
        return tuple(sorted(OCCUPATIONS))
    if attribute == "era":
        return ERA_NAMES
    raise KeyError(attribute)


_YEAR_RE = re.compile(r"^(-?\d{1,4})\s*(bce|bc|b\.c\.e?\.?|ce|ad|a\.d\.)?$")
_YEAR_Q_RE = re.compile(r"^(born|died)\s+(before|after|in)\s+(.+)$")
_LETTER_RE = re.compile(r"^name\s+(?:starts|begins)\s+with\s+(?:the\s+letter\s+)?(.+)$")
_BOOL_RE = re.compile(r"^(alive|nobel\s+prize|nobel)(?:\s*(?:=|==|:|is)?\s*(yes|no|true|false))?$")
_CAT_RE = re.compile(r"^([a-z]+)\s*(?:=|==|:|\bis\b)\s*(.+)$")


def parse_year(text: str) -> int:
    match = _YEAR_RE.match(text.strip().lower())
    if match is None:
        raise QuestionError(f"expected a year like 1900 or 500 BCE, got {text.strip()[:20]!r}")
    year = int(match.group(1))
    if match.group(2) and match.group(2).startswith("b"):
        year = -abs(year)
    if year == 0:
        raise QuestionError("there is no year 0")
    return year


def parse_query(text: str) -> Query | None:
    """The structured question in `text`, None when it is free text; raises `QuestionError` when it
    starts like a structured question but cannot be one."""
    t = text.strip().strip("`*\"' ").rstrip("?.!").strip().lower().replace("_", " ")
    t = re.sub(r"\s+", " ", t)
    if not t:
        raise QuestionError("empty question")
    if m := _YEAR_Q_RE.match(t):
        verb, op = m.group(1), m.group(2)
        if op == "in" or (verb == "died" and op == "after"):
            raise QuestionError(
                "year questions are born_before, born_after or died_before followed by a year"
            )
        return Query(f"{verb}_{op}", parse_year(m.group(3)))
    if m := _LETTER_RE.match(t):
        letter = normalize_name(m.group(1))
        if len(letter) != 1 or not letter.isalpha():
            raise QuestionError(f"name_starts_with takes one letter, got {m.group(1)[:20]!r}")
        return Query("name_starts_with", letter)
    if m := _BOOL_RE.match(t):
        attr = "alive" if m.group(1) == "alive" else "nobel_prize"
        return Query(attr, m.group(2) not in ("no", "false"))
    if m := _CAT_RE.match(t):
        attr = _SYNONYMS.get(m.group(1), m.group(1))
        if attr in CATEGORICAL:
            value = m.group(2).strip()
            allowed = vocabulary(attr)
            by_key = {v.lower().replace("_", " "): v for v in allowed}
            if attr == "nationality":
                by_key.update(COUNTRY_ALIASES)
            if value not in by_key:
                shown = ", ".join(allowed)
                raise QuestionError(f"{attr} cannot be {value[:30]!r}; allowed values: {shown}")
            return Query(attr, by_key[value])
        if attr in BOOLEAN or attr in YEARS or attr == "name":
            raise QuestionError(f"malformed {attr} question; see the formats in the rules")
    return None


@lru_cache(maxsize=4096)
def initial(name: str) -> str:
    """First letter of the normalised name ("Édith Piaf" -> "e")."""
    return normalize_name(name)[:1]


def _window(year: int | None, circa: bool, asked: int) -> bool:
    return circa and year is not None and abs(year - asked) <= UNKNOWN_WINDOW


def answer(person: Person, query: Query) -> str:
    """ "yes", "no" or "unknown": the graph's exact answer to `query` about `person`."""
    a, v = query.attribute, query.value
    if a in CATEGORICAL:
        return "yes" if getattr(person, a) == v else "no"
    if a in BOOLEAN:
        return "yes" if getattr(person, a) == v else "no"
    if a == "name_starts_with":
        return "yes" if initial(person.name) == v else "no"
    year = int(v)
    if a in ("born_before", "born_after"):
        if _window(person.birth_year, person.circa, year):
            return "unknown"
        hit = person.birth_year < year if a == "born_before" else person.birth_year > year
        return "yes" if hit else "no"
    if a == "died_before":
        if person.death_year is None:
            return "no"
        if _window(person.death_year, person.circa, year):
            return "unknown"
        return "yes" if person.death_year < year else "no"
    raise KeyError(a)


def candidate_queries(people: list[Person], thresholds: int = 16) -> list[Query]:
    """Questions worth asking about `people`: every categorical value present, the flags, first
    letters, and up to `thresholds` quantile years for each year comparison."""
    out: list[Query] = []
    for attr in CATEGORICAL:
        out += [Query(attr, v) for v in sorted({getattr(p, attr) for p in people})]
    out += [Query("alive", True), Query("nobel_prize", True)]
    out += [Query("name_starts_with", c) for c in sorted({initial(p.name) for p in people})]
    births = sorted(p.birth_year for p in people)
    deaths = sorted(p.death_year for p in people if p.death_year is not None)
    for attr, years in (("born_before", births), ("died_before", deaths)):
        if len(years) < 2:
            continue
        picks = {years[(i * len(years)) // (thresholds + 1)] for i in range(1, thresholds + 1)}
        out += [Query(attr, y if y != 0 else 1) for y in sorted(picks) if y != years[0]]
    return out


def split_entropy(people: list[Person], query: Query) -> float:
    """Entropy (bits) of the answers over `people`: how much asking `query` tells on average."""
    counts = Counter(answer(p, query) for p in people)
    n = len(people)
    return -sum(c / n * math.log2(c / n) for c in counts.values() if c)


def _entropy(counts: list[int], n: int) -> float:
    return -sum(c / n * math.log2(c / n) for c in counts if c)


def ranked_queries(people: list[Person], thresholds: int = 16) -> list[tuple[float, Query]]:
    """`candidate_queries(people)` with their `split_entropy`, computed from value counts (one pass
    per attribute instead of one per question), so a greedy guesser stays fast on the full graph."""
    n = len(people)
    out: list[tuple[float, Query]] = []
    if n == 0:
        return out
    for attr in (*CATEGORICAL, "name_starts_with"):
        counts = Counter(initial(p.name) if attr == "name_starts_with" else getattr(p, attr) for p in people)
        for value, c in sorted(counts.items()):
            out.append((_entropy([c, n - c], n), Query(attr, value)))
    for attr in BOOLEAN:
        c = sum(bool(getattr(p, attr)) for p in people)
        out.append((_entropy([c, n - c], n), Query(attr, True)))
    for q in candidate_queries(people, thresholds):
        if q.attribute in YEARS:
            out.append((split_entropy(people, q), q))
    return out
