"""The judge benchmark: judge verified candidates, pairs and their perturbations, then score the
judges against code-checked truth.

One run = stages (each resumable): build units -> [self-preference generations] -> judge with every
judge (all units of a judge in one batched call per protocol) -> majority study -> summary. Every
judgment is written to `records/judgments.jsonl`; `summary.json` holds the metrics with stable
keys (documented in docs/metrics.md).
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator

from selflab.errors import ConfigError
from selflab.evalbench import metrics as M
from selflab.evalbench.items import BenchItem, Candidate, load_items
from selflab.evalbench.majority import majority_curve, plot_curves
from selflab.evalbench.perturbations import (
    ALL_NAMES,
    INJECTIONS,
    PERTURBATIONS,
    apply,
    apply_to_side,
    position_swap,
    self_preference_pairs,
)
from selflab.judges.types import Judge, Judgment, PairwiseItem, PointwiseItem
from selflab.models.types import GenerationRequest, LanguageModel, Message

SCHEMA = "selflab.bench.judges/v1"


class BenchConfig(BaseModel):
    """Everything that defines a benchmark run (saved in run.yaml)."""

    model: str = Field("smollm2-135m", description="Model spec of the judges.")
    judges: list[str] = Field(
        default_factory=lambda: ["rubric", "pairwise"],
        description="Judge kinds: rubric, pairwise, likelihood, jury:seeds:N, jury:personas:N, debate, ...; "
        "options in brackets, e.g. 'pairwise[fence=none,constrain=false]' (see `selflab judge --list-options`).",
    )
    limit: int = Field(12, ge=1, description="Benchmark items (shipped: 320; more are generated).")
    seed: int = Field(0, description="Seed of every random choice (same seed, same result).")
    perturbations: list[str] = Field(
        default_factory=lambda: list(ALL_NAMES),
        description=f"Perturbations, 'all' or 'none': {', '.join(ALL_NAMES)}.",
    )
    per_perturbation: int = Field(6, ge=1, description="Units judged per perturbation and protocol.")
    cot: bool = Field(False, description="Let judges reason before the verdict (slow on CPU).")
    max_new_tokens: int | None = Field(
        None, description="Judges' token budget (default: 8 direct, 256 with --cot)."
    )
    majority: bool = Field(True, description="Run the majority-vote study.")
    majority_items: int = Field(4, ge=1, description="Items whose candidates the majority study judges.")
    ablate_defences: bool = Field(
        False, description="Also run each judge with its verdict constraint and injection fence off."
    )
    jury_sizes: list[int] = Field(
        default_factory=lambda: [1, 3, 5, 9], description="Jury sizes of the majority study."
    )
    n_boot: int = Field(1000, ge=1, description="Bootstrap resamples of each interval.")

    @field_validator("perturbations", mode="before")
    @classmethod
    def _all_or_none(cls, value: Any) -> Any:
        """`all` / `none` (alone) stand for every perturbation / no perturbation."""
        if value in ("all", ["all"]):
            return list(ALL_NAMES)
        return [] if value in ("none", ["none"]) else value


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


class JudgmentRecord(BaseModel):
    """One judgment with its unit's truth, as written to records/judgments.jsonl."""

    judge: str
    unit: Unit
    score: float | None = None
    verdict: str | None = None
    parse_error: str | None = None
    raw: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


# --- units -----------------------------------------------------------------------------------------


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


# --- judging --------------------------------------------------------------------------------------


def judge_options(config: BenchConfig) -> dict[str, Any]:
    if config.cot:
        return {"max_new_tokens": config.max_new_tokens or 256}
    return {"direct": True, "max_new_tokens": config.max_new_tokens or 8}


def make_judge(spec: str, model: LanguageModel, config: BenchConfig) -> Judge:
    """A judge from a spec "kind" or "kind[key=value,...]": the benchmark's settings go to every
    kind that declares them, the spec's own options override them."""
    from selflab.judges.registry import accepted, build_judge

    kind, own = parse_judge_spec(spec)
    shared = accepted(kind, {"seed": config.seed, **judge_options(config)})
    return build_judge(kind, model, **(shared | own))


