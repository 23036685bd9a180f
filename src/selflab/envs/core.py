"""`TextEnv`, the base class every game subclasses: it implements the `Env` protocol
(`selflab.envs.protocol`) around five game hooks, with the machinery games share (message
channels, error budget, turn limit, one RNG per episode).

A refused action (`ParseError` or `RuleViolation`) does not advance the game: the same player is
asked again, and its next observation says why, until its per-turn error budget runs out; then the
game applies its documented default move (`TextEnv.default_action`) so every episode ends.

How a game is written (see games/perudo for a complete one): subclass `TextEnv`, set `rules`
(the rules text shown to LLM players, with the ONE action format) and implement `setup`,
`current_player`, `state_text`, `apply` and `default_action`; optionally `state` (a structured
view for scripted agents), `legal_actions` (used by random agents) and `on_turn_limit`.

The protocol's names and `extract_action` are re-exported here, where games import them from.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from selflab.envs.protocol import (
    GAME,
    ActionError,
    ChannelMessage,
    Env,
    EpisodeOutcome,
    Hidden,
    Observation,
    ParseError,
    RuleViolation,
    StepResult,
)
from selflab.envs.reader import extract_action

if TYPE_CHECKING:
    from selflab.models.types import Constraint

__all__ = [  # the protocol's names are re-exported: games and tests import them from here
    "GAME",
    "ActionError",
    "ChannelMessage",
    "Env",
    "EpisodeOutcome",
    "ErrorCounts",
    "Hidden",
    "Observation",
    "ParseError",
    "RuleViolation",
    "StepResult",
    "TextEnv",
    "extract_action",
]


@dataclass
class ErrorCounts:
    """Per-player tallies, reported in `env.info["errors"]`."""

    parse: int = 0
    rule: int = 0
    defaults: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"parse": self.parse, "rule": self.rule, "defaults": self.defaults}


@dataclass
class _Turn:
    attempts: int = 0
    error: ActionError | None = None


class TextEnv(ABC):
    """Base class for games: implements the protocol around five game-specific hooks.

    Construction takes the game's options; `reset(seed)` starts an episode with a fresh
    `self.rng = random.Random(seed)` (the only randomness a game may use). `error_budget` is the
    number of refused attempts a player gets per turn before `default_action` is applied;
    `max_turns` caps applied moves so every episode ends (then `on_turn_limit` decides).
    """

    env_id: str = ""
    rules: str = ""
    action_format: str = "ACTION: <your move>"
    max_reply_chars: ClassVar[int] = 16_000
    """A reply longer than this is refused (a parse error) before any regex reads it."""
    max_action_chars: ClassVar[int] = 2_000
    """An extracted action longer than this is refused; free-text games raise it."""
    min_players: ClassVar[int] = 2
    max_players: ClassVar[int] = 2
    complete_observations: ClassVar[bool] = False
    """True when `state_text` carries all of the past a player needs (the game's own summary: e.g.
    the dice left and this round's bids in Perudo). The observation is then that state alone,
    without the log of messages since the player's last move, and is marked
    `Observation.complete`, so LLM agents keep the rules and the latest observation rather than a
    growing conversation. Why a game-level switch: only the game knows which past is relevant;
    cutting the oldest turns to fit a token budget drops whatever happens to be oldest. Such an
    observation starts with who the player is and the action format and ends with "Your move.",
    so consecutive prompts of a seat share a long start (the engine's prefix cache serves it)."""

    def __init__(self, players: int = 2, *, error_budget: int = 3, max_turns: int = 200) -> None:
        from selflab.errors import ConfigError

        if not self.min_players <= players <= self.max_players:
            raise ConfigError(
                f"{type(self).__name__} takes {self.min_players} to {self.max_players} players, got {players}",
                f"pass players= between {self.min_players} and {self.max_players}",
            )
        if error_budget < 0 or max_turns < 1:
            raise ConfigError(
                f"error_budget must be >= 0 and max_turns >= 1 (got {error_budget}, {max_turns})",
                "pass error_budget=3, max_turns=200 or similar",
            )
        self.num_players = players
        self.error_budget = error_budget
        self.max_turns = max_turns
        self.seed: int | None = None
        self.rng = random.Random(0)
        self.messages: list[ChannelMessage] = []
        self.turn = 0
        self._done = True
        self._rewards: dict[int, float] = {p: 0.0 for p in range(players)}
        self._info: dict[str, Any] = {}
        self._cursor: dict[int, int] = {}
        self._turn_state = _Turn()
        self._errors: dict[int, ErrorCounts] = {}

    # ----------------------------------------------------------------- hooks for games

    @abstractmethod
    def setup(self) -> None:
        """Deal the episode using `self.rng`; post opening messages with `self.tell`/`self.announce`."""

    @abstractmethod
    def current_player(self) -> int:
        """Who acts now."""

    @abstractmethod
    def state_text(self, player: int) -> str:
        """The player's current private view as text (own dice, current bid, ...)."""

    @abstractmethod
    def apply(self, player: int, action: str) -> str:
        """Parse and apply `action` (already stripped of any `ACTION:` prefix) for `player`.
        Raise `ParseError` or `RuleViolation` without changing any state; return the canonical
        action text. Call `self.finish(...)` when the game ends."""

    @abstractmethod
    def default_action(self, player: int) -> str:
        """A legal action applied when the player exhausted its error budget (documented in the
        rules, e.g. challenge, pass, forfeit). Must be accepted by `apply`."""

    def state(self, player: int) -> dict[str, Any]:
        """Structured private view for scripted agents."""
        return {}

    def legal_actions(self, player: int) -> list[str] | None:
        """All legal actions, where the game can enumerate them (random agents sample these)."""
        return None

    def move_grammar(self, player: int) -> str | None:
        """Lark rules defining `move`: the legal actions of `player` now (see `selflab.envs.grammar`).
        None: the game declares no grammar (the reply is then unconstrained)."""
        return None

    def action_grammar(self, player: int) -> Constraint | None:
        """The grammar of a legal reply for `player` at this turn, `ACTION: <move>`, as a
        `Constraint` for constrained decoding; None when the game declares none."""
        rules = self.move_grammar(player)
        if rules is None:
            return None
        from selflab.envs.grammar import action_constraint

        return action_constraint(rules)

    def hidden_values(self, player: int) -> list[Hidden]:
        """The values `player` must not know at this moment (others' dice, the location, the secret
        person, item values, truth labels, targets, secrets). Every game declares them (an empty
        list for games of full information); the leak checker in the test suite plays every
        variant and asserts none of them reaches the player."""
        raise NotImplementedError(f"{type(self).__name__} does not declare hidden_values(player)")

    def on_turn_limit(self) -> None:
        """Called when `max_turns` moves were applied and the game is not over: a draw by default."""
        self.finish({p: 0.0 for p in range(self.num_players)}, reason="turn limit")

    # ----------------------------------------------------------------- helpers for games

    def announce(self, text: str, type: str = "public", sender: int = GAME) -> None:
        """A message everyone sees."""
        self.messages.append(ChannelMessage(sender, None, type, text, self.turn))

    def tell(
        self,
        recipients: int | set[int] | frozenset[int],
        text: str,
        type: str = "private",
        sender: int = GAME,
    ) -> None:
        """A message only `recipients` see."""
        rec = frozenset([recipients]) if isinstance(recipients, int) else frozenset(recipients)
        self.messages.append(ChannelMessage(sender, rec, type, text, self.turn))

    def finish(
        self,
        rewards: dict[int, float],
        reason: str = "",
        winners: list[int] | None = None,
        ranks: dict[int, int] | None = None,
    ) -> None:
        """End the episode. `winners` defaults to the players with the highest reward (none when
        everyone ties); `ranks` (0 = best, ties share a rank) default to the order of rewards.
        Tournaments rate players from the ranks."""
        self._rewards = {p: float(rewards.get(p, 0.0)) for p in range(self.num_players)}
        if winners is None:
            best = max(self._rewards.values())
            winners = [p for p, r in self._rewards.items() if r == best]
            if len(winners) == self.num_players:
                winners = []
        if ranks is None:
            distinct = sorted(set(self._rewards.values()), reverse=True)
            ranks = {p: distinct.index(r) for p, r in self._rewards.items()}
        self._info["winners"] = sorted(winners)
        self._info["ranks"] = {p: int(ranks.get(p, self.num_players)) for p in range(self.num_players)}
        self._info["outcome"] = reason
        self._done = True
        self.announce(f"Game over: {reason}" if reason else "Game over.", type="system")

    # ----------------------------------------------------------------- protocol

    @property
    def done(self) -> bool:
        return self._done

    @property
    def rewards(self) -> dict[int, float]:
        return dict(self._rewards)

    @property
    def info(self) -> dict[str, Any]:
        info = dict(self._info)
        info["turns"] = self.turn
        info["errors"] = {p: c.to_dict() for p, c in self._errors.items()}
        return info

    def reset(self, seed: int | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.messages = []
        self.turn = 0
        self._done = False
        self._rewards = {p: 0.0 for p in range(self.num_players)}
        self._info = {"winners": [], "outcome": ""}
        self._cursor = {p: 0 for p in range(self.num_players)}
        self._turn_state = _Turn()
        self._errors = {p: ErrorCounts() for p in range(self.num_players)}
        self.setup()

    def observe(self) -> tuple[int, Observation]:
        """The player to act and its observation. Idempotent: calling it twice changes nothing."""
        if self._done:
            raise RuntimeError("the episode is over; call reset()")
        player = self.current_player()
        new = tuple(m for m in self.messages[self._cursor.get(player, 0) :] if m.visible_to(player))
        prompt = f"You are Player {player}. Your move. End your reply with one line: {self.action_format}"
        if self.complete_observations:
            # Laid out for prefix reuse: the lines that stay the same from move to move come first.
            parts = [f"You are Player {player}. End your reply with one line: {self.action_format}"]
            prompt = "Your move."
        else:
            parts = [m.render(player) for m in new]
        parts.append(self.state_text(player).strip())
        error = self._turn_state.error
        attempts_left = self.error_budget - self._turn_state.attempts
        if error is not None:
            what = "could not be parsed" if error.kind == "parse" else "breaks the rules"
            parts.append(
                f"Your last action {what}: {error.reason}\n"
                f"Try again ({attempts_left} attempt(s) left before the default move)."
            )
        parts.append(prompt)
        text = "\n".join(p for p in parts if p)
        return player, Observation(
            text,
            player=player,
            state=self.state(player),
            legal_actions=self.legal_actions(player),
            messages=new,
            error=error,
            attempts_left=attempts_left,
            turn=self.turn,
            grammar=self.action_grammar(player),
            complete=self.complete_observations,
        )

    def step(self, action: str) -> StepResult:
        """Apply the current player's action, or refuse it and keep the same player."""
        if self._done:
            raise RuntimeError("the episode is over; call reset()")
        player = self.current_player()
        before = len(self.messages)
        try:
            canonical = self.apply(player, self.read_action(action))
        except ActionError as err:
            counts = self._errors[player]
            if isinstance(err, ParseError):
                counts.parse += 1
            else:
                counts.rule += 1
            self._turn_state.attempts += 1
            self._turn_state.error = err
            self._cursor[player] = before
            if self._turn_state.attempts <= self.error_budget:
                return StepResult(player, False, self.rewards, self.info, error=err)
            # Budget spent: the documented default move keeps the game going.
            counts.defaults += 1
            fallback = self.default_action(player)
            self.tell(player, f"Error budget spent; the default move was played: {fallback}", type="system")
            canonical = self.apply(player, fallback)
            return self._advance(player, canonical, error=err, defaulted=True)
        # Messages the action itself produced stay unread for the actor, so it sees the outcome
        # (e.g. the dice revealed by its own challenge) in its next observation.
        self._cursor[player] = before
        return self._advance(player, canonical)

    def read_action(self, reply: object) -> str:
        """The action in a reply, with the length caps applied: the one bounded reader of `step`."""
        raw = reply if isinstance(reply, str) else str(reply)
        if len(raw) > self.max_reply_chars:
            raise ParseError(
                f"the reply is {len(raw)} characters long; at most {self.max_reply_chars} are read. "
                "Reply briefly and end with the ACTION line"
            )
        text = extract_action(raw)
        if len(text) > self.max_action_chars:
            raise ParseError(
                f"the action is {len(text)} characters long; at most {self.max_action_chars} are read"
            )
        return text

    def _advance(
        self, player: int, canonical: str, error: ActionError | None = None, defaulted: bool = False
    ) -> StepResult:
        self.turn += 1
        self._turn_state = _Turn()
        if not self._done and self.turn >= self.max_turns:
            self.on_turn_limit()
            if not self._done:
                self.finish({p: 0.0 for p in range(self.num_players)}, reason="turn limit")
        return StepResult(
            player, self._done, self.rewards, self.info, error=error, action=canonical, defaulted=defaulted
        )

    def transcript(self, player: int | None = None) -> list[ChannelMessage]:
        """All messages (the referee's view), or those one player could see."""
        if player is None:
            return list(self.messages)
        return [m for m in self.messages if m.visible_to(player)]
