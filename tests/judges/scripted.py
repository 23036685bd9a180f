"""A scripted LanguageModel for testing aggregation logic (order swaps, juries, meta-judging).

It answers by rule from the request text, so expected outcomes can be computed by hand. Model
behaviour itself is tested on the tiny llama, not here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from selflab.models.types import Completion, GenerationRequest, Message

_FENCE_LINE = re.compile(r"^<<(?:end of )?data F[0-9a-f]{10}>>\n?", re.MULTILINE)


def unfence(text: str) -> str:
    """A judged text without its fence markers (and with datamarks turned back into spaces)."""
    return _FENCE_LINE.sub("", text).replace("\u02c6", " ")


def honour(text: str, request: GenerationRequest) -> str:
    """What a backend that honours stop strings and constraints would return for a rule's text:
    cut at the first stop string; under a regex constraint, the rule's last matching span."""
    for stop in request.sampling.stop:
        if stop and stop in text:
            text = text[: text.index(stop)]
    constraint = request.sampling.constraint
    if constraint is not None and constraint.kind == "regex":
        spans = [m.group(0) for m in re.finditer(constraint.value, text) if m.group(0)]
        text = spans[-1] if spans else ""
    return text


def request_text(request: GenerationRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    return "\n".join(f"<{m.role}> {m.content}" for m in request.messages)


class ScriptedModel:
    """`rule(text, request) -> str`; returns "" + finish_reason "error" when the rule returns None.
    Stop strings and regex constraints are honoured on the rule's text (see `honour`), unless
    `constraints=False` (a backend that ignores them)."""

    def __init__(
        self,
        rule: Callable[[str, GenerationRequest], str | None],
        name: str = "scripted",
        scorer: Callable[[str, str], float] | None = None,
        constraints: bool = True,
    ) -> None:
        self.rule = rule
        self.constraints = constraints
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
                text = honour(text, request) if self.constraints else text
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
    return unfence(text[start : text.index(f"</reply_{label}>", start)]).strip()


def single_reply(text: str) -> str:
    start = text.index("<reply>") + len("<reply>")
    return unfence(text[start : text.index("</reply>", start)]).strip()
