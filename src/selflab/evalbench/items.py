"""Benchmark items: a verifiable task with candidate responses of known correctness, and pairs
with a known better answer.

Every label comes from the task's code verifier, not from how the candidate was built: the
builder aims for "correct", "subtle" (subtly wrong: an off-by-one number, a neighbouring capital,
one bullet too many) and "off" (off-instruction: ignores the question), and a candidate whose
verifier result disagrees with its aim is dropped. The shipped file `data/items.jsonl` holds the
default items; `generate_items(n, seed)` makes more.
"""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel

from selflab.tasks import (
    Task,
    arithmetic_tasks,
    fact_tasks,
    instruction_tasks,
    load_fact_table,
    word_problem_tasks,
)
from selflab.tasks.facts import CONTINENTS, Country, _fmt_pop
from selflab.tasks.instructions import respond, topics

Label = Literal["correct", "subtle", "off"]
DOMAINS = ("arithmetic", "word_problem", "fact", "instruction")
ITEMS_FILE = "data/items.jsonl"


class Candidate(BaseModel):
    """One response to a task with its verified correctness. `value` is the answer it claims
    (a number, a capital...) where that makes sense, so perturbations can re-render it."""

    id: str
    response: str
    label: Label
    correct: bool
    value: str | None = None
    source: str = "template"


class Pair(BaseModel):
    """Two candidates of one item; `better` is the id of the correct one."""

    id: str
    a: str
    b: str
    better: Literal["A", "B"]


class BenchItem(BaseModel):
    """A task, its candidates and its pairs."""

    id: str
    domain: str
    task: Task
    candidates: list[Candidate]
    pairs: list[Pair]

    def candidate(self, cid: str) -> Candidate:
        return next(c for c in self.candidates if c.id == cid)


# --- wrong values --------------------------------------------------------------------------------


def wrong_number(answer: float, rng: random.Random) -> int:
    """A plausible slip: off by 1, 2 or 10, never equal to the answer."""
    a = int(answer)
    delta = rng.choice([-10, -2, -1, 1, 2, 10])
    return a + delta


def replace_number(text: str, old: int | float, new: int | float) -> str:
    """Replace whole occurrences of `old` by `new` (not digits inside other numbers)."""
    return re.sub(rf"(?<![\d.]){re.escape(f'{old:g}')}(?![\d])", f"{new:g}", text)


def _country(task: Task) -> Country:
    iso = task.meta["country"]
    return next(c for c in load_fact_table() if c.iso2 == iso)


def fact_answer(task: Task, value: str, c: Country) -> str:
    """Render a fact answer with the given value in the reference's template."""
    kind = task.meta["fact"]
    if kind == "capital":
        return f"The capital of {c.the_name} is {value}."
    if kind == "continent":
        return f"{c.The_name} lies in {value}."
    if kind == "currency":
        return f"The official currency of {c.the_name} is the {value}."
    if kind == "language":
        return f"An official language of {c.the_name} is {value}."
    if kind == "independence_year":
        return f"{c.The_name} became independent in {value}."
    if kind == "population_compare":
        return f"{value} has the larger population."
    if kind == "population_approx":
        return f"About {value} people live in {c.the_name}."
    raise ValueError(kind)


def _fact_wrong_value(task: Task, c: Country, rng: random.Random) -> str:
    table = load_fact_table()
    kind = task.meta["fact"]
    same_cont = [o for o in table if o.iso2 != c.iso2 and set(o.continents) & set(c.continents)]
    if kind == "capital":
        return rng.choice(same_cont).capital
    if kind == "continent":
        return rng.choice([k for k in CONTINENTS if k not in c.continents])
    if kind == "currency":
        return rng.choice(sorted({o.currency_name for o in table} - set(c.currencies)))
    if kind == "language":
        pool = sorted({lang for o in same_cont for lang in o.languages} - set(c.languages))
        return rng.choice(pool or ["Esperanto"])
    if kind == "independence_year":
        return str(c.independence_year + rng.choice([-3, -2, -1, 1, 2, 3]))
    if kind == "population_compare":
        other = next(o for o in table if o.iso2 == task.meta["other"])
        small = other if task.meta["larger"] == c.iso2 else c
        return small.The_name
    if kind == "population_approx":
        return _fmt_pop(round(c.population_m * rng.choice([0.4, 0.5, 2.0, 2.5]), 1))
    raise ValueError(kind)


def _fact_value(task: Task, c: Country) -> str:
    kind = task.meta["fact"]
    if kind == "continent":
        return " and ".join(c.continents)
    if kind == "currency":
        return f"{c.currency_name} ({c.currency_code})"
    if kind == "population_compare":
        return next(o for o in load_fact_table() if o.iso2 == task.meta["larger"]).The_name
    if kind == "population_approx":
        return _fmt_pop(c.population_m)
    return str(task.answer)


