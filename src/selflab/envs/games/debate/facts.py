"""The shipped fact table behind checkable debate motions, and a citation checker: which numbers a
text attributes to which entities, and whether they match the table."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

FACTS_FILE = Path(__file__).with_name("facts.csv")


@dataclass(frozen=True)
class Fact:
    """One measured quantity: e.g. (mountain, Mount Everest, 8849, metres)."""

    category: str
    entity: str
    aliases: tuple[str, ...]
    value: float
    unit: str

    def sentence(self) -> str:
        if self.unit == "year":
            return f"{self.entity[0].upper()}{self.entity[1:]} happened in {int(self.value)}."
        return f"{self.entity} measures {format_number(self.value)} {self.unit}."


def format_number(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,.1f}"


@cache
def facts() -> tuple[Fact, ...]:
    with FACTS_FILE.open(encoding="utf-8") as fh:
        return tuple(
            Fact(
                row["category"],
                row["entity"],
                tuple(a.strip() for a in row["aliases"].split("|") if a.strip()),
                float(row["value"]),
                row["unit"],
            )
            for row in csv.DictReader(fh)
        )


def by_category() -> dict[str, list[Fact]]:
    out: dict[str, list[Fact]] = {}
    for f in facts():
        out.setdefault(f.category, []).append(f)
    return out


_NUMBER_RE = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(million|thousand|billion)?", re.I)
_SCALE = {"million": 1e6, "thousand": 1e3, "billion": 1e9}

# A unit written after a number, and what it is in its dimension's base (length: metres, area: square
# kilometres); temperatures convert by formula. A figure in another unit of the fact's dimension
# ("8.8 km" for Everest's 8,849 metres) is converted before it is checked; without a unit, or with
# one of another dimension, the number is read in the fact's own unit.
_UNIT_RE = re.compile(
    r"\s*(square kilomet(?:re|er)s?|sq\.?\s?km|km2|km\u00b2|square miles?|sq\.?\s?mi|kilomet(?:re|er)s?|km"
    r"|met(?:re|er)s?|m|miles?|mi|feet|foot|ft|\u00b0\s?c|degrees? celsius|celsius|\u00b0\s?f"
    r"|degrees? fahrenheit|fahrenheit)(?![\w\u00b2])",
    re.IGNORECASE,
)
_UNITS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0), "km": ("length", 1000.0), "mi": ("length", 1609.344), "ft": ("length", 0.3048),
    "km2": ("area", 1.0), "mi2": ("area", 2.589988), "c": ("temperature", 1.0), "f": ("temperature", 1.0),
}  # fmt: skip


def _unit_key(written: str) -> str:
    """The `_UNITS` key of a unit as written ("kilometres" -> "km", "sq mi" -> "mi2")."""
    w = written.lower().replace("\u00b0", "").replace(".", "").strip()
    if w.startswith(("square kilomet", "sq km", "sqkm")) or w in ("km2", "km\u00b2"):
        return "km2"
    if w.startswith(("square mile", "sq mi", "sqmi")):
        return "mi2"
    if w.startswith("kilomet") or w == "km":
        return "km"
    if w.startswith("met") or w == "m":
        return "m"
    if w.startswith("mile") or w == "mi":
        return "mi"
    if w in ("feet", "foot", "ft"):
        return "ft"
    return "f" if "f" in w else "c"


def _in_fact_unit(value: float, written: str | None, fact: Fact) -> float:
    """`value`, stated in the unit `written` (or None), in the fact's own unit."""
    if written is None or fact.unit == "year":
        return value
    own = _unit_key(fact.unit)
    stated = _unit_key(written)
    (dimension, scale), (own_dimension, own_scale) = _UNITS[stated], _UNITS[own]
    if dimension != own_dimension:
        return value
    if dimension == "temperature":
        return (value - 32) * 5 / 9 if stated == "f" and own == "c" else value
    return value * scale / own_scale


@cache
def _entity_patterns() -> tuple[tuple[Fact, re.Pattern[str]], ...]:
    out = []
    for f in facts():
        names = sorted({f.entity, *f.aliases}, key=len, reverse=True)
        out.append((f, re.compile(r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\b", re.IGNORECASE)))
    return tuple(out)


@dataclass(frozen=True)
class Citation:
    fact: Fact
    stated: float

    @property
    def correct(self) -> bool:
        if self.fact.unit == "year":
            return int(self.stated) == int(self.fact.value)
        return abs(self.stated - self.fact.value) <= 0.05 * self.fact.value


def _mentions(sentence: str) -> list[tuple[int, int, Fact]]:
    """(start, end, fact) of every entity mention, in order, without mentions nested in a longer
    one ("Earth" inside "Earth's" is fine; "Congo" in "Congo River")."""
    mentions = []
    for fact, pattern in _entity_patterns():
        for m in pattern.finditer(sentence):
            mentions.append((m.start(), m.end(), fact))
    mentions.sort(key=lambda t: t[0])
    kept: list[tuple[int, int, Fact]] = []
    for m in mentions:
        if not kept or m[0] >= kept[-1][1]:
            kept.append(m)
    return kept


def named_entities(text: str) -> frozenset[str]:
    """The fact-table entities a text names (e.g. the two a comparison motion is about)."""
    return frozenset(fact.entity for _, _, fact in _mentions(text))


def citations(text: str) -> list[Citation]:
    """Numbers the text attributes to known entities: each entity mention takes the first number
    after it and before the next entity mention in the same sentence."""
    found: list[Citation] = []
    for sentence in re.split(r"(?<=[.!?;])\s+|\n+", text):
        kept = _mentions(sentence)
        for i, (_, end, fact) in enumerate(kept):
            stop = kept[i + 1][0] if i + 1 < len(kept) else len(sentence)
            for n in _NUMBER_RE.finditer(sentence[end:stop]):
                value = float(n.group(1).replace(",", ""))
                if n.group(2):
                    value *= _SCALE[n.group(2).lower()]
                unit = _UNIT_RE.match(sentence, end + n.end())
                found.append(Citation(fact, _in_fact_unit(value, unit.group(1) if unit else None, fact)))
                break
    return found


def fact_named(name: str) -> Fact:
    for f in facts():
        if f.entity == name:
            return f
    raise KeyError(name)
