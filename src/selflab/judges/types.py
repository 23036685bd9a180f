"""What a judge returns, and the shapes of what it judges.

A judge's verdict is only as good as its parse: `Judgment.parse_error` is set whenever the raw
text did not yield a verdict, and then `score` and `verdict` are None. A parse failure is never a
score.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from selflab.models.types import Message

Verdict = Literal["A", "B", "tie"]


class PointwiseItem(BaseModel):
    """One response to grade. `history` holds earlier dialogue turns (multi-turn judging);
    `reference` a known-good answer for reference-guided judging."""

    prompt: str
    response: str
    reference: str | None = None
    history: tuple[Message, ...] = ()
    id: str = ""


class PairwiseItem(BaseModel):
    """Two responses to the same prompt; the judge says which is better."""

    prompt: str
    response_a: str
    response_b: str
    reference: str | None = None
    history: tuple[Message, ...] = ()
    id: str = ""


class MetaItem(BaseModel):
    """One response and two judgments of it; a meta-judge says which judgment is better
    (Meta-Rewarding). `judgment_a`/`judgment_b` are the judges' raw texts."""

    prompt: str
    response: str
    judgment_a: str
    judgment_b: str
    reference: str | None = None
    history: tuple[Message, ...] = ()
    id: str = ""


class Judgment(BaseModel):
    """One judge's decision on one item, with everything needed to audit it later.

    Pairwise judges that abstain (e.g. the two orders disagree under the "abstain" policy) set
    `verdict=None`, `parse_error="abstained: ..."` and `details["abstained"] = True`, so an
    abstention is never counted as a tie and can be told apart from a parse failure."""

    judge: str
    kind: Literal["pointwise", "pairwise", "meta"]
    raw: str
    score: float | None = None
    verdict: Verdict | None = None
    parse_error: str | None = None
    item_id: str = ""
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.parse_error is None

    @property
    def abstained(self) -> bool:
        return bool(self.details.get("abstained"))


@runtime_checkable
class Judge(Protocol):
    """Any judge: a name and the protocols it serves, "pointwise" (`judge`), "pairwise"
    (`compare`) and/or "meta" (`compare_judgments`). `build_judge` returns one."""

    name: str
    protocols: frozenset[str]


@runtime_checkable
class PointwiseJudge(Protocol):
    """Grades responses one by one on a numeric scale. Batch-first so a local engine batches."""

    name: str
    scale: tuple[float, float]

    def judge(self, items: list[PointwiseItem]) -> list[Judgment]: ...


@runtime_checkable
class PairwiseJudge(Protocol):
    """Says which of two responses is better (verdict "A", "B" or "tie")."""

    name: str

    def compare(self, items: list[PairwiseItem]) -> list[Judgment]: ...