def parse_judge_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """("pairwise", {"fence": "none"}) from "pairwise[fence=none]"; values are read as JSON when
    they parse (true, 3, 0.5) and as strings otherwise."""
    spec = spec.strip()
    if not spec.endswith("]") or "[" not in spec:
        return spec, {}
    kind, _, body = spec[:-1].partition("[")
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(
                f"judge option {part!r} in {spec!r} is not key=value", "write e.g. pairwise[fence=none]"
            )
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value.strip()
    return kind, options


def judge_specs(config: BenchConfig) -> list[str]:
    """The judges to run: as given, plus (with `ablate_defences`) each one with its verdict
    constraint and fence turned off, for the kinds that have them."""
    from selflab.judges.registry import accepted

    specs = list(config.judges)
    if config.ablate_defences:
        for spec in config.judges:
            kind, own = parse_judge_spec(spec)
            off = accepted(kind, {"constrain": False, "fence": "none"})
            if off and any(own.get(k) != v for k, v in off.items()):
                body = ",".join(
                    f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in (own | off).items()
                )
                specs.append(f"{kind}[{body}]")
    return list(dict.fromkeys(specs))


def run_judge(judge: Judge, units: list[Unit]) -> list[JudgmentRecord]:
    """Judge every unit the judge can handle: all pointwise units in one call, all pairs in one."""
    name = judge.name
    out: list[JudgmentRecord] = []
    point = [u for u in units if u.mode == "pointwise"]
    pair = [u for u in units if u.mode == "pairwise"]
    if "pointwise" in judge.protocols and point:
        items = [
            PointwiseItem(
                prompt=u.prompt, response=u.response, reference=u.reference, history=u.history, id=u.id
            )
            for u in point
        ]
        out += [_record(name, u, j) for u, j in zip(point, judge.judge(items), strict=True)]  # type: ignore[attr-defined]
    if "pairwise" in judge.protocols and pair:
        items = [
            PairwiseItem(
                prompt=u.prompt, response_a=u.response, response_b=u.response_b, history=u.history, id=u.id
            )
            for u in pair
        ]
        out += [_record(name, u, j) for u, j in zip(pair, judge.compare(items), strict=True)]  # type: ignore[attr-defined]
    return out


def _record(name: str, unit: Unit, j: Judgment) -> JudgmentRecord:
    return JudgmentRecord(
        judge=name,
        unit=unit,
        score=j.score,
        verdict=j.verdict,
        parse_error=j.parse_error,
        raw=j.raw,
        details=j.details,
    )


# --- metrics --------------------------------------------------------------------------------------


def _m(metric: M.Metric) -> dict:
    return metric.to_dict()


def _scale(records: list[JudgmentRecord]) -> tuple[float, float]:
    for r in records:
        s = r.details.get("scale")
        if s:
            return float(s[0]), float(s[1])
    return 1.0, 5.0


def pointwise_metrics(recs: list[JudgmentRecord], seed: int, n_boot: int) -> dict:
    """Accuracy of the thresholded score against verified correctness, agreement and ranking
    statistics, and the same accuracy per domain."""
    base = [r for r in recs if r.unit.perturbation == "none"]
    lo, hi = _scale(recs)
    mid = (lo + hi) / 2
    ok = [r for r in base if r.score is not None]
    pred = [int(r.score > mid) for r in ok]
    truth = [int(bool(r.unit.correct)) for r in ok]
    out = {
        "threshold": mid,
        "scale": [lo, hi],
        "n": len(base),
        "accuracy": _m(M.accuracy(pred, truth, seed)),
        "chance": M.chance_accuracy(truth),
        "cohen_kappa": _m(M.cohen_kappa(pred, truth, seed)),
        "spearman": _m(M.spearman([r.score for r in ok], truth, seed)),
        "kendall": _m(M.kendall([r.score for r in ok], truth, seed)),
        "parse_failure_rate": _m(M.parse_failure_rate([r.score is None for r in base], seed)),
        "mean_score_correct": _mean([r.score for r in ok if r.unit.correct]),
        "mean_score_wrong": _mean([r.score for r in ok if not r.unit.correct]),
    }
    out["by_domain"] = {
        d: _m(
            M.accuracy(
                [p for p, r in zip(pred, ok, strict=True) if r.unit.domain == d],
                [t for t, r in zip(truth, ok, strict=True) if r.unit.domain == d],
                seed,
            )
        )
        for d in sorted({r.unit.domain for r in ok})
    }
    return out


