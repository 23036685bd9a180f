"""A scripted LanguageModel for testing aggregation logic (order swaps, juries, meta-judging).

It answers by rule from the request text, so expected outcomes can be computed by hand. Model
behaviour itself is tested on the tiny llama, not here.
"""

from __future__ import annotations

from collections.abc import Callable

from selflab.models.types import Completion, GenerationRequest, Message


def request_text(request: GenerationRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    return "\n".join(f"<{m.role}> {m.content}" for m in request.messages)


class ScriptedModel:
    """`rule(text, request) -> str`; returns "" + finish_reason "error" when the rule returns None."""

    def __init__(
        self,
        rule: Callable[[str, GenerationRequest], str | None],
        name: str = "scripted",
        scorer: Callable[[str, str], float] | None = None,
    ) -> None:
        self.rule = rule
        self.name = name
        self.scorer = scorer
        self.calls: list[list[GenerationRequest]] = []
        self.score_calls: list[tuple[str, list[str]]] = []

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        self.calls.append(list(requests))
        out = []
        for request in requests:
            text = self.rule(request_text(request), request)
            if text is None:
                out.append(Completion(text="", finish_reason="error", error="scripted failure"))
            else:
                out.append(Completion(text=text, completion_tokens=len(text.split())))
        return out

    def score(self, prompt: str | list[Message], continuations: list[str]) -> list[float]:
        text = prompt if isinstance(prompt, str) else "\n".join(f"<{m.role}> {m.content}" for m in prompt)
        self.score_calls.append((text, list(continuations)))
        assert self.scorer is not None, "this scripted model has no scorer"
        return [self.scorer(text, c) for c in continuations]


def reply_block(text: str, label: str) -> str:
    """The content of <reply_X> in a pairwise prompt."""
    start = text.index(f"<reply_{label}>") + len(f"<reply_{label}>")
    return text[start : text.index(f"</reply_{label}>", start)].strip()


def single_reply(text: str) -> str:
    start = text.index("<reply>") + len("<reply>")
    return text[start : text.index("</reply>", start)].strip()
