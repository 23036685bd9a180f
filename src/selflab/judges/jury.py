"""Jury: several judges vote; the jury reports the aggregate and every vote.

Members may differ in sampling seed (self-consistency), persona (role-play diversity) or model.
Members that generate expose two phases, so the jury sends all requests for one model in ONE
`generate` call. Aggregation: pairwise by plurality over A/B/tie (no unique winner is a tie);
pointwise by mean, median or majority (the most common score, ties broken toward the lower score).
Members that fail to parse or abstain do not vote; their failures are kept in the details.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Literal

from selflab.errors import ConfigError
from selflab.judges.base import SteppedPairwise, SteppedPointwise, drive_many
from selflab.judges.types import Judgment, PairwiseItem, PointwiseItem

Aggregate = Literal["majority", "mean", "median"]


class DualJudge:
    """A jury member that can both grade (pointwise) and compare (pairwise) with one persona/seed."""

    def __init__(self, pointwise: object, pairwise: object, name: str | None = None) -> None:
        self.pointwise = pointwise
        self.pairwise = pairwise
        self.protocols = frozenset({"pointwise", "pairwise"})
        self.model = getattr(pointwise, "model", None)
        self.scale = getattr(pointwise, "scale", (0.0, 5.0))
        self.name = name or f"{pointwise.name}+{pairwise.name}"  # type: ignore[attr-defined]

    def judge(self, items: list[PointwiseItem]) -> list[Judgment]:
        return self.pointwise.judge(items)  # type: ignore[attr-defined]

    def compare(self, items: list[PairwiseItem]) -> list[Judgment]:
        return self.pairwise.compare(items)  # type: ignore[attr-defined]


def _phase_owner(member: object, mode: str) -> object | None:
    """The object whose `*_steps` method serves `mode`, if the member works in steps."""
    target = member
    if isinstance(member, DualJudge):
        target = member.pointwise if mode == "judge" else member.pairwise
    protocol = SteppedPointwise if mode == "judge" else SteppedPairwise
    return target if isinstance(target, protocol) else None


def run_members(
    members: Sequence[object], items: Sequence, mode: Literal["judge", "compare"]
) -> list[list[Judgment]]:
    """Each member's judgments of all items; stepped members sharing a model share one call per round."""
    results: list[list[Judgment] | None] = [None] * len(members)
    by_model: dict[int, list[int]] = defaultdict(list)
    for index, member in enumerate(members):
        owner = _phase_owner(member, mode)
        if owner is None:
            if not hasattr(member, mode):
                raise ConfigError(
                    f"jury member {getattr(member, 'name', member)!r} cannot {mode}",
                    "use members that support it (e.g. a DualJudge or a LikelihoodJudge)",
                )
            results[index] = getattr(member, mode)(list(items))
        else:
            by_model[id(owner.model)].append(index)  # type: ignore[attr-defined]
    for indices in by_model.values():
        owners = [_phase_owner(members[i], mode) for i in indices]
        plans = [getattr(o, f"{mode}_steps")(items) for o in owners]
        for i, judgments in zip(indices, drive_many(owners[0].model, plans), strict=True):  # type: ignore[attr-defined]
            results[i] = judgments
    return [r for r in results if r is not None]


def majority_verdict(verdicts: Sequence[str]) -> str:
    """Plurality over A/B/tie; when no single verdict has the most votes, a tie."""
    counts = Counter(verdicts).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return "tie"
    return counts[0][0]


def aggregate_scores(scores: Sequence[float], how: Aggregate) -> float:
    if how == "mean":
        return statistics.fmean(scores)
    if how == "median":
        return float(statistics.median(scores))
    counts = Counter(scores)
    top = max(counts.values())
    return float(min(s for s, c in counts.items() if c == top))


def _common_scale(members: Sequence[object]) -> tuple[float, float]:
    """The one score scale of the members that grade: averaging a 0-5 score with a 1-5 score is
    meaningless, so members on different scales are refused."""
    scales = {(float(s[0]), float(s[1])) for m in members if (s := getattr(m, "scale", None)) is not None}
    if len(scales) > 1:
        raise ConfigError(
            f"jury members grade on different scales {sorted(scales)}",
            "give every member the same scale (e.g. scale=(1, 5)) or the same template",
        )
    return scales.pop() if scales else (0.0, 5.0)


