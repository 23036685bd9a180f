"""PettingZoo AEC and Gymnasium single-learner adapters."""

from __future__ import annotations

import warnings

import pytest

from selflab.envs.adapters import PettingZooAEC, SingleLearnerEnv
from selflab.envs.baselines import VARIANTS


@pytest.mark.parametrize("env_id", sorted(VARIANTS.values()))
def test_pettingzoo_api_test(env_id: str) -> None:
    from pettingzoo.test import api_test

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api_test(PettingZooAEC(env_id), num_cycles=100, verbose_progress=False)


def test_aec_plays_a_full_game_with_final_rewards() -> None:
    env = PettingZooAEC("perudo-small-v0")
    env.reset(seed=3)
    seen = set()
    for agent in env.agent_iter(max_iter=1000):
        obs, reward, term, trunc, info = env.last()
        seen.add(agent)
        if term or trunc:
            env.step(None)
            continue
        env.step("ACTION: challenge" if "Current bid" in obs else "ACTION: bid 1 2")
    assert seen == {"player_0", "player_1"}
    assert sorted(env.game.rewards.values()) == [0.0, 1.0]


@pytest.mark.parametrize("env_id", sorted(VARIANTS.values()))
def test_gymnasium_check_env_every_game(env_id: str) -> None:
    """Every game as a single-learner Gymnasium env (scripted opponents; solo games have none)."""
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = SingleLearnerEnv(env_id, opponents=["scripted"])
        check_env(env, skip_render_check=True)
        obs, info = env.reset(seed=1)
        steps = 0
        while True:  # garbage actions: errors are counted, defaults are played, the episode still ends
            obs, reward, term, trunc, info = env.step("garbage move")
            steps += 1
            if term or trunc:
                break
            assert steps < 2000
        assert isinstance(reward, float)


def test_gymnasium_single_learner() -> None:
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(SingleLearnerEnv("perudo-small-v0", opponents=["scripted"]), skip_render_check=True)
    env = SingleLearnerEnv("perudo-small-v0", opponents=["scripted"], learner_seat=1)
    obs, info = env.reset(seed=0)
    assert info["seat"] == 1 and "You are Player 1" in obs
    obs, reward, term, trunc, info = env.step("not a move")
    assert info["error"]["kind"] == "parse" and not term and reward == 0.0
    total, n = 0.0, 40
    for ep in range(n):
        obs, _ = env.reset(seed=ep)
        while True:
            obs, reward, term, trunc, info = env.step(
                "ACTION: challenge" if "Current bid" in obs else "ACTION: bid 1 2"
            )
            if term or trunc:
                total += reward
                break
    # Always challenging at once loses to the probabilistic scripted player most of the time.
    assert total / n < 0.5