def _off_topic(task: Task, rng: random.Random) -> str:
    """A fluent answer to some other request: on-topic for nothing the task asked."""
    topic = rng.choice(sorted(topics()))
    sents = list(topics()[topic]["en"])
    rng.shuffle(sents)
    return f"Here is something interesting about {topic}. " + " ".join(sents[:2])


def build_candidates(task: Task, rng: random.Random) -> list[Candidate]:
    """Correct, subtly wrong and off-instruction candidates, each verified."""
    aims: list[tuple[Label, str, str | None]] = []
    if task.kind in ("arithmetic", "word_problem"):
        ans = int(task.answer)
        wrong = wrong_number(ans, rng)
        aims += [
            ("correct", task.reference, str(ans)),
            ("subtle", replace_number(task.reference, ans, wrong), str(wrong)),
            ("off", _off_topic(task, rng), None),
        ]
    elif task.kind == "fact":
        c = _country(task)
        value = _fact_value(task, c)
        wrong = _fact_wrong_value(task, c, rng)
        aims += [
            ("correct", task.reference, value),
            ("subtle", fact_answer(task, wrong, c), wrong),
            ("off", _off_topic(task, rng), None),
        ]
    else:
        for mode in ("correct", "subtle", "off"):
            aims.append((mode, respond(task, rng, mode), None))  # type: ignore[arg-type]
    out = []
    for label, text, value in aims:
        ok = task.check(text)
        if ok != (label == "correct"):
            continue  # the verifier disagrees with what we aimed for: drop, never mislabel
        out.append(Candidate(id=f"{task.id}:{label}", response=text, label=label, correct=ok, value=value))
    return out


def build_item(task: Task, rng: random.Random) -> BenchItem | None:
    cands = build_candidates(task, rng)
    good = [c for c in cands if c.correct]
    bad = [c for c in cands if not c.correct]
    if not good or not bad:
        return None
    pairs = []
    for j, w in enumerate(bad):
        flip = rng.random() < 0.5
        a, b = (w, good[0]) if flip else (good[0], w)
        pairs.append(Pair(id=f"{task.id}:pair{j}", a=a.id, b=b.id, better="B" if flip else "A"))
    domain = task.kind
    return BenchItem(id=task.id, domain=domain, task=task, candidates=cands, pairs=pairs)


def generate_items(n: int, seed: int = 0, domains: tuple[str, ...] = DOMAINS) -> list[BenchItem]:
    """`n` items spread evenly over `domains` (round-robin), reproducible from `seed`."""
    from selflab.errors import SelflabError

    bad = [d for d in domains if d not in DOMAINS]
    if bad:
        raise SelflabError(f"unknown benchmark domains {bad}", f"choose from {', '.join(DOMAINS)}")
    per = -(-n // len(domains)) + 2
    makers = {
        "arithmetic": arithmetic_tasks,
        "word_problem": word_problem_tasks,
        "fact": fact_tasks,
        "instruction": instruction_tasks,
    }
    pools = {d: makers[d](per, seed=seed) for d in domains}
    rng = random.Random(seed)
    out: list[BenchItem] = []
    idx = {d: 0 for d in domains}
    while len(out) < n and any(idx[d] < len(pools[d]) for d in domains):
        for d in domains:
            if len(out) >= n or idx[d] >= len(pools[d]):
                continue
            item = build_item(pools[d][idx[d]], rng)
            idx[d] += 1
            if item is not None:
                out.append(item)
    return out


@lru_cache(maxsize=1)
def _shipped() -> tuple[BenchItem, ...]:
    path = resources.files("selflab.evalbench").joinpath(ITEMS_FILE)
    if not path.is_file():
        return ()
    return tuple(
        BenchItem.model_validate_json(line) for line in path.read_text("utf-8").splitlines() if line.strip()
    )


def load_items(limit: int | None = None, seed: int = 0) -> list[BenchItem]:
    """The shipped items (domains interleaved), or freshly generated ones when more are asked for
    than ship. With seed != 0 the shipped items are a seeded shuffle."""
    shipped = list(_shipped())
    if limit is not None and limit > len(shipped):
        return generate_items(limit, seed=seed)
    if seed:
        by_domain: dict[str, list[BenchItem]] = {}
        for it in shipped:
            by_domain.setdefault(it.domain, []).append(it)
        rng = random.Random(seed)
        for v in by_domain.values():
            rng.shuffle(v)
        shipped = [x for group in zip(*by_domain.values(), strict=False) for x in group]
    return shipped if limit is None else shipped[:limit]


def write_items(items: list[BenchItem], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it.model_dump(mode="json"), ensure_ascii=False) + "\n")
