"""A small knowledge graph of well-known people, shipped as `data/people.csv` plus `data/countries.json`.

Why a hand-built graph: games (guess the person) and probes (true/false statements) need facts
whose truth is known for certain, without any download. Every value comes from a closed
vocabulary, so a question like `field = music` has an exact answer.

Schema of `data/people.csv` (one row per person; `load_people` validates every row):

| column       | type / vocabulary                                                           |
|--------------|-----------------------------------------------------------------------------|
| name         | the usual English name, unique                                              |
| gender       | `male` or `female`                                                          |
| nationality  | a modern country name from `data/countries.json` (the country the person   |
|              | is most associated with; ancient Greeks -> Greece, Romans -> Italy)        |
| field        | one of `FIELDS`                                                             |
| occupation   | one of `OCCUPATIONS` (each occupation belongs to exactly one field)         |
| birth_year   | integer, negative for BCE (there is no year 0)                              |
| death_year   | integer, empty when the person is alive (as of 2025)                       |
| circa        | `yes` when the years are approximate (ancient and medieval people)          |
| nobel_prize  | `yes` when awarded any Nobel Prize (incl. economics; even if declined)      |
| known_for    | one notable work or achievement (free text)                                 |
| aliases      | other names accepted in guesses, `;`-separated (may be empty)               |

Derived attributes (never stored, so they cannot disagree with the data): `continent` (from the
country, UN geoscheme continents, the Caribbean in North America), `alive`, `era`
(from the birth year, see `ERAS`).
"""

from __future__ import annotations

import csv
import json
import unicodedata
from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

GENDERS = ("male", "female")
CONTINENTS = ("Africa", "Asia", "Europe", "North America", "Oceania", "South America")
OCCUPATIONS: dict[str, str] = {
    # science
    "physicist": "science",
    "chemist": "science",
    "biologist": "science",
    "physician": "science",
    "nurse": "science",
    "mathematician": "science",
    "computer scientist": "science",
    "astronomer": "science",
    "psychologist": "science",
    "geologist": "science",
    "inventor": "science",
    "economist": "economics",
    "explorer": "exploration",
    "astronaut": "exploration",
    "aviator": "exploration",
    "composer": "music",
    "singer": "music",
    "musician": "music",
    "novelist": "literature",
    "poet": "literature",
    "playwright": "literature",
    "writer": "literature",
    "philosopher": "philosophy",
    "president": "politics",
    "prime minister": "politics",
    "chancellor": "politics",
    "monarch": "politics",
    "politician": "politics",
    "revolutionary": "politics",
    "activist": "politics",
    "diplomat": "politics",
    "military leader": "military",
    "religious leader": "religion",
    "painter": "art",
    "sculptor": "art",
    "architect": "art",
    "photographer": "art",
    "fashion designer": "art",
    "actor": "film",
    "director": "film",
    "producer": "film",
    "television host": "film",
    "footballer": "sports",
    "basketball player": "sports",
    "tennis player": "sports",
    "boxer": "sports",
    "sprinter": "sports",
    "runner": "sports",
    "swimmer": "sports",
    "gymnast": "sports",
    "golfer": "sports",
    "baseball player": "sports",
    "cricketer": "sports",
    "ice hockey player": "sports",
    "racing driver": "sports",
    "cyclist": "sports",
    "chess player": "sports",
    "entrepreneur": "business",
    "investor": "business",
}
FIELDS = tuple(sorted(set(OCCUPATIONS.values())))
# (name, first birth year included, first birth year excluded)
ERAS: tuple[tuple[str, int, int], ...] = (
    ("ancient", -10_000, 500),
    ("medieval", 500, 1500),
    ("early modern", 1500, 1800),
    ("19th century", 1800, 1900),
    ("20th century", 1900, 3000),
)
ERA_NAMES = tuple(e[0] for e in ERAS)
CURRENT_YEAR = 2025


def era_of(birth_year: int) -> str:
    """The era a birth year falls in (`ERAS`)."""
    for name, lo, hi in ERAS:
        if lo <= birth_year < hi:
            return name
    raise ValueError(f"birth year {birth_year} outside every era")


