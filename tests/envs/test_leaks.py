"""The leak checker on every registered variant: seeded episodes with scripted, random and mixed
seats, and no hidden value (`TextEnv.hidden_values`) may reach another player's text or state.
A new game is checked here without any edit (and fails if it does not declare hidden_values)."""

from __future__ import annotations

import pytest

from selflab.envs.core import Hidden
from selflab.envs.games.spy import SpyEnv
from selflab.envs.leaks import check_episode, check_now
from selflab.envs.registry import list_envs, make

SEEDS = range(4)


def _combos(players: int, seed: int) -> list[list[str]]:
    return [
        ["scripted"] * players,
        ["random"] * players,
        [("scripted" if (i + seed) % 2 else "random") for i in range(players)],
    ]


@pytest.mark.parametrize("env_id", [s.id for s in list_envs()])
def test_no_hidden_value_reaches_another_player(env_id: str) -> None:
    players = make(env_id).num_players
    leaks, checks = [], 0
    for seed in SEEDS:
        for combo in _combos(players, seed):
            result = check_episode(env_id, combo, seed)
            leaks += result.leaks
            checks += result.checks
    assert not leaks, leaks[:5]


def test_every_game_declares_its_hidden_values() -> None:
    for s in list_envs():
        env = make(s.id)
        env.reset(seed=0)
        for p in range(env.num_players):
            assert isinstance(env.hidden_values(p), list), s.id


class _LeakySpy(SpyEnv):
    """The spy game as it was: answers' truth labels in every player's state."""

    def state(self, player: int) -> dict:
        out = super().state(player)
        out["qa"] = [dict(x) for x in self.qa]
        return out


def test_the_checker_finds_a_planted_leak() -> None:
    env = _LeakySpy(players=4, location="beach", spy=0)
    env.reset(seed=1)
    env.step("ACTION: ask 1 Is it cold there?")
    env.step("ACTION: answer no")
    leaks = check_now(env)
    assert any(leak.hidden == "truth labels" and leak.player == 0 for leak in leaks), leaks


def test_the_checker_finds_text_and_state_leaks() -> None:
    env = make("taboo-v0", target="apple")
    env.reset(seed=0)
    env.tell(1, "psst: the word is apple")
    leaks = check_now(env)
    assert [leak.hidden for leak in leaks] == ["target word"]
    assert Hidden("x", "y").anywhere
