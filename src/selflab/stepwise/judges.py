"""Step judges: a model judges each step of a solution with the earlier steps as context
(process judging), or the whole solution at once (outcome judging).

- `LLMStepJudge` generates a verdict line after a forced "Verdict:" prefix and parses it
  defensively: only the words `correct` / `incorrect` count; anything else is a parse error, and
  a parse error is never a label. Where the backend honours `SamplingParams.constraint`, the
  line is also constrained to those two words (`constrain=True`).
- `LikelihoodStepJudge` reads P("Verdict: correct") against P("Verdict: incorrect") from token
  probabilities: no generation, never unparsable (needs a backend with `score`).
- `OutcomeJudge` is the likelihood judge on the whole solution (for outcome-guided search).

A judgment's predicted first error is the first step judged incorrect (-1 when none); if a step
before it has no verdict, there is no prediction (None), counted as missing by the benchmark.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from selflab.errors import BackendError
from selflab.models.types import Constraint, GenerationRequest, LanguageModel, Message, SamplingParams, user
from selflab.stepwise.family import StepFamily
from selflab.stepwise.types import StepProblem

VerdictWord = Literal["correct", "incorrect"]
VERDICT_PREFIX = "Verdict:"
VERDICT_CONSTRAINT = Constraint.regex(r" ?(correct|incorrect)")
_VERDICT = re.compile(r"^\s*\**\s*(correct|incorrect)\b\**", re.IGNORECASE)
_VERDICT_WORD = re.compile(r"\b(correct|incorrect)\b", re.IGNORECASE)


class StepScore(BaseModel):
    """One step's judgment: `p_correct` in [0, 1] (a hard verdict is 1.0 / 0.0), or None with a
    parse error."""

    index: int
    p_correct: float | None = None
    verdict: VerdictWord | None = None
    raw: str = ""
    parse_error: str | None = None


class StepJudgment(BaseModel):
    """A step judge's reading of one solution."""

    item_id: str
    judge: str
    steps: list[StepScore] = Field(default_factory=list)

    def first_error(self, threshold: float = 0.5) -> int | None:
        """First step with p_correct < threshold; -1 when none; None when an earlier step has no
        verdict (a gap is not evidence either way)."""
        for s in self.steps:
            if s.p_correct is None:
                return None
            if s.p_correct < threshold:
                return s.index
        return -1

    def min_p(self) -> float | None:
        """The solution's process score: its weakest step (PRM-style min), None if any is missing."""
        ps = [s.p_correct for s in self.steps]
        if not ps or any(p is None for p in ps):
            return None
        return min(p for p in ps if p is not None)


class StepJudge(Protocol):
    name: str

    def judge(
        self, family: StepFamily, items: Sequence[tuple[str, StepProblem, list[str]]]
    ) -> list[StepJudgment]:
        """`items`: (item id, problem, steps); one judgment per item, one score per step."""
        ...


def step_prompt(family: StepFamily, problem: StepProblem, steps: Sequence[str], k: int) -> str:
    """The judge's question about step `k`, with the earlier steps as context."""
    earlier = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(steps[:k])) or "(none)"
    n = k + 1
    return (
        "You check one step of a step-by-step solution.\n"
        f"Problem: {problem.question}\n"
        f"Each step has the form {family.step_format}.\n"
        f"Earlier steps:\n{earlier}\n"
        f"Step {n}: {steps[k]}\n\n"
        f"Is step {n} correct: right in itself, using only what the problem and the earlier steps give, "
        "and a move towards the answer? Reply with one line: 'Verdict: correct' or 'Verdict: incorrect'."
    )


def outcome_prompt(family: StepFamily, problem: StepProblem, steps: Sequence[str]) -> str:
    body = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(steps)) or "(no steps)"
    return (
        "You check a step-by-step solution.\n"
        f"Problem: {problem.question}\n"
        f"Each step has the form {family.step_format}.\n"
        f"Solution so far:\n{body}\n\n"
        "Is this solution correct so far (every step right and leading to the answer)? Reply with one "
        "line: 'Verdict: correct' or 'Verdict: incorrect'."
    )


def parse_verdict(text: str) -> tuple[VerdictWord | None, str | None]:
    """(verdict, None) or (None, why not). Only the first word after the prefix counts."""
    m = _VERDICT.match(text or "")
    if not m:
        return None, f"no 'correct'/'incorrect' after '{VERDICT_PREFIX}': {text[:40]!r}"
    # "correct or incorrect", "Correct. No, incorrect": the line reads both ways, so it is no verdict.
    if len({w.lower() for w in _VERDICT_WORD.findall(text)}) > 1:
        return None, f"both 'correct' and 'incorrect' in the verdict: {text[:40]!r}"
    return m.group(1).lower(), None  # type: ignore[return-value]


