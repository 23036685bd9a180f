"""Pieces every generating judge shares: building requests, reading completions, naming judges.

Generating judges work in two phases, `plan_*` (the requests) and `finish_*` (parse the
completions), so a jury can put all its members' requests for one model into ONE `generate`
call and let the batching engine batch them.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from selflab.errors import ConfigError
from selflab.judges.prompts import render
from selflab.judges.types import Judgment, PairwiseItem, PointwiseItem
from selflab.models.types import Completion, GenerationRequest, LanguageModel, Message, SamplingParams

DisagreePolicy = Literal["tie", "abstain"]


def model_name(model: object) -> str:
    return str(getattr(model, "name", type(model).__name__))


def persona_messages(persona: str | None) -> list[Message]:
    """A system message that puts the judge in a persona, or nothing."""
    if not persona:
        return []
    return [Message(role="system", content=render("persona_system", persona=persona))]


def chat_request(
    text: str, persona: str | None, sampling: SamplingParams, assistant_prefix: str = ""
) -> GenerationRequest:
    messages = [*persona_messages(persona), Message(role="user", content=text)]
    return GenerationRequest(messages=tuple(messages), sampling=sampling, assistant_prefix=assistant_prefix)


def completion_failure(completion: Completion) -> str | None:
    """Why a completion cannot be parsed at all (backend error), else None."""
    if completion.finish_reason == "error":
        return f"model error: {completion.error or 'unknown backend failure'}"
    return None


def sample_seeds(sampling: SamplingParams, samples: int, seed: int) -> list[SamplingParams]:
    """One SamplingParams per sample, with distinct seeds so k samples are k draws, not one."""
    if samples < 1:
        raise ConfigError(f"samples must be at least 1, got {samples}", "pass samples=1 or more")
    if samples > 1 and sampling.greedy:
        raise ConfigError(
            f"samples={samples} with temperature 0 would give {samples} identical greedy answers",
            "set a temperature above 0 (e.g. 0.7) when averaging several samples",
        )
    return [sampling.model_copy(update={"seed": seed + i}) for i in range(samples)]


def check_policy(on_disagree: str) -> DisagreePolicy:
    if on_disagree not in ("tie", "abstain"):
        raise ConfigError(
            f"unknown disagreement policy {on_disagree!r}", "use on_disagree='tie' or on_disagree='abstain'"
        )
    return on_disagree  # type: ignore[return-value]


def swap_verdict(verdict: str | None) -> str | None:
    """A verdict given with the two responses swapped, mapped back to the original labels."""
    return {"A": "B", "B": "A"}.get(verdict, verdict) if verdict is not None else None


def combine_orders(
    first: str | None, second_mapped: str | None, policy: DisagreePolicy
) -> tuple[str | None, str | None, bool]:
    """(verdict, parse_error, abstained) from the two orders' verdicts, already in original labels.

    Both orders must parse; when they disagree the policy decides: "tie" (FastChat's choice) or
    "abstain", an explicit no-verdict that is not counted as a tie."""
    if first is None or second_mapped is None:
        return None, None, False
    if first == second_mapped:
        return first, None, False
    if policy == "tie":
        return "tie", None, False
    return (
        None,
        f"abstained: the two orders disagree (A/B order says {first}, B/A order says {second_mapped})",
        True,
    )


def judgment_from_orders(
    judge: str,
    kind: Literal["pairwise", "meta"],
    item_id: str,
    orders: list[dict[str, Any]],
    policy: DisagreePolicy,
    details: dict[str, Any],
) -> Judgment:
    """One Judgment from the per-order records of a both-orders judge (pairwise or meta).

    Each record has "order", "raw", "verdict_original" and "parse_error". Any order that failed to
    parse makes the whole judgment a parse error (the per-order results stay in details)."""
    raw = (
        "\n\n".join(f"[order {o['order']}]\n{o['raw']}" for o in orders)
        if len(orders) > 1
        else orders[0]["raw"]
    )
    details = {**details, "orders": orders, "policy": policy, "abstained": False}
    errors = [f"order {o['order']}: {o['parse_error']}" for o in orders if o["parse_error"]]
    if errors:
        return Judgment(
            judge=judge, kind=kind, raw=raw, parse_error="; ".join(errors), item_id=item_id, details=details
        )
    if len(orders) == 1:
        verdict, error, abstained = orders[0]["verdict_original"], None, False
    else:
        first, second = orders[0]["verdict_original"], orders[1]["verdict_original"]
        verdict, error, abstained = combine_orders(first, second, policy)
        details["consistent"] = first == second
    details["abstained"] = abstained
    return Judgment(
        judge=judge, kind=kind, raw=raw, verdict=verdict, parse_error=error, item_id=item_id, details=details
    )


# A judge's work on a batch as a generator: it yields lists of requests, receives their
# completions, and returns the judgments. Several judges' steps for one model run in lockstep
# (`drive_many`), one `generate` call per round, so a jury batches all its members' requests.
JudgeSteps = Generator[list[GenerationRequest], list[Completion], list[Judgment]]


@runtime_checkable
class SteppedPointwise(Protocol):
    model: LanguageModel

    def judge_steps(self, items: Sequence[PointwiseItem]) -> JudgeSteps: ...


@runtime_checkable
class SteppedPairwise(Protocol):
    model: LanguageModel

    def compare_steps(self, items: Sequence[PairwiseItem]) -> JudgeSteps: ...


def generate_checked(model: LanguageModel, requests: list[GenerationRequest]) -> list[Completion]:
    """`model.generate`, with a check that the backend returned one completion per request."""
    if not requests:
        return []
    completions = model.generate(requests)
    if len(completions) != len(requests):
        raise RuntimeError(
            f"{model_name(model)} returned {len(completions)} completions for {len(requests)} requests"
        )
    return completions


def drive_many(model: LanguageModel, plans: Sequence[JudgeSteps]) -> list[list[Judgment]]:
    """Run several judges' steps against one model: each round, every live plan's requests go out
    in ONE `generate` call and each plan gets back its own slice."""
    results: list[list[Judgment] | None] = [None] * len(plans)
    pending: dict[int, list[GenerationRequest]] = {}
    for i, plan in enumerate(plans):
        try:
            pending[i] = next(plan)
        except StopIteration as done:
            results[i] = done.value
    while pending:
        order = list(pending)
        completions = generate_checked(model, [r for i in order for r in pending[i]])
        start, nxt = 0, {}
        for i in order:
            n = len(pending[i])
            try:
                nxt[i] = plans[i].send(completions[start : start + n])
            except StopIteration as done:
                results[i] = done.value
            start += n
        pending = nxt
    return [r if r is not None else [] for r in results]


def drive(model: LanguageModel, plan: JudgeSteps) -> list[Judgment]:
    """Run one judge's steps to the end."""
    return drive_many(model, [plan])[0]


def sample_record(raw: str, value: Any, error: str | None, completion: Completion, seed: int | None) -> dict:
    return {
        "raw": raw,
        "value": value,
        "parse_error": error,
        "finish_reason": completion.finish_reason,
        "completion_tokens": completion.completion_tokens,
        "seed": seed,
    }
