"""The likelihood judge scores all items of a call in batched forward passes (`score_batch`)."""

from __future__ import annotations

import math

import pytest

from selflab.judges import LikelihoodJudge
from selflab.judges.types import PairwiseItem, PointwiseItem
from selflab.models.types import Message

from .scripted import ScriptedModel, reply_block, single_reply

ITEMS = [PointwiseItem(prompt="2+2?", response=r, id=r) for r in ("4", "5", "four", "22")]
PAIRS = [
    PairwiseItem(prompt="2+2?", response_a=a, response_b=b, id=a + b) for a, b in (("4", "5"), ("3", "4"))
]


def scorer(text: str, cont: str) -> float:
    if "<reply>" in text:
        good = "4" in single_reply(text.split("<user> ", 1)[1])
        k = int(cont.split()[-1])
        return math.log(1 + k if good else 6 - k)
    shown = reply_block(text.split("<user> ", 1)[1], "A" if cont == "[[A]]" else "B")
    return math.log(0.8 if "4" in shown else 0.2)


class Batched(ScriptedModel):
    """A scripted model with `score_batch`, which must be the only scoring call."""

    def __init__(self) -> None:
        super().__init__(lambda t, r: None, scorer=scorer)
        self.batches: list[int] = []

    def score_batch(self, requests):
        self.batches.append(len(requests))
        return [[scorer(self._text(p), c) for c in conts] for p, conts in requests]

    @staticmethod
    def _text(prompt) -> str:
        return prompt if isinstance(prompt, str) else "\n".join(f"<{m.role}> {m.content}" for m in prompt)


def test_one_batched_call_per_protocol_and_same_results_as_one_by_one() -> None:
    batched, single = Batched(), ScriptedModel(lambda t, r: None, scorer=scorer)
    a = LikelihoodJudge(batched, scale=(1, 5)).judge(ITEMS)
    b = LikelihoodJudge(single, scale=(1, 5)).judge(ITEMS)
    assert batched.batches == [4] and batched.score_calls == [] and len(single.score_calls) == 4
    assert [j.score for j in a] == pytest.approx([j.score for j in b])
    pa = LikelihoodJudge(batched).compare(PAIRS)
    pb = LikelihoodJudge(single).compare(PAIRS)
    assert batched.batches == [4, 4]  # 2 pairs x 2 orders in one call
    assert [j.verdict for j in pa] == [j.verdict for j in pb] == ["A", "B"]


def test_a_failing_batch_falls_back_to_per_item_failures() -> None:
    class Broken(Batched):
        def score_batch(self, requests):
            raise ValueError("boom")

        def score(self, prompt, continuations):
            if "five" in self._text(prompt):
                raise ValueError("cannot score this one")
            return super().score(prompt, continuations)

    out = LikelihoodJudge(Broken(), scale=(1, 5)).judge(
        [ITEMS[0], PointwiseItem(prompt="2+2?", response="five")]
    )
    assert out[0].ok and out[1].score is None and "cannot score" in out[1].parse_error


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from selflab.models import load_model
    from selflab.models.testing import tiny_llama

    return load_model(f"hf:{tiny_llama(tmp_path_factory.mktemp('tiny'))}")


def test_score_batch_equals_score_on_the_tiny_model(tiny) -> None:
    requests = [
        ([Message(role="user", content="Grade this reply. " * k)], [f"Score: {i}" for i in range(6)])
        for k in (1, 3, 7)
    ]
    requests += [("a raw prompt string", ["[[A]]", "[[B]]", " x"]), ("two words", [" a"]), ("no conts", [])]
    batched = tiny.score_batch(requests)
    for (prompt, continuations), got in zip(requests, batched, strict=True):
        assert got == pytest.approx(tiny.score(prompt, continuations), abs=1e-4)


def test_likelihood_judge_batched_equals_unbatched_on_the_tiny_model(tiny) -> None:
    class Unbatched:
        name = "unbatched"

        def score(self, prompt, continuations):
            return tiny.score(prompt, continuations)

    a = LikelihoodJudge(tiny, scale=(1, 5)).judge(ITEMS)
    b = LikelihoodJudge(Unbatched(), scale=(1, 5)).judge(ITEMS)
    assert [j.score for j in a] == pytest.approx([j.score for j in b], abs=1e-4)
    pa, pb = LikelihoodJudge(tiny).compare(PAIRS), LikelihoodJudge(Unbatched()).compare(PAIRS)
    assert [j.score for j in pa] == pytest.approx([j.score for j in pb], abs=1e-4)