def _mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def pairs_from_scores(recs: list[JudgmentRecord], units: list[Unit]) -> list[tuple[Unit, str | None]]:
    """Pairwise verdicts implied by a pointwise judge's scores on the two candidates of each base pair."""
    score = {r.unit.id: r.score for r in recs if r.unit.mode == "pointwise" and r.unit.perturbation == "none"}
    text_to_id: dict[tuple[str, str], str] = {}
    for u in units:
        if u.mode == "pointwise" and u.perturbation == "none":
            text_to_id[(u.item_id, u.response)] = u.id
    out = []
    for u in units:
        if u.mode != "pairwise" or u.perturbation != "none":
            continue
        sa = score.get(text_to_id.get((u.item_id, u.response), ""))
        sb = score.get(text_to_id.get((u.item_id, u.response_b), ""))
        v = None if sa is None or sb is None else ("A" if sa > sb else "B" if sb > sa else "tie")
        out.append((u, v))
    return out


def pair_accuracy_metrics(verdict_pairs: list[tuple[Unit, str | None]], seed: int) -> dict:
    decided = [(u, v) for u, v in verdict_pairs if v is not None]
    with_ties, no_ties = M.pairwise_accuracy([v for _, v in decided], [u.better for u, _ in decided], seed)
    wins = [1.0 if v == u.better else 0.0 for u, v in decided if v != "tie"]
    len_good = [
        len((u.response if u.better == "A" else u.response_b).split()) for u, v in decided if v != "tie"
    ]
    len_bad = [
        len((u.response_b if u.better == "A" else u.response).split()) for u, v in decided if v != "tie"
    ]
    return {
        "n": len(verdict_pairs),
        "accuracy": _m(with_ties),
        "accuracy_no_ties": _m(no_ties),
        "chance": 0.5,
        "tie_rate": _m(M.tie_rate([v for _, v in decided], seed)),
        "length_bias": _m(M.length_bias(wins, len_good, len_bad, seed)),
        "lc_accuracy": _m(M.lc_win_rate(wins, len_good, len_bad, seed)),
    }


def pairwise_judge_metrics(recs: list[JudgmentRecord], seed: int) -> dict:
    base = [r for r in recs if r.unit.mode == "pairwise" and r.unit.perturbation == "none"]
    out = pair_accuracy_metrics([(r.unit, r.verdict) for r in base], seed)
    out["parse_failure_rate"] = _m(
        M.parse_failure_rate(
            [
                r.parse_error is not None and r.verdict is None and not r.details.get("abstained")
                for r in base
            ],
            seed,
        )
    )
    first, second, shown1, shown2 = [], [], [], []
    for r in base:
        orders = order_verdicts(r.details)
        if len(orders) == 2:
            (s1, o1), (s2, o2) = orders
            first.append(o1)
            second.append(o2)
            shown1.append(s1)
            shown2.append(s2)
    out["position_consistency"] = _m(M.position_consistency(first, second, seed))
    out["preference_fairness"] = _m(M.preference_fairness(shown1, shown2, seed))
    return out


def order_verdicts(details: dict) -> list[tuple[str, str]]:
    """(verdict as shown, verdict in original labels) per order, for generating pairwise judges
    (parsed verdicts) and likelihood judges (P(first) > 0.5). Orders that failed are left out."""
    out = []
    for o in details.get("orders") or []:
        if o.get("verdict"):
            out.append((o["verdict"], o.get("verdict_original") or o["verdict"]))
        elif o.get("p_first") is not None:
            shown = "A" if o["p_first"] > 0.5 else "B"
            original = shown if o.get("order") != "BA" else ("B" if shown == "A" else "A")
            out.append((shown, original))
    return out


