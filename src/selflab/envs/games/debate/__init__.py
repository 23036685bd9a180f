"""Debate (two debaters, a pairwise judge or jury decides) and persuasion (bring the other player to
accept a position or reveal a secret)."""

from selflab.envs.games.debate.agents import (
    DebateRandom,
    DebateScripted,
    PersuasionRandom,
    PersuasionScripted,
)
from selflab.envs.games.debate.env import DebateEnv
from selflab.envs.games.debate.judge import FactCheckBaselineJudge
from selflab.envs.games.debate.persuasion import PersuasionEnv
from selflab.envs.registry import register

_DEBATE_AGENTS = {"scripted": DebateScripted, "random": DebateRandom}
_PERSUASION_AGENTS = {"scripted": PersuasionScripted, "random": PersuasionRandom}

register(
    "debate-v0",
    DebateEnv,
    kwargs={"rounds": 3, "motions": "mixed"},
    description="Debate, 3 speeches each, factual and opinion motions; judge: fact-check baseline unless judge= is given",
    agents=_DEBATE_AGENTS,
)
register(
    "debate-factual-v0",
    DebateEnv,
    kwargs={"rounds": 3, "motions": "factual"},
    description="Debate on checkable factual motions (fact table); info reports whether the truthful side won",
    agents=_DEBATE_AGENTS,
)
register(
    "persuasion-v0",
    PersuasionEnv,
    kwargs={"goal": "position", "rounds": 4},
    description="Persuasion: bring the target to ACCEPT or state a position within 4 rounds",
    agents=_PERSUASION_AGENTS,
)
register(
    "persuasion-secret-v0",
    PersuasionEnv,
    kwargs={"goal": "secret", "rounds": 4},
    description="Persuasion: make the target reveal its secret word or number within 4 rounds",
    agents=_PERSUASION_AGENTS,
)

__all__ = [
    "DebateEnv",
    "PersuasionEnv",
    "DebateScripted",
    "DebateRandom",
    "PersuasionScripted",
    "PersuasionRandom",
    "FactCheckBaselineJudge",
]
