"""Deal or No Deal as a two-player env: private values, proposals on a public channel, accept or
no deal; rewards follow the objective switch (cooperative, semi, competitive)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from selflab.envs.core import Hidden, ParseError, RuleViolation, TextEnv
from selflab.envs.games.dealnodeal.game import (
    ITEMS,
    OBJECTIVES,
    DondInstance,
    complement,
    describe,
    is_pareto_optimal,
    max_joint,
    parse_action,
    parse_counts,
    proposal_text,
    rewards,
    score,
)
from selflab.envs.games.dealnodeal.instances import generate, shipped
from selflab.envs.grammar import alts, free_text, lit
from selflab.errors import ConfigError

RULES = Path(__file__).with_name("rules.txt").read_text(encoding="utf-8")
MAX_SAY_CHARS = 400

OBJECTIVE_TEXT = {
    "cooperative": "cooperative: your reward is YOUR score PLUS the other player's score",
    "semi": "semi: your reward is your own score",
    "competitive": "competitive: your reward is YOUR score MINUS the other player's score",
}


class DealNoDealEnv(TextEnv):
    """Two negotiators split books, hats and balls within `max_turns` actions.

    `instance` None draws a pool from the episode seed; an int indexes the shipped file
    (200 pools); a `DondInstance` or dict plays that pool. Who opens is drawn from the seed unless
    `first_player` is given.
    """

    rules = RULES
    action_format = "ACTION: SAY: <message> | PROPOSE: books=<n> hats=<n> balls=<n> | ACCEPT | REJECT"
    min_players: ClassVar[int] = 2
    max_players: ClassVar[int] = 2

    def __init__(
        self,
        players: int = 2,
        *,
        objective: str = "semi",
        max_turns: int = 10,
        instance: int | dict[str, Any] | DondInstance | None = None,
        first_player: int | None = None,
        error_budget: int = 3,
    ) -> None:
        super().__init__(players, error_budget=error_budget, max_turns=max_turns)
        if objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {objective!r}", f"use one of {', '.join(OBJECTIVES)}")
        if first_player not in (None, 0, 1):
            raise ConfigError(f"first_player must be 0 or 1, got {first_player}", "pass first_player=0 or 1")
        if isinstance(instance, dict):
            instance = DondInstance.model_validate(instance)
        if isinstance(instance, int) and not 0 <= instance < len(shipped()):
            raise ConfigError(f"instance index {instance} is out of range", f"use 0..{len(shipped()) - 1}")
        self.rules = RULES.replace("<<MAX_TURNS>>", str(max_turns))
        self.objective = objective
        self.instance_option = instance
        self.first_player_option = first_player
        self.inst = DondInstance(counts=(1, 1, 1), values=((0, 0, 10), (0, 10, 0)))
        self.first = 0
        self.pending: tuple[int, tuple[int, ...]] | None = None  # (proposer, items it keeps)
        self.proposals: dict[int, list[tuple[int, ...]]] = {0: [], 1: []}

    # -------------------------------------------------------------------- hooks

    def setup(self) -> None:
        opt = self.instance_option
        if opt is None:
            self.inst = generate(self.rng, id=f"dond-seed{self.seed}")
        elif isinstance(opt, int):
            self.inst = shipped()[opt]
        else:
            self.inst = opt
        self.first = (
            self.first_player_option if self.first_player_option is not None else self.rng.randrange(2)
        )
        self.pending = None
        self.proposals = {0: [], 1: []}
        self._info.update(
            {
                "instance": self.inst.id,
                "objective": self.objective,
                "counts": list(self.inst.counts),
                "values": [list(v) for v in self.inst.values],
                "first_player": self.first,
                "deal": None,
            }
        )
        self.announce(
            f"Deal or No Deal. The pool: {describe(self.inst.counts)}. Objective: {OBJECTIVE_TEXT[self.objective]}. "
            f"At most {self.max_turns} turns in all; Player {self.first} starts.",
            type="setup",
        )
        for p in (0, 1):
            vals = ", ".join(f"{name}={v}" for name, v in zip(ITEMS, self.inst.values[p], strict=True))
            self.tell(
                p, f"Your private values per item: {vals} (the whole pool is worth 10 to you).", type="values"
            )

    def current_player(self) -> int:
        return (self.first + self.turn) % 2

    def state_text(self, player: int) -> str:
        vals = ", ".join(f"{name}={v}" for name, v in zip(ITEMS, self.inst.values[player], strict=True))
        lines = [
            f"Pool: {describe(self.inst.counts)}. Your values per item: {vals}.",
            f"Objective: {OBJECTIVE_TEXT[self.objective]}.",
            f"Turn {self.turn + 1} of {self.max_turns}.",
        ]
        if self.pending is not None and self.pending[0] != player:
            you_get = complement(self.inst.counts, self.pending[1])
            lines.append(
                f"On the table: Player {self.pending[0]} keeps {describe(self.pending[1])}; you would get "
                f"{describe(you_get)}, worth {score(self.inst.values[player], you_get)} to you. "
                "ACCEPT it, or any other action rejects it."
            )
        else:
            lines.append("No proposal is waiting for your answer.")
        return "\n".join(lines)

    def state(self, player: int) -> dict[str, Any]:
        pending = None
        if self.pending is not None and self.pending[0] != player:
            pending = list(complement(self.inst.counts, self.pending[1]))
        return {
            "counts": list(self.inst.counts),
            "values": list(self.inst.values[player]),
            "objective": self.objective,
            "turn": self.turn,
            "max_turns": self.max_turns,
            "offer": pending,  # what this player would receive if it accepts now
            "my_proposals": [list(a) for a in self.proposals[player]],
            "their_proposals": [list(a) for a in self.proposals[1 - player]],
        }

    def move_grammar(self, player: int) -> str:
        """SAY with a one-line message, PROPOSE with counts within the pool, ACCEPT only when the
        other player's proposal waits, REJECT."""
        counts = [alts(str(n) for n in range(c + 1)) for c in self.inst.counts]
        moves = ["say", "propose", lit("REJECT")]
        if self.pending is not None and self.pending[0] != player:
            moves.append(lit("ACCEPT"))
        return (
            f"move: {' | '.join(moves)}\n"
            f'say: "SAY: " MESSAGE\nMESSAGE: {free_text(MAX_SAY_CHARS)}\n'
            f'propose: "PROPOSE: books=" ({counts[0]}) " hats=" ({counts[1]}) " balls=" ({counts[2]})'
        )

    def hidden_values(self, player: int) -> list[Hidden]:
        """The other player's private item values, as a list and as the text they are shown in."""
        other = list(self.inst.values[1 - player])
        if other == list(self.inst.values[player]):
            return []
        shown = ", ".join(f"{name}={v}" for name, v in zip(ITEMS, other, strict=True))
        return [
            # Lists of three small numbers collide with proposals: the list is checked by key,
            # the text form the values are shown in is checked everywhere.
            Hidden(
                "other player's values",
                other,
                text=False,
                keys=("their_values", "other_values"),
                anywhere=False,
            ),
            Hidden("other player's values (text)", shown, keys=()),
        ]

    def apply(self, player: int, action: str) -> str:
        parsed = parse_action(action)
        if parsed is None:
            raise ParseError(f"start with SAY:, PROPOSE:, ACCEPT or REJECT; got {action[:80]!r}")
        kind, rest = parsed
        offer_for_me = self.pending is not None and self.pending[0] != player
        if kind == "accept":
            if not offer_for_me:
                raise RuleViolation("there is no proposal from the other player to accept")
            assert self.pending is not None
            self.announce(f"Player {player} accepts.", type="accept", sender=player)
            self._deal(proposer=self.pending[0], kept=self.pending[1])
            return "ACCEPT"
        if kind == "propose":
            counts = parse_counts(rest)
            if counts is None:
                raise ParseError(
                    f"a proposal needs item counts like 'books=1 hats=0 balls=2'; got {rest[:80]!r}"
                )
            over = [
                f"{a} {name}s (pool has {c})"
                for a, c, name in zip(counts, self.inst.counts, ITEMS, strict=True)
                if a > c
            ]
            if over:
                raise RuleViolation("you cannot keep more than the pool holds: " + ", ".join(over))
            self.pending = (player, counts)
            self.proposals[player].append(counts)
            self.announce(
                f"Player {player} proposes to keep {describe(counts)}; Player {1 - player} would get "
                f"{describe(complement(self.inst.counts, counts))}.",
                type="proposal",
                sender=player,
            )
            return proposal_text(counts)
        if kind == "say":
            text = " ".join(rest.split())[:MAX_SAY_CHARS]
            if not text:
                raise ParseError("SAY: needs a message after the colon")
            self.pending = None if offer_for_me else self.pending
            self.announce(f"Player {player} says: {text}", type="chat", sender=player)
            return f"SAY: {text}"
        # reject
        if offer_for_me:
            self.pending = None
        self.announce(
            f"Player {player} rejects." + (f" {rest}" if rest else ""), type="reject", sender=player
        )
        return "REJECT"

    def default_action(self, player: int) -> str:
        return "REJECT"

    def on_turn_limit(self) -> None:
        self._info.update({"deal": None, "scores": [0, 0], "agreement": False, "pareto_optimal": False})
        self.finish({0: 0.0, 1: 0.0}, reason="no deal (turn limit)", winners=[])

    # -------------------------------------------------------------------- scoring

    def _deal(self, proposer: int, kept: tuple[int, ...]) -> None:
        alloc = {proposer: kept, 1 - proposer: complement(self.inst.counts, kept)}
        scores = (score(self.inst.values[0], alloc[0]), score(self.inst.values[1], alloc[1]))
        r = rewards(self.objective, (float(scores[0]), float(scores[1])))
        self._info.update(
            {
                "deal": {"0": list(alloc[0]), "1": list(alloc[1])},
                "scores": list(scores),
                "agreement": True,
                "joint_score": sum(scores),
                "max_joint_score": max_joint(self.inst),
                "pareto_optimal": is_pareto_optimal(self.inst, proposer, kept),
            }
        )
        if self.objective == "cooperative":
            winners: list[int] = []
        else:
            winners = [p for p in (0, 1) if scores[p] > scores[1 - p]]
        self.finish({0: r[0], 1: r[1]}, reason=f"deal: scores {scores[0]} and {scores[1]}", winners=winners)
