"""Deal or No Deal negotiation (Lewis et al. 2017) with a cooperative / semi / competitive objective
switch (the DoND self-play paper)."""

from selflab.envs.games.dealnodeal.agents import DondNegotiator, DondRandom
from selflab.envs.games.dealnodeal.env import DealNoDealEnv
from selflab.envs.registry import register

_AGENTS = {"scripted": DondNegotiator, "random": DondRandom}

register(
    "dealnodeal-v0",
    DealNoDealEnv,
    kwargs={"objective": "semi", "max_turns": 10},
    description="Deal or No Deal, reward = own score (the original game); no deal = 0",
    agents=_AGENTS,
)
register(
    "dealnodeal-coop-v0",
    DealNoDealEnv,
    kwargs={"objective": "cooperative", "max_turns": 10},
    description="Deal or No Deal, fully cooperative: reward = sum of both scores",
    agents=_AGENTS,
)
register(
    "dealnodeal-comp-v0",
    DealNoDealEnv,
    kwargs={"objective": "competitive", "max_turns": 10},
    description="Deal or No Deal, strictly competitive: reward = own score minus the other's (zero-sum)",
    agents=_AGENTS,
)

__all__ = ["DealNoDealEnv", "DondNegotiator", "DondRandom"]
