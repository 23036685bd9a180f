"""The shipped fact table of countries and the factual question tasks generated from it.

Values are conservative: capitals as commonly taught (with accepted alternatives where a country
has several seats of government), populations in millions rounded to about two significant figures
(recent estimates; tasks compare populations only when they differ by at least 1.5x, or accept a
20% tolerance), and independence years only where one year is commonly cited. Empty cells mean
"not asked about". pycountry supplies ISO codes and official names.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from selflab.tasks.types import Task

CONTINENTS = ("Africa", "Asia", "Europe", "North America", "South America", "Oceania")
_WITH_ARTICLE = frozenset({"US", "GB", "NL", "PH", "CD"})
FACT_KINDS = (
    "capital",
    "continent",
    "currency",
    "language",
    "independence_year",
    "population_compare",
    "population_approx",
)


@dataclass(frozen=True)
class Country:
    """One row of the fact table."""

    iso2: str
    name: str
    name_aliases: tuple[str, ...]
    capital: str
    capital_aliases: tuple[str, ...]
    continents: tuple[str, ...]
    population_m: float | None
    independence_year: int | None
    languages: tuple[str, ...]
    currency_code: str
    currency_name: str
    currency_aliases: tuple[str, ...]

    @property
    def alpha3(self) -> str:
        import pycountry

        c = pycountry.countries.get(alpha_2=self.iso2)
        return c.alpha_3 if c else ""

    @property
    def official_name(self) -> str:
        import pycountry

        c = pycountry.countries.get(alpha_2=self.iso2)
        return getattr(c, "official_name", None) or (c.name if c else self.name)

    @property
    def the_name(self) -> str:
        """The name as used mid-sentence ("the United States")."""
        return f"the {self.name}" if self.iso2 in _WITH_ARTICLE else self.name

    @property
    def The_name(self) -> str:  # noqa: N802 - reads as the sentence-initial form
        return f"The {self.name}" if self.iso2 in _WITH_ARTICLE else self.name

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.name_aliases)

    @property
    def capitals(self) -> tuple[str, ...]:
        return (self.capital, *self.capital_aliases)

    @property
    def currencies(self) -> tuple[str, ...]:
        return (self.currency_name, *self.currency_aliases, self.currency_code)


def _split(cell: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in cell.split(";") if x.strip())


@lru_cache(maxsize=1)
def load_fact_table() -> tuple[Country, ...]:
    """All countries in the shipped table, in file order."""
    text = resources.files("selflab.tasks").joinpath("data/countries.csv").read_text("utf-8")
    rows = []
    for r in csv.DictReader(text.splitlines()):
        rows.append(
            Country(
                iso2=r["iso2"],
                name=r["name"],
                name_aliases=_split(r["name_aliases"]),
                capital=r["capital"],
                capital_aliases=_split(r["capital_aliases"]),
                continents=_split(r["continent"]),
                population_m=float(r["population_m"]) if r["population_m"] else None,
                independence_year=int(r["independence_year"]) if r["independence_year"] else None,
                languages=_split(r["languages"]),
                currency_code=r["currency_code"],
                currency_name=r["currency_name"],
                currency_aliases=_split(r["currency_aliases"]),
            )
        )
    return tuple(rows)


def country(name_or_code: str) -> Country:
    """Look a country up by ISO alpha-2 code or any of its names."""
    key = name_or_code.strip().lower()
    for c in load_fact_table():
        if key == c.iso2.lower() or key in (n.lower() for n in c.names):
            return c
    raise KeyError(name_or_code)


def _fmt_pop(m: float) -> str:
    if m >= 1000:
        return f"{m / 1000:.2f}".rstrip("0").rstrip(".") + " billion"
    return f"{m:g} million"


def _question(kind: str, c: Country, rng: random.Random, table: tuple[Country, ...]) -> Task | None:
    """One question of `kind` about country `c`, or None when the table has no value for it."""
    others = [o for o in table if o.iso2 != c.iso2]
    if kind == "capital":
        reject = sorted({cap for o in others for cap in o.capitals} - set(c.capitals) - set(c.names))
        return _task(
            kind,
            c,
            f"What is the capital of {c.the_name}?",
            f"The capital of {c.the_name} is {c.capital}.",
            c.capital,
            "mentions",
            {"accept": list(c.capitals), "reject": reject},
        )
    if kind == "continent":
        accept = list(c.continents) + (["Australia"] if "Oceania" in c.continents else [])
        reject = [k for k in CONTINENTS if k not in c.continents]
        cont = " and ".join(c.continents)
        verb = "lies in" if len(c.continents) == 1 else "spans"
        return _task(
            kind,
            c,
            f"On which continent is {c.the_name}?",
            f"{c.The_name} {verb} {cont}.",
            c.continents[0],
            "mentions",
            {"accept": accept, "reject": reject},
        )
    if kind == "currency":
        own = set(c.currencies)
        reject = sorted({o.currency_name for o in others} - own)
        return _task(
            kind,
            c,
            f"What is the official currency of {c.the_name}?",
            f"The official currency of {c.the_name} is the {c.currency_name} ({c.currency_code}).",
            c.currency_name,
            "mentions",
            {"accept": list(c.currencies), "reject": reject},
        )
    if kind == "language":
        if not c.languages:
            return None
        reject = sorted({lang for o in others for lang in o.languages} - set(c.languages))
        return _task(
            kind,
            c,
            f"Name an official language of {c.the_name}.",
            f"An official language of {c.the_name} is {c.languages[0]}.",
            c.languages[0],
            "mentions",
            {"accept": list(c.languages), "reject": reject},
        )
    if kind == "independence_year":
        if c.independence_year is None:
            return None
        return _task(
            kind,
            c,
            f"In which year did {c.the_name} become independent?",
            f"{c.The_name} became independent in {c.independence_year}.",
            c.independence_year,
            "year",
            {"answer": c.independence_year},
        )
    if kind == "population_compare":
        if c.population_m is None:
            return None
        far = [
            o
            for o in others
            if o.population_m
            and max(o.population_m, c.population_m) >= 1.5 * min(o.population_m, c.population_m)
        ]
        o = rng.choice(far)
        big, small = (c, o) if c.population_m > o.population_m else (o, c)
        first, second = (c, o) if rng.random() < 0.5 else (o, c)
        t = _task(
            kind,
            c,
            f"Which country has the larger population, {first.the_name} or {second.the_name}? Answer with the country name.",
            f"{big.The_name} has the larger population.",
            big.name,
            "choice",
            {"correct": list(big.names), "other": list(small.names)},
        )
        return t.model_copy(
            update={"id": f"{t.id}-{o.iso2.lower()}", "meta": {**t.meta, "other": o.iso2, "larger": big.iso2}}
        )
    if kind == "population_approx":
        if c.population_m is None:
            return None
        return _task(
            kind,
            c,
            f"Approximately how many people live in {c.the_name}?",
            f"About {_fmt_pop(c.population_m)} people live in {c.the_name}.",
            c.population_m,
            "approx_millions",
            {"answer": c.population_m, "rel_tol": 0.2},
        )
    raise ValueError(f"unknown fact kind {kind!r}")


def _task(kind: str, c: Country, prompt: str, reference: str, answer, verifier: str, params: dict) -> Task:
    return Task(
        id=f"fact-{kind}-{c.iso2.lower()}",
        kind="fact",
        prompt=prompt,
        reference=reference,
        answer=answer,
        verifier=verifier,
        params=params,
        meta={"fact": kind, "country": c.iso2},
    )


def fact_tasks(n: int, seed: int = 0, kinds: tuple[str, ...] = FACT_KINDS) -> list[Task]:
    """`n` factual questions drawn without repetition (ids are unique) from the fact table,
    cycling through `kinds` so every kind is represented."""
    from selflab.errors import SelflabError

    bad = [k for k in kinds if k not in FACT_KINDS]
    if bad:
        raise SelflabError(f"unknown fact kinds {bad}", f"choose from {', '.join(FACT_KINDS)}")
    rng = random.Random(seed)
    table = load_fact_table()
    pools = {k: rng.sample(table, len(table)) for k in kinds}
    out: list[Task] = []
    seen: set[str] = set()
    while len(out) < n and any(pools.values()):
        for k in kinds:
            while pools[k]:
                t = _question(k, pools[k].pop(), rng, table)
                if t is not None and t.id not in seen:
                    seen.add(t.id)
                    out.append(t)
                    break
            if len(out) >= n:
                break
    return out


def fact_statements(n: int, seed: int = 0) -> list[tuple[str, bool, dict]]:
    """`n` declarative statements from the fact table, half true and half false, for probes:
    (statement, is_true, meta). False ones swap in another country's value."""
    rng = random.Random(seed)
    table = load_fact_table()
    out: list[tuple[str, bool, dict]] = []
    while len(out) < n:
        c = rng.choice(table)
        o = rng.choice([x for x in table if x.iso2 != c.iso2])
        truth = len(out) % 2 == 0
        kind = rng.choice(["capital", "continent", "currency"])
        if kind == "capital":
            value = c.capital if truth else o.capital
            text = f"The capital of {c.the_name} is {value}."
        elif kind == "continent":
            wrong = [k for k in CONTINENTS if k not in c.continents]
            value = c.continents[0] if truth else rng.choice(wrong)
            text = f"{c.The_name} is in {value}."
        else:
            if not truth and o.currency_name in c.currencies:
                continue
            value = c.currency_name if truth else o.currency_name
            text = f"The currency of {c.the_name} is the {value}."
        out.append((text, truth, {"fact": kind, "country": c.iso2, "value": value}))
    return out
