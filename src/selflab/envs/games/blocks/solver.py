"""Optimal blocks-world plans by A* search, used to score a plan against the optimum.

The heuristic counts blocks that are not well placed (each of them must move at least once), so it
is admissible and A* returns a shortest plan. Fine for the instance sizes games use (up to about
10 blocks); optimal blocks-world planning is NP-hard in general (Gupta & Nau, 1992).
"""

from __future__ import annotations

import heapq
import itertools

from selflab.envs.games.blocks.world import (
    Move,
    Stacks,
    apply_move,
    blocks_of,
    canonical,
    legal_moves,
    well_placed,
)
from selflab.errors import SelflabError


def lower_bound(stacks: Stacks, goal: Stacks) -> int:
    return len(blocks_of(stacks)) - len(well_placed(stacks, goal))


def optimal_plan(initial: Stacks, goal: Stacks, max_expansions: int = 2_000_000) -> list[Move]:
    """A shortest list of moves from `initial` to `goal`."""
    start, target = canonical(initial), canonical(goal)
    if blocks_of(start) != blocks_of(target):
        raise SelflabError(
            "initial and goal states hold different blocks",
            "give both states the same set of block names",
        )
    counter = itertools.count()
    frontier: list[tuple[int, int, Stacks]] = [(lower_bound(start, target), next(counter), start)]
    cost: dict[Stacks, int] = {start: 0}
    parent: dict[Stacks, tuple[Stacks, Move] | None] = {start: None}
    expansions = 0
    while frontier:
        _, _, state = heapq.heappop(frontier)
        if state == target:
            plan: list[Move] = []
            node = parent[state]
            while node is not None:
                prev, move = node
                plan.append(move)
                node = parent[prev]
            return plan[::-1]
        expansions += 1
        if expansions > max_expansions:
            break
        g = cost[state] + 1
        for move in legal_moves(state):
            nxt = apply_move(state, move)
            if g < cost.get(nxt, 1 << 30):
                cost[nxt] = g
                parent[nxt] = (state, move)
                heapq.heappush(frontier, (g + lower_bound(nxt, target), next(counter), nxt))
    raise SelflabError(
        f"no optimal plan found within {max_expansions} expansions",
        "use fewer blocks (the exact solver is meant for up to about 10)",
    )


def optimal_length(initial: Stacks, goal: Stacks) -> int:
    return len(optimal_plan(initial, goal))