def _decision(r: JudgmentRecord, mid: float) -> Any:
    if r.unit.mode == "pointwise":
        return None if r.score is None else int(r.score > mid)
    return r.verdict


def perturbation_metrics(recs: list[JudgmentRecord], seed: int) -> dict:
    """Per perturbation and protocol: flip rate of the decision against the unperturbed unit, and
    the mean score shift (pointwise)."""
    lo, hi = _scale(recs)
    mid = (lo + hi) / 2
    base = {(r.unit.mode, r.unit.id): r for r in recs if r.unit.perturbation == "none"}
    out: dict[str, dict] = {}
    groups: dict[tuple[str, str], list[tuple[JudgmentRecord, JudgmentRecord]]] = defaultdict(list)
    for r in recs:
        p = r.unit.perturbation
        if p in ("none", "self_preference"):
            continue
        b = base.get((r.unit.mode, r.unit.base_id))
        if b is not None:
            groups[(p, r.unit.mode)].append((b, r))
    for (p, mode), rows in sorted(groups.items()):
        expect = "same" if p in ("position",) else PERTURBATIONS[p].expect
        both = [(b, r) for b, r in rows if _decision(b, mid) is not None and _decision(r, mid) is not None]
        entry = {
            "expect": expect,
            "n": len(rows),
            "flip_rate": _m(
                M.flip_rate([_decision(b, mid) for b, _ in both], [_decision(r, mid) for _, r in both], seed)
            ),
            "parse_failure_rate": _m(
                M.parse_failure_rate([_decision(r, mid) is None for _, r in rows], seed)
            ),
        }
        if mode == "pointwise":
            sc = [(b.score, r.score) for b, r in rows if b.score is not None and r.score is not None]
            entry["mean_shift"] = _m(M.mean_shift([x for x, _ in sc], [y for _, y in sc], seed))
            entry["accuracy"] = _m(
                M.accuracy(
                    [int(r.score > mid) for _, r in rows if r.score is not None],
                    [int(bool(r.unit.correct)) for _, r in rows if r.score is not None],
                    seed,
                )
            )
        out.setdefault(p, {})[mode] = entry
    return out


def injection_metrics(recs: list[JudgmentRecord], seed: int) -> dict:
    """How often injected text (forged scores/verdicts, instructions) moves the judge's decision
    against the same unit without it, pooled over the injection perturbations and protocols
    (lower is better), and how often the injected unit got no decision at all."""
    lo, hi = _scale(recs)
    mid = (lo + hi) / 2
    base = {(r.unit.mode, r.unit.id): r for r in recs if r.unit.perturbation == "none"}
    before, after, failed = [], [], []
    for r in recs:
        b = base.get((r.unit.mode, r.unit.base_id))
        if r.unit.perturbation not in INJECTIONS or b is None:
            continue
        db, dr = _decision(b, mid), _decision(r, mid)
        failed.append(dr is None)
        if db is not None and dr is not None:
            before.append(db)
            after.append(dr)
    return {
        "n": len(failed),
        "flip_rate": _m(M.flip_rate(before, after, seed)),
        "parse_failure_rate": _m(M.parse_failure_rate(failed, seed)),
    }


def self_preference_metrics(recs: list[JudgmentRecord], seed: int) -> dict:
    lo, hi = _scale(recs)
    out: dict[str, Any] = {}
    score = {r.unit.id: r.score for r in recs if r.unit.mode == "pointwise"}
    diffs = []
    for r in recs:
        if r.unit.mode == "pointwise" and r.unit.perturbation == "self_preference":
            other = score.get(r.unit.base_id)
            if r.score is not None and other is not None:
                diffs.append((r.score - other) / (hi - lo))
    if diffs or any(r.unit.mode == "pointwise" for r in recs):
        out["pointwise"] = _m(M.self_preference(diffs, seed))
    votes = []
    for r in recs:
        if r.unit.mode == "pairwise" and r.unit.perturbation == "self_preference" and r.verdict is not None:
            votes.append(0.0 if r.verdict == "tie" else (1.0 if r.verdict == r.unit.own else -1.0))
    if any(r.unit.mode == "pairwise" for r in recs):
        out["pairwise"] = _m(M.self_preference(votes, seed))
    return out


