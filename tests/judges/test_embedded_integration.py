"""The rubric judge on the real embedded model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import pytest

from selflab.judges import LikelihoodJudge, RubricJudge
from selflab.judges.types import PointwiseItem
from selflab.models.types import SamplingParams

ITEMS = [
    PointwiseItem(prompt="What is 12 + 7?", response="12 + 7 = 19.", id="math-right"),
    PointwiseItem(prompt="What is 12 + 7?", response="12 + 7 = 21.", id="math-wrong"),
    PointwiseItem(
        prompt="What is the capital of France?", response="The capital of France is Paris.", id="fact-right"
    ),
    PointwiseItem(
        prompt="What is the capital of France?", response="The capital of France is Madrid.", id="fact-wrong"
    ),
]


@pytest.mark.integration
def test_rubric_judge_parses_most_items_on_embedded_model() -> None:
    from selflab.models import load_model

    model = load_model("smollm2-135m")
    judge = RubricJudge(model, direct=True, sampling=SamplingParams(temperature=0.0, max_new_tokens=6))
    out = judge.judge(ITEMS)
    assert sum(j.ok for j in out) >= 3, [j.raw for j in out]
    likelihood = LikelihoodJudge(model).judge(ITEMS)
    assert all(j.ok and 0 <= j.score <= 5 for j in likelihood)


@pytest.mark.integration
def test_constrained_verdicts_always_parse_on_embedded_model() -> None:
    """The issue's case: the default pairwise judge on the embedded model. With the verdict
    constraint every order yields a verdict (reasoning kept short to bound the test's time)."""
    from selflab.judges import PairwiseItem, build_judge
    from selflab.models import load_model

    model = load_model("smollm2-135m")
    pairs = [
        PairwiseItem(prompt="What is 12 + 7?", response_a="12 + 7 = 21.", response_b="12 + 7 = 19.", id="p1"),
        PairwiseItem(prompt="Capital of France?", response_a="Paris.", response_b="Madrid.", id="p2"),
    ]
    out = build_judge("pairwise", model, max_new_tokens=24).compare(pairs)
    assert all(o["forced"] for j in out for o in j.details["orders"]), [j.raw for j in out]
    assert all(j.verdict in ("A", "B", "tie") for j in out)
    scores = build_judge("rubric", model, max_new_tokens=24).judge(ITEMS)
    assert all(j.ok and j.details["samples"][0]["forced"] for j in scores), [j.raw for j in scores]
