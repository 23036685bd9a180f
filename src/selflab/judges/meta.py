"""Meta-judge (Meta-Rewarding, Wu et al., 2024): given a response and two judgments of it, which
judgment is better. Asked in both orders (judgment A/B, then B/A) like the pairwise judge, since a
meta-judge has position bias too; disagreement follows the same tie/abstain policy."""

from __future__ import annotations

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
from selflab.judges.parsing import parse_meta
from selflab.judges.prompts import render
from selflab.judges.types import Judgment, MetaItem
from selflab.models.types import LanguageModel, SamplingParams

DEFAULT_SAMPLING = SamplingParams(temperature=0.0, max_new_tokens=256)


class MetaJudge:
    """Compares two judgments of the same response; verdict "A" or "B" (or "tie" on disagreement)."""

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
        self.name = name or f"meta[{Path(str(template)).stem}]({model_name(model)})"

    def _prompt(self, item: MetaItem, swapped: bool) -> str:
        a, b = (item.judgment_b, item.judgment_a) if swapped else (item.judgment_a, item.judgment_b)
        return render(
            self.template,
            prompt=item.prompt,
            response=item.response,
            judgment_a=a,
            judgment_b=b,
            reference=item.reference if self.use_reference else None,
            history=item.history,
            direct=self.direct,
        )

    def compare_judgments(self, items: list[MetaItem]) -> list[Judgment]:
        """All items, both orders, in one `generate` call."""
        orders = (False, True) if self.both_orders else (False,)
        requests = [
            chat_request(self._prompt(item, swapped), self.persona, self.sampling, self.answer_prefix)
            for item in items
            for swapped in orders
        ]
        completions = generate_checked(self.model, requests)
        out = []
        for i, item in enumerate(items):
            records = []
            for swapped, completion in zip(
                orders, completions[i * len(orders) : (i + 1) * len(orders)], strict=True
            ):
                raw = self.answer_prefix + completion.text
                failure = completion_failure(completion)
                quoted = [item.response, item.judgment_a, item.judgment_b] if self.guard_quotes else None
                verdict, error = (None, failure) if failure else parse_meta(raw, quoted=quoted)
                records.append(
                    {
                        "order": "BA" if swapped else "AB",
                        "raw": raw,
                        "verdict": verdict,
                        "verdict_original": swap_verdict(verdict) if swapped else verdict,
                        "parse_error": error,
                    }
                )
            out.append(self._combine(item, records))
        return out

    def _combine(self, item: MetaItem, records: list[dict]) -> Judgment:
        return judgment_from_orders(self.name, "meta", item.id, records, self.on_disagree, {})
