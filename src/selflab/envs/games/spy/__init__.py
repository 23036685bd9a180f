"""Spy game (Spyfall-like). Variants: spy-v0 (4 players, 1 round, suspicion updates), spy-long-v0
(2 rounds), spy-quick-v0 (no per-answer suspicion moves: fewer model calls)."""

from selflab.envs.games.spy.agents import SpyRandom, SpyScripted
from selflab.envs.games.spy.env import SpyEnv
from selflab.envs.games.spy.locations import load_data, question_attribute
from selflab.envs.registry import register

_AGENTS = {"scripted": SpyScripted, "random": SpyRandom}

register(
    "spy-v0",
    SpyEnv,
    kwargs={"players": 4, "rounds": 1, "suspicion": True},
    description="Spyfall-like: find the spy by closed questions; suspicion after each answer; vote",
    agents=_AGENTS,
)
register(
    "spy-long-v0",
    SpyEnv,
    kwargs={"players": 4, "rounds": 2, "suspicion": True},
    description="Spy game with two question rounds",
    agents=_AGENTS,
)
register(
    "spy-quick-v0",
    SpyEnv,
    kwargs={"players": 4, "rounds": 1, "suspicion": False},
    description="Spy game without per-answer suspicion moves",
    agents=_AGENTS,
)

__all__ = ["SpyEnv", "SpyRandom", "SpyScripted", "load_data", "question_attribute"]
