"""The step judges on the real embedded model: every step gets a probability (likelihood) or a
verdict / an explicit parse error (LLM), never both and never neither."""

from __future__ import annotations

import pytest

from selflab.stepwise import get_family
from selflab.stepwise.bench import injected_items, judge_items
from selflab.stepwise.judges import LikelihoodStepJudge, LLMStepJudge

pytestmark = pytest.mark.integration


def test_step_judges_on_the_embedded_model() -> None:
    from selflab.models import load_model

    model = load_model("smollm2-135m")
    items = injected_items("dates", 2, seed=0, correct_fraction=0.0)
    for judge in (LikelihoodStepJudge(model), LLMStepJudge(model)):
        js = judge_items(judge, items)
        for it, j in zip(items, js, strict=True):
            assert len(j.steps) == len(it.labelled.steps)
            for s in j.steps:
                assert (s.p_correct is None) != (s.parse_error is None)
                assert s.p_correct is None or 0.0 <= s.p_correct <= 1.0
    fam = get_family("dates")
    assert fam.label(items[0].problem, fam.gold_text(items[0].problem)).first_error == -1
