"""The multi-agent, pull-based environment protocol every game speaks: the `Env` interface and the
values that cross it (observations, step results, channel messages, action errors, hidden values).

The loop, as in TextArena: the env decides who acts next.

    env.reset(seed=7)
    while not env.done:
        player, observation = env.observe()
        result = env.step(agents[player].act(observation))
    env.rewards  # {player: reward}

An action that cannot be parsed (`ParseError`) and one that parses but breaks a rule
(`RuleViolation`) are different errors. The base class games share is `selflab.envs.core.TextEnv`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from selflab.models.types import Constraint

GAME = -1
"""Sender id of the game master (the rule engine itself)."""


class ActionError(Exception):
    """An action the env refused. `kind` tells parse errors from rule violations."""

    kind: ClassVar[str] = "error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "reason": self.reason}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.reason == self.reason  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.kind, self.reason))


class ParseError(ActionError):
    """The text does not match the game's action format ("bid three fives please")."""

    kind: ClassVar[str] = "parse"


class RuleViolation(ActionError):
    """The action parses but the rules forbid it (a bid that does not rise, a move onto a covered block)."""

    kind: ClassVar[str] = "rule"


@dataclass(frozen=True)
class ChannelMessage:
    """One message on the table. `recipients` None means everyone; otherwise only those players
    (and the log) see it, which is how dice, locations and clues stay private."""

    sender: int
    recipients: frozenset[int] | None
    type: str
    text: str
    turn: int = 0

    def visible_to(self, player: int) -> bool:
        return self.recipients is None or player in self.recipients

    def render(self, player: int | None = None) -> str:
        who = "Game" if self.sender == GAME else f"Player {self.sender}"
        if self.recipients is not None and player is not None and len(self.recipients) < 2:
            who += " (private)"
        elif self.recipients is not None and player is None:
            who += " -> " + ",".join(str(p) for p in sorted(self.recipients))
        return f"[{who}] {self.text}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "recipients": None if self.recipients is None else sorted(self.recipients),
            "type": self.type,
            "text": self.text,
            "turn": self.turn,
        }


class Observation(str):
    """What one player sees when asked to act: the text an LLM reads (it *is* a str), plus a
    structured view for scripted agents, so no heuristic ever parses prose.

    `state` holds the game-specific private view (own dice, current bid, ...); `legal_actions`
    lists legal action strings where the game can enumerate them (random agents use it);
    `messages` are the messages new to this player since its last action; `error` is the reason
    its previous attempt was refused, with `attempts_left` tries before the default move;
    `grammar` is the grammar of a legal reply at this turn (`TextEnv.action_grammar`), for
    constrained decoding, or None where the game declares none.

    `complete`: the text carries everything of the past that the game considers relevant to this
    move (e.g. Perudo: the dice left and this round's bids), so a reader may forget earlier
    observations. The game, not a token budget, decides what history matters: an LLM agent then
    keeps only the rules and this observation (`selflab.envs.llm_agent`), instead of the whole
    conversation cut to fit its context. False (the default) means the text is what is new since
    the player's last move, and the history is needed.
    """

    player: int
    state: dict[str, Any]
    legal_actions: list[str] | None
    messages: tuple[ChannelMessage, ...]
    error: ActionError | None
    attempts_left: int
    turn: int
    grammar: Constraint | None
    complete: bool

    def __new__(
        cls,
        text: str = "",
        *,
        player: int = 0,
        state: dict[str, Any] | None = None,
        legal_actions: list[str] | None = None,
        messages: tuple[ChannelMessage, ...] = (),
        error: ActionError | None = None,
        attempts_left: int = 0,
        turn: int = 0,
        grammar: Constraint | None = None,
        complete: bool = False,
    ) -> Observation:
        obs = super().__new__(cls, text)
        obs.player = player
        obs.state = dict(state or {})
        obs.legal_actions = None if legal_actions is None else list(legal_actions)
        obs.messages = tuple(messages)
        obs.error = error
        obs.attempts_left = attempts_left
        obs.turn = turn
        obs.grammar = grammar
        obs.complete = complete
        return obs

    @property
    def text(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class Hidden:
    """A value one player must not learn, declared by the game for the leak checker
    (`selflab.envs.leaks`).

    `value` is looked for in the player's structured state (deep equality; a value listed among
    other alternatives, like the true location in the list of possible locations, is a candidate
    list and not a leak); with `text`, its rendering (`str(value)`, a list as space-separated items)
    is looked for, as a whole phrase, in every message the player can see (from message index
    `since` on: the value may be new, like this round's dice) and in its observation text; `keys` are
    dictionary keys that must not carry it in the state at all (e.g. "culprit"). `anywhere=False`
    checks the state by `keys` only, for values that are public as names (the culprit is one of
    the listed suspects).
    """

    name: str
    value: Any
    text: bool = True
    keys: tuple[str, ...] = ()
    anywhere: bool = True
    since: int = 0


@dataclass
class StepResult:
    """What one `step` did. `error` is None when the action was applied; `action` is the
    canonical text of the move applied (the default move when the budget ran out), None when
    nothing was applied; `defaulted` says the default move was used."""

    player: int
    done: bool
    rewards: dict[int, float]
    info: dict[str, Any]
    error: ActionError | None = None
    action: str | None = None
    defaulted: bool = False


@runtime_checkable
class Env(Protocol):
    """A multi-agent, pull-based text game."""

    env_id: str
    num_players: int
    rules: str

    @property
    def done(self) -> bool: ...

    @property
    def rewards(self) -> dict[int, float]: ...

    @property
    def info(self) -> dict[str, Any]: ...

    def reset(self, seed: int | None = None) -> None: ...

    def observe(self) -> tuple[int, Observation]: ...

    def step(self, action: str) -> StepResult: ...

    def action_grammar(self, player: int) -> Constraint | None: ...


@dataclass
class EpisodeOutcome:
    """Summary of a finished episode, shared by runner and tournaments."""

    rewards: dict[int, float]
    winners: list[int]
    turns: int
    errors: dict[int, dict[str, int]] = field(default_factory=dict)
    outcome: str = ""
