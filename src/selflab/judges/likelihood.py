"""Likelihood judge: read the judge's answer distribution instead of sampling an answer.

Pointwise: the rubric prompt (in its "answer with one line" form) is scored against the
continuations "Score: k" for every k on the scale; normalising their probabilities gives a
distribution over scores, and the judgment is its expectation (as in G-Eval). Pairwise: P("[[A]]")
against P("[[B]]") in both orders, averaged so position bias cancels. No generation: cheap, and
never unparsable. Needs a backend with `score` (local models); all items of a call are scored in
batched forward passes when the backend has `score_batch` (the local `hf` backend does).
The judged responses are fenced like every other judge's (see fence.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from selflab.errors import BackendError, ConfigError
from selflab.judges.base import model_name, persona_messages
from selflab.judges.fence import FenceMode, fence_texts
from selflab.judges.pairwise import pairwise_variables
from selflab.judges.prompts import render_with_note
from selflab.judges.registry import JudgeContext, PromptOptions, register_judge
from selflab.judges.rubric import resolve_rubric, rubric_variables
from selflab.judges.types import Judgment, PairwiseItem, PointwiseItem
from selflab.models.types import LanguageModel, Message


def normalise(logprobs: Sequence[float]) -> list[float]:
    """Softmax of log-likelihoods: the candidates' probabilities given that one of them is said."""
    top = max(logprobs)
    if not math.isfinite(top):
        raise ValueError(f"no finite log-likelihood among {list(logprobs)}")
    weights = [math.exp(lp - top) if math.isfinite(lp) else 0.0 for lp in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


class LikelihoodJudge:
    """Expected score over score-token probabilities; P(A) vs P(B) for pairs. Both protocols."""

    protocols = frozenset({"pointwise", "pairwise"})

    def __init__(
        self,
        model: LanguageModel,
        template: str | Path | None = None,
        rubric: str | None = None,
        scale: tuple[float, float] | None = None,
        persona: str | None = None,
        pairwise_template: str | Path = "pairwise",
        use_reference: bool = True,
        both_orders: bool = True,
        tie_margin: float = 0.0,
        fence: FenceMode = "boundary",
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        self.model = model
        self.template, self.scale = resolve_rubric(template, rubric, scale)
        lo, hi = self.scale
        if not (lo.is_integer() and hi.is_integer() and 0 <= lo < hi <= 9):
            raise ConfigError(
                f"the likelihood judge needs an integer scale of single digits, got {self.scale}",
                "use a scale such as (1, 5) or (0, 9); multi-digit scores share token prefixes",
            )
        if not 0 <= tie_margin < 0.5:
            raise ConfigError(f"tie_margin must be in [0, 0.5), got {tie_margin}", "e.g. tie_margin=0.05")
        self.rubric = rubric
        self.persona = persona
        self.pairwise_template = pairwise_template
        self.use_reference = use_reference
        self.both_orders = both_orders
        self.tie_margin = tie_margin
        self.fence = fence
        self.seed = seed
        self.points = list(range(int(lo), int(hi) + 1))
        self.name = name or f"likelihood[{Path(str(self.template)).stem}]({model_name(model)})"

    def _messages(self, text: str) -> list[Message]:
        return [*persona_messages(self.persona), Message(role="user", content=text)]

    def _score_all(
        self, requests: list[tuple[list[Message], list[str]]]
    ) -> list[tuple[list[float] | None, str | None]]:
        """Normalised probabilities of each request's continuations: one batched call when the
        backend has `score_batch`, else (or when the batch fails) one `score` call per request."""
        batch = getattr(self.model, "score_batch", None)
        if callable(batch) and requests:
            try:
                return [self._normalised(lp) for lp in batch(requests)]
            except (BackendError, ValueError):
                pass  # find out which request fails, one by one
        out = []
        for messages, continuations in requests:
            try:
                out.append(self._normalised(self.model.score(messages, continuations)))
            except BackendError as exc:
                out.append((None, f"model error: {exc.problem}"))
            except ValueError as exc:
                out.append((None, f"model error: {exc}"))
        return out

    @staticmethod
    def _normalised(logprobs: Sequence[float]) -> tuple[list[float] | None, str | None]:
        try:
            return normalise(logprobs), None
        except ValueError as exc:
            return None, f"model error: {exc}"

    def _pointwise_text(self, item: PointwiseItem) -> str:
        variables = rubric_variables(item, self.use_reference, True, self.rubric, self.scale)
        fence, fenced = fence_texts(self.fence, self.seed, {"prompt": item.prompt, "response": item.response})
        variables["response"] = fenced["response"]
        return render_with_note(self.template, fence.note(), **variables)

    def judge(self, items: list[PointwiseItem]) -> list[Judgment]:
        """All items' continuations scored in batched forward passes."""
        continuations = [f"Score: {k}" for k in self.points]
        scored = self._score_all([(self._messages(self._pointwise_text(i)), continuations) for i in items])
        out = []
        for item, (probs, error) in zip(items, scored, strict=True):
            details = {
                "template": str(self.template),
                "scale": list(self.scale),
                "persona": self.persona,
                "fence": self.fence,
            }
            if probs is None:
                out.append(
                    Judgment(
                        judge=self.name,
                        kind="pointwise",
                        raw="",
                        parse_error=error,
                        item_id=item.id,
                        details=details,
                    )
                )
                continue
            expected = sum(p * k for p, k in zip(probs, self.points, strict=True))
            mode = self.points[max(range(len(probs)), key=probs.__getitem__)]
            details |= {
                "probs": {str(k): p for k, p in zip(self.points, probs, strict=True)},
                "mode": mode,
                "reference_used": bool(self.use_reference and item.reference),
            }
            raw = "P(score) " + " ".join(f"{k}:{p:.3f}" for k, p in zip(self.points, probs, strict=True))
            out.append(
                Judgment(
                    judge=self.name,
                    kind="pointwise",
                    raw=raw,
                    score=expected,
                    item_id=item.id,
                    details=details,
                )
            )
        return out

    def _pairwise_text(self, item: PairwiseItem, swapped: bool) -> str:
        variables = pairwise_variables(
            item, swapped, self.use_reference, True, allow_tie=False, fence=self.fence, seed=self.seed
        )
        return render_with_note(self.pairwise_template, variables.pop("fence_note"), **variables)

    def compare(self, items: list[PairwiseItem]) -> list[Judgment]:
        """Every order of every item scored in batched forward passes."""
        continuations = ["[[A]]", "[[B]]"]
        order_flags = (False, True) if self.both_orders else (False,)
        scored = iter(
            self._score_all(
                [
                    (self._messages(self._pairwise_text(item, swapped)), continuations)
                    for item in items
                    for swapped in order_flags
                ]
            )
        )
        out = []
        for item in items:
            orders, errors = [], []
            for swapped in order_flags:
                probs, error = next(scored)
                if probs is None:
                    errors.append(f"order {'BA' if swapped else 'AB'}: {error}")
                    continue
                # P(original response A is better) in this order.
                p_a = probs[1] if swapped else probs[0]
                orders.append({"order": "BA" if swapped else "AB", "p_first": probs[0], "p_original_a": p_a})
            details: dict = {
                "orders": orders,
                "persona": self.persona,
                "tie_margin": self.tie_margin,
                "fence": self.fence,
            }
            if errors:
                out.append(
                    Judgment(
                        judge=self.name,
                        kind="pairwise",
                        raw="",
                        parse_error="; ".join(errors),
                        item_id=item.id,
                        details=details,
                    )
                )
                continue
            p_a = sum(o["p_original_a"] for o in orders) / len(orders)
            # How much the judge prefers whichever reply is shown first, averaged over orders.
            details["first_position_preference"] = sum(o["p_first"] for o in orders) / len(orders) - 0.5
            details["p_a"] = p_a
            verdict = "A" if p_a > 0.5 + self.tie_margin else "B" if p_a < 0.5 - self.tie_margin else "tie"
            raw = (
                " ".join(f"[order {o['order']}] P(first)={o['p_first']:.3f}" for o in orders)
                + f" => P(A)={p_a:.3f}"
            )
            out.append(
                Judgment(
                    judge=self.name,
                    kind="pairwise",
                    raw=raw,
                    verdict=verdict,
                    score=p_a,
                    item_id=item.id,
                    details=details,
                )
            )
        return out


class LikelihoodOptions(PromptOptions):
    template: str | None = Field(None, description="rubric template (name or .jinja path) for grading")
    rubric: str | None = Field(None, description="rubric text, framed by the rubric_custom template")
    scale: tuple[float, float] | None = Field(None, description="integer single-digit scale (low, high)")
    pairwise_template: str = Field("pairwise", description="template for comparing two responses")
    both_orders: bool = Field(True, description="score both orders and average (cancels position bias)")
    tie_margin: float = Field(0.0, ge=0.0, lt=0.5, description="|P(A) - 0.5| below this is a tie")


def likelihood_from(model: LanguageModel, o: LikelihoodOptions, persona: str | None) -> LikelihoodJudge:
    return LikelihoodJudge(
        model,
        template=o.template,
        rubric=o.rubric,
        scale=o.scale,
        persona=persona,
        pairwise_template=o.pairwise_template,
        use_reference=o.use_reference,
        both_orders=o.both_orders,
        tie_margin=o.tie_margin,
        fence=o.fence,
        seed=o.seed,
    )


@register_judge(
    "likelihood",
    LikelihoodOptions,
    "reads score/verdict token probabilities instead of generating (local models)",
)
def _build(ctx: JudgeContext, o: LikelihoodOptions) -> LikelihoodJudge:
    return likelihood_from(ctx.model, o, o.persona)
