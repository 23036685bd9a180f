"""The judge benchmark inside loops: candidates of code-verified correctness, split by entity like
every task family (`selflab.tasks.splits`), and the model as a rubric judge on them."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel

from selflab.judges.fence import FenceMode
from selflab.loops.truth_meter import Measurement
from selflab.models.types import LanguageModel, SamplingParams
from selflab.tasks import Task
from selflab.tasks.splits import content_sentences, entity_heldout, side


class BenchUnit(BaseModel):
    """One judge-benchmark candidate of known (code-verified) correctness."""

    id: str
    item_id: str
    domain: str
    prompt: str
    response: str
    correct: bool


class BenchPair(BaseModel):
    id: str
    a: str  # BenchUnit ids
    b: str
    better: str  # "A" or "B"


def _units(items: Sequence) -> tuple[list[BenchUnit], list[BenchPair]]:
    units, pairs = [], []
    for it in items:
        for c in it.candidates:
            units.append(
                BenchUnit(
                    id=c.id,
                    item_id=it.id,
                    domain=it.domain,
                    prompt=it.task.prompt,
                    response=c.response,
                    correct=c.correct,
                )
            )
        pairs += [BenchPair(id=p.id, a=p.a, b=p.b, better=p.better) for p in it.pairs]
    return units, pairs


def bench_slice(
    n_items: int, fraction: float = 0.3, offset: int = 0
) -> tuple[list[BenchUnit], list[BenchPair]]:
    """`n_items` shipped judge-benchmark items on the HELD-OUT side of the entity split, domains
    interleaved, with their candidates and pairs. `offset` skips that many (disjoint slices)."""
    from selflab.evalbench.items import load_items

    if n_items <= 0:
        return [], []
    chosen = [it for it in load_items() if side(it.task, fraction) == "heldout"]
    return _units(chosen[offset : offset + n_items])


def sentences(text: str) -> set[str]:
    """Lowercased sentences of five words or more (the unit of the contamination checks)."""
    parts = re.findall(r"[^.!?\n\"{}<>]+[.!?]?", text)
    return {p.strip(" -:,").lower() for p in parts if len(p.split()) >= 5}


def heldout_content(fraction: float, heldout_tasks: Sequence[Task] = ()) -> set[str]:
    """The held-out content training must never quote (as `sentences` writes it): every sentence
    of the held-out instruction topics, in every language, and the content sentences of the
    held-out tasks themselves (fact and word-problem texts)."""
    from selflab.tasks.instructions import all_topics

    out: set[str] = set()
    for name, data in all_topics().items():
        if entity_heldout(name, fraction):
            for lang in ("en", "fr", "es", "de"):
                out |= {s for text in data.get(lang, []) for s in sentences(text)}
    for task in heldout_tasks:
        out |= {s for text in content_sentences(task) for s in sentences(text)}
    return out


def train_bench(
    n_items: int, seed: int, fraction: float = 0.3, heldout: Sequence[BenchUnit] = ()
) -> tuple[list[BenchUnit], list[BenchPair]]:
    """Freshly generated benchmark items on the TRAINING side of the entity split (no topic,
    country, person or item kind in common with `bench_slice`), minus any item with a candidate
    that quotes held-out content (`heldout_content`: the held-out topics' sentences and the texts
    of the `heldout` units' tasks). Banning every sentence of every held-out candidate was too
    much: a held-out item's off-topic candidate quotes some training topic, so from about 30
    held-out items on every training item was banned and judge distillation had no data."""
    from selflab.evalbench.items import generate_items, load_items

    held_ids = {u.item_id for u in heldout}
    banned = heldout_content(fraction, [it.task for it in load_items() if it.id in held_ids])
    items = [
        it
        for it in generate_items(n_items * 4 + 8, seed=seed)
        if side(it.task, fraction) == "train"
        and not any(sentences(c.response) & banned for c in it.candidates)
    ]
    return _units(items[:n_items])


class BenchJudgment(BaseModel):
    unit_id: str
    correct: bool
    score: float | None  # normalised to [0, 1]
    raw: str = ""
    parse_error: str | None = None


def judge_bench(
    model: LanguageModel,
    units: Sequence[BenchUnit],
    max_new_tokens: int = 4,
    template: str = "rubric_additive",
    reasoning: bool = False,
    fence: FenceMode = "none",
) -> list[BenchJudgment]:
    """The model as a greedy rubric judge on benchmark candidates, in one generate call, judging
    as the loop's self-judge does (unfenced by default, see `loops.judging`)."""
    from selflab.judges.rubric import RubricJudge
    from selflab.judges.types import PointwiseItem

    if not units:
        return []
    judge = RubricJudge(
        model,
        template=template,
        sampling=SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens),
        direct=not reasoning,
        fence=fence,
    )
    lo, hi = judge.scale
    js = judge.judge([PointwiseItem(prompt=u.prompt, response=u.response, id=u.id) for u in units])
    return [
        BenchJudgment(
            unit_id=u.id,
            correct=u.correct,
            score=None if j.score is None else (float(j.score) - lo) / (hi - lo),
            raw=j.raw[-120:],
            parse_error=j.parse_error,
        )
        for u, j in zip(units, js, strict=True)
    ]


def bench_measures(
    judged: Sequence[BenchJudgment], pairs: Sequence[BenchPair], prefix: str = "judge_bench"
) -> list[Measurement]:
    """Pointwise accuracy (normalised score > 0.5 means "correct", as the evalbench threshold) and
    pair accuracy implied by the scores (higher score on the better candidate = 1, tie = 0.5);
    unparsable = missing, never wrong or right."""
    if not judged:
        return []
    acc: list[float | bool | None] = [
        None if j.score is None else (j.score > 0.5) == j.correct for j in judged
    ]
    by_id = {j.unit_id: j.score for j in judged}
    pair_vals: list[float | bool | None] = []
    for p in pairs:
        sa, sb = by_id.get(p.a), by_id.get(p.b)
        if sa is None or sb is None:
            pair_vals.append(None)
            continue
        good, bad = (sa, sb) if p.better == "A" else (sb, sa)
        pair_vals.append(1.0 if good > bad else 0.5 if good == bad else 0.0)
    out = [
        Measurement(
            name=f"{prefix}_accuracy",
            kind="objective",
            values=acc,
            ids=[j.unit_id for j in judged],
            description="model as rubric judge on held-out benchmark candidates of verified correctness",
        )
    ]
    # balanced accuracy as a per-item mean: item weight parsable / (2 x parsable items of its class)
    parsable = [j.correct for a, j in zip(acc, judged, strict=True) if a is not None]
    n_class = {c: parsable.count(c) for c in (True, False)}
    balanced: list[float | bool | None] = [
        None
        if a is None or not all(n_class.values())
        else float(a) * len(parsable) / (2 * n_class[j.correct])
        for a, j in zip(acc, judged, strict=True)
    ]
    out.append(
        Measurement(
            name=f"{prefix}_balanced_accuracy",
            kind="objective",
            values=balanced,
            ids=[j.unit_id for j in judged],
            description="pointwise accuracy with each class (correct / incorrect candidates) weighted equally: "
            "a judge that gives every candidate the same verdict scores 0.5, whatever the base rate",
        )
    )
    if pair_vals:
        out.append(
            Measurement(
                name=f"{prefix}_pair_accuracy",
                kind="objective",
                values=pair_vals,
                ids=[p.id for p in pairs],
                description="benchmark pairs: better candidate scored higher (tie = 0.5)",
            )
        )
    return out
