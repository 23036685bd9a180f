"""Agents: anything with `act(observation) -> action text`.

Scripted baselines, random agents and LLM agents share this one method, so the runner and the
tournament treat them alike. An agent object plays one seat of one episode at a time; the runner
builds fresh agents per episode through factories, so agents may keep per-episode memory.

How a game exposes its agents (see `registry.register`): each game's `agents.py` defines a
scripted heuristic baseline and a random agent, and registers them as factories
`factory(seed: int | None = None, **options) -> Agent` under the names "scripted" and "random":

    register("perudo-v0", PerudoEnv, agents={"scripted": PerudoScripted, "random": RandomAgent})

`RandomAgent` below works for any game whose env lists `legal_actions` in the observation; games
whose action space cannot be enumerated subclass it and override `random_action`.

Agents the runner can batch (LLM agents) also implement `prepare(observation) ->
GenerationRequest` and `consume(completion) -> action` (`BatchableAgent`), so one
`model.generate` call serves the pending moves of every episode at once.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from selflab.envs.core import Observation

if TYPE_CHECKING:
    from selflab.models.types import Completion, GenerationRequest, LanguageModel


@runtime_checkable
class Agent(Protocol):
    """Plays one seat: reads an observation, returns an action text."""

    name: str

    def act(self, observation: Observation) -> str: ...


@runtime_checkable
class BatchableAgent(Agent, Protocol):
    """An agent whose move is one model call the runner makes for it, batched with others."""

    model: LanguageModel

    def prepare(self, observation: Observation) -> GenerationRequest: ...

    def consume(self, completion: Completion) -> str: ...


class BaseAgent:
    """Convenience base: a name, a seeded RNG, and a `last_raw` record of what was produced."""

    name: str = "agent"

    def __init__(self, seed: int | None = None, name: str | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        if name is not None:
            self.name = name
        self.last_raw: str | None = None

    def begin(self, rules: str, player: int) -> None:
        """Called by the runner at the start of an episode with the table's rules and the seat."""
        self.player = player

    def act(self, observation: Observation) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def record(self) -> dict[str, Any]:
        """What the trajectory stores about the last decision besides the action (raw output, prompt)."""
        return {}


class RandomAgent(BaseAgent):
    """Uniform over `observation.legal_actions`; games with open action spaces override
    `random_action`. Answers "ACTION: <move>" so it exercises the same parser as an LLM."""

    name = "random"

    def act(self, observation: Observation) -> str:
        legal = getattr(observation, "legal_actions", None)
        move = self.rng.choice(legal) if legal else self.random_action(observation)
        return f"ACTION: {move}"

    def random_action(self, observation: Observation) -> str:
        raise NotImplementedError(
            f"{type(self).__name__}: the env lists no legal actions; subclass RandomAgent and override random_action"
        )


class FixedAgent(BaseAgent):
    """Always answers the same text: a probe for error handling and defaults in tests."""

    name = "fixed"

    def __init__(self, text: str, seed: int | None = None, name: str | None = None) -> None:
        super().__init__(seed, name)
        self.text = text

    def act(self, observation: Observation) -> str:
        return self.text


class ScriptedAgent(BaseAgent):
    """Base for scripted baselines: `decide(observation)` returns a move; `act` formats it."""

    name = "scripted"

    def act(self, observation: Observation) -> str:
        return f"ACTION: {self.decide(observation)}"

    def decide(self, observation: Observation) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class RandomStringAgent(BaseAgent):
    """Garbage in: random printable strings, sometimes dressed as actions. The fuzzer."""

    name = "fuzz"

    _ALPHABET = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:.,-_!?'\"\n\t#*()[]{}"

    def act(self, observation: Observation) -> str:
        n = self.rng.randint(0, 40)
        text = "".join(self.rng.choice(self._ALPHABET) for _ in range(n))
        roll = self.rng.random()
        if roll < 0.3:
            return f"ACTION: {text}"
        if roll < 0.4 and observation.legal_actions:
            # Sometimes a near-miss of a legal move: right words, wrong numbers or case.
            move = self.rng.choice(observation.legal_actions)
            return f"action:  {move.upper()} {self.rng.randint(-3, 99)}"
        return text
