"""Pairwise judge run in both orders (A/B, then B/A), as FastChat llm_judge and "Judging the
Judges" recommend: a verdict only counts when it survives the swap; otherwise the policy decides
between a tie and an explicit abstention. Both raw texts are kept for auditing position bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import AliasChoices, Field

from selflab.judges.base import (
    DisagreePolicy,
    JudgeSteps,
    chat_request,
    check_policy,
    completion_failure,
    drive,
    judgment_from_orders,
    model_name,
    swap_verdict,
)
from selflab.judges.fence import FenceMode, fence_texts
from selflab.judges.parsing import parse_pairwise
from selflab.judges.prompts import render_with_note
from selflab.judges.registry import GenerationOptions, JudgeContext, register_judge
from selflab.judges.types import Judgment, PairwiseItem
from selflab.judges.verdict import Answer, ask, choice_spec
from selflab.models.types import LanguageModel, SamplingParams

DEFAULT_SAMPLING = SamplingParams(temperature=0.0, max_new_tokens=256)
DIRECT_PREFIX = "Verdict: [["


def pairwise_variables(
    item: PairwiseItem,
    swapped: bool,
    use_reference: bool,
    direct: bool,
    allow_tie: bool,
    fence: FenceMode = "none",
    seed: int | None = None,
) -> dict:
    """Template variables for one order; with a fence, the replies are wrapped and `fence_note` set."""
    a, b = (item.response_b, item.response_a) if swapped else (item.response_a, item.response_b)
    guard, fenced = fence_texts(fence, seed, {"prompt": item.prompt, "a": a, "b": b})
    a, b = fenced["a"], fenced["b"]
    return {
        "fence_note": guard.note(),
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

    protocols = frozenset({"pairwise"})

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
        constrain: bool = True,
        fence: FenceMode = "boundary",
        seed: int = 0,
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
        self.constrain = constrain
        self.fence = fence
        self.seed = seed
        self.verdict = choice_spec(("A", "B", "C") if allow_tie else ("A", "B"))
        suffix = f",persona={persona[:24]}" if persona else ""
        self.name = name or f"pairwise[{Path(str(template)).stem}{suffix}]({model_name(model)})"

    @property
    def orders(self) -> tuple[bool, ...]:
        return (False, True) if self.both_orders else (False,)

    def prompt_text(self, item: PairwiseItem, swapped: bool) -> str:
        variables = pairwise_variables(
            item, swapped, self.use_reference, self.direct, self.allow_tie, self.fence, self.seed
        )
        return render_with_note(self.template, variables.pop("fence_note"), **variables)

    def compare_steps(self, items: Sequence[PairwiseItem]) -> JudgeSteps:
        """Both orders of every item in one round (two with `constrain`: reasoning, verdict)."""
        requests = [
            chat_request(self.prompt_text(item, swapped), self.persona, self.sampling, self.answer_prefix)
            for item in items
            for swapped in self.orders
        ]
        answers = yield from ask(requests, self.verdict, self.constrain)
        n = len(self.orders)
        judgments = []
        for i, item in enumerate(items):
            orders = []
            for swapped, answer in zip(self.orders, answers[i * n : (i + 1) * n], strict=True):
                verdict, error = self._parse(item, answer)
                orders.append(
                    {
                        "order": "BA" if swapped else "AB",
                        "raw": answer.raw,
                        "verdict": verdict,  # in the labels the judge saw
                        "verdict_original": swap_verdict(verdict) if swapped else verdict,
                        "parse_error": error,
                        "finish_reason": answer.completion.finish_reason,
                        **answer.record(),
                    }
                )
            judgments.append(self._combine(item, orders))
        return judgments

    def _parse(self, item: PairwiseItem, answer: Answer) -> tuple[str | None, str | None]:
        failure = completion_failure(answer.completion)
        if failure:
            return None, failure
        if answer.forced and answer.verdict_text is not None:
            return parse_pairwise(answer.verdict_text, allow_tie=self.allow_tie)
        quoted = [item.response_a, item.response_b] if self.guard_quotes else None
        return parse_pairwise(answer.raw, allow_tie=self.allow_tie, quoted=quoted)

    def _combine(self, item: PairwiseItem, orders: list[dict]) -> Judgment:
        extra = {
            "persona": self.persona,
            "constrain": self.constrain,
            "fence": self.fence,
            "reference_used": bool(self.use_reference and item.reference),
        }
        return judgment_from_orders(self.name, "pairwise", item.id, orders, self.on_disagree, extra)

    def compare(self, items: list[PairwiseItem]) -> list[Judgment]:
        """Both orders of all items go to the model in one `generate` call per round."""
        return drive(self.model, self.compare_steps(items))


class PairwiseOptions(GenerationOptions):
    template: str = Field(
        "pairwise",
        validation_alias=AliasChoices("template", "pairwise_template"),
        description="built-in template name or path of a .jinja file (alias: pairwise_template)",
    )
    both_orders: bool = Field(True, description="ask in both orders (A/B and B/A) to cancel position bias")
    on_disagree: DisagreePolicy = Field("tie", description="when the two orders disagree: tie or abstain")


def pairwise_from(
    model: LanguageModel,
    o: GenerationOptions,
    template: str,
    persona: str | None,
    sampling: SamplingParams,
    both_orders: bool,
    on_disagree: DisagreePolicy,
) -> PairwiseLLMJudge:
    return PairwiseLLMJudge(
        model,
        template=template,
        persona=persona,
        sampling=sampling,
        both_orders=both_orders,
        on_disagree=on_disagree,
        use_reference=o.use_reference,
        direct=o.direct,
        constrain=o.constrain,
        fence=o.fence,
        seed=sampling.seed or 0,
    )


@register_judge("pairwise", PairwiseOptions, "says which of two responses is better, in both orders")
def _build(ctx: JudgeContext, o: PairwiseOptions) -> PairwiseLLMJudge:
    return pairwise_from(ctx.model, o, o.template, o.persona, o.sampling(), o.both_orders, o.on_disagree)
