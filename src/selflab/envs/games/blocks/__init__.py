"""Blocks world: rearrange stacks into a goal; scored by success and plan length vs the optimum."""

from selflab.envs.games.blocks.agents import BlocksPlanner, BlocksRandom
from selflab.envs.games.blocks.env import BlocksEnv
from selflab.envs.registry import register

_AGENTS = {"scripted": BlocksPlanner, "random": BlocksRandom}

register(
    "blocks-v0",
    BlocksEnv,
    kwargs={"blocks": 5},
    description="Blocks world, 5 random blocks, move limit 2x optimal + 2; score = optimal/moves on success",
    agents=_AGENTS,
)
register(
    "blocks-small-v0",
    BlocksEnv,
    kwargs={"blocks": 3},
    description="Blocks world, 3 random blocks (quick smoke tests and small models)",
    agents=_AGENTS,
)
register(
    "blocks-large-v0",
    BlocksEnv,
    kwargs={"blocks": 7},
    description="Blocks world, 7 random blocks",
    agents=_AGENTS,
)

__all__ = ["BlocksEnv", "BlocksPlanner", "BlocksRandom"]
