"""Property tests (hypothesis) for every registered variant: arbitrary unicode, huge, empty and
numeric-edge actions never raise out of `step`, the game always ends within a fixed number of
steps (max_turns x (error_budget + 1)), and the same seed with the same actions gives the same
episode. Huge inputs (20 kB of spaces, 5000-digit numbers) are in every draw, so a quadratic
parser shows up as a slow suite (no timed assertion: see COMMON.md)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selflab.envs.registry import list_envs, make

EDGE = [
    "", " ", "\n\n", "ACTION:", "ACTION: ", "action: -1", "-1", "0", "-0", "+5", "1e9", "NaN", "inf",
    "²", "٣", "１２", "9" * 5000, "-" + "9" * 5000, "bid " + "9" * 5000 + " 5", "bid -3 5", "bid 3 -5",
    "vote -1", "vote 99999999999999999999", "ask -2 Is it cold?", "PROPOSE: books=-1 hats=0 balls=0",
    "PROPOSE: books=" + "9" * 5000, "ASK born_before " + "9" * 5000, "ASK " + "x" * 3000 + ": alibi",
    "ACTION: " + " " * 20000 + "x", "ask " + " " * 20000 + ": ", "ACTION: move A" + " " * 20000,
    "ACTION: GUESS: " + "a " * 5000, "\u200b\u200b", "ACTION: \x00\x01", "ACTION: x" + " " * 20000 + "y", "🙂" * 500, "ACCEPT" * 3000,
    "x" * 30000,
]  # fmt: skip
ACTIONS = st.one_of(
    st.sampled_from(EDGE),
    st.text(max_size=60),
    st.from_regex(r"ACTION: [a-zA-Z ]{0,12}-?[0-9]{1,30} ?-?[0-9]{0,12}", fullmatch=True),
)
VARIANTS = [s.id for s in list_envs()]


def _play(env_id: str, seed: int, actions: list[str]) -> tuple[list[dict], int]:
    env = make(env_id)
    env.reset(seed=seed)
    bound = env.max_turns * (env.error_budget + 1) + 1
    steps = 0
    for action in itertools.cycle(actions or [""]):
        if env.done:
            break
        env.step(action)
        steps += 1
        assert steps <= bound, f"{env_id} did not end within {bound} steps"
    return [m.to_dict() for m in env.messages], steps


@pytest.mark.parametrize("env_id", VARIANTS)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), actions=st.lists(ACTIONS, min_size=1, max_size=8))
def test_any_actions_never_raise_end_and_replay(env_id: str, seed: int, actions: list[str]) -> None:
    first, steps = _play(env_id, seed, actions)
    again, steps_again = _play(env_id, seed, actions)
    assert first == again and steps == steps_again


@pytest.mark.parametrize("action", EDGE)
def test_edge_actions_on_every_game(action: str) -> None:
    for env_id in VARIANTS:
        env = make(env_id)
        env.reset(seed=1)
        result = env.step(action)
        assert result.error is None or result.error.kind in ("parse", "rule")


@pytest.mark.parametrize("env_id", VARIANTS)
def test_rules_text_states_the_turn_limit_and_the_default_move(env_id: str) -> None:
    env = make(env_id)
    env.reset(seed=0)
    text = env.rules.lower()
    assert "limit" in text, f"{env_id}: the rules text does not state the turn limit"
    assert "default" in text or "says nothing" in text or "silent" in text, env_id
    assert "{" not in env.rules and "<<" not in env.rules, f"{env_id}: unfilled placeholder"
