"""Pieces every generating judge shares: building requests, reading completions, naming judges.

Generating judges work in two phases, `plan_*` (the requests) and `finish_*` (parse the
completions), so a jury can put all its members' requests for one model into ONE `generate`
call and let the batching engine batch them.
"""

from __future__ import annotations

from collections.abc import Sequence
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


@runtime_checkable
class TwoPhasePointwise(Protocol):
    model: LanguageModel

    def plan_judge(self, items: Sequence[PointwiseItem]) -> list[GenerationRequest]: ...

    def finish_judge(
        self, items: Sequence[PointwiseItem], completions: list[Completion]
    ) -> list[Judgment]: ...


@runtime_checkable
class TwoPhasePairwise(Protocol):
    model: LanguageModel

    def plan_compare(self, items: Sequence[PairwiseItem]) -> list[GenerationRequest]: ...

    def finish_compare(
        self, items: Sequence[PairwiseItem], completions: list[Completion]
    ) -> list[Judgment]: ...


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


def sample_record(raw: str, value: Any, error: str | None, completion: Completion, seed: int | None) -> dict:
    return {
        "raw": raw,
        "value": value,
        "parse_error": error,
        "finish_reason": completion.finish_reason,
        "completion_tokens": completion.completion_tokens,
        "seed": seed,
    }
