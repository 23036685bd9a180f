"""Debate judge: two debaters argue opposite verdicts over several rounds, then a third model
decides (research plan 2.1.2, after "Debating with More Persuasive LLMs Leads to More Truthful
Answers"). Each debater is assigned its side whatever it believes; the decider is told so.

Pairwise: one debater argues reply A is better, the other reply B. Pointwise: one argues the reply
is correct and deserves a high score, the other that it is flawed and deserves a low one. Every
turn of every item goes out in one `generate` call per debater per round; the transcript is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from selflab.errors import ConfigError
from selflab.judges.base import chat_request, completion_failure, drive, generate_checked, model_name
from selflab.judges.fence import Fence, FenceMode, fence_texts
from selflab.judges.parsing import parse_pairwise, parse_score
from selflab.judges.prompts import render
from selflab.judges.registry import JudgeContext, JudgeOptions, register_judge
from selflab.judges.types import Judgment, PairwiseItem, PointwiseItem
from selflab.judges.verdict import Answer, ask, choice_spec, score_spec
from selflab.models.types import LanguageModel, SamplingParams

DEBATE_SAMPLING = SamplingParams(temperature=0.0, max_new_tokens=160)
DECIDE_SAMPLING = SamplingParams(temperature=0.0, max_new_tokens=200)

STANCES = {
    "pairwise": ("reply A is better than reply B", "reply B is better than reply A"),
    "pointwise": (
        "the reply is correct, follows the instructions and deserves a high score",
        "the reply has real flaws (errors, missed instructions) and deserves a low score",
    ),
}
SPEAKERS = {"pairwise": ("advocate for A", "advocate for B"), "pointwise": ("defender", "critic")}


class DebateJudge:
    """Two debaters (possibly two models), R rounds, one decider; both protocols."""

    protocols = frozenset({"pointwise", "pairwise"})

    def __init__(
        self,
        model: LanguageModel,
        opponent: LanguageModel | None = None,
        decider: LanguageModel | None = None,
        rounds: int = 2,
        scale: tuple[float, float] = (1, 5),
        debate_sampling: SamplingParams | None = None,
        decide_sampling: SamplingParams | None = None,
        use_reference: bool = True,
        constrain: bool = True,
        fence: FenceMode = "boundary",
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        if rounds < 1:
            raise ConfigError(f"a debate needs at least one round, got {rounds}", "pass rounds=1 or more")
        self.debaters = (model, opponent or model)
        self.decider = decider or model
        self.model = model
        self.rounds = rounds
        self.scale = (float(scale[0]), float(scale[1]))
        self.debate_sampling = debate_sampling or DEBATE_SAMPLING
        self.decide_sampling = decide_sampling or DECIDE_SAMPLING
        self.use_reference = use_reference
        self.constrain = constrain
        self.fence = fence
        self.seed = seed
        self.name = name or (
            f"debate[r={rounds}]({model_name(self.debaters[0])},{model_name(self.debaters[1])}"
            f"->{model_name(self.decider)})"
        )

    def _variables(self, item: PointwiseItem | PairwiseItem, mode: str) -> tuple[Fence, dict]:
        """Template variables with the judged replies fenced; the fence also wraps debaters' turns."""
        lo, hi = self.scale
        texts = {"prompt": item.prompt}
        if isinstance(item, PairwiseItem):
            texts |= {"response_a": item.response_a, "response_b": item.response_b}
        else:
            texts["response"] = item.response
        fence, fenced = fence_texts(self.fence, self.seed, texts)
        fenced["prompt"] = item.prompt
        return fence, {
            "mode": mode,
            "lo": f"{lo:g}",
            "hi": f"{hi:g}",
            "reference": item.reference if self.use_reference else None,
            "history": item.history,
            "fence_note": fence.note(),
            **fenced,
        }

    def _debate(
        self, items: Sequence[PointwiseItem | PairwiseItem], mode: Literal["pairwise", "pointwise"]
    ) -> tuple[list[list[dict]], list[Answer]]:
        transcripts: list[list[dict]] = [[] for _ in items]
        fenced = [self._variables(item, mode) for item in items]
        for round_ in range(1, self.rounds + 1):
            for side in (0, 1):
                requests = [
                    chat_request(
                        render("debate_turn", stance=STANCES[mode][side], transcript=t, round=round_, **v),
                        None,
                        self.debate_sampling,
                    )
                    for (_, v), t in zip(fenced, transcripts, strict=True)
                ]
                completions = generate_checked(self.debaters[side], requests)
                for t, c in zip(transcripts, completions, strict=True):
                    failure = completion_failure(c)
                    text = c.text.strip() if not failure else f"(no argument: {failure})"
                    t.append(
                        {"speaker": SPEAKERS[mode][side], "round": round_, "text": text, "error": failure}
                    )
        requests = [
            chat_request(
                render("debate_decide", transcript=_fence_turns(f, t), **v), None, self.decide_sampling
            )
            for (f, v), t in zip(fenced, transcripts, strict=True)
        ]
        spec = choice_spec(("A", "B", "C")) if mode == "pairwise" else score_spec(self.scale)
        return transcripts, drive(self.decider, ask(requests, spec, self.constrain))

    def compare(self, items: list[PairwiseItem]) -> list[Judgment]:
        transcripts, answers = self._debate(items, "pairwise")
        out = []
        for item, transcript, answer in zip(items, transcripts, answers, strict=True):
            failure = completion_failure(answer.completion)
            if failure:
                verdict, error = None, failure
            elif answer.forced and answer.verdict_text is not None:
                verdict, error = parse_pairwise(answer.verdict_text)
            else:
                verdict, error = parse_pairwise(answer.raw, quoted=[item.response_a, item.response_b])
            out.append(
                Judgment(
                    judge=self.name,
                    kind="pairwise",
                    raw=answer.raw,
                    verdict=verdict,  # type: ignore[arg-type]
                    parse_error=error,
                    item_id=item.id,
                    details={"transcript": transcript, "rounds": self.rounds, "abstained": False}
                    | self._settings(answer),
                )
            )
        return out

    def _settings(self, answer: Answer) -> dict:
        return {"constrain": self.constrain, "fence": self.fence, **answer.record()}

    def judge(self, items: list[PointwiseItem]) -> list[Judgment]:
        transcripts, answers = self._debate(items, "pointwise")
        out = []
        for item, transcript, answer in zip(items, transcripts, answers, strict=True):
            failure = completion_failure(answer.completion)
            if failure:
                score, error = None, failure
            elif answer.forced and answer.verdict_text is not None:
                score, error = parse_score(answer.verdict_text, self.scale)
            else:
                score, error = parse_score(answer.raw, self.scale, quoted=item.response)
            out.append(
                Judgment(
                    judge=self.name,
                    kind="pointwise",
                    raw=answer.raw,
                    score=score,
                    parse_error=error,
                    item_id=item.id,
                    details={"transcript": transcript, "rounds": self.rounds, "scale": list(self.scale)}
                    | self._settings(answer),
                )
            )
        return out


def _fence_turns(fence: Fence, transcript: list[dict]) -> list[dict]:
    """The debaters' turns for the decider, each fenced: a debater may quote an injection."""
    return [turn | {"text": fence.wrap(turn["text"])} for turn in transcript]


class DebateOptions(JudgeOptions):
    rounds: int = Field(2, ge=1, description="debate rounds (each: one turn per debater)")
    scale: tuple[float, float] = Field((1, 5), description="score scale of pointwise debates")
    use_reference: bool = Field(True, description="show an item's reference answer when it has one")
    constrain: bool = Field(True, description="decode the decider's verdict line under a constraint")
    fence: FenceMode = Field("boundary", description="injection defence: boundary, datamark or none")


@register_judge(
    "debate", DebateOptions, "two debaters argue opposite verdicts, a decider judges (opponent=, decider=)"
)
def _build(ctx: JudgeContext, o: DebateOptions) -> DebateJudge:
    return DebateJudge(
        ctx.model,
        opponent=ctx.opponent,
        decider=ctx.decider,
        rounds=o.rounds,
        scale=o.scale,
        use_reference=o.use_reference,
        constrain=o.constrain,
        fence=o.fence,
        seed=o.seed,
    )
