"""A fast near-optimal planner, the scripted baseline's brain (the exact solver is kept for scoring).

The classic rule (Gupta & Nau's GN1): if some clear block can go straight to its final place, put it
there; otherwise move a clear misplaced block to the table. Every block moves at most twice, so the
plan is at most twice the optimum.
"""

from __future__ import annotations

from selflab.envs.games.blocks.world import (
    TABLE,
    Move,
    Stacks,
    apply_move,
    canonical,
    support_map,
    well_placed,
)


def next_move(stacks: Stacks, goal: Stacks) -> Move | None:
    """The planner's move in this state, or None when the goal is reached."""
    stacks, goal = canonical(stacks), canonical(goal)
    if stacks == goal:
        return None
    placed = well_placed(stacks, goal)
    goal_below = support_map(goal)
    tops = sorted(s[-1] for s in stacks)
    for b in tops:
        if b in placed:
            continue
        want = goal_below[b]
        if want == TABLE or (want in tops and want in placed):
            return Move(b, want)
    # No block can reach its final place: free one by putting a misplaced, stacked block down.
    # Prefer the block sitting on a well-placed tower's next goal support, else the tallest stack.
    heights = {s[-1]: len(s) for s in stacks}
    candidates = [b for b in tops if b not in placed and heights[b] > 1]
    candidates.sort(key=lambda b: (-heights[b], b))
    return Move(candidates[0], TABLE)


def plan(stacks: Stacks, goal: Stacks, limit: int = 1000) -> list[Move]:
    """The whole plan from `stacks` to `goal`."""
    moves: list[Move] = []
    state = canonical(stacks)
    while (move := next_move(state, goal)) is not None and len(moves) < limit:
        moves.append(move)
        state = apply_move(state, move)
    return moves
