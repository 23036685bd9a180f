"""Registry of games with versioned variants: `make("perudo-v0", players=4, dice=5)`.

How a game registers itself: its package `selflab/envs/games/<game>/__init__.py` imports its env
and agents and calls `register` once per variant on import:

    from selflab.envs.registry import register
    register(
        "perudo-v0", PerudoEnv,
        kwargs={"players": 2, "dice": 5},                 # defaults; make() overrides them
        description="Liar's dice, 2-6 players, ones are not wild",
        agents={"scripted": PerudoScripted, "random": RandomAgent},
    )
    register("perudo-wild-v0", PerudoEnv, kwargs={"players": 2, "dice": 5, "ones_wild": True}, ...)

`selflab.envs.games` imports every game package found in its folder (pkgutil), so a new folder
is picked up without editing any list; a game that fails to import is logged and skipped.
`make`, `list_envs` and `make_agent` import the games on first use.

Ids are `<name>-v<N>`; a rule change gets a new version, never an edit in place, so recorded
episodes stay reproducible. An agent factory is `factory(seed: int | None = None, **options)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from selflab.envs.agents import Agent, RandomAgent, RandomStringAgent
from selflab.envs.core import Env
from selflab.errors import ConfigError

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*-v\d+$")

AgentFactory = Callable[..., Agent]


@dataclass(frozen=True)
class EnvSpec:
    """One registered variant."""

    id: str
    entry_point: Callable[..., Env]
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    agents: dict[str, AgentFactory] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.id.rsplit("-v", 1)[0]

    @property
    def version(self) -> int:
        return int(self.id.rsplit("-v", 1)[1])

    @property
    def game(self) -> str:
        """The game package this variant belongs to (module path under selflab.envs.games)."""
        module = getattr(self.entry_point, "__module__", "") or ""
        parts = module.split(".")
        return parts[3] if len(parts) > 3 and parts[:3] == ["selflab", "envs", "games"] else module

    def make(self, **overrides: Any) -> Env:
        env = self.entry_point(**{**self.kwargs, **overrides})
        env.env_id = self.id
        return env


_REGISTRY: dict[str, EnvSpec] = {}


def register(
    id: str,
    entry_point: Callable[..., Env],
    *,
    kwargs: dict[str, Any] | None = None,
    description: str = "",
    agents: Mapping[str, AgentFactory] | None = None,
) -> EnvSpec:
    """Add a variant. Re-registering the same id with the same entry point replaces it (module
    reloads); a different entry point under a taken id is an error."""
    if not _ID_RE.match(id):
        raise ConfigError(
            f"env id {id!r} is not of the form <name>-v<N>", "use lowercase ids like 'perudo-v0'"
        )
    old = _REGISTRY.get(id)
    if old is not None and getattr(old.entry_point, "__qualname__", None) != getattr(
        entry_point, "__qualname__", None
    ):
        raise ConfigError(
            f"env id {id!r} is already registered by {old.entry_point!r}", "pick a new id or version"
        )
    spec = EnvSpec(id, entry_point, dict(kwargs or {}), description, dict(agents or {}))
    _REGISTRY[id] = spec
    return spec


def _load_games() -> None:
    import selflab.envs.games  # noqa: F401  (registers every game package on import)


def spec(id: str) -> EnvSpec:
    _load_games()
    if id not in _REGISTRY:
        close = [k for k in _REGISTRY if k.split("-v")[0] == id.split("-v")[0]] or sorted(_REGISTRY)
        raise ConfigError(
            f"unknown env {id!r}", f"pick one of: {', '.join(sorted(close))} (see `selflab games`)"
        )
    return _REGISTRY[id]


def make(id: str, **overrides: Any) -> Env:
    """A fresh env for the variant `id`, its defaults overridden by keyword options. Call
    `reset(seed)` before use."""
    s = spec(id)
    try:
        return s.make(**overrides)
    except TypeError as err:
        raise ConfigError(f"bad options for {id}: {err}", f"valid defaults are {s.kwargs}") from err


def list_envs() -> list[EnvSpec]:
    """Every registered variant, sorted by id."""
    _load_games()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def make_agent(env_id: str, agent: str, seed: int | None = None, **options: Any) -> Agent:
    """Build an agent from a spec string: "scripted", "random" or any name the game registered;
    "fuzz" (random strings); "llm:<model spec>" (e.g. "llm:smollm2-135m", "llm:hf:/path")."""
    if agent.startswith("llm:"):
        from selflab.envs.llm_agent import LLMAgent

        return LLMAgent.from_spec(agent[4:], env_id=env_id, seed=seed, **options)
    if agent == "fuzz":
        return RandomStringAgent(seed=seed)
    s = spec(env_id)
    factory = s.agents.get(agent)
    if factory is None and agent == "random":
        factory = RandomAgent
    if factory is None:
        names = sorted({*s.agents, "random", "fuzz"})
        raise ConfigError(
            f"{env_id} has no agent {agent!r}", f"use one of {', '.join(names)} or llm:<model spec>"
        )
    return factory(seed=seed, **options)
