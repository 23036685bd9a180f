"""The step judges on the real embedded model: every step gets a probability (likelihood) or a
verdict / an explicit parse error (LLM), never both and never neither."""

from __future__ import annotations

import pytest

from selflab.stepwise import get_family
from selflab.stepwise.bench import injected_items, judge_items
from selflab.stepwise.detective import case_of
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


def test_constrained_detective_steps_parse_on_the_embedded_model() -> None:
    """With the step format constrained, every finished line the real model writes for a detective
    case is a step the verifier reads (right or wrong), and the answer names a suspect."""
    from selflab.models import load_model
    from selflab.stepwise import step_problems
    from selflab.stepwise.search import SearchConfig, sample_full

    model = load_model("smollm2-135m")
    fam = get_family("detective")
    ps = step_problems("detective", 2, seed=0, split="heldout")
    cfg = SearchConfig(n=2, max_steps=4, max_new_tokens=160, constrain=True)
    for p, group in zip(ps, sample_full(model, fam, ps, cfg), strict=True):
        for text, _ in group:
            lab = fam.label(p, text)
            done = lab.steps if lab.answer_text is not None else lab.steps[:-1]
            assert all(s.ok is not None for s in done), text
            if lab.answer_text is not None:
                assert fam.answer_key(p, text) in case_of(p).names
