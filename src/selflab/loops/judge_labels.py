"""Judge-distillation training data: the teacher jury's labels (ties broken without bias), their
verified corrections, class balancing, the teacher's accuracy against the truth it never saw, and
the SFT demonstrations written in the exact prompt format the judge is evaluated with."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from selflab.loops.stats import bootstrap_ci
from selflab.models.types import SamplingParams
from selflab.training import SFTExample


class LabelRecord(BaseModel):
    """The jury's label for one training unit, next to the truth it never saw."""

    unit_id: str
    mode: Literal["pointwise", "pairwise"]
    prompt: str
    response: str
    response_b: str = ""
    jury_score: float | None = None  # raw scale
    jury_verdict: str | None = None
    n_valid: int = 0
    tie_broken: bool = False
    correct: bool | None = None  # pointwise truth
    better: str | None = None  # pairwise truth
    corrected_from: str | None = None  # labels="verified": the jury's wrong decision, replaced by the truth
    scale: tuple[float, float] = (0.0, 5.0)  # the jury's score scale (`jury_score` is on it)


def unbiased_majority(scores: Sequence[float], seed: int) -> tuple[float | None, bool]:
    """The most common score; a tie between several is broken uniformly at random (seeded),
    not toward the lower or higher score. Returns (label, whether a tie was broken)."""
    if not scores:
        return None, False
    counts: dict[float, int] = {}
    for x in scores:
        counts[x] = counts.get(x, 0) + 1
    top = max(counts.values())
    best = sorted(x for x, c in counts.items() if c == top)
    return (best[0] if len(best) == 1 else random.Random(seed).choice(best)), len(best) > 1


def direct_pointwise_judge(model: object, max_new_tokens: int, template: str) -> object:
    """The pointwise judge the SFT demonstrations imitate (model None: only its prompt text is used)."""
    from selflab.judges.rubric import RubricJudge

    return RubricJudge(
        model,  # type: ignore[arg-type]
        template=template,
        sampling=SamplingParams(max_new_tokens=max_new_tokens),
        direct=True,
    )


def direct_pairwise_judge(model: object, max_new_tokens: int) -> object:
    """The pairwise judge (both orders, disagreement = tie) that is trained and evaluated."""
    from selflab.judges.pairwise import PairwiseLLMJudge

    return PairwiseLLMJudge(
        model,  # type: ignore[arg-type]
        sampling=SamplingParams(max_new_tokens=max_new_tokens),
        direct=True,
        on_disagree="tie",
    )


def sft_examples(
    labels: Sequence[LabelRecord], scale: tuple[float, float], max_new_tokens: int, template: str
) -> tuple[list[SFTExample], dict[str, int]]:
    """Jury labels (scores on `scale`) -> SFT demonstrations in the exact prompt format the judge
    is evaluated with. Pointwise: "Score: n", the majority score mapped linearly onto the scale of
    the judge's `template` (a 0-5 jury's 0 is a 1-5 template's 1, never an out-of-scale "Score: 0")
    and rounded; pairwise: "Verdict: [[X]]" in both orders. Unlabeled units and tied pairs are
    dropped and counted."""
    from selflab.judges.types import PairwiseItem, PointwiseItem

    point = direct_pointwise_judge(None, max_new_tokens, template)
    pair = direct_pairwise_judge(None, max_new_tokens)
    out: list[SFTExample] = []
    counts = {"sft_unlabeled": 0, "sft_ties": 0, "sft_pointwise": 0, "sft_pairwise": 0}
    lo, hi = scale
    t_lo, t_hi = point.scale  # type: ignore[attr-defined]
    for r in labels:
        if r.mode == "pointwise":
            if r.jury_score is None:
                counts["sft_unlabeled"] += 1
                continue
            mapped = t_lo + (r.jury_score - lo) * (t_hi - t_lo) / (hi - lo)
            score = int(min(t_hi, max(t_lo, round(mapped))))
            text = point.prompt_text(PointwiseItem(prompt=r.prompt, response=r.response))  # type: ignore[attr-defined]
            out.append(
                SFTExample(
                    prompt=[{"role": "user", "content": text}],
                    response=f"Score: {score}",
                    source="verifier" if r.corrected_from is not None else "jury",
                    id=r.unit_id,
                )
            )  # type: ignore[list-item]
            counts["sft_pointwise"] += 1
            continue
        if r.jury_verdict is None:
            counts["sft_unlabeled"] += 1
            continue
        if r.jury_verdict not in ("A", "B"):
            counts["sft_ties"] += 1
            continue
        item = PairwiseItem(prompt=r.prompt, response_a=r.response, response_b=r.response_b)
        for swapped in (False, True):
            v = r.jury_verdict if not swapped else {"A": "B", "B": "A"}[r.jury_verdict]
            text = pair.prompt_text(item, swapped)  # type: ignore[attr-defined]
            out.append(
                SFTExample(
                    prompt=[{"role": "user", "content": text}],
                    response=f"Verdict: [[{v}]]",
                    source="verifier" if r.corrected_from is not None else "jury",
                    id=f"{r.unit_id}:{'BA' if swapped else 'AB'}",
                )  # type: ignore[list-item]
            )
            counts["sft_pairwise"] += 1
    return out, counts


