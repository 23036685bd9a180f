"""Blocks-world agents: the near-optimal GN1 planner as the scripted baseline, and uniform random
legal moves."""

from __future__ import annotations

from selflab.envs.agents import RandomAgent, ScriptedAgent
from selflab.envs.core import Observation
from selflab.envs.games.blocks.planner import next_move
from selflab.envs.games.blocks.world import canonical


class BlocksPlanner(ScriptedAgent):
    """Puts a clear block straight into its final place when it can, else unstacks a misplaced block
    to the table (at most twice the optimal plan length; not the exact solver, kept for scoring)."""

    name = "scripted"

    def decide(self, observation: Observation) -> str:
        state = observation.state
        move = next_move(canonical(state["stacks"]), canonical(state["goal"]))
        return str(move) if move is not None else "pass"


class BlocksRandom(RandomAgent):
    """A uniformly random legal move each turn."""

    name = "random"
