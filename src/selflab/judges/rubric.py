"""Pointwise rubric judge: the model grades one response at a time on a numeric scale.

The built-in template is the additive 5-point rubric of Self-Rewarding Language Models (Yuan et
al., 2024), written in our own words; `rubric_correctness` is a correctness-first alternative, and
any rubric text or template file can replace them. The score is parsed at the END of the judge's
text; with `samples=k` the k parsed scores are averaged (Self-Rewarding averages 3 samples).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from selflab.errors import ConfigError
from selflab.judges.base import (
    JudgeSteps,
    chat_request,
    completion_failure,
    drive,
    model_name,
    sample_record,
    sample_seeds,
)
from selflab.judges.fence import FenceMode, fence_texts
from selflab.judges.parsing import parse_score
from selflab.judges.prompts import render_with_note
from selflab.judges.registry import GenerationOptions, JudgeContext, register_judge
from selflab.judges.types import Judgment, PointwiseItem
from selflab.judges.verdict import Answer, ask, score_spec
from selflab.models.types import LanguageModel, SamplingParams

# The scale each built-in template asks for.
BUILTIN_SCALES: dict[str, tuple[float, float]] = {
    "rubric_additive": (0, 5),
    "rubric_correctness": (1, 5),
    "rubric_custom": (1, 5),
}
DEFAULT_SAMPLING = SamplingParams(temperature=0.0, max_new_tokens=256)
DIRECT_PREFIX = "Score:"


def rubric_variables(
    item: PointwiseItem, use_reference: bool, direct: bool, rubric: str | None, scale: tuple[float, float]
) -> dict:
    """What every rubric template may use."""
    lo, hi = scale
    return {
        "prompt": item.prompt,
        "response": item.response,
        "reference": item.reference if use_reference else None,
        "history": item.history,
        "direct": direct,
        "rubric": rubric,
        "lo": f"{lo:g}",
        "hi": f"{hi:g}",
    }


def resolve_rubric(
    template: str | Path | None, rubric: str | None, scale: tuple[float, float] | None
) -> tuple[str | Path, tuple[float, float]]:
    """Which template to render and on which scale, with a clear error for contradictions."""
    if rubric is not None and template not in (None, "rubric_custom"):
        raise ConfigError(
            "both a rubric text and a template were given", "pass either rubric=... or template=..., not both"
        )
    if rubric is not None:
        template = "rubric_custom"
    template = template or "rubric_additive"
    if scale is None:
        scale = BUILTIN_SCALES.get(str(template), (1, 5))
    lo, hi = scale
    if not lo < hi:
        raise ConfigError(f"judge scale {scale} is empty", "pass a scale (low, high) with low < high")
    return template, (float(lo), float(hi))


class RubricJudge:
    """Grades each response with a rubric prompt; batch-first (one `generate` for all items)."""

    protocols = frozenset({"pointwise"})

    def __init__(
        self,
        model: LanguageModel,
        template: str | Path | None = None,
        rubric: str | None = None,
        scale: tuple[float, float] | None = None,
        persona: str | None = None,
        sampling: SamplingParams | None = None,
        samples: int = 1,
        seed: int = 0,
        use_reference: bool = True,
        direct: bool = False,
        answer_prefix: str | None = None,
        integer: bool = True,
        guard_quotes: bool = True,
        constrain: bool = True,
        fence: FenceMode = "boundary",
        name: str | None = None,
    ) -> None:
        self.model = model
        self.template, self.scale = resolve_rubric(template, rubric, scale)
        self.rubric = rubric
        self.persona = persona
        self.sampling = sampling or DEFAULT_SAMPLING
        self.samples = samples
        self.seed = seed
        self._per_sample = sample_seeds(self.sampling, samples, seed)
        self.use_reference = use_reference
        self.direct = direct
        # With `direct`, the answer is forced to start with "Score:" so even a tiny model is parseable.
        self.answer_prefix = (DIRECT_PREFIX if direct else "") if answer_prefix is None else answer_prefix
        self.integer = integer
        self.guard_quotes = guard_quotes
        self.constrain = constrain
        self.fence = fence
        self.verdict = score_spec(self.scale, integer)
        template_name = Path(self.template).stem if isinstance(self.template, Path) else str(self.template)
        suffix = f",persona={persona[:24]}" if persona else ""
        self.name = name or f"rubric[{template_name}{suffix}]({model_name(model)})"

    def prompt_text(self, item: PointwiseItem) -> str:
        variables = rubric_variables(item, self.use_reference, self.direct, self.rubric, self.scale)
        fence, fenced = fence_texts(self.fence, self.seed, {"prompt": item.prompt, "response": item.response})
        variables["response"] = fenced["response"]
        return render_with_note(self.template, fence.note(), **variables)

    def judge_steps(self, items: Sequence[PointwiseItem]) -> JudgeSteps:
        """Every item's requests (times `samples`) in one round; with `constrain`, a reasoning
        round and then a constrained verdict round."""
        requests = [
            chat_request(self.prompt_text(item), self.persona, sampling, self.answer_prefix)
            for item in items
            for sampling in self._per_sample
        ]
        answers = yield from ask(requests, self.verdict, self.constrain)
        k = len(self._per_sample)
        judgments = []
        for i, item in enumerate(items):
            records = []
            for sampling, answer in zip(self._per_sample, answers[i * k : (i + 1) * k], strict=True):
                score, error = self._parse(item, answer)
                record = sample_record(answer.raw, score, error, answer.completion, sampling.seed)
                records.append(record | answer.record())
            judgments.append(self._aggregate(item, records))
        return judgments

    def _parse(self, item: PointwiseItem, answer: Answer) -> tuple[float | None, str | None]:
        failure = completion_failure(answer.completion)
        if failure:
            return None, failure
        if answer.forced and answer.verdict_text is not None:  # decoded under the constraint
            return parse_score(answer.verdict_text, self.scale, integer=self.integer)
        quoted = item.response if self.guard_quotes else None
        return parse_score(answer.raw, self.scale, integer=self.integer, quoted=quoted)

    def _aggregate(self, item: PointwiseItem, records: list[dict]) -> Judgment:
        scores = [r["value"] for r in records if r["value"] is not None]
        raw = (
            records[0]["raw"]
            if len(records) == 1
            else "\n\n".join(f"[sample {j + 1}]\n{r['raw']}" for j, r in enumerate(records))
        )
        details = {
            "template": str(self.template),
            "scale": list(self.scale),
            "persona": self.persona,
            "constrain": self.constrain,
            "fence": self.fence,
            "reference_used": bool(self.use_reference and item.reference),
            "samples": records,
            "n_parsed": len(scores),
        }
        if not scores:
            errors = "; ".join(dict.fromkeys(r["parse_error"] for r in records))
            return Judgment(
                judge=self.name,
                kind="pointwise",
                raw=raw,
                parse_error=errors,
                item_id=item.id,
                details=details,
            )
        if len(scores) > 1:
            details["score_std"] = statistics.pstdev(scores)
        return Judgment(
            judge=self.name,
            kind="pointwise",
            raw=raw,
            score=statistics.fmean(scores),
            item_id=item.id,
            details=details,
        )

    def judge(self, items: list[PointwiseItem]) -> list[Judgment]:
        """All items' requests (times `samples`) go to the model in one `generate` call per round."""
        return drive(self.model, self.judge_steps(items))


class RubricOptions(GenerationOptions):
    template: str | None = Field(None, description="built-in template name or path of a .jinja file")
    rubric: str | None = Field(None, description="rubric text, framed by the rubric_custom template")
    scale: tuple[float, float] | None = Field(None, description="(low, high); default: the template's")
    samples: int = Field(1, ge=1, description="samples averaged per item (needs temperature > 0)")


def rubric_from(
    model: LanguageModel, o: RubricOptions, persona: str | None, sampling: SamplingParams
) -> RubricJudge:
    return RubricJudge(
        model,
        template=o.template,
        rubric=o.rubric,
        scale=o.scale,
        persona=persona,
        sampling=sampling,
        samples=o.samples,
        seed=sampling.seed or 0,
        use_reference=o.use_reference,
        direct=o.direct,
        constrain=o.constrain,
        fence=o.fence,
    )


@register_judge("rubric", RubricOptions, "grades each response on a numeric scale with a rubric prompt")
def _build(ctx: JudgeContext, o: RubricOptions) -> RubricJudge:
    return rubric_from(ctx.model, o, o.persona, o.sampling())
