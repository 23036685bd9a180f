"""Held-out accuracy beside self-consistency: one greedy answer and k sampled answers per held-out
task in one batched call. The greedy answer is checked by code (the objective measure); the sampled
answers' agreement with their own majority is the self-reward a majority-vote loop optimises, so
both are measured on the same items and their gap shows when agreement rises without accuracy."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from selflab.loops.proposals import final_number, majority_vote
from selflab.loops.truth_meter import Measurement
from selflab.models.types import GenerationRequest, LanguageModel, SamplingParams, user
from selflab.tasks import Task


class HeldoutResult(BaseModel):
    task_id: str
    prompt: str
    greedy: str
    greedy_tokens: int = 0
    greedy_ok: bool = False
    sampled_answers: list[float | None] = Field(default_factory=list)
    majority: float | None = None
    agreement: float = 0.0
    majority_ok: bool = False


def evaluate_heldout(
    model: LanguageModel,
    tasks: Sequence[Task],
    *,
    k: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    seed: int,
) -> list[HeldoutResult]:
    """Greedy answer plus `k` sampled answers per held-out task, in ONE call."""
    greedy = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    sampled = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    reqs = []
    for t in tasks:
        reqs.append(GenerationRequest(messages=(user(t.prompt),), sampling=greedy))
        for _ in range(k):
            reqs.append(
                GenerationRequest(
                    messages=(user(t.prompt),), sampling=sampled.model_copy(update={"seed": seed + len(reqs)})
                )
            )
    outs = model.generate(reqs)
    results = []
    for i, t in enumerate(tasks):
        g = outs[i * (k + 1)]
        samples = outs[i * (k + 1) + 1 : (i + 1) * (k + 1)]
        answers = [None if o.error else final_number(o.text) for o in samples]
        maj, count, none = majority_vote(answers)
        results.append(
            HeldoutResult(
                task_id=t.id,
                prompt=t.prompt,
                greedy=g.text,
                greedy_tokens=g.completion_tokens,
                greedy_ok=g.error is None and t.verify(g.text).ok,
                sampled_answers=answers,
                majority=maj,
                agreement=0.0 if none else count / k,
                majority_ok=maj is not None and t.verify(f"{maj:g}").ok,
            )
        )
    return results


def heldout_measures(results: Sequence[HeldoutResult]) -> list[Measurement]:
    return [
        Measurement(
            name="heldout_accuracy",
            kind="objective",
            values=[r.greedy_ok for r in results],
            ids=[r.task_id for r in results],
            description="greedy accuracy on held-out selflab.tasks (never proposed or trained on), checked by code",
            primary=True,
        ),
        Measurement(
            name="majority_vote_accuracy",
            kind="objective",
            values=[r.majority_ok for r in results],
            ids=[r.task_id for r in results],
            description="the sampled majority answer is right (held-out, checked by code)",
        ),
        Measurement(
            name="self_consistency",
            kind="self_reward",
            values=[r.agreement for r in results],
            ids=[r.task_id for r in results],
            optimised=True,
            description="share of k sampled answers that agree with their majority (the loop's own reward)",
        ),
        Measurement(
            name="response_tokens",
            kind="drift",
            values=[float(r.greedy_tokens) for r in results],
            ids=[r.task_id for r in results],
            higher_is_better=False,
            description="greedy answer length in tokens (length drift)",
        ),
    ]
