"""Reusable stage helpers: sample answers, verify them, and turn the results into truth-meter
`Measurement`s (with item ids, so iterations pair by item). They hold no loop state."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel

from selflab.execution import Executor
from selflab.loops.truth_meter import Measurement
from selflab.models.types import Completion, GenerationRequest, LanguageModel, SamplingParams, user
from selflab.tasks import Task
from selflab.training import SFTExample


class Answer(BaseModel):
    """One sampled answer to one task, verified by code; `self_score` filled by a self-judge."""

    task_id: str
    prompt: str
    sample: int = 0
    response: str
    completion_tokens: int = 0
    finish_reason: str = "stop"
    error: str | None = None
    verified: bool | None = None
    reason: str = ""
    self_score: float | None = None  # normalised to [0, 1]; None = unparsable judgment
    judge_raw: str = ""
    judge_error: str | None = None


def sample_n(
    model: LanguageModel, prompts: Sequence[str], n: int, sampling: SamplingParams, seed: int
) -> list[list[Completion]]:
    """`n` completions per user prompt in ONE batched generate call; request i gets seed `seed + i`,
    so the samples do not depend on batch composition and a rerun reproduces them."""
    requests: list[GenerationRequest] = []
    for prompt in prompts:
        for _ in range(n):
            s = sampling if sampling.greedy else sampling.model_copy(update={"seed": seed + len(requests)})
            requests.append(GenerationRequest(messages=(user(prompt),), sampling=s))
    outs: list[Completion] = model.generate(requests) if requests else []
    return [outs[i * n : (i + 1) * n] for i in range(len(prompts))]


_WORKER_SPEC: str | None = None  # the model a Ray worker process holds for sampling


class _SampleChunk:
    """Ray-side unit function: `n` answers for each (index, task), the model built from its spec on
    the worker. Request seeds are `seed + index * n + j`, exactly those of `sample_n` in process."""

    def __init__(self, spec: str, n: int, sampling: SamplingParams, seed: int) -> None:
        self.spec, self.n, self.sampling, self.seed = spec, n, sampling, seed

    def __call__(self, units: list[tuple[int, Task]]) -> list[list[Answer]]:
        global _WORKER_SPEC
        from selflab.models import clear_cache, load_model

        if _WORKER_SPEC != self.spec:  # a new policy (next loop iteration): free the old weights
            clear_cache()
            _WORKER_SPEC = self.spec
        model = load_model(self.spec)
        requests = []
        for index, task in units:
            for j in range(self.n):
                s = self.sampling
                if not s.greedy:
                    s = s.model_copy(update={"seed": self.seed + index * self.n + j})
                requests.append(GenerationRequest(messages=(user(task.prompt),), sampling=s))
        outs = model.generate(requests)
        return [_answers(task, outs[k * self.n : (k + 1) * self.n]) for k, (_, task) in enumerate(units)]


def sample_answers_on(
    executor: Executor | None,
    spec: str,
    tasks: Sequence[Task],
    n: int,
    sampling: SamplingParams,
    seed: int,
    load: Callable[[str], LanguageModel] | None = None,
) -> list[Answer]:
    """`sample_answers` on an executor: in process it is `sample_answers(load(spec), ...)`; on Ray
    each worker samples chunks of tasks with its own copy of `spec`, and the answers are the same."""
    if executor is None or executor.in_process:
        from selflab.models import load_model

        return sample_answers((load or load_model)(spec), tasks, n, sampling, seed)
    from selflab.execution import map_units

    units = list(enumerate(tasks))
    results = map_units(
        units, _SampleChunk(spec, n, sampling, seed), executor, key=lambda u: f"{u[0]}:{u[1].id}"
    )
    answers: list[Answer] = []
    for (_, task), r in zip(units, results, strict=True):
        if r.ok and r.value is not None:
            answers.extend(r.value)
        else:  # a unit given up on: its answers are recorded as backend errors, never dropped silently
            answers.extend(
                Answer(task_id=task.id, prompt=task.prompt, sample=j, response="", finish_reason="error",
                       error=f"worker failure: {r.error}")
                for j in range(n)
            )  # fmt: skip
    return answers


def _answers(task: Task, outs: Sequence[Completion]) -> list[Answer]:
    return [
        Answer(task_id=task.id, prompt=task.prompt, sample=j, response=o.text, completion_tokens=o.completion_tokens,
               finish_reason=o.finish_reason, error=o.error)
        for j, o in enumerate(outs)
    ]  # fmt: skip


def sample_answers(
    model: LanguageModel,
    tasks: Sequence[Task],
    n: int,
    sampling: SamplingParams,
    seed: int,
) -> list[Answer]:
    """`n` answers per task (see `sample_n`)."""
    answers = []
    for t, outs in zip(tasks, sample_n(model, [t.prompt for t in tasks], n, sampling, seed), strict=True):
        for j, o in enumerate(outs):
            answers.append(
                Answer(
                    task_id=t.id,
                    prompt=t.prompt,
                    sample=j,
                    response=o.text,
                    completion_tokens=o.completion_tokens,
                    finish_reason=o.finish_reason,
                    error=o.error,
                )
            )
    return answers


def verify_answers(tasks: Sequence[Task], answers: list[Answer]) -> list[Answer]:
    """Fill `verified`/`reason` with each task's code verifier (a backend error is a failure;
    tasks without a verifier stay unverified)."""
    by_id = {t.id: t for t in tasks}
    out = []
    for a in answers:
        if by_id[a.task_id].verifier == "none":
            out.append(a)
            continue
        if a.error:
            out.append(a.model_copy(update={"verified": False, "reason": f"generation error: {a.error}"}))
            continue
        v = by_id[a.task_id].verify(a.response)
        out.append(a.model_copy(update={"verified": v.ok, "reason": v.reason}))
    return out


def verified_examples(
    answers: Sequence[Answer], keep_per_task: int, drop_truncated: bool = True
) -> list[SFTExample]:
    """Rejection-sampling SFT data: per task (in first-seen order), the distinct answers the
    verifier passed, never an empty or (with `drop_truncated`) cut-off one, the self-judge's
    favourites first (ties keep sample order), at most `keep_per_task`."""
    by_task: dict[str, list[Answer]] = {}
    for a in answers:
        by_task.setdefault(a.task_id, []).append(a)
    examples = []
    for task_id, group in by_task.items():
        good = [
            a
            for a in group
            if a.verified and a.response.strip() and not (drop_truncated and a.finish_reason == "length")
        ]
        unique = list({a.response.strip(): a for a in good}.values())
        unique.sort(key=lambda a: -(a.self_score if a.self_score is not None else 0.0))
        examples += [
            SFTExample(
                prompt=[user(a.prompt)], response=a.response, source="verified", id=f"{task_id}#{a.sample}"
            )
            for a in unique[:keep_per_task]
        ]
    return examples


# -- measurements -------------------------------------------------------------------------------


def item_ids(answers: Sequence[Answer]) -> list[str]:
    return [f"{a.task_id}#{a.sample}" for a in answers]


def pass_rate(
    name: str,
    answers: Sequence[Answer],
    description: str = "",
    optimised: bool = False,
    primary: bool = False,
) -> Measurement:
    return Measurement(
        name=name,
        kind="objective",
        values=[bool(a.verified) for a in answers],
        ids=item_ids(answers),
        optimised=optimised,
        primary=primary,
        description=description,
    )


def self_reward(answers: Sequence[Answer], name: str = "self_reward", optimised: bool = False) -> Measurement:
    return Measurement(
        name=name,
        kind="self_reward",
        values=[a.self_score for a in answers],
        ids=item_ids(answers),
        optimised=optimised,
        description="own rubric judge score, normalised to [0, 1]; unparsable = missing",
    )


def judge_agreement(answers: Sequence[Answer], threshold: float = 0.5) -> Measurement:
    """Per item: does the self-judge (score >= threshold) agree with the code verifier? An
    objective measure of the judging skill on the model's own answers."""
    vals: list[float | bool | None] = [
        None if a.self_score is None else (a.self_score >= threshold) == bool(a.verified) for a in answers
    ]
    return Measurement(
        name="self_judge_agreement",
        kind="objective",
        values=vals,
        ids=item_ids(answers),
        description="self-judge (score >= 0.5) agrees with the verifier on the held-out answers",
    )


def length(answers: Sequence[Answer], name: str = "response_tokens") -> Measurement:
    return Measurement(
        name=name,
        kind="drift",
        values=[float(a.completion_tokens) for a in answers],
        ids=item_ids(answers),
        higher_is_better=False,
        description="completion tokens per answer (length drift)",
    )
