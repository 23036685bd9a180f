"""Adversarial Taboo (SPAG): the attacker makes the defender say a secret word; the defender guesses it."""

from selflab.envs.games.taboo.agents import TabooNaiveDefender, TabooRandom, TabooScripted
from selflab.envs.games.taboo.env import TabooEnv
from selflab.envs.registry import register

_AGENTS = {"scripted": TabooScripted, "random": TabooRandom, "naive": TabooNaiveDefender}

register(
    "taboo-v0",
    TabooEnv,
    kwargs={"rounds": 5},
    description="Adversarial Taboo (SPAG), 5 rounds each, 310 shipped target words; win +1, loss -1, tie 0",
    agents=_AGENTS,
)
register(
    "taboo-short-v0",
    TabooEnv,
    kwargs={"rounds": 3},
    description="Adversarial Taboo, 3 rounds each (quick LLM runs)",
    agents=_AGENTS,
)

__all__ = ["TabooEnv", "TabooScripted", "TabooRandom", "TabooNaiveDefender"]
