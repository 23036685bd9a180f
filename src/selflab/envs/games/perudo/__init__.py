"""Perudo (Liar's Dice). Variants: perudo-v0 (ones ordinary), perudo-wild-v0 (ones wild),
perudo-small-v0 (2 players, 2 dice: short games for benchmarks and quick LLM runs)."""

from selflab.envs.games.perudo.agents import PerudoBluffer, PerudoCautious, PerudoRandom, PerudoScripted
from selflab.envs.games.perudo.env import PerudoEnv, bid_beats, count_face, parse_action
from selflab.envs.registry import register

_AGENTS = {
    "scripted": PerudoScripted,
    "random": PerudoRandom,
    "bluffer": PerudoBluffer,
    "cautious": PerudoCautious,
}

register(
    "perudo-v0",
    PerudoEnv,
    kwargs={"players": 2, "dice": 5, "ones_wild": False},
    description="Liar's dice, 2-6 players, 5 hidden dice each, ones ordinary",
    agents=_AGENTS,
)
register(
    "perudo-wild-v0",
    PerudoEnv,
    kwargs={"players": 2, "dice": 5, "ones_wild": True},
    description="Liar's dice with ones wild (no bids on ones)",
    agents=_AGENTS,
)
register(
    "perudo-small-v0",
    PerudoEnv,
    kwargs={"players": 2, "dice": 2, "ones_wild": False},
    description="Liar's dice, 2 players with 2 dice: short games for quick LLM runs",
    agents=_AGENTS,
)

__all__ = [
    "PerudoEnv",
    "PerudoScripted",
    "PerudoRandom",
    "PerudoBluffer",
    "PerudoCautious",
    "bid_beats",
    "count_face",
    "parse_action",
]
