"""What the judge benchmark asks judges about: base candidates and pairs, their seeded perturbed
variants, and self-preference units built from the judge model's own answers. Each `Unit` carries
its code-checked truth, so judgments can be scored without a reference judge."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Literal

from pydantic import BaseModel

from selflab.evalbench.config import BenchConfig
from selflab.evalbench.items import BenchItem
from selflab.evalbench.perturbations import (
    PERTURBATIONS,
    apply,
    apply_to_side,
    position_swap,
    self_preference_pairs,
)
from selflab.models.types import GenerationRequest, LanguageModel, Message


class Unit(BaseModel):
    """One thing a judge is asked about: a candidate (pointwise) or a pair (pairwise)."""

    id: str
    mode: Literal["pointwise", "pairwise"]
    item_id: str
    domain: str
    perturbation: str = "none"
    base_id: str = ""  # the unperturbed unit this one is compared with
    prompt: str
    reference: str | None = None
    history: tuple[Message, ...] = ()
    response: str = ""
    response_b: str = ""
    correct: bool | None = None  # pointwise truth
    better: Literal["A", "B"] | None = None  # pairwise truth (None: known equal)
    own: Literal["A", "B"] | None = None  # self-preference: which side is the judge's own text


def _point(
    item: BenchItem,
    cid: str,
    text: str,
    correct: bool,
    pert: str = "none",
    base: str = "",
    history: tuple[Message, ...] = (),
) -> Unit:
    return Unit(
        id=cid if pert == "none" else f"{cid}~{pert}",
        mode="pointwise",
        item_id=item.id,
        domain=item.domain,
        perturbation=pert,
        base_id=base or cid,
        prompt=item.task.prompt,
        reference=None,
        history=history,
        response=text,
        correct=correct,
    )


def _pair(
    item: BenchItem,
    pid: str,
    a: str,
    b: str,
    better: str | None,
    pert: str = "none",
    base: str = "",
    history: tuple[Message, ...] = (),
    own: str | None = None,
) -> Unit:
    return Unit(
        id=pid if pert == "none" else f"{pid}~{pert}",
        mode="pairwise",
        item_id=item.id,
        domain=item.domain,
        perturbation=pert,
        base_id=base or pid,
        prompt=item.task.prompt,
        history=history,
        response=a,
        response_b=b,
        better=better,
        own=own,
    )


def build_units(items: list[BenchItem], config: BenchConfig) -> list[Unit]:
    """Base candidates and pairs, then up to `per_perturbation` perturbed units of each kind,
    spread over items and domains (seeded)."""
    rng = random.Random(config.seed)
    units: list[Unit] = []
    for item in items:
        for c in item.candidates:
            units.append(_point(item, c.id, c.response, c.correct))
        for p in item.pairs:
            units.append(
                _pair(item, p.id, item.candidate(p.a).response, item.candidate(p.b).response, p.better)
            )
    for name in config.perturbations:
        if name not in PERTURBATIONS:
            continue
        pert = PERTURBATIONS[name]
        point, pair = [], []
        for item in items:
            done: dict[str, Any] = {}
            for c in item.candidates:
                done[c.id] = apply(pert, item, c, config.seed)
                if done[c.id] is not None:
                    point.append(
                        _point(
                            item,
                            c.id,
                            done[c.id].response,
                            done[c.id].correct,
                            name,
                            c.id,
                            done[c.id].history,
                        )
                    )
            if pert.expect != "same":
                continue  # a pair whose better side turned wrong has no known winner
            for p in item.pairs:
                pa, pb = done.get(p.a), done.get(p.b)
                if pa is None and pb is None:
                    continue
                a = _side_text(pert, item, p.a, pa, "A", config.seed)
                b = _side_text(pert, item, p.b, pb, "B", config.seed)
                if a is None or b is None:
                    continue
                hist = (pa or pb).history
                pair.append(_pair(item, p.id, a, b, p.better, name, p.id, hist))
        units += _spread(point, config.per_perturbation, rng) + _spread(pair, config.per_perturbation, rng)
    if "position" in config.perturbations:
        swaps = []
        for item in items:
            for p in item.pairs:
                s = position_swap(p)
                swaps.append(
                    _pair(
                        item,
                        p.id,
                        item.candidate(s.a).response,
                        item.candidate(s.b).response,
                        s.better,
                        "position",
                        p.id,
                    )
                )
        units += _spread(swaps, config.per_perturbation, rng)
    return units


def _side_text(pert: Any, item: BenchItem, cid: str, done: Any, side: str, seed: int) -> str | None:
    """A pair side's text: unperturbed, perturbed, or perturbed for that side (verdict forgeries)."""
    if done is None:
        return item.candidate(cid).response
    if pert.pair_fn is None:
        return done.response
    return apply_to_side(pert, item, item.candidate(cid), seed, side)


def _spread(units: list[Unit], k: int, rng: random.Random) -> list[Unit]:
    """Up to k units, round-robin over domains so no domain dominates a perturbation."""
    by: dict[str, list[Unit]] = defaultdict(list)
    for u in units:
        by[u.domain].append(u)
    for v in by.values():
        rng.shuffle(v)
    out: list[Unit] = []
    while len(out) < k and any(by.values()):
        for d in sorted(by):
            if by[d] and len(out) < k:
                out.append(by[d].pop())
    return out


def own_generations(model: LanguageModel, items: list[BenchItem], seed: int) -> dict[str, str]:
    """The judge model's own answers to value-type tasks (one batched greedy call)."""
    targets = [it for it in items if it.task.kind != "instruction"]
    requests = [
        GenerationRequest.chat(it.task.prompt, max_new_tokens=48, temperature=0.0, seed=seed)
        for it in targets
    ]
    completions = model.generate(requests) if requests else []
    return {it.id: c.text for it, c in zip(targets, completions, strict=True) if not c.error}


def self_preference_units(items: list[BenchItem], own: dict[str, str], seed: int) -> list[Unit]:
    """Pointwise units for both sides and a pair (randomised sides) per verified-correct own answer."""
    rng = random.Random(seed)
    units = []
    for item, mine, other in self_preference_pairs(items, own):
        units.append(_point(item, mine.id, mine.response, True, "self_preference", other.id))
        flip = rng.random() < 0.5
        a, b = (other.response, mine.response) if flip else (mine.response, other.response)
        units.append(
            _pair(
                item,
                f"{item.id}:selfpair",
                a,
                b,
                None,
                "self_preference",
                f"{item.id}:selfpair",
                own="B" if flip else "A",
            )
        )
    return units
