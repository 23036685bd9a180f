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