def normalize_name(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form used to match names ("Schrödinger" ==
    "schrodinger", "J. K. Rowling" == "jk rowling")."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).replace("ø", "o").replace("Ø", "O")
    text = text.lower().replace("-", " ")
    kept = "".join(c if c.isalnum() or c.isspace() else " " for c in text)
    words = kept.split()
    # "J K Rowling" and "JK Rowling" are the same name: glue runs of single letters.
    merged: list[str] = []
    initials = ""
    for w in words:
        if len(w) == 1:
            initials += w
            continue
        if initials:
            merged.append(initials)
            initials = ""
        merged.append(w)
    if initials:
        merged.append(initials)
    return " ".join(merged)


class Country(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    iso2: str
    continent: str


class Person(BaseModel):
    """One person of the graph. Frozen: the graph is read-only data."""

    model_config = ConfigDict(frozen=True)

    name: str
    gender: Literal["male", "female"]
    nationality: str
    continent: str
    field: str
    occupation: str
    birth_year: int
    death_year: int | None
    circa: bool = False
    nobel_prize: bool = False
    known_for: str
    aliases: tuple[str, ...] = ()

    @field_validator("occupation")
    @classmethod
    def _known_occupation(cls, v: str) -> str:
        if v not in OCCUPATIONS:
            raise ValueError(f"unknown occupation {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Person:
        if OCCUPATIONS[self.occupation] != self.field:
            raise ValueError(
                f"{self.name}: occupation {self.occupation} belongs to {OCCUPATIONS[self.occupation]}"
            )
        if self.continent not in CONTINENTS:
            raise ValueError(f"{self.name}: unknown continent {self.continent}")
        if self.birth_year == 0 or self.death_year == 0:
            raise ValueError(f"{self.name}: there is no year 0")
        if self.birth_year > CURRENT_YEAR - 10:
            raise ValueError(f"{self.name}: birth year {self.birth_year} too recent")
        if self.death_year is not None:
            age = self.death_year - self.birth_year - (1 if self.birth_year < 0 < self.death_year else 0)
            if not 10 <= age <= 110 or self.death_year > CURRENT_YEAR:
                raise ValueError(f"{self.name}: implausible years {self.birth_year}-{self.death_year}")
        elif CURRENT_YEAR - self.birth_year > 105:
            raise ValueError(f"{self.name}: marked alive but born in {self.birth_year}")
        return self

    @property
    def alive(self) -> bool:
        return self.death_year is None

    @property
    def era(self) -> str:
        return era_of(self.birth_year)

    @property
    def names(self) -> tuple[str, ...]:
        """The name and its aliases, normalised for matching."""
        return tuple(dict.fromkeys(normalize_name(n) for n in (self.name, *self.aliases)))

    def card(self) -> str:
        """All facts about the person as a short text (what an LLM answerer is shown)."""
        years = f"{_year(self.birth_year)}-{_year(self.death_year) if self.death_year else 'alive'}"
        return (
            f"Name: {self.name}\nGender: {self.gender}\nNationality: {self.nationality} ({self.continent})\n"
            f"Field: {self.field}\nOccupation: {self.occupation}\n"
            f"Lived: {'about ' if self.circa else ''}{years} (era: {self.era})\n"
            f"Nobel Prize: {'yes' if self.nobel_prize else 'no'}\nKnown for: {self.known_for}"
        )


def _year(y: int) -> str:
    return f"{-y} BCE" if y < 0 else str(y)


@lru_cache(maxsize=1)
def load_countries() -> dict[str, Country]:
    """Country name -> Country (ISO code and continent)."""
    raw = json.loads(resources.files("selflab.kg").joinpath("data/countries.json").read_text("utf-8"))
    return {c["name"]: Country(**c) for c in raw}


def _parse_bool(value: str, column: str, name: str) -> bool:
    if value not in ("yes", "no"):
        raise ValueError(f"{name}: column {column} must be yes or no, got {value!r}")
    return value == "yes"


@lru_cache(maxsize=1)
def _load() -> tuple[Person, ...]:
    countries = load_countries()
    text = resources.files("selflab.kg").joinpath("data/people.csv").read_text("utf-8")
    people: list[Person] = []
    for row in csv.DictReader(text.splitlines()):
        name = row["name"].strip()
        country = row["nationality"].strip()
        if country not in countries:
            raise ValueError(f"{name}: nationality {country!r} missing from countries.json")
        people.append(
            Person(
                name=name,
                gender=row["gender"].strip(),  # type: ignore[arg-type]
                nationality=country,
                continent=countries[country].continent,
                field=row["field"].strip(),
                occupation=row["occupation"].strip(),
                birth_year=int(row["birth_year"]),
                death_year=int(row["death_year"]) if row["death_year"].strip() else None,
                circa=_parse_bool(row["circa"].strip(), "circa", name),
                nobel_prize=_parse_bool(row["nobel_prize"].strip(), "nobel_prize", name),
                known_for=row["known_for"].strip(),
                aliases=tuple(a.strip() for a in row["aliases"].split(";") if a.strip()),
            )
        )
    return tuple(people)


def load_people() -> list[Person]:
    """Every person of the graph, in file order (a fresh list; the Person objects are shared and frozen)."""
    return list(_load())


def find_person(name: str) -> Person | None:
    """The person whose name or alias matches `name` (normalised), else None."""
    key = normalize_name(name)
    for p in _load():
        if key in p.names:
            return p
    return None
