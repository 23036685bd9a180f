"""A judge's benchmark summary: its judgments scored against code-checked truth (accuracy, pair
accuracy, position consistency, perturbation flip rates, injection robustness, self-preference).
The keys are stable and documented in docs/metrics.md; the statistics live in `metrics`."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from selflab.evalbench import metrics as M
from selflab.evalbench.judging import JudgmentRecord
from selflab.evalbench.perturbations import INJECTIONS, PERTURBATIONS
from selflab.evalbench.units import Unit
from selflab.judges.base import swap_verdict


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
            [r.parse_error is not None and _failed(r) for r in base],
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


def _failed(r: JudgmentRecord) -> bool:
    """No score or verdict for a reason other than an abstention: the disagreement policy's
    explicit no-verdict is not a parse failure (docs/metrics.md), in every section alike."""
    return r.score is None and r.verdict is None and not r.details.get("abstained")


def _decision(r: JudgmentRecord, mid: float) -> Any:
    if r.unit.mode == "pointwise":
        return None if r.score is None else int(r.score > mid)
    return r.verdict


def _base_decision(r: JudgmentRecord, mid: float) -> Any:
    """The decision in its base unit's labels: a `position` unit shows the base pair's sides
    exchanged, so its "A" is the base's "B". Without this a perfectly position-consistent judge
    would "flip" on every decided pair."""
    d = _decision(r, mid)
    if r.unit.mode == "pairwise" and r.unit.perturbation == "position":
        return swap_verdict(d)
    return d


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
                M.flip_rate(
                    [_decision(b, mid) for b, _ in both], [_base_decision(r, mid) for _, r in both], seed
                )
            ),
            "parse_failure_rate": _m(M.parse_failure_rate([_failed(r) for _, r in rows], seed)),
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
        db, dr = _decision(b, mid), _base_decision(r, mid)
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
        M.parse_failure_rate([r.parse_error is not None and _failed(r) for r in recs], seed)
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
