"""True/false statement datasets for probing, generated from fact tables shipped with selflab.

Every dataset is built from *entities* (a city, a word, a pair of numbers). Each entity yields one
true and one false statement, so datasets are balanced by construction and a probe cannot win by
recognising the entity. Splits are by entity, and an entity's split is a function of its name and
the seed only, so the same city lands in the same split of `cities`, `neg_cities` and (as a
capital) `capitals`: no fact is ever in train for one dataset and in test for another.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from selflab.errors import SelflabError
from selflab.probes.activations import ProbeInput

SPLITS = ("train", "val", "test")
# A large test split: CIs on ~120 test statements are already +-0.08 AUC.
DEFAULT_FRACTIONS = (0.5, 0.2, 0.3)


@dataclass(frozen=True)
class Statement:
    """One labelled text. `span` is the character range of the part that carries the claim (the
    country, the result): probes read it at position `answer_last` / `answer_mean`."""

    text: str
    label: int  # 1 true, 0 false
    entity: str
    dataset: str
    span: tuple[int, int]
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def as_input(self) -> ProbeInput:
        return ProbeInput(text=self.text, span=self.span)


@dataclass
class ProbeDataset:
    name: str
    statements: list[Statement]

    def __len__(self) -> int:
        return len(self.statements)

    def labels(self) -> list[int]:
        return [s.label for s in self.statements]

    def entities(self) -> list[str]:
        return [s.entity for s in self.statements]

    def inputs(self) -> list[ProbeInput]:
        return [s.as_input() for s in self.statements]


def _with_span(prefix: str, answer: str, suffix: str) -> tuple[str, tuple[int, int]]:
    return prefix + answer + suffix, (len(prefix), len(prefix) + len(answer))


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("selflab.probes").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _pair(
    dataset: str,
    entity: str,
    true_parts: tuple[str, str, str],
    false_parts: tuple[str, str, str],
    **meta: Any,
) -> list[Statement]:
    out = []
    for label, parts in ((1, true_parts), (0, false_parts)):
        text, span = _with_span(*parts)
        out.append(
            Statement(text=text, label=label, entity=entity, dataset=dataset, span=span, meta=dict(meta))
        )
    return out


def _pick(rng: random.Random, items: list[str], exclude: str) -> str:
    while True:
        choice = rng.choice(items)
        if choice != exclude:
            return choice


def _limit_entities(rows: list[Any], n_entities: int | None, rng: random.Random) -> list[Any]:
    rows = list(rows)
    rng.shuffle(rows)
    return rows if n_entities is None else rows[:n_entities]


def cities(n_entities: int | None = None, seed: int = 0) -> ProbeDataset:
    """'The city of Lyon is in France.' against a random wrong country."""
    rng = random.Random(f"cities-{seed}")
    rows = _read_csv("cities.csv")
    countries = sorted({r["country"] for r in rows})
    st: list[Statement] = []
    for r in _limit_entities(rows, n_entities, rng):
        wrong = _pick(rng, countries, r["country"])
        pre = f"The city of {r['city']} is in "
        st += _pair("cities", r["city"], (pre, r["country"], "."), (pre, wrong, "."))
    return ProbeDataset("cities", st)


def neg_cities(n_entities: int | None = None, seed: int = 0) -> ProbeDataset:
    """Negated cities ('... is not in ...'): the surface cue flips while truth does not, the
    classic test that a probe reads truth rather than a plausibility feature."""
    rng = random.Random(f"neg_cities-{seed}")
    rows = _read_csv("cities.csv")
    countries = sorted({r["country"] for r in rows})
    st: list[Statement] = []
    for r in _limit_entities(rows, n_entities, rng):
        wrong = _pick(rng, countries, r["country"])
        pre = f"The city of {r['city']} is not in "
        st += _pair("neg_cities", r["city"], (pre, wrong, "."), (pre, r["country"], "."))
    return ProbeDataset("neg_cities", st)


def numeric(n_entities: int | None = 200, seed: int = 0) -> ProbeDataset:
    """'73 is larger than 48.' and the swapped false version; entity = the unordered pair."""
    rng = random.Random(f"numeric-{seed}")
    n_entities = n_entities or 200
    seen: set[tuple[int, int]] = set()
    st: list[Statement] = []
    while len(seen) < n_entities:
        a, b = rng.sample(range(10, 100), 2)
        big, small = max(a, b), min(a, b)
        if (big, small) in seen:
            continue
        seen.add((big, small))
        ent = f"{big}>{small}"
        st += _pair(
            "numeric",
            ent,
            (f"{big} is larger than ", str(small), "."),
            (f"{small} is larger than ", str(big), "."),
        )
    return ProbeDataset("numeric", st)


def arithmetic(n_entities: int | None = 200, seed: int = 0) -> ProbeDataset:
    """'23 + 48 = 71.' against a result off by a small non-zero amount (not trivially wrong)."""
    rng = random.Random(f"arithmetic-{seed}")
    n_entities = n_entities or 200
    seen: set[tuple[int, str, int]] = set()
    st: list[Statement] = []
    while len(seen) < n_entities:
        op = rng.choice(["+", "-"])
        a, b = rng.randint(2, 60), rng.randint(2, 40)
        if op == "-" and b > a:
            a, b = b, a
        if (a, op, b) in seen:
            continue
        seen.add((a, op, b))
        result = a + b if op == "+" else a - b
        wrong = result + rng.choice([-10, -2, -1, 1, 2, 10])
        if wrong < 0:
            wrong = result + rng.choice([1, 2, 10])
        pre = f"{a} {op} {b} = "
        st += _pair("arithmetic", f"{a}{op}{b}", (pre, str(result), "."), (pre, str(wrong), "."))
    return ProbeDataset("arithmetic", st)


def translations(n_entities: int | None = None, seed: int = 0) -> ProbeDataset:
    """ "The Spanish word 'perro' means 'dog'." against another word of the same language table."""
    rng = random.Random(f"translations-{seed}")
    rows = _read_csv("translations.csv")
    english = sorted({r["english"] for r in rows})
    st: list[Statement] = []
    for r in _limit_entities(rows, n_entities, rng):
        wrong = _pick(rng, english, r["english"])
        pre = f"The {r['language']} word '{r['word']}' means '"
        ent = f"{r['language']}:{r['word']}"
        st += _pair("translations", ent, (pre, r["english"], "'."), (pre, wrong, "'."))
    return ProbeDataset("translations", st)


def capitals(n_entities: int | None = None, seed: int = 0) -> ProbeDataset:
    """'The capital of Kenya is Nairobi.' from the shared country fact table (`selflab.tasks`),
    against another country's capital. Entity = the capital city, the same key as in `cities`:
    'The city of Nairobi is in Kenya.' states the same fact, so both must land in one split."""
    from selflab.tasks.facts import load_fact_table

    rng = random.Random(f"capitals-{seed}")
    table = list(load_fact_table())
    st: list[Statement] = []
    for c in _limit_entities(table, n_entities, rng):
        wrong = rng.choice([o.capital for o in table if o.capital not in c.capitals])
        pre = f"The capital of {c.name} is "
        st += _pair("capitals", c.capital, (pre, c.capital, "."), (pre, wrong, "."), country=c.name)
    return ProbeDataset("capitals", st)


KG_RELATIONS = ("nationality", "continent", "field", "occupation", "birth_year", "known_for")


def kg_facts(n_entities: int | None = None, seed: int = 0) -> ProbeDataset:
    """Facts about well-known people from the knowledge graph of the environments (`selflab.kg`):
    'Marie Curie is from Poland.' against a false object of the same relation (`kg.false_fact`).
    Entity = the person, so everything about one person stays in one split."""
    try:
        from selflab import kg
    except ImportError as err:
        raise SelflabError(
            "the 'kg' dataset needs selflab.kg, which is not available in this install",
            "drop 'kg' from --datasets",
        ) from err
    rng = random.Random(f"kg-{seed}")
    people = kg.load_people()
    true_facts = [f for f in kg.facts(people) if f.relation in KG_RELATIONS]
    st: list[Statement] = []
    for fact in _limit_entities(true_facts, n_entities, rng):
        false = kg.false_fact(fact, rng, people)
        pair = []
        for label, f in ((1, fact), (0, false)):
            text = kg.sentence(f)
            obj = str(f.object)
            start = text.rfind(obj)
            span = (start, start + len(obj)) if start >= 0 else (len(f.subject), len(text))
            pair.append(
                Statement(
                    text=text,
                    label=label,
                    entity=f.subject,
                    dataset="kg",
                    span=span,
                    meta={"relation": f.relation},
                )
            )
        st += pair
    if not st:
        raise SelflabError("selflab.kg returned no usable facts", "drop 'kg' from --datasets")
    return ProbeDataset("kg", st)


BUILDERS: dict[str, Callable[..., ProbeDataset]] = {
    "cities": cities,
    "neg_cities": neg_cities,
    "numeric": numeric,
    "arithmetic": arithmetic,
    "translations": translations,
    "capitals": capitals,
    "kg": kg_facts,
}
DEFAULT_DATASETS = ("cities", "neg_cities", "numeric", "arithmetic", "translations")


def build(name: str, n: int | None = None, seed: int = 0) -> ProbeDataset:
    """Build dataset `name` with about `n` statements (n/2 entities, each true + false)."""
    if name not in BUILDERS:
        raise SelflabError(f"unknown probe dataset {name!r}", f"choose from {', '.join(BUILDERS)}")
    if n is not None and n < 4:
        raise SelflabError(f"a dataset needs at least 4 statements, got n={n}", "raise --n")
    return BUILDERS[name](n_entities=None if n is None else n // 2, seed=seed)


# -- entity split -----------------------------------------------------------------------------


def entity_split(
    entity: str, seed: int = 0, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> str:
    """The split of an entity: a hash of (seed, entity) mapped to [0, 1), so it is stable across
    datasets and runs and independent of which other entities exist."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise SelflabError(f"split fractions {fractions} must be >= 0 and sum to 1", "e.g. (0.6, 0.2, 0.2)")
    digest = hashlib.sha256(f"{seed}|{entity}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, frac in zip(SPLITS, fractions, strict=True):
        edge += frac
        if u < edge:
            return name
    return SPLITS[-1]


def split_indices(
    statements: list[Statement], seed: int = 0, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> dict[str, list[int]]:
    """Indices of train / val / test statements, grouped by entity."""
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for i, st in enumerate(statements):
        out[entity_split(st.entity, seed, fractions)].append(i)
    for name, idx in out.items():
        if len({statements[i].label for i in idx}) < 2:
            raise SelflabError(
                f"the {name} split has only one class ({len(idx)} statements)",
                "use more statements (--n) or another seed",
            )
    return out


def balance(statements: list[Statement], seed: int = 0) -> list[Statement]:
    """Downsample the majority class (whole entities at random) so both labels are equally common.
    Needed for self-knowledge data, where the model's accuracy sets the class ratio."""
    rng = random.Random(f"balance-{seed}")
    pos = [s for s in statements if s.label == 1]
    neg = [s for s in statements if s.label == 0]
    k = min(len(pos), len(neg))
    keep = set(map(id, rng.sample(pos, k) + rng.sample(neg, k)))
    return [s for s in statements if id(s) in keep]
