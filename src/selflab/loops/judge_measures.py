"""The distilled judge's own held-out measures, next to the shared meter: pairwise accuracy and
position consistency on held-out pairs, and agreement with the teacher jury (the proxy the SFT
phase optimises) with its gap to agreement with the truth (the drift signal)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from selflab.loops.benchmark import BenchPair, BenchUnit
from selflab.loops.judge_labels import direct_pairwise_judge
from selflab.loops.truth_meter import Measurement


class TeacherLabel(BaseModel):
    """The teacher's decision on one held-out benchmark unit (computed once, at iteration 0)."""

    unit_id: str
    score: float | None  # normalised to [0, 1]


def pairwise_bench(
    model: object, units: Sequence[BenchUnit], pairs: Sequence[BenchPair], max_new_tokens: int
) -> list[Measurement]:
    """The model as a pairwise judge (both orders) on held-out pairs: accuracy (tie = 0.5) and
    position consistency (the two orders agree); unparsable = missing."""
    from selflab.judges.types import PairwiseItem

    if not pairs:
        return []
    by_id = {u.id: u for u in units}
    judge = direct_pairwise_judge(model, max_new_tokens)
    items = [
        PairwiseItem(
            prompt=by_id[p.a].prompt, response_a=by_id[p.a].response, response_b=by_id[p.b].response, id=p.id
        )
        for p in pairs
    ]
    js = judge.compare(items)  # type: ignore[attr-defined]
    acc: list[float | bool | None] = []
    cons: list[float | bool | None] = []
    for p, j in zip(pairs, js, strict=True):
        acc.append(
            None
            if j.verdict is None
            else 1.0
            if j.verdict == p.better
            else 0.5
            if j.verdict == "tie"
            else 0.0
        )
        orders = [o.get("verdict_original") for o in j.details.get("orders", [])]
        cons.append(None if len(orders) != 2 or None in orders else orders[0] == orders[1])
    return [
        Measurement(
            name="pairwise_judge_accuracy",
            kind="objective",
            values=acc,
            description="pairwise judge, both orders, held-out benchmark pairs (tie = 0.5)",
            primary=True,
        ),
        Measurement(
            name="position_consistency",
            kind="objective",
            values=cons,
            description="pairwise verdicts agree when the two replies are swapped",
        ),
    ]


def teacher_measures(
    records: list[dict[str, Any]],
    teacher: list[TeacherLabel],
    ms: list[Measurement],
    units: Sequence[BenchUnit],
) -> list[Measurement]:
    """Agreement with the teacher on held-out units (the proxy the jury labels optimise) and its
    gap to agreement with the truth. `records`: this iteration's evaluate-stage records."""
    out: list[Measurement] = []
    own = {r["unit_id"]: r["score"] for r in records if "unit_id" in r and "correct" in r}
    t_by = {t.unit_id: t.score for t in teacher}
    agree: list[float | bool | None] = []
    for u in units:
        s, t = own.get(u.id), t_by.get(u.id)
        agree.append(None if s is None or t is None else (s > 0.5) == (t > 0.5))
    out.append(
        Measurement(
            name="teacher_agreement",
            kind="self_reward",
            values=agree,
            optimised=True,
            description="judge agrees with the teacher jury on held-out units (the proxy the SFT phase optimises)",
        )
    )
    truth = next((m for m in ms if m.name == "judge_bench_accuracy"), None)
    if truth is not None:
        out.append(
            Measurement(
                name="gap_teacher_agreement_minus_truth",
                kind="drift",
                values=[
                    None if a is None or b is None else float(a) - float(b)
                    for a, b in zip(agree, truth.values, strict=True)
                ],
                higher_is_better=False,
                description="agreement with the teacher minus agreement with the truth, per unit",
            )
        )
    return out
