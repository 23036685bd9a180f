"""The real embedded model (SmolLM2-135M-Instruct) through the engine: a few short checks."""

from __future__ import annotations

import pytest

from selflab.models.types import GenerationRequest, user

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lm():
    from selflab.models import embedded
    from selflab.models.hf import HFModel

    model = HFModel(embedded.prepare(), device="cpu", name=embedded.EMBEDDED_NAME)
    yield model
    model.close()


def test_capital_of_france(lm):
    got = lm.generate([GenerationRequest.chat("What is the capital of France?", max_new_tokens=24)])[0]
    assert got.error is None
    assert "Paris" in got.text


def test_batch_of_eight(lm):
    questions = [f"Name one fact about the number {i}." for i in range(8)]
    requests = [
        GenerationRequest.chat(q, max_new_tokens=12, temperature=0.7, seed=i) for i, q in enumerate(questions)
    ]
    got = lm.generate(requests)
    assert len(got) == 8
    assert all(g.error is None and g.completion_tokens >= 1 and g.text.strip() for g in got)
    assert all(g.finish_reason in ("stop", "length") for g in got)
    # Seeded sampling is reproducible on the real model too.
    again = lm.generate(requests[:2])
    assert [a.text for a in again] == [g.text for g in got[:2]]
    # Likelihood ranks the right answer first.
    scores = lm.score([user("What is 2 + 2?")], ["4", "banana"])
    assert scores[0] > scores[1]
