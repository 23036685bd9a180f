"""The verdict line, constrained: free reasoning first, then only the final verdict decoded under
a constraint, so a judge's answer always has a well-formed verdict whatever the model's size.

Two phases per request (when `constrain` is on):
1. reasoning: the judge's own request, with a stop at the verdict marker ("Score:", "[[") and its
   own token budget. Requests whose answer prefix already ends with the marker (direct mode) skip it.
2. verdict: the same conversation with `assistant_prefix = prefix + reasoning + "\\n" + marker`
   and a regex constraint on the continuation (e.g. ` ?(1|2|3|4|5)` or `(A|B|C)\\]\\]`), a few
   tokens long. The prompt extends phase 1's, so the engine's prefix cache reuses its keys/values.

Why two phases rather than one Lark grammar with a free-text lexeme: a greedy free-text lexeme
never ends by itself, and a lazy one with `stop=` leaves it to the grammar library whether the
stop text is emitted; a token budget on reasoning must still end in a verdict. Two plain requests
give both guarantees with a regex any backend understands (llguidance, vLLM, llama.cpp), cost
masks only on the few verdict tokens, and keep the reasoning unconstrained.

A verdict that was decoded under the constraint is parsed on its own (never the reasoning's); a
backend that ignored the constraint is detected (`forced=False`) and the whole text goes through
the defensive parser, with its injection guard. A parse failure is never a score.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from selflab.models.types import Completion, Constraint, GenerationRequest, SamplingParams

Steps = Generator[list[GenerationRequest], list[Completion], list["Answer"]]
VERDICT_TOKENS = 8  # budget of the constrained phase: "[[A]]" or " 10" and nothing more


@dataclass(frozen=True)
class VerdictSpec:
    """Where a verdict starts (`marker`) and what may follow it (`pattern`, a regex that both
    llguidance and Python's `re` read the same way)."""

    marker: str
    pattern: str

    def constraint(self) -> Constraint:
        return Constraint.regex(self.pattern)

    def matches(self, text: str) -> bool:
        return re.fullmatch(self.pattern, text) is not None


def score_spec(scale: tuple[float, float], integer: bool = True) -> VerdictSpec:
    """`Score: N` for every integer N on the scale (with one decimal place when not `integer`)."""
    lo, hi = scale
    values = [str(v) for v in range(int(-(-lo // 1)), int(hi // 1) + 1)]
    if not values:
        values = [f"{lo:g}"]
    value = "(" + "|".join(values) + ")"
    if not integer:
        value += r"(\.[0-9])?"
    return VerdictSpec(marker="Score:", pattern=" ?" + value)


def choice_spec(choices: Sequence[str]) -> VerdictSpec:
    """`[[X]]` for X in choices (e.g. A, B, C)."""
    return VerdictSpec(marker="[[", pattern="(" + "|".join(map(re.escape, choices)) + r")\]\]")


@dataclass
class Answer:
    """One judge answer: its full text and how the verdict was obtained.

    `raw` is everything the judge wrote (answer prefix, reasoning, marker, verdict); `verdict_text`
    the marker and constrained continuation when two phases ran; `forced` whether that continuation
    matched the constraint (i.e. the backend enforced it); `completion` the last completion (for
    finish reasons and errors); `reasoning_finish` the finish reason of the reasoning phase."""

    raw: str
    completion: Completion
    verdict_text: str | None = None
    forced: bool = False
    reasoning_finish: str | None = None

    def record(self) -> dict:
        return {
            "constrained": self.verdict_text is not None,
            "forced": self.forced,
            "reasoning_finish": self.reasoning_finish,
        }


def cut_at(text: str, marker: str) -> str:
    """Text before the first marker (a backend that ignores stop strings is cut here too)."""
    at = text.find(marker)
    return text if at < 0 else text[:at]


def _with(request: GenerationRequest, sampling: SamplingParams, prefix: str) -> GenerationRequest:
    return request.model_copy(update={"sampling": sampling, "assistant_prefix": prefix})


def ask(requests: list[GenerationRequest], spec: VerdictSpec | None, constrain: bool) -> Steps:
    """Steps that answer `requests`: one round unconstrained, or reasoning then verdict rounds."""
    if not constrain or spec is None:
        completions = yield requests
        return [
            Answer(raw=r.assistant_prefix + c.text, completion=c)
            for r, c in zip(requests, completions, strict=True)
        ]
    direct = [r.assistant_prefix.rstrip().endswith(spec.marker) for r in requests]
    reasoning_requests = [
        _with(
            r,
            r.sampling.model_copy(update={"stop": (*r.sampling.stop, spec.marker), "constraint": None}),
            r.assistant_prefix,
        )
        for r, d in zip(requests, direct, strict=True)
        if not d
    ]
    reasoning = iter((yield reasoning_requests))
    answers: list[Answer | None] = []
    verdict_requests: list[GenerationRequest] = []
    prefixes: list[str] = []
    finishes: list[str | None] = []
    for request, is_direct in zip(requests, direct, strict=True):
        prefix, finish = request.assistant_prefix, None
        if not is_direct:
            first = next(reasoning)
            if first.finish_reason == "error":
                answers.append(Answer(raw=prefix + first.text, completion=first, reasoning_finish="error"))
                continue
            thought = cut_at(first.text, spec.marker).rstrip()
            finish = first.finish_reason
            prefix = f"{prefix}{thought}\n{spec.marker}" if (prefix + thought).strip() else spec.marker
        sampling = request.sampling.model_copy(
            update={"constraint": spec.constraint(), "max_new_tokens": VERDICT_TOKENS, "stop": ()}
        )
        verdict_requests.append(_with(request, sampling, prefix))
        prefixes.append(prefix)
        finishes.append(finish)
        answers.append(None)
    verdicts = iter((yield verdict_requests))
    out: list[Answer] = []
    slots = iter(zip(prefixes, finishes, strict=True))
    for answer in answers:
        if answer is not None:
            out.append(answer)
            continue
        prefix, finish = next(slots)
        c = next(verdicts)
        tail = spec.marker + c.text
        out.append(
            Answer(
                raw=prefix + c.text,
                completion=c,
                verdict_text=tail,
                forced=c.finish_reason != "error" and spec.matches(c.text),
                reasoning_finish=finish,
            )
        )
    return out
