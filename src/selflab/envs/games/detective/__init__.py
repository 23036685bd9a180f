"""Detective: question the suspects of a generated, provably solvable murder mystery and accuse the
murderer. Variants: detective-v0 (4 suspects, 15 questions), detective-easy-v0 (3 suspects),
detective-hard-v0 (5 suspects, 12 questions)."""

from selflab.envs.games.detective.agents import DetectiveRandom, DetectiveScripted
from selflab.envs.games.detective.env import DetectiveEnv
from selflab.envs.games.detective.instances import generate
from selflab.envs.games.detective.mystery import Mystery, is_solvable, solutions
from selflab.envs.registry import register

_AGENTS = {"scripted": DetectiveScripted, "random": DetectiveRandom}

register(
    "detective-v0",
    DetectiveEnv,
    kwargs={"suspects": 4, "max_questions": 15},
    description="Murder mystery, 4 suspects, 15 questions; score 1 - 0.5*questions/budget if solved",
    agents=_AGENTS,
)
register(
    "detective-easy-v0",
    DetectiveEnv,
    kwargs={"suspects": 3, "max_questions": 15},
    description="Murder mystery with 3 suspects (small models, smoke tests)",
    agents=_AGENTS,
)
register(
    "detective-hard-v0",
    DetectiveEnv,
    kwargs={"suspects": 5, "max_questions": 12},
    description="Murder mystery with 5 suspects and only 12 questions",
    agents=_AGENTS,
)

__all__ = [
    "DetectiveEnv",
    "DetectiveRandom",
    "DetectiveScripted",
    "Mystery",
    "generate",
    "is_solvable",
    "solutions",
]