def judge_summary(recs: list[JudgmentRecord], units: list[Unit], seed: int, n_boot: int) -> dict:
    modes = {r.unit.mode for r in recs}
    out: dict[str, Any] = {"protocols": sorted(modes), "n_judgments": len(recs)}
    out["parse_failure_rate"] = _m(
        M.parse_failure_rate(
            [r.parse_error is not None and r.score is None and r.verdict is None for r in recs], seed
        )
    )
    if "pointwise" in modes:
        out["pointwise"] = pointwise_metrics([r for r in recs if r.unit.mode == "pointwise"], seed, n_boot)
        out["pairs_from_scores"] = pair_accuracy_metrics(pairs_from_scores(recs, units), seed)
    if "pairwise" in modes:
        out["pairwise"] = pairwise_judge_metrics([r for r in recs if r.unit.mode == "pairwise"], seed)
    out["perturbations"] = perturbation_metrics(recs, seed)
    out["injection"] = injection_metrics(recs, seed)
    out["self_preference"] = self_preference_metrics(recs, seed)
    return out


# --- majority study -------------------------------------------------------------------------------


def majority_study(model: LanguageModel, items: list[BenchItem], config: BenchConfig, out_dir: Path) -> dict:
    """Binary correct/wrong votes of 9 sampled jurors (seeds) and 9 persona jurors on the candidates
    of `majority_items` items, all in one batched generate call; accuracy of the majority vs truth."""
    from selflab.judges.factory import build_judge
    from selflab.judges.jury import run_members
    from selflab.judges.personas import pick_personas

    n = max(config.jury_sizes)
    cands: list[tuple[BenchItem, Candidate]] = [
        (it, c) for it in items[: config.majority_items] for c in it.candidates
    ]
    opts = judge_options(config)
    seeds = [build_judge("rubric", model, temperature=0.7, seed=config.seed + i, **opts) for i in range(n)]
    personas = pick_personas(n, seed=config.seed)
    persona_judges = [
        build_judge("rubric", model, temperature=0.7, seed=config.seed + i, persona=p, **opts)
        for i, p in enumerate(personas)
    ]
    pitems = [PointwiseItem(prompt=it.task.prompt, response=c.response, id=c.id) for it, c in cands]
    results = run_members(seeds + persona_judges, pitems, "judge")
    truth = np.array([int(c.correct) for _, c in cands])

    def votes(js: list[list[Judgment]], scale_mid: float) -> np.ndarray:
        return np.array(
            [[np.nan if j.score is None else float(j.score > scale_mid) for j in row] for row in js]
        )

    lo, hi = seeds[0].scale
    mid = (lo + hi) / 2
    v_seeds, v_pers = votes(results[:n], mid), votes(results[n:], mid)
    sizes = [s for s in config.jury_sizes if s <= n]
    curves = {
        "seeds (T=0.7)": majority_curve(v_seeds, truth, sizes, seed=config.seed),
        "personas (T=0.7)": majority_curve(v_pers, truth, sizes, seed=config.seed),
    }
    chance = M.chance_accuracy(truth.tolist())
    plot = plot_curves(curves, sizes, chance, str(out_dir / "majority.png"))
    samples = [[None if np.isnan(x) else x for x in col] for col in v_seeds.T]
    return {
        "sizes": sizes,
        "n_candidates": len(cands),
        "chance": chance,
        "seeds": [m.to_dict() for m in curves["seeds (T=0.7)"]],
        "personas": [m.to_dict() for m in curves["personas (T=0.7)"]],
        "personas_used": personas,
        "parse_failure_rate": float(np.mean(np.isnan(np.concatenate([v_seeds, v_pers]))))
        if len(cands)
        else None,
        "repetition_stability": M.repetition_stability(samples, seed=config.seed).to_dict(),
        "plot": Path(plot).name,
        "_records": [
            {
                "juror": (seeds + persona_judges)[i].name,
                "persona": (personas[i - n] if i >= n else None),
                "unit": cands[k][1].id,
                "score": j.score,
                "parse_error": j.parse_error,
                "raw": j.raw,
            }
            for i, row in enumerate(results)
            for k, j in enumerate(row)
        ],
    }


