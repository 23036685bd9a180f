"""Blocks-world plans; each step is one move, `move X onto Y` or `move X onto table`.

A step is correct when the move is legal in the current state and on a shortest way to the goal
(it lowers the optimal remaining plan length, computed by the A* solver of the blocks game, by
one). An illegal move leaves the state unchanged; a legal detour changes it, and later steps are
judged from there. The solution is right when the final state is the goal.

Held-out problems use other block letters and other sentences to describe the states.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

from selflab.envs.games.blocks.instances import random_state
from selflab.envs.games.blocks.solver import optimal_plan
from selflab.envs.games.blocks.world import (
    _MOVE_RE,
    TABLE,
    Move,
    Stacks,
    apply_move,
    canonical,
    check_move,
    legal_moves,
)
from selflab.stepwise.family import StepFamily
from selflab.stepwise.splitter import split_solution
from selflab.stepwise.types import Split, StepProblem

LETTERS: dict[str, str] = {"train": "ABCDEF", "heldout": "PQRSTU"}


def _describe_train(stacks: Stacks) -> str:
    return "; ".join(
        f"a stack with {' on '.join(reversed(s))}" if len(s) > 1 else f"{s[0]} alone" for s in stacks
    )


def _describe_heldout(stacks: Stacks) -> str:
    parts = []
    for s in stacks:
        parts.append(f"{s[0]} rests on the table")
        parts += [f"{s[i]} sits on top of {s[i - 1]}" for i in range(1, len(s))]
    return ", ".join(parts)


def move_text(m: Move) -> str:
    return f"move {m.block} onto {m.target}"


@lru_cache(maxsize=100_000)
def distance(state: Stacks, goal: Stacks) -> int:
    return len(optimal_plan(state, goal))


def parse_move_step(step: str) -> Move | str:
    """Exactly one move in the line, or the reason there is not."""
    found = list(_MOVE_RE.finditer(step))
    if not found:
        return "no 'move X onto Y' in the step"
    if len(found) > 1:
        return "more than one move in one step"
    block, target = found[0].group(1), found[0].group(2)
    return Move(block.upper(), TABLE if target.lower() == TABLE else target.upper())


class BlocksFamily(StepFamily):
    name = "blocks"
    answer_required = False
    step_format = "'move <block> onto <block>' or 'move <block> onto table'"
    example_question = (
        "Now: a stack with Y on X; Z alone. Goal: a stack with X on Z; Y alone. (A block can move only "
        "when nothing is on it.)"
    )
    example_steps = ["move Y onto table", "move X onto Z"]
    example_answer = "done"

    def make(self, rng: random.Random, split: Split, index: int) -> StepProblem:
        n = rng.randint(3, 5)
        names = list(LETTERS[split][:n])
        while True:
            initial, goal = random_state(names, rng), random_state(names, rng)
            if initial != goal and distance(initial, goal) >= 2:
                break
        if split == "train":
            question = (
                f"Now: {_describe_train(initial)}. Goal: {_describe_train(goal)}. "
                "(A block can move only when nothing is on it.)"
            )
            tpl = "stacks"
        else:
            question = (
                f"At the start {_describe_heldout(initial)}. Reach this arrangement: {_describe_heldout(goal)}. "
                "Only a block with nothing on it may be moved."
            )
            tpl = "rests-on"
        plan = optimal_plan(initial, goal)
        return StepProblem(
            id="",
            family=self.name,
            split=split,
            question=question,
            gold_steps=[move_text(m) for m in plan],
            answer="done",
            template=tpl,
            entities=names,
            state={"initial": [list(s) for s in initial], "goal": [list(s) for s in goal]},
        )

    def step_regex(self, problem: StepProblem) -> str:
        blocks = "|".join(problem.entities)
        return f"move (?:{blocks}) onto (?:{blocks}|table)"

    def initial_state(self, problem: StepProblem) -> Stacks:
        return canonical(problem.state["initial"])

    def check_step(self, problem: StepProblem, state: Any, step: str) -> tuple[bool | None, str, Any]:
        move = parse_move_step(step)
        if isinstance(move, str):
            return None, move, state
        why = check_move(state, move)
        if why is not None:
            return False, f"illegal: {why}", state
        goal = canonical(problem.state["goal"])
        nxt = apply_move(state, move)
        before, after = distance(state, goal), distance(nxt, goal)
        if after != before - 1:
            return False, f"legal but a detour ({before} moves to go before, {after} after)", nxt
        return True, "correct", nxt

    def check_answer(self, problem: StepProblem, state: Any, answer: str | None) -> bool:
        return state == canonical(problem.state["goal"])

    def answer_key(self, problem: StepProblem, text: str) -> str | None:
        """The state the moves reach (None when a move is illegal or unreadable)."""
        state = self.initial_state(problem)
        for step in split_solution(text).steps:
            move = parse_move_step(step)
            if isinstance(move, str) or check_move(state, move) is not None:
                return None
            state = apply_move(state, move)
        return str(state)

    def inject(self, problem: StepProblem, at: int, rng: random.Random) -> tuple[list[str], str, str] | None:
        goal = canonical(problem.state["goal"])
        state = self.initial_state(problem)
        steps: list[str] = []
        for m in optimal_plan(state, goal)[:at]:
            steps.append(move_text(m))
            state = apply_move(state, m)
        if state == goal:
            return None
        kind = rng.choice(("illegal", "detour"))
        if kind == "detour":
            d = distance(state, goal)
            options = [m for m in legal_moves(state) if distance(apply_move(state, m), goal) != d - 1]
            if not options:
                kind = "illegal"
            else:
                m = rng.choice(options)
                steps.append(move_text(m))
                state = apply_move(state, m)
        if kind == "illegal":
            blocks = sorted({b for s in state for b in s})
            options = [Move(b, t) for b in blocks for t in [*blocks, TABLE] if check_move(state, Move(b, t))]
            if not options:
                return None
            steps.append(move_text(rng.choice(options)))
        steps += [move_text(m) for m in optimal_plan(state, goal)]
        return steps, "done", kind

    def continue_from(self, problem: StepProblem, steps: list[str]) -> tuple[list[str], str] | None:
        state = self.initial_state(problem)
        for s in steps:
            ok, _, state = self.check_step(problem, state, s)
            if ok is not True:
                return None
        return [move_text(m) for m in optimal_plan(state, canonical(problem.state["goal"]))], "done"
