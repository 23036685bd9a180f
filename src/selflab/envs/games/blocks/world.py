"""Blocks-world rules: a state is a set of stacks; one move puts a clear block on the table or on
another clear block. Pure logic, no env machinery, so the solver, the planner and the env share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TABLE = "table"

Stacks = tuple[tuple[str, ...], ...]


def canonical(stacks: Stacks | list[list[str]] | list[tuple[str, ...]]) -> Stacks:
    """Stacks sorted by their bottom block, empty ones dropped: the order of stacks on the table
    does not matter, so two arrangements with the same towers compare equal."""
    return tuple(sorted(tuple(s) for s in stacks if len(s) > 0))


@dataclass(frozen=True)
class Move:
    """Put `block` onto `target` (another block, or TABLE)."""

    block: str
    target: str

    def __str__(self) -> str:
        return f"move {self.block} {self.target}"


_MOVE_RE = re.compile(
    r"\bmove\s+(?:block\s+)?([A-Za-z])\s+(?:(?:on|onto|to|on\s+to)\s+)?(?:the\s+|block\s+)?([A-Za-z]|table)\b",
    re.IGNORECASE,
)


def parse_move(text: str) -> Move | None:
    """The last `move X Y` / `move X table` in the text (models often think first, then answer),
    or None when there is none. Tolerates `move A onto B`, `move A to the table`."""
    found = list(_MOVE_RE.finditer(text))
    if not found:
        return None
    block, target = found[-1].group(1), found[-1].group(2)
    target = TABLE if target.lower() == TABLE else target.upper()
    return Move(block.upper(), target)


def blocks_of(stacks: Stacks) -> set[str]:
    return {b for s in stacks for b in s}


def check_move(stacks: Stacks, move: Move) -> str | None:
    """Why the move is illegal in this state, or None when it is legal."""
    blocks = blocks_of(stacks)
    if move.block not in blocks:
        return f"there is no block {move.block} (blocks: {', '.join(sorted(blocks))})"
    if move.target != TABLE and move.target not in blocks:
        return f"there is no block {move.target} (blocks: {', '.join(sorted(blocks))})"
    if move.block == move.target:
        return f"block {move.block} cannot be put on itself"
    tops = {s[-1] for s in stacks}
    if move.block not in tops:
        above = next(s for s in stacks if move.block in s)
        over = above[above.index(move.block) + 1 :]
        return f"block {move.block} is not clear ({', '.join(over)} on top of it)"
    if move.target == TABLE:
        if any(s == (move.block,) for s in stacks):
            return f"block {move.block} is already on the table"
        return None
    if move.target not in tops:
        stack = next(s for s in stacks if move.target in s)
        over = stack[stack.index(move.target) + 1 :]
        return f"block {move.target} is not clear ({', '.join(over)} on top of it)"
    return None


def apply_move(stacks: Stacks, move: Move) -> Stacks:
    """The state after a legal move (call `check_move` first)."""
    out = [list(s) for s in stacks]
    for s in out:
        if s and s[-1] == move.block:
            s.pop()
            break
    if move.target == TABLE:
        out.append([move.block])
    else:
        for s in out:
            if s and s[-1] == move.target:
                s.append(move.block)
                break
    return canonical(out)


def legal_moves(stacks: Stacks) -> list[Move]:
    """Every legal move, in a fixed order (for random agents and the solver)."""
    tops = sorted(s[-1] for s in stacks)
    moves = []
    for b in tops:
        on_table = any(s == (b,) for s in stacks)
        if not on_table:
            moves.append(Move(b, TABLE))
        moves.extend(Move(b, t) for t in tops if t != b)
    return moves


def support_map(stacks: Stacks) -> dict[str, str]:
    """block -> what it rests on (another block or TABLE)."""
    below: dict[str, str] = {}
    for s in stacks:
        for i, b in enumerate(s):
            below[b] = TABLE if i == 0 else s[i - 1]
    return below


def well_placed(stacks: Stacks, goal: Stacks) -> set[str]:
    """Blocks that never need to move again: on their goal support, with everything below them
    also well placed. Every other block must move at least once (an admissible lower bound)."""
    goal_below = support_map(goal)
    placed: set[str] = set()
    for s in stacks:
        for i, b in enumerate(s):
            want = goal_below.get(b)
            have = TABLE if i == 0 else s[i - 1]
            if want == have and (i == 0 or s[i - 1] in placed):
                placed.add(b)
            else:
                break
    return placed


def render(stacks: Stacks) -> str:
    """Stacks as text, one per line, bottom to top."""
    if not stacks:
        return "(no blocks)"
    return "\n".join(
        f"  stack {i + 1} (bottom to top): {' '.join(s)}" for i, s in enumerate(canonical(stacks))
    )
