"""Blocks world as a one-player env: the env validates and executes moves; the optimal plan length
(A* solver) scores the plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from selflab.envs.core import Hidden, ParseError, RuleViolation, TextEnv
from selflab.envs.games.blocks.instances import BlocksInstance, generate, shipped
from selflab.envs.games.blocks.solver import optimal_length
from selflab.envs.games.blocks.world import (
    Stacks,
    apply_move,
    canonical,
    check_move,
    legal_moves,
    parse_move,
    render,
)
from selflab.envs.grammar import alts
from selflab.errors import ConfigError

RULES = Path(__file__).with_name("rules.txt").read_text(encoding="utf-8")
PASS = "pass"


class BlocksEnv(TextEnv):
    """One player rearranges blocks from initial to goal stacks within a move limit.

    `instance` picks the puzzle: None draws a fresh one with `blocks` blocks from the episode
    seed; an int indexes the shipped instance file (`instances.jsonl`, 100 puzzles of 3 to 7
    blocks); a `BlocksInstance` (or its dict) plays that puzzle. The move limit is
    `ceil(limit_factor * optimal) + limit_slack` unless `move_limit` is given.
    """

    rules = RULES
    action_format = "ACTION: move X Y   (or: ACTION: move X table)"
    min_players: ClassVar[int] = 1
    max_players: ClassVar[int] = 1
    complete_observations: ClassVar[bool] = True
    """A puzzle of full information: the stacks, the goal, the moves used and the last move are all
    of the past a player needs, so each prompt is the rules plus that state (not a growing log of
    every earlier move: ~700-token prompts after a few moves made expert iteration train slowly)."""

    def __init__(
        self,
        players: int = 1,
        *,
        blocks: int = 5,
        instance: int | dict[str, Any] | BlocksInstance | None = None,
        move_limit: int | None = None,
        limit_factor: float = 2.0,
        limit_slack: int = 2,
        error_budget: int = 3,
    ) -> None:
        super().__init__(players, error_budget=error_budget, max_turns=1000)
        if limit_factor < 1.0 or limit_slack < 0 or (move_limit is not None and move_limit < 1):
            raise ConfigError(
                "move limits must allow at least the optimal plan",
                "use limit_factor >= 1, limit_slack >= 0 and move_limit >= 1",
            )
        if isinstance(instance, dict):
            instance = BlocksInstance.model_validate(instance)
        if isinstance(instance, int) and not 0 <= instance < len(shipped()):
            raise ConfigError(f"instance index {instance} is out of range", f"use 0..{len(shipped()) - 1}")
        self.blocks = blocks
        self.instance_option = instance
        self.move_limit_option = move_limit
        self.limit_factor = limit_factor
        self.limit_slack = limit_slack
        self.instance: BlocksInstance | None = None
        self.stacks: Stacks = ()
        self.goal: Stacks = ()
        self.moves: list[str] = []
        self.invalid_moves = 0

    # -------------------------------------------------------------------- hooks

    def setup(self) -> None:
        opt = self.instance_option
        if opt is None:
            inst = generate(self.blocks, self.rng, id=f"b{self.blocks}-seed{self.seed}")
        elif isinstance(opt, int):
            inst = shipped()[opt]
        else:
            inst = opt
            if inst.optimal < 0:
                inst = inst.model_copy(
                    update={"optimal": optimal_length(inst.initial_stacks, inst.goal_stacks)}
                )
        self.instance = inst
        self.stacks = inst.initial_stacks
        self.goal = inst.goal_stacks
        self.moves = []
        self.invalid_moves = 0
        limit = self.move_limit_option or int(-(-self.limit_factor * inst.optimal // 1)) + self.limit_slack
        self.max_turns = max(1, limit)
        self._info.update({"instance": inst.id, "optimal": inst.optimal, "move_limit": self.max_turns})
        self.announce(
            f"Blocks world, {sum(len(s) for s in self.stacks)} blocks. You have {self.max_turns} moves.",
            type="setup",
        )
        if self.stacks == self.goal:  # only possible with a hand-made instance
            self._end(success=True)

    def current_player(self) -> int:
        return 0

    def state_text(self, player: int) -> str:
        return (
            f"Current stacks:\n{render(self.stacks)}\n"
            f"Goal stacks:\n{render(self.goal)}\n"
            f"Moves used: {len(self.moves)} of {self.max_turns}."
            + (f" Your last move: {self.moves[-1]}." if self.moves else "")
        )

    def state(self, player: int) -> dict[str, Any]:
        return {
            "stacks": [list(s) for s in self.stacks],
            "goal": [list(s) for s in self.goal],
            "moves_used": len(self.moves),
            "move_limit": self.max_turns,
        }

    def hidden_values(self, player: int) -> list[Hidden]:
        """Nothing: blocks world is a puzzle of full information."""
        return []

    def legal_actions(self, player: int) -> list[str]:
        return [str(m) for m in legal_moves(self.stacks)]

    def move_grammar(self, player: int) -> str:
        """Only moves of clear blocks onto the table or onto another clear block."""
        return "move: " + alts(self.legal_actions(player))

    def apply(self, player: int, action: str) -> str:
        if action.strip().lower().rstrip(".") == PASS:
            self.moves.append(PASS)
            self.announce("Player 0 passes (a move is used).", type="move", sender=player)
            return PASS
        move = parse_move(action)
        if move is None:
            raise ParseError(f"expected 'move X Y' or 'move X table', got {action[:80]!r}")
        reason = check_move(self.stacks, move)
        if reason is not None:
            self.invalid_moves += 1
            raise RuleViolation(f"illegal move '{move}': {reason}")
        self.stacks = apply_move(self.stacks, move)
        self.moves.append(str(move))
        self.announce(f"Player 0: {move}", type="move", sender=player)
        if self.stacks == self.goal:
            self._end(success=True)
        return str(move)

    def default_action(self, player: int) -> str:
        return PASS

    def on_turn_limit(self) -> None:
        self._end(success=False)

    # -------------------------------------------------------------------- scoring

    def _end(self, success: bool) -> None:
        assert self.instance is not None
        used = len(self.moves)
        optimal = self.instance.optimal
        score = (optimal / used if used else 1.0) if success else 0.0
        self._info.update(
            {
                "success": success,
                "moves_used": used,
                "optimal": optimal,
                "excess_moves": used - optimal if success else None,
                "efficiency": score,
                "invalid_moves": self.invalid_moves,
                "plan": list(self.moves),
            }
        )
        reason = (
            f"goal reached in {used} moves (optimal {optimal})" if success else f"move limit {used} reached"
        )
        self.finish({0: score}, reason=reason, winners=[0] if success else [])

    def plan_is_optimal(self) -> bool:
        return bool(self._info.get("success")) and len(self.moves) == (
            self.instance.optimal if self.instance else -1
        )


def stacks_from_text(text: str) -> Stacks:
    """'A B / C' -> ((A, B), (C,)): a compact notation for tests and hand-made instances."""
    return canonical([part.split() for part in text.split("/")])