class Jury:
    """Several judges, one aggregate judgment per item, with every vote in `details["votes"]`."""

    def __init__(
        self,
        members: Sequence[object],
        aggregate: Aggregate | None = None,
        name: str | None = None,
        provenance: dict | None = None,
    ) -> None:
        if not members:
            raise ConfigError("a jury needs at least one member", "pass one or more judges")
        if aggregate not in (None, "majority", "mean", "median"):
            raise ConfigError(f"unknown jury aggregate {aggregate!r}", "use majority, mean or median")
        self.members = list(members)
        self.protocols = frozenset.intersection(
            *(frozenset(getattr(m, "protocols", ("pointwise", "pairwise"))) for m in self.members)
        )
        self.aggregate = aggregate
        self.scale = _common_scale(self.members)
        self.provenance = provenance or {}
        self.name = name or f"jury[{len(self.members)}]"

    def _votes(self, judgments: Sequence[Judgment]) -> list[dict]:
        return [
            {
                "judge": j.judge,
                "score": j.score,
                "verdict": j.verdict,
                "parse_error": j.parse_error,
                "abstained": bool(j.details.get("abstained")),
                "persona": j.details.get("persona"),
            }
            for j in judgments
        ]

    def judge(self, items: list[PointwiseItem]) -> list[Judgment]:
        how: Aggregate = self.aggregate or "mean"
        per_member = run_members(self.members, items, "judge")
        out = []
        for i, item in enumerate(items):
            judgments = [m[i] for m in per_member]
            scores = [j.score for j in judgments if j.score is not None]
            details = {
                "aggregate": how,
                "scale": list(self.scale),  # readers threshold at its midpoint (the benchmark does)
                "votes": self._votes(judgments),
                "n_valid": len(scores),
                **self.provenance,
            }
            raw = "\n".join(
                f"{j.judge}: {j.score if j.ok else 'no score (' + str(j.parse_error) + ')'}"
                for j in judgments
            )
            if not scores:
                out.append(
                    Judgment(
                        judge=self.name,
                        kind="pointwise",
                        raw=raw,
                        parse_error="no juror gave a valid score",
                        item_id=item.id,
                        details=details,
                    )
                )
                continue
            if len(scores) > 1:
                details["score_std"] = statistics.pstdev(scores)
            out.append(
                Judgment(
                    judge=self.name,
                    kind="pointwise",
                    raw=raw,
                    score=aggregate_scores(scores, how),
                    item_id=item.id,
                    details=details,
                )
            )
        return out

    def compare(self, items: list[PairwiseItem]) -> list[Judgment]:
        if self.aggregate not in (None, "majority"):
            raise ConfigError(
                f"a pairwise jury aggregates by majority, not {self.aggregate!r}", "use aggregate='majority'"
            )
        per_member = run_members(self.members, items, "compare")
        out = []
        for i, item in enumerate(items):
            judgments = [m[i] for m in per_member]
            verdicts = [j.verdict for j in judgments if j.verdict is not None]
            counts = Counter(verdicts)
            details = {
                "aggregate": "majority",
                "votes": self._votes(judgments),
                "counts": {k: counts.get(k, 0) for k in ("A", "B", "tie")},
                "n_valid": len(verdicts),
                **self.provenance,
            }
            raw = "\n".join(
                f"{j.judge}: {j.verdict if j.ok else 'no verdict (' + str(j.parse_error) + ')'}"
                for j in judgments
            )
            if not verdicts:
                out.append(
                    Judgment(
                        judge=self.name,
                        kind="pairwise",
                        raw=raw,
                        parse_error="no juror gave a valid verdict",
                        item_id=item.id,
                        details=details,
                    )
                )
                continue
            out.append(
                Judgment(
                    judge=self.name,
                    kind="pairwise",
                    raw=raw,
                    verdict=majority_verdict(verdicts),  # type: ignore[arg-type]
                    score=counts.get("A", 0) / len(verdicts),
                    item_id=item.id,
                    details=details,
                )
            )
        return out
