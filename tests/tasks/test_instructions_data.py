"""The shipped topic table supports every constraint the generator draws from it, for all topics."""

import random

import pytest

from selflab.tasks import instruction_tasks
from selflab.tasks import instructions as I
from selflab.tasks.text import contains_term
from selflab.tasks.verifiers import detect_language, words


def test_every_topic_keyword_occurs_as_a_whole_word():
    assert len(I.all_topics()) >= 40 and set(I.topics()) == set(I.V1_TOPICS)
    for name, topic in I.all_topics().items():
        for kw in topic["keywords"]:
            hits = sum(contains_term(s, kw) for s in topic["en"])
            assert 0 < hits <= len(topic["en"]) - 4, (name, kw)  # forbidden_words needs 4 clean sentences


def test_topic_sentences_fit_every_constraint():
    for name, topic in I.all_topics().items():
        assert len(topic["en"]) == 8 and all("," not in s for s in topic["en"]), name  # no_commas
        assert sum(len(words(s)) for s in topic["en"]) > 60, name  # min_words up to 60
        for lang in ("fr", "es", "de"):
            assert detect_language(" ".join(topic[lang][:3])) == lang, (name, lang)
    sents = [s for t in I.all_topics().values() for s in t["en"]]
    assert len(set(sents)) == len(sents)  # no sentence shared by two topics (clean topic splits)


@pytest.mark.parametrize("pool", ["v1", "all"])
def test_many_draws_build_references_that_pass_their_verifier(pool: str):
    for seed in range(30):
        for task in instruction_tasks(40, seed=seed, pool=pool):
            assert task.check(task.reference), task.id


def test_all_topics_and_kinds_in_every_mode():
    for kind in I.CONSTRAINT_KINDS:
        for task in instruction_tasks(20, seed=5, kinds=(kind,), pool="all"):
            for seed in range(2):
                assert task.check(I.respond(task, random.Random(seed), "correct"))
                assert (
                    not task.check(I.respond(task, random.Random(seed), "off")) or kind == "include_keywords"
                )
