"""Constrained decoding on the real embedded model (SmolLM2-135M-Instruct): formats it cannot
follow on its own come out right, and answers stay sensible."""

from __future__ import annotations

import json

import pytest

from selflab.models.constraints import text_matches
from selflab.models.types import Constraint, GenerationRequest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lm():
    from selflab.models import embedded
    from selflab.models.hf import HFModel

    model = HFModel(embedded.prepare(), device="cpu", name=embedded.EMBEDDED_NAME)
    yield model
    model.close()


def test_embedded_model_follows_formats_under_constraints(lm):
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "country": {"type": "string", "maxLength": 20},
        },
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    cases = [
        (
            "What is the capital of France? Answer as JSON with city and country.",
            Constraint.json_schema(schema),
        ),
        ("Is Paris in France? Answer yes or no.", Constraint.regex("(yes|no)")),
        (
            "Rate this answer from 1 to 5: 'Paris is the capital of France.'",
            Constraint.grammar('start: "Score: " /[1-5]/'),
        ),
        ("Which is bigger, 3 or 7?", Constraint.choice(["[[A]] 3", "[[B]] 7"])),
    ]
    requests = [GenerationRequest.chat(q, max_new_tokens=40, constraint=c) for q, c in cases]
    outs = lm.generate(requests)
    for (_, c), out in zip(cases, outs, strict=True):
        assert out.finish_reason == "stop", out
        assert text_matches(c, out.text), out.text
    assert "Paris" in json.loads(outs[0].text)["city"]
