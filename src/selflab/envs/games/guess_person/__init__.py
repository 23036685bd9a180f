"""Guess the person over the knowledge graph (`selflab.kg`). Variants: guess-person-v0 (all people,
code answerer, 20 turns), guess-person-small-v0 (32 listed candidates, 12 turns),
guess-person-llm-answerer-v0 (seat 1 answers, free-text questions allowed)."""

from selflab.envs.games.guess_person.agents import GuessPersonRandom, GuessPersonScripted
from selflab.envs.games.guess_person.env import GuessPersonEnv, parse_answer
from selflab.envs.games.guess_person.questions import Query, QuestionError, answer, parse_query
from selflab.envs.registry import register

_AGENTS = {"scripted": GuessPersonScripted, "random": GuessPersonRandom}

register(
    "guess-person-v0",
    GuessPersonEnv,
    kwargs={"players": 1, "max_questions": 20},
    description="20 questions over 558 people; code answers; score 1 - 0.5*turns/budget on success",
    agents=_AGENTS,
)
register(
    "guess-person-small-v0",
    GuessPersonEnv,
    kwargs={"players": 1, "max_questions": 12, "pool": 32},
    description="Guess among 32 listed candidates in 12 turns (small models)",
    agents=_AGENTS,
)
register(
    "guess-person-llm-answerer-v0",
    GuessPersonEnv,
    kwargs={"players": 2, "max_questions": 20, "pool": 32},
    description="Seat 0 guesses, seat 1 answers from the person's facts (free-text questions allowed)",
    agents=_AGENTS,
)

__all__ = [
    "GuessPersonEnv",
    "GuessPersonRandom",
    "GuessPersonScripted",
    "Query",
    "QuestionError",
    "answer",
    "parse_answer",
    "parse_query",
]