# --- the run ----------------------------------------------------------------------------------------


def check_config(config: BenchConfig) -> None:
    bad = [p for p in config.perturbations if p not in ALL_NAMES]
    if bad:
        raise ConfigError(f"unknown perturbations {bad}", f"choose from {', '.join(ALL_NAMES)}")
    if not config.judges:
        raise ConfigError(
            "no judge given", "pass --judge rubric (or pairwise, likelihood, jury:seeds:3, ...)"
        )


def run_bench(
    config: BenchConfig,
    out: str | Path,
    model: LanguageModel | None = None,
    resume: bool = False,
    executor: Any = None,
) -> dict:
    """Run the benchmark into run directory `out` and return the summary (also in summary.json).
    `executor` (see `selflab.execution`): where the judge stages run; Ray workers load `config.model`."""
    from selflab.models import load_model
    from selflab.runs import RunDir

    check_config(config)
    t0 = time.time()
    cpu0 = time.process_time()
    run = RunDir.create(out, config=config, seed=config.seed, resume=resume)
    out_dir = Path(run.path)
    model = model or load_model(config.model)
    items = load_items(config.limit, seed=config.seed)
    units = build_units(items, config)
    specs = judge_specs(config)
    judges = [make_judge(spec, model, config) for spec in specs]  # fail early on bad kinds
    if "self_preference" in config.perturbations:
        own = own_generations(model, items, config.seed)
        sp_units = self_preference_units(items, own, config.seed)
        units += sp_units
        run.records("own_generations").extend(
            [
                {"item_id": k, "text": v, "correct": next(i for i in items if i.id == k).task.check(v)}
                for k, v in own.items()
            ]
        )
    judgments_log = run.records("judgments")
    summary_judges: dict[str, Any] = {}
    for kind, judge in zip(specs, judges, strict=True):
        stage = f"judge-{kind}"
        if run.is_complete(stage):
            recs = [r for r in judgments_log.read(JudgmentRecord) if r.details.get("_kind") == kind]
        else:
            from selflab.evalbench.remote import run_judge_on

            recs = run_judge_on(executor, kind, judge, units, config)
            for r in recs:
                r.details["_kind"] = kind
            judgments_log.extend(recs)
            run.mark_complete(stage, n=len(recs))
        with M.boot_samples(config.n_boot):
            summary_judges[kind] = {
                "name": getattr(judge, "name", kind),
                **judge_summary(recs, units, config.seed, config.n_boot),
            }
    majority = None
    if config.majority:
        with M.boot_samples(config.n_boot):
            majority = majority_study(model, items, config, out_dir)
        run.records("majority_votes").extend(majority.pop("_records"))
    summary = {
        "schema": SCHEMA,
        "model": getattr(model, "name", None) or config.model,
        "model_spec": config.model,
        "seed": config.seed,
        "n_items": len(items),
        "n_units": len(units),
        "domains": sorted({it.domain for it in items}),
        "perturbations": config.perturbations,
        "judges": summary_judges,
        "majority": majority,
        "elapsed_s": round(time.time() - t0, 1),
        "cpu_s": round(time.process_time() - cpu0, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    run.metrics.append(  # a runs.metrics.JudgeBenchMetrics row
        {
            "kind": "bench_judges",
            **{
                k: summary[k]
                for k in ("n_items", "n_units", "elapsed_s", "judges", "majority", "perturbations")
            },
        }
    )
    return summary
