"""Search guided by steps, at equal compute, on held-out problems.

Methods (N = the sample budget per problem):
- `greedy`: one greedy solution (reference, 1/N of the budget);
- `majority`: N sampled solutions, the most common final answer (self-consistency);
- `bon_step` / `bon_outcome`: the same N samples, the one the step judge (weakest step's
  P(correct), PRM-style) or the outcome judge (P(correct) of the whole solution) rates best;
- `beam_step` / `beam_outcome`: step-level beam search, `width` beams each expanded by `expand`
  sampled next steps (width * expand = N candidates per step), pruned by the step judge (score of
  the new step, beam score = weakest step) or the outcome judge (P(correct) of the partial
  solution).

Equal compute means equal generated tokens: a beam search on a problem may generate at most the
tokens the N sampled solutions of that problem generated (`beam_budgets`; or a fixed
`token_budget`), summed over all its beams and candidates; near the end of the budget it samples
fewer, shorter candidates, then stops (an unfinished beam has no answer, like a sampled solution
cut at max_new_tokens). Each step is one line (generation stops at a newline), so the step format
is enforced by the decoder's stop string; the prompt shows the format. With `constrain`, the family's step regex
constrains decoding (llguidance in the engine): whole solutions for the sampled methods, one line
per beam step, so every finished line is a step the verifier can read. Tokens generated and judge
calls are recorded per problem and method, so the equality is measured, not assumed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from selflab.models.types import Constraint, GenerationRequest, LanguageModel, SamplingParams
from selflab.stepwise.family import StepFamily
from selflab.stepwise.judges import (
    LikelihoodStepJudge,
    OutcomeJudge,
    outcome_prompt,
    p_correct_many,
    step_prompt,
)
from selflab.stepwise.splitter import split_solution
from selflab.stepwise.types import StepProblem

METHODS = ("greedy", "majority", "bon_step", "bon_outcome", "beam_step", "beam_outcome")


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(8, ge=2, description="samples per problem (the compute budget)")
    width: int = Field(2, ge=1, description="Beam width.")
    expand: int = Field(4, ge=1, description="Continuations per beam per step (width * expand = n).")
    max_steps: int = Field(6, ge=1, description="Steps of the beam search.")
    temperature: float = Field(0.8, gt=0.0, description="Sampling temperature.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(120, ge=8, description="Tokens per full solution.")
    step_max_new_tokens: int = Field(
        48, ge=4, description="Tokens per beam step (a detective step takes ~45)."
    )
    token_budget: int | None = Field(
        None,
        ge=8,
        description="Generated tokens per problem a beam search may spend, over all its beams and "
        "candidates; None: what the sampled methods spent on that problem when known, else n * max_new_tokens.",
    )
    constrain: bool = Field(
        False,
        description="Constrained decoding of the step format (the family's step regex): whole "
        "solutions for the sampled methods, one line per beam step.",
    )
    seed: int = Field(0, description="Seed of every random choice (same seed, same result).")


class SearchResult(BaseModel):
    problem_id: str
    family: str
    method: str
    text: str
    answer_key: str | None = None
    correct: bool = False
    tokens: int = 0
    judge_calls: int = 0
    score: float | None = None


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "big") & 0x7FFFFFFF


def _steps(text: str) -> list[str]:
    return split_solution(text).steps


def _whole(family: StepFamily, p: StepProblem, cfg: SearchConfig) -> Constraint | None:
    return family.solution_constraint(p, cfg.max_steps) if cfg.constrain else None


def sample_full(
    model: LanguageModel, family: StepFamily, problems: Sequence[StepProblem], cfg: SearchConfig
) -> list[list[tuple[str, int]]]:
    """N sampled solutions per problem, (text, tokens), one batched call."""
    reqs = []
    for p in problems:
        for k in range(cfg.n):
            s = SamplingParams(
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                max_new_tokens=cfg.max_new_tokens,
                seed=_seed(cfg.seed, p.id, "full", k),
                constraint=_whole(family, p, cfg),
            )
            reqs.append(GenerationRequest(messages=family.messages(p), sampling=s))
    outs = model.generate(reqs) if reqs else []
    pairs = [("" if o.error else o.text, o.completion_tokens) for o in outs]
    return [pairs[i * cfg.n : (i + 1) * cfg.n] for i in range(len(problems))]


def majority(family: StepFamily, problem: StepProblem, texts: Sequence[str]) -> str:
    """The first sample whose answer is the most common one (no answers: the first sample)."""
    keys = [family.answer_key(problem, t) for t in texts]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return texts[0]
    best = max(counts.values())
    winner = next(k for k in keys if k is not None and counts[k] == best)
    return texts[keys.index(winner)]


def _result(
    family: StepFamily, p: StepProblem, method: str, text: str, tokens: int, calls: int, score: float | None
) -> SearchResult:
    lab = family.label(p, text)
    return SearchResult(
        problem_id=p.id,
        family=family.name,
        method=method,
        text=text,
        answer_key=family.answer_key(p, text),
        correct=bool(lab.answer_ok) and (lab.status == "ok"),
        tokens=tokens,
        judge_calls=calls,
        score=score,
    )


def sampled_methods(
    model: LanguageModel, family: StepFamily, problems: Sequence[StepProblem], cfg: SearchConfig
) -> list[SearchResult]:
    """greedy, majority, bon_step and bon_outcome on the same samples."""
    greedy = model.generate(
        [
            GenerationRequest(
                messages=family.messages(p),
                sampling=SamplingParams(max_new_tokens=cfg.max_new_tokens, constraint=_whole(family, p, cfg)),
            )
            for p in problems
        ]
    )
    samples = sample_full(model, family, problems, cfg)
    step_judge, outcome = LikelihoodStepJudge(model), OutcomeJudge(model)
    out = []
    for p, g, group in zip(problems, greedy, samples, strict=True):
        texts = [t for t, _ in group]
        tokens = sum(n for _, n in group)
        out.append(_result(family, p, "greedy", g.text, g.completion_tokens, 0, None))
        out.append(_result(family, p, "majority", majority(family, p, texts), tokens, 0, None))
        js = step_judge.judge(family, [(f"{p.id}#{k}", p, _steps(t)) for k, t in enumerate(texts)])
        step_scores = [j.min_p() if j.steps else 0.0 for j in js]
        calls = sum(len(j.steps) for j in js)
        best = max(range(len(texts)), key=lambda k: -1.0 if step_scores[k] is None else step_scores[k])
        out.append(_result(family, p, "bon_step", texts[best], tokens, calls, step_scores[best]))
        o_scores = outcome.score_many(family, [(p, _steps(t)) for t in texts])
        best = max(range(len(texts)), key=lambda k: -1.0 if o_scores[k] is None else o_scores[k])
        out.append(_result(family, p, "bon_outcome", texts[best], tokens, len(texts), o_scores[best]))
    return out


class _Beam(BaseModel):
    steps: list[str] = Field(default_factory=list)
    scores: list[float] = Field(default_factory=list)
    answer: str | None = None
    done: bool = False
    outcome: float | None = None

    def text(self) -> str:
        lines = list(self.steps) + ([f"Answer: {self.answer}"] if self.answer is not None else [])
        return "\n".join(lines)

    def value(self, guide: str) -> float:
        if guide == "outcome":
            return -1.0 if self.outcome is None else self.outcome
        return min(self.scores) if self.scores else 1.0


MIN_STEP_TOKENS = 4  # a candidate step shorter than this cannot hold a step of any family


def _plan(live: list[_Beam], want: int, left: int, step_cap: int) -> list[tuple[_Beam, int, int]]:
    """(beam, candidate index, max new tokens) for the next depth: `want` candidates spread over
    the live beams (best first), fewer and shorter when only `left` tokens remain, so the
    tokens generated never exceed the budget."""
    if not live or left < MIN_STEP_TOKENS:
        return []
    n = min(want, left // MIN_STEP_TOKENS)
    cap = min(step_cap, left // n)
    return [(live[k % len(live)], k // len(live), cap) for k in range(n)]


def beam_search(
    model: LanguageModel,
    family: StepFamily,
    problems: Sequence[StepProblem],
    cfg: SearchConfig,
    guide: str,
    budgets: Sequence[int] | None = None,
) -> list[SearchResult]:
    """Step-level beam search for all problems at once (one generate call and one batched judge
    call per depth). Problem i generates at most `budgets[i]` tokens in all (default
    `cfg.token_budget`, else n * max_new_tokens): equal generated tokens with the sampled methods."""
    default = cfg.token_budget or cfg.n * cfg.max_new_tokens
    budget = list(budgets) if budgets is not None else [default] * len(problems)
    beams = [[_Beam()] for _ in problems]
    tokens = [0] * len(problems)
    calls = [0] * len(problems)
    for depth in range(cfg.max_steps):
        reqs, where = [], []
        for i, p in enumerate(problems):
            live = sorted((b for b in beams[i] if not b.done), key=lambda b: -b.value(guide))
            for b, e, cap in _plan(
                live, cfg.width * cfg.expand, budget[i] - tokens[i], cfg.step_max_new_tokens
            ):
                sp = SamplingParams(
                    temperature=cfg.temperature,
                    top_p=cfg.top_p,
                    max_new_tokens=cap,
                    stop=("\n",),
                    seed=_seed(cfg.seed, p.id, guide, depth, b.text(), e),
                    constraint=family.line_constraint(p) if cfg.constrain else None,
                )
                prefix = "".join(step + "\n" for step in b.steps)
                reqs.append(
                    GenerationRequest(messages=family.messages(p), sampling=sp, assistant_prefix=prefix)
                )
                where.append((i, b))
        if not reqs:
            break
        outs = model.generate(reqs)
        cands: list[list[_Beam]] = [[b for b in bs if b.done] for bs in beams]
        to_judge: dict[tuple[int, tuple[str, ...]], list[_Beam]] = {}
        for (i, b), o in zip(where, outs, strict=True):
            tokens[i] += o.completion_tokens
            line = (o.text or "").split("\n")[0].strip()
            parts = split_solution(line + "\n")
            child = b.model_copy(deep=True)
            if o.error or not line:
                child.done = True  # nothing more came: the beam ends without an answer line
            elif parts.answer is not None or not parts.steps:
                child.answer, child.done = parts.answer, True
            else:
                child.steps.append(parts.steps[0])
                # a line cut off by the token cap is kept (and labelled as written), but ends the beam
                child.done = o.finish_reason == "length"
                # the same partial solution sampled twice is judged once
                to_judge.setdefault((i, tuple(child.steps)), []).append(child)
            cands[i].append(child)
        keys = list(to_judge)
        if guide == "step":
            prompts = [step_prompt(family, problems[i], list(st), len(st) - 1) for i, st in keys]
        else:
            prompts = [outcome_prompt(family, problems[i], list(st)) for i, st in keys]
        for (i, st), (pc, _err) in zip(keys, p_correct_many(model, prompts), strict=True):
            calls[i] += 1
            for child in to_judge[(i, st)]:
                if guide == "step":
                    child.scores.append(0.0 if pc is None else pc)  # no verdict: ranked last
                else:
                    child.outcome = pc
        for i in range(len(problems)):
            uniq: dict[str, _Beam] = {}
            for c in cands[i]:
                uniq.setdefault(c.text() + str(c.done), c)
            beams[i] = sorted(uniq.values(), key=lambda c: -c.value(guide))[: cfg.width]
        if all(b.done for bs in beams for b in bs):
            break
    out = []
    for i, p in enumerate(problems):
        finished = [b for b in beams[i] if b.answer is not None] or beams[i]
        best = max(finished, key=lambda c: c.value(guide))
        out.append(_result(family, p, f"beam_{guide}", best.text(), tokens[i], calls[i], best.value(guide)))
    return out