def balance_pointwise(
    labels: Sequence[LabelRecord], scale: tuple[float, float], rng: random.Random
) -> tuple[list[LabelRecord], int]:
    """Pointwise labels above and at-or-below the scale's middle in equal numbers (the larger side
    downsampled at random); pairwise and unlabeled records untouched. Returns (kept, dropped)."""
    mid = (scale[0] + scale[1]) / 2
    high = [r for r in labels if r.mode == "pointwise" and r.jury_score is not None and r.jury_score > mid]
    low = [r for r in labels if r.mode == "pointwise" and r.jury_score is not None and r.jury_score <= mid]
    n = min(len(high), len(low))
    keep = {id(r) for side in (high, low) for r in rng.sample(side, n)}
    dropped = {id(r) for r in high + low} - keep
    return [r for r in labels if id(r) not in dropped], len(dropped)


def verified_labels(labels: Sequence[LabelRecord], scale: tuple[float, float]) -> list[LabelRecord]:
    """Labels the code verifier agrees with are kept; where the jury's majority is wrong, tied or
    missing, the verified truth replaces it (a passing answer gets the top score, a failing one
    the bottom; a pair goes to its better side) and the jury's decision is kept in
    `corrected_from`. Distillation then moves the judge toward code truth where its jury errs."""
    lo, hi = scale
    mid = (lo + hi) / 2
    out = []
    for r in labels:
        if r.mode == "pointwise" and r.correct is not None:
            if r.jury_score is None or (r.jury_score > mid) != r.correct:
                r = r.model_copy(
                    update={"jury_score": hi if r.correct else lo, "corrected_from": str(r.jury_score)}
                )
        elif r.mode == "pairwise" and r.better in ("A", "B") and r.jury_verdict != r.better:
            r = r.model_copy(update={"jury_verdict": r.better, "corrected_from": str(r.jury_verdict)})
        out.append(r)
    return out


def teacher_accuracy(
    labels: Sequence[LabelRecord], scale: tuple[float, float]
) -> dict[str, float | int | str | None]:
    """How good the teacher was: its decisions against the verified truth (with bootstrap CIs)."""
    lo, hi = scale
    mid = (lo + hi) / 2
    point = [
        None if r.jury_score is None else (r.jury_score > mid) == r.correct
        for r in labels
        if r.mode == "pointwise"
    ]
    pair = [
        None
        if r.jury_verdict is None
        else 1.0
        if r.jury_verdict == r.better
        else 0.5
        if r.jury_verdict == "tie"
        else 0.0
        for r in labels
        if r.mode == "pairwise"
    ]
    out: dict[str, float | int | str | None] = {}
    for name, vals in (("teacher_pointwise_accuracy", point), ("teacher_pair_accuracy", pair)):
        if vals:
            est = bootstrap_ci(vals, seed=0)
            out[name] = None if est.mean is None else round(est.mean, 4)
            out[f"{name}_ci"] = est.fmt()
            out[f"{name}_missing"] = sum(1 for v in vals if v is None)
    return out
