"""Meta-judge (Meta-Rewarding, Wu et al., 2024): given a response and two judgments of it, which
judgment is better. Asked in both orders (judgment A/B, then B/A) like the pairwise judge, since a
meta-judge has position bias too; disagreement follows the same tie/abstain policy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

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
from selflab.judges.parsing import parse_meta
from selflab.judges.prompts import render_with_note
from selflab.judges.registry import GenerationOptions, JudgeContext, register_judge
from selflab.judges.types import Judgment, MetaItem
from selflab.judges.verdict import Answer, ask, choice_spec
from selflab.models.types import LanguageModel, SamplingParams

DEFAULT_SAMPLING = SamplingParams(temperature=0.0, max_new_tokens=256)


class MetaJudge:
    """Compares two judgments of the same response; verdict "A" or "B" (or "tie" on disagreement)."""

    protocols = frozenset({"meta"})

    def __init__(
        self,
        model: LanguageModel,
        template: str | Path = "meta",
        persona: str | None = None,
        sampling: SamplingParams | None = None,
        both_orders: bool = True,
        on_disagree: DisagreePolicy = "tie",
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
        self.use_reference = use_reference
        self.direct = direct
        self.answer_prefix = ("Verdict: [[" if direct else "") if answer_prefix is None else answer_prefix
        self.guard_quotes = guard_quotes
        self.constrain = constrain
        self.fence = fence
        self.seed = seed
        self.verdict = choice_spec(("A", "B"))
        self.name = name or f"meta[{Path(str(template)).stem}]({model_name(model)})"

    def _prompt(self, item: MetaItem, swapped: bool) -> str:
        a, b = (item.judgment_b, item.judgment_a) if swapped else (item.judgment_a, item.judgment_b)
        fence, fenced = fence_texts(
            self.fence, self.seed, {"prompt": item.prompt, "response": item.response, "a": a, "b": b}
        )
        return render_with_note(
            self.template,
            fence.note(),
            prompt=item.prompt,
            response=fenced["response"],
            judgment_a=fenced["a"],
            judgment_b=fenced["b"],
            reference=item.reference if self.use_reference else None,
            history=item.history,
            direct=self.direct,
        )

    @property
    def orders(self) -> tuple[bool, ...]:
        return (False, True) if self.both_orders else (False,)

    def meta_steps(self, items: Sequence[MetaItem]) -> JudgeSteps:
        """All items, both orders, in one round (two with `constrain`)."""
        requests = [
            chat_request(self._prompt(item, swapped), self.persona, self.sampling, self.answer_prefix)
            for item in items
            for swapped in self.orders
        ]
        answers = yield from ask(requests, self.verdict, self.constrain)
        n = len(self.orders)
        out = []
        for i, item in enumerate(items):
            records = []
            for swapped, answer in zip(self.orders, answers[i * n : (i + 1) * n], strict=True):
                verdict, error = self._parse(item, answer)
                records.append(
                    {
                        "order": "BA" if swapped else "AB",
                        "raw": answer.raw,
                        "verdict": verdict,
                        "verdict_original": swap_verdict(verdict) if swapped else verdict,
                        "parse_error": error,
                        **answer.record(),
                    }
                )
            out.append(self._combine(item, records))
        return out

    def _parse(self, item: MetaItem, answer: Answer) -> tuple[str | None, str | None]:
        failure = completion_failure(answer.completion)
        if failure:
            return None, failure
        if answer.forced and answer.verdict_text is not None:
            return parse_meta(answer.verdict_text)
        quoted = [item.response, item.judgment_a, item.judgment_b] if self.guard_quotes else None
        return parse_meta(answer.raw, quoted=quoted)

    def compare_judgments(self, items: list[MetaItem]) -> list[Judgment]:
        """Which judgment of each item is better, in both orders."""
        return drive(self.model, self.meta_steps(items))

    def _combine(self, item: MetaItem, records: list[dict]) -> Judgment:
        extra = {"constrain": self.constrain, "fence": self.fence}
        return judgment_from_orders(self.name, "meta", item.id, records, self.on_disagree, extra)


class MetaOptions(GenerationOptions):
    template: str = Field("meta", description="built-in template name or path of a .jinja file")
    both_orders: bool = Field(True, description="ask in both orders to cancel position bias")
    on_disagree: DisagreePolicy = Field("tie", description="when the two orders disagree: tie or abstain")


@register_judge("meta", MetaOptions, "says which of two judgments of one response is better (Meta-Rewarding)")
def _build(ctx: JudgeContext, o: MetaOptions) -> MetaJudge:
    return MetaJudge(
        ctx.model,
        template=o.template,
        persona=o.persona,
        sampling=o.sampling(),
        both_orders=o.both_orders,
        on_disagree=o.on_disagree,
        use_reference=o.use_reference,
        direct=o.direct,
        constrain=o.constrain,
        fence=o.fence,
        seed=o.seed,
    )
