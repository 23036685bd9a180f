"""`score_batch` edge cases on the tiny model: the same numbers as `score`, never a crash."""

from __future__ import annotations

import pytest

from selflab.models import load_model
from selflab.models.testing import tiny_llama


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = load_model(f"hf:{tiny_llama(tmp_path_factory.mktemp('tiny'))}", cache=False)
    yield model
    model.close()


def test_empty_prompt_with_empty_continuation_scores_zero_like_score(tiny):
    """An empty prompt and empty continuation made a zero-width forward (IndexError)."""
    requests = [("", [""]), ("hi", ["", " there"])]
    assert tiny.score_batch([("", [""])]) == [[0.0]]
    got = tiny.score_batch(requests)
    assert got[0] == [0.0]
    assert got[1] == pytest.approx(tiny.score(*requests[1]), abs=1e-3)