class LLMStepJudge:
    """Generative step judge: one greedy verdict line per step, all steps in one batch."""

    def __init__(self, model: LanguageModel, max_new_tokens: int = 4, constrain: bool = False) -> None:
        self.model = model
        self.constrain = constrain
        self.sampling = SamplingParams(
            temperature=0.0,
            max_new_tokens=max_new_tokens,
            stop=("\n",),
            constraint=VERDICT_CONSTRAINT if constrain else None,
        )
        self.name = f"llm-step({getattr(model, 'name', 'model')})"

    def judge(
        self, family: StepFamily, items: Sequence[tuple[str, StepProblem, list[str]]]
    ) -> list[StepJudgment]:
        requests, where = [], []
        for n, (_, problem, steps) in enumerate(items):
            for k in range(len(steps)):
                requests.append(
                    GenerationRequest(
                        messages=(user(step_prompt(family, problem, steps, k)),),
                        sampling=self.sampling,
                        assistant_prefix=VERDICT_PREFIX,
                    )
                )
                where.append((n, k))
        outs = self.model.generate(requests) if requests else []
        judgments = [StepJudgment(item_id=i, judge=self.name) for i, _, _ in items]
        for (n, k), out in zip(where, outs, strict=True):
            if out.error:
                score = StepScore(index=k, raw="", parse_error=f"model error: {out.error}")
            else:
                verdict, err = parse_verdict(out.text)
                p = None if verdict is None else (1.0 if verdict == "correct" else 0.0)
                score = StepScore(index=k, p_correct=p, verdict=verdict, raw=out.text[:80], parse_error=err)
            judgments[n].steps.append(score)
        return judgments


_VERDICT_LINES = [f"{VERDICT_PREFIX} correct", f"{VERDICT_PREFIX} incorrect"]


def _normalised(lp: Sequence[float]) -> tuple[float | None, str | None]:
    if len(lp) != 2 or not all(math.isfinite(x) for x in lp):
        return None, f"non-finite log-probabilities {list(lp)}"
    top = max(lp)
    a, b = math.exp(lp[0] - top), math.exp(lp[1] - top)
    return a / (a + b), None


def _p_correct(model: LanguageModel, prompt: str) -> tuple[float | None, str | None]:
    """P(correct) of one verdict from the two verdict lines' log-probabilities."""
    try:
        lp = model.score([Message(role="user", content=prompt)], list(_VERDICT_LINES))
    except BackendError as exc:
        return None, f"model error: {exc.problem}"
    except ValueError as exc:
        return None, f"model error: {exc}"
    return _normalised(lp)


def p_correct_many(model: LanguageModel, prompts: Sequence[str]) -> list[tuple[float | None, str | None]]:
    """`_p_correct` for many prompts: one batched call when the backend has `score_batch` (shared
    prompt parts run once, prompts batched), else (or when the batch fails) one by one."""
    batch = getattr(model, "score_batch", None)
    if callable(batch) and prompts:
        try:
            reqs = [([Message(role="user", content=p)], list(_VERDICT_LINES)) for p in prompts]
            return [_normalised(lp) for lp in batch(reqs)]
        except (BackendError, ValueError):
            pass  # find out which prompt fails, one by one
    return [_p_correct(model, p) for p in prompts]


class LikelihoodStepJudge:
    """P(correct) per step from token probabilities of the two verdict lines."""

    def __init__(self, model: LanguageModel) -> None:
        self.model = model
        self.name = f"likelihood-step({getattr(model, 'name', 'model')})"

    def judge(
        self, family: StepFamily, items: Sequence[tuple[str, StepProblem, list[str]]]
    ) -> list[StepJudgment]:
        prompts = [step_prompt(family, p, steps, k) for _, p, steps in items for k in range(len(steps))]
        scores = iter(p_correct_many(self.model, prompts))
        out = []
        for item_id, _, steps in items:
            j = StepJudgment(item_id=item_id, judge=self.name)
            for k in range(len(steps)):
                p, err = next(scores)
                j.steps.append(
                    StepScore(index=k, p_correct=p, raw="" if p is None else f"P={p:.3f}", parse_error=err)
                )
            out.append(j)
        return out


class OutcomeJudge:
    """P(correct) of a whole (or partial) solution, from token probabilities."""

    def __init__(self, model: LanguageModel) -> None:
        self.model = model
        self.name = f"likelihood-outcome({getattr(model, 'name', 'model')})"

    def score(self, family: StepFamily, problem: StepProblem, steps: Sequence[str]) -> float | None:
        return _p_correct(self.model, outcome_prompt(family, problem, steps))[0]

    def score_many(
        self, family: StepFamily, items: Sequence[tuple[StepProblem, Sequence[str]]]
    ) -> list[float | None]:
        """`score` for many (problem, steps) at once (batched where the backend can)."""
        return [p for p, _ in p_correct_many(self.model, [outcome_prompt(family, q, s) for q, s in items])]


def make_step_judge(kind: str, model: LanguageModel, constrain: bool = False) -> StepJudge:
    from selflab.errors import ConfigError

    if kind == "llm":
        return LLMStepJudge(model, constrain=constrain)
    if kind == "likelihood":
        return LikelihoodStepJudge(model)
    raise ConfigError(f"unknown step judge {kind!r}", "use llm or likelihood")
