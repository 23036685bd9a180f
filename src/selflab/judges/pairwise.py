"""Pairwise judge run in both orders (A/B, then B/A), as FastChat llm_judge and "Judging the
Judges" recommend: a verdict only counts when it survives the swap; otherwise the policy decides
between a tie and an explicit abstention. Both raw texts are kept for auditing position bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from selflab.judges.base import (
    DisagreePolicy,
    chat_request,
    check_policy,
    completion_failure,
    generate_checked,
    judgment_from_orders,
    model_name,
    swap_verdict,
)
from selflab.judges.parsing import parse_pairwise
from selflab.judges.prompts import render
from selflab.judges.types import Judgment, PairwiseItem
from selflab.models.types import Completion, GenerationRequest, LanguageModel, SamplingParams

DEFAULT_SAMPLING = SamplingParams(temperature=0.0, max_new_tokens=256)
DIRECT_PREFIX = "Verdict: [["


def pairwise_variables(
    item: PairwiseItem, swapped: bool, use_reference: bool, direct: bool, allow_tie: bool
) -> dict:
    a, b = (item.response_b, item.response_a) if swapped else (item.response_a, item.response_b)
    return {
        "prompt": item.prompt,
        "response_a": a,
        "response_b": b,
        "reference": item.reference if use_reference else None,
        "history": item.history,
        "direct": direct,
        "allow_tie": allow_tie,
    }


class PairwiseLLMJudge:
    """Says which of two responses is better, asking the model in both orders.

    `on_disagree="tie"` turns inconsistent orders into a tie; `"abstain"` returns verdict None with
    `details["abstained"] = True` and the reason in `parse_error` (so it is never counted as a tie).
    With `both_orders=False` only the A/B order is asked (cheaper, position bias unchecked).
    """

    def __init__(
        self,
        model: LanguageModel,
        template: str | Path = "pairwise",
        persona: str | None = None,
        sampling: SamplingParams | None = None,
        both_orders: bool = True,
        on_disagree: DisagreePolicy = "tie",
        allow_tie: bool = True,
        use_reference: bool = True,
        direct: bool = False,
        answer_prefix: str | None = None,
        guard_quotes: bool = True,
        name: str | None = None,
    ) -> None:
        self.model = model
        self.template = template
        self.persona = persona
        self.sampling = sampling or DEFAULT_SAMPLING
        self.both_orders = both_orders
        self.on_disagree = check_policy(on_disagree)
        self.allow_tie = allow_tie
        self.use_reference = use_reference
        self.direct = direct
        self.answer_prefix = (DIRECT_PREFIX if direct else "") if answer_prefix is None else answer_prefix
        self.guard_quotes = guard_quotes
        suffix = f",persona={persona[:24]}" if persona else ""
        self.name = name or f"pairwise[{Path(str(template)).stem}{suffix}]({model_name(model)})"

    @property
    def orders(self) -> tuple[bool, ...]:
        return (False, True) if self.both_orders else (False,)

    def prompt_text(self, item: PairwiseItem, swapped: bool) -> str:
        return render(
            self.template,
            **pairwise_variables(item, swapped, self.use_reference, self.direct, self.allow_tie),
        )

    def plan_compare(self, items: Sequence[PairwiseItem]) -> list[GenerationRequest]:
        return [
            chat_request(self.prompt_text(item, swapped), self.persona, self.sampling, self.answer_prefix)
            for item in items
            for swapped in self.orders
        ]

    def finish_compare(self, items: Sequence[PairwiseItem], completions: list[Completion]) -> list[Judgment]:
        n = len(self.orders)
        judgments = []
        for i, item in enumerate(items):
            orders = []
            for swapped, completion in zip(self.orders, completions[i * n : (i + 1) * n], strict=True):
                raw = self.answer_prefix + completion.text
                failure = completion_failure(completion)
                if failure:
                    verdict, error = None, failure
                else:
                    quoted = [item.response_a, item.response_b] if self.guard_quotes else None
                    verdict, error = parse_pairwise(raw, allow_tie=self.allow_tie, quoted=quoted)
                orders.append(
                    {
                        "order": "BA" if swapped else "AB",
                        "raw": raw,
                        "verdict": verdict,  # in the labels the judge saw
                        "verdict_original": swap_verdict(verdict) if swapped else verdict,
                        "parse_error": error,
                        "finish_reason": completion.finish_reason,
                    }
                )
            judgments.append(self._combine(item, orders))
        return judgments

    def _combine(self, item: PairwiseItem, orders: list[dict]) -> Judgment:
        extra = {"persona": self.persona, "reference_used": bool(self.use_reference and item.reference)}
        return judgment_from_orders(self.name, "pairwise", item.id, orders, self.on_disagree, extra)

    def compare(self, items: list[PairwiseItem]) -> list[Judgment]:
        """Both orders of all items go to the model in one `generate` call."""
        return self.finish_compare(items, generate_checked(self.model, self.plan_compare(items)))
