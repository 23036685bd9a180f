"""The spy game's shipped data: locations with their attributes, and the bank of closed questions
(each tied to one location attribute) that scripted players ask and that free-text questions are
matched against, so that answers can be checked against the truth."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from selflab.envs.words import find_word, tokens


@lru_cache(maxsize=1)
def load_data() -> dict[str, Any]:
    """The shipped location set: {"questions": {attr: {question, keywords}}, "locations": [...]}."""
    text = resources.files("selflab.envs.games.spy").joinpath("locations.json").read_text()
    return json.loads(text)


def question_attribute(question: str, questions: dict[str, dict[str, Any]]) -> str | None:
    """The location attribute a free-text question asks about, or None if it matches none: the
    bank question itself, else the first attribute with a keyword said as a whole word or phrase
    (simple inflections allowed, `selflab.envs.words`); never a substring ("season" is not "sea")."""
    toks = tokens(question)
    for attr, entry in questions.items():
        if tokens(entry["question"]) == toks:
            return attr
    for attr, entry in questions.items():
        if any(find_word(toks, k) for k in entry["keywords"]):
            return attr
    return None
