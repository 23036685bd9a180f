"""The shipped topic table supports every constraint the generator draws from it."""

from selflab.tasks import instruction_tasks
from selflab.tasks import instructions as I
from selflab.tasks.text import contains_term


def test_every_topic_keyword_occurs_as_a_whole_word():
    for name, topic in I.topics().items():
        for kw in topic["keywords"]:
            assert any(contains_term(s, kw) for s in topic["en"]), (name, kw)


def test_many_draws_build_references_that_pass_their_verifier():
    for seed in range(30):
        for task in instruction_tasks(40, seed=seed):
            assert task.check(task.reference), task.id
