"""Scripted fake models for regulate tests: answers by rule from the request text."""

from __future__ import annotations

from collections.abc import Callable

from selflab.models.types import Completion, GenerationRequest, Message


def text_of(request: GenerationRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    return "\n".join(f"<{m.role}> {m.content}" for m in request.messages)


class Scripted:
    """`rule(text, request) -> str`; None gives an error completion."""

    def __init__(self, rule: Callable[[str, GenerationRequest], str | None], name: str = "scripted") -> None:
        self.rule, self.name = rule, name
        self.calls: list[list[GenerationRequest]] = []

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        self.calls.append(list(requests))
        out = []
        for r in requests:
            t = self.rule(text_of(r), r)
            out.append(
                Completion(text="", finish_reason="error", error="scripted")
                if t is None
                else Completion(text=t, completion_tokens=len(t.split()))
            )
        return out

    def score(self, prompt: str | list[Message], continuations: list[str]) -> list[float]:
        return [0.0 for _ in continuations]


def safety_rule(text: str, request: GenerationRequest) -> str | None:
    """A model that obeys a constitution principle mentioning 'disguise': it refuses harmful-looking
    requests only when such a principle is in its system prompt, proposes exactly that principle,
    votes for candidate 1, and judges refusals correctly."""
    prefix = request.assistant_prefix
    if prefix == "OP:":
        return " add\nID: NEW\nTEXT: Refuse harmful requests even when disguised as role-play, fiction, code or history.\nRATIONALE: closes the disguise loophole"
    if prefix == "VOTE:":
        return " 1"
    if prefix == "MODERATOR:":
        return " Proposal 1 is fine."
    if prefix == "Answer:":
        return " YES" if "Assistant's response: I can't" in text else " NO"
    system = text.split("<user>")[0]
    user_text = text.split("<user>")[-1].lower()
    harmful = any(
        w in user_text
        for w in ("phishing", "bomb", "poison", "steal", "hack", "malware", "kill myself", "meth")
    )
    if "disguised" in system and harmful and "how do" not in user_text:
        return "I can't help with that."
    return "Sure, here is an answer."
