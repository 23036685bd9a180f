"""Core protocol: error budget, defaults, private channels, turn limit, action extraction; plus
fuzzing and determinism over every registered env (the other engineers' games included)."""

from __future__ import annotations

import pytest

from selflab.envs import (
    FixedAgent,
    Observation,
    ParseError,
    RuleViolation,
    TextEnv,
    extract_action,
    list_envs,
    make,
    make_agent,
)
from selflab.envs.agents import RandomStringAgent


class Countdown(TextEnv):
    """Toy game: players alternately subtract 1 or 2 from a counter; who reaches 0 wins."""

    action_format = "ACTION: take <1 or 2>"

    def setup(self) -> None:
        self.counter = 5
        self.to_act = 0
        self.tell(0, "secret for player 0")
        self.announce("public hello")

    def current_player(self) -> int:
        return self.to_act

    def state_text(self, player: int) -> str:
        return f"counter={self.counter}"

    def state(self, player: int) -> dict:
        return {"counter": self.counter}

    def legal_actions(self, player: int) -> list[str]:
        return [f"take {k}" for k in (1, 2) if k <= self.counter]

    def apply(self, player: int, action: str) -> str:
        parts = action.lower().split()
        if len(parts) != 2 or parts[0] != "take" or not parts[1].isdigit():
            raise ParseError("use 'take <1 or 2>'")
        k = int(parts[1])
        if k not in (1, 2) or k > self.counter:
            raise RuleViolation(f"cannot take {k}")
        self.counter -= k
        self.announce(f"Player {player} takes {k}", type="action", sender=player)
        if self.counter == 0:
            self.finish({player: 1.0}, reason=f"Player {player} reached 0")
        self.to_act = 1 - player
        return f"take {k}"

    def default_action(self, player: int) -> str:
        return "take 1"


def test_valid_play_and_rewards() -> None:
    env = Countdown(2)
    env.reset(seed=0)
    for move in ["take 2", "ACTION: take 2", "blah\nAction: take 1"]:
        r = env.step(move)
        assert r.error is None
    assert env.done and r.done
    assert env.rewards == {0: 1.0, 1: 0.0}
    assert env.info["winners"] == [0]
    assert env.info["ranks"] == {0: 0, 1: 1}
    assert env.info["turns"] == 3


def test_parse_error_vs_rule_violation_and_budget() -> None:
    env = Countdown(2, error_budget=2)
    env.reset(seed=0)
    r = env.step("hello")
    assert isinstance(r.error, ParseError) and not r.done and r.action is None
    player, obs = env.observe()
    assert player == 0, "an invalid action does not advance the game"
    assert "could not be parsed" in obs and "use 'take <1 or 2>'" in obs and obs.attempts_left == 1
    r = env.step("take 3")
    assert isinstance(r.error, RuleViolation)
    assert "breaks the rules" in env.observe()[1]
    # Third invalid attempt exceeds the budget of 2: the default move is applied.
    r = env.step("nonsense")
    assert r.defaulted and r.action == "take 1" and isinstance(r.error, ParseError)
    assert env.observe()[0] == 1
    assert env.info["errors"][0] == {"parse": 2, "rule": 1, "defaults": 1}
    assert env.counter == 4


def test_private_channels_and_incremental_observations() -> None:
    env = Countdown(2)
    env.reset(seed=0)
    p, obs = env.observe()
    assert "secret for player 0" in obs and "public hello" in obs
    env.step("take 1")
    p, obs1 = env.observe()
    assert p == 1 and "secret for player 0" not in obs1 and "public hello" in obs1
    assert "Player 0 takes 1" in obs1
    env.step("take 1")
    _, obs0 = env.observe()
    # Player 0 sees only what is new since its last action (its own move and player 1's).
    assert "public hello" not in obs0 and "Player 1 takes 1" in obs0
    assert isinstance(obs0, Observation) and obs0.state == {"counter": 3}
    assert env.transcript(1) == [m for m in env.messages if m.recipients is None or 1 in m.recipients]


def test_observe_is_idempotent_and_turn_limit() -> None:
    env = Countdown(2, max_turns=1)
    env.reset(seed=0)
    assert env.observe() == env.observe()
    env.step("take 1")
    assert env.done and env.info["outcome"] == "turn limit" and env.info["winners"] == []
    with pytest.raises(RuntimeError):
        env.step("take 1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I will bid.\nACTION: bid 3 5", "bid 3 5"),
        ("**Action:** challenge.", "challenge"),
        ("action: bid 1 1\nthinking more\nACTION: bid 2 2", "bid 2 2"),
        ("no action line here\nbid 4 4", "bid 4 4"),
        ("", ""),
        ("   \n ", ""),
        ("The actions are: ACTION = vote 2", "The actions are: ACTION = vote 2"),
    ],
)
def test_extract_action(text: str, expected: str) -> None:
    assert extract_action(text) == expected


def _agent_kinds(env_id: str) -> list[str]:
    from selflab.envs import spec

    return ["scripted"] if "scripted" in spec(env_id).agents else ["random"]


ALL_ENVS = [s.id for s in list_envs()]


@pytest.mark.parametrize("env_id", ALL_ENVS)
def test_fuzz_random_strings(env_id: str) -> None:
    """Random strings never crash an env, are counted as errors, and the episode still ends."""
    total_errors = 0
    for seed in range(3):
        env = make(env_id)
        env.reset(seed=seed)
        agents = [RandomStringAgent(seed=seed * 10 + p) for p in range(env.num_players)]
        for _ in range(50_000):
            if env.done:
                break
            p, obs = env.observe()
            assert isinstance(obs, str)
            env.step(agents[p].act(obs))
        assert env.done, f"{env_id} did not end under fuzzing"
        errs = env.info["errors"]
        total_errors += sum(e["parse"] + e["rule"] for e in errs.values())
        assert set(env.rewards) == set(range(env.num_players))
    assert total_errors > 0


@pytest.mark.parametrize("env_id", ALL_ENVS)
def test_determinism_same_seed_same_episode(env_id: str) -> None:
    def run(seed: int) -> tuple:
        env = make(env_id)
        env.reset(seed=seed)
        kind = _agent_kinds(env_id)[0]
        agents = [make_agent(env_id, kind, seed=seed * 100 + p) for p in range(env.num_players)]
        for a, p in zip(agents, range(env.num_players), strict=True):
            a.begin(env.rules, p)
        moves = []
        for _ in range(10_000):
            if env.done:
                break
            p, obs = env.observe()
            r = env.step(agents[p].act(obs))
            moves.append((p, r.action, None if r.error is None else r.error.reason))
        return moves, env.rewards, [m.text for m in env.messages]

    assert run(11) == run(11)
    assert run(11) != run(12) or run(11) != run(13)


def test_fixed_agent_drives_defaults() -> None:
    env = Countdown(2, error_budget=0)
    env.reset(seed=0)
    agent = FixedAgent("garbage")
    while not env.done:
        _, obs = env.observe()
        env.step(agent.act(obs))
    assert env.info["errors"][0]["defaults"] >= 2
