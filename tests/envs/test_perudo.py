"""Perudo rule engine on fixed dice, computed by hand."""

from __future__ import annotations

import pytest

from selflab.envs import ParseError, RuleViolation, make
from selflab.envs.games.perudo import PerudoEnv, bid_beats, count_face, parse_action
from selflab.envs.games.perudo.agents import bid_probability, prob_at_least
from selflab.envs.games.perudo.instances import generate, load, save
from selflab.errors import ConfigError

DICE = [[2, 2, 3, 5, 5], [1, 4, 5, 5, 6]]  # fives: 2 + 2 = 4; ones: 1


def table(ones_wild: bool = False, **kw) -> PerudoEnv:
    env = PerudoEnv(players=2, dice=5, ones_wild=ones_wild, initial_dice=DICE, **kw)
    env.reset(seed=0)
    return env


def test_challenge_true_bid_challenger_loses() -> None:
    env = table()
    assert env.step("ACTION: bid 4 5").error is None  # exactly four fives: true
    r = env.step("ACTION: challenge")
    assert r.error is None and r.action == "challenge"
    assert env.counts == {0: 5, 1: 4}
    assert env.challenges[-1] == {
        "round": 1,
        "bid": [4, 5],
        "bidder": 0,
        "challenger": 1,
        "actual": 4,
        "loser": 1,
    }
    # The loser starts the next round with fresh dice.
    assert env.round == 2 and env.current_player() == 1 and len(env.hands[1]) == 4


def test_challenge_false_bid_bidder_loses_without_wild() -> None:
    env = table()
    env.step("bid 5 5")  # only four fives without wild ones
    env.step("challenge")
    assert env.counts == {0: 4, 1: 5}
    assert env.challenges[-1]["actual"] == 4 and env.current_player() == 0


def test_ones_wild_counts_ones() -> None:
    env = table(ones_wild=True)
    env.step("bid 5 5")  # four fives + one wild one = 5: true
    env.step("challenge")
    assert env.challenges[-1]["actual"] == 5
    assert env.counts == {0: 5, 1: 4}
    assert count_face({0: [1, 1, 2], 1: [2, 6]}, 2, ones_wild=True) == 4
    assert count_face({0: [1, 1, 2], 1: [2, 6]}, 2, ones_wild=False) == 2


def test_illegal_bids_are_rule_violations() -> None:
    env = table()
    env.step("bid 3 4")
    for bad, fragment in [
        ("bid 3 3", "does not beat"),
        ("bid 2 6", "does not beat"),
        ("bid 3 4", "does not beat"),
        ("bid 11 2", "impossible"),
        ("bid 4 7", "does not exist"),
    ]:
        r = env.step(bad)
        assert isinstance(r.error, RuleViolation) and fragment in r.error.reason, bad
        # Each refusal is counted; reset the per-turn attempts by a valid move later.
        env._turn_state.attempts = 0
    assert env.current_player() == 1 and env.bid == (3, 4)
    assert env.step("bid 3 5").error is None and env.bid == (3, 5)


def test_challenge_without_bid_and_wild_ones_bid() -> None:
    env = table(ones_wild=True)
    assert isinstance(env.step("challenge").error, RuleViolation)
    assert isinstance(env.step("bid 2 1").error, RuleViolation)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bid 3 5", ("bid", (3, 5))),
        ("BID: 3, 5", ("bid", (3, 5))),
        ("bid three fives", ("bid", (3, 5))),
        ("3x5", ("bid", (3, 5))),
        ("I bid 4 sixes", ("bid", (4, 6))),
        ("Challenge!", ("challenge", None)),
        ("dudo", ("challenge", None)),
    ],
)
def test_parser_tolerates_formats(text: str, expected: tuple) -> None:
    assert parse_action(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "", "hello", "bid", "bid 3", "bid 3 5 and challenge", "1 2 3",
        # Ambiguous bids are refused, not read as their first two numbers:
        "bid 3 5 or 4 6", "bid 3 fives or 4 sixes", "bid twenty one fives", "bid 2.5 6", "bid 3 5 6",
    ],
)  # fmt: skip
def test_parser_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        parse_action(text)


def test_last_player_with_dice_wins() -> None:
    env = PerudoEnv(players=2, dice=1, initial_dice=[[3], [4]])
    env.reset(seed=0)
    env.step("bid 1 3")
    r = env.step("challenge")
    assert r.done and env.done
    assert env.rewards == {0: 1.0, 1: 0.0} and env.info["winners"] == [0]
    assert env.info["ranks"] == {0: 0, 1: 1}


def test_elimination_order_gives_ranks() -> None:
    env = PerudoEnv(players=3, dice=1, initial_dice=[[2], [2], [6]])
    env.reset(seed=5)
    env.step("bid 2 2")  # true: two 2s
    env.step("challenge")  # player 1 loses its only die
    assert env.counts[1] == 0 and env.eliminated == [1]
    assert env.current_player() == 2  # the loser is out: the next player with dice starts
    while not env.done:
        p, _ = env.observe()
        env.step("challenge" if env.bid else "bid 1 2")
    assert env.info["ranks"][1] == 2
    assert sorted(env.info["ranks"].values()) == [0, 1, 2]


def test_default_moves_after_budget() -> None:
    env = table(error_budget=1)
    env.step("xx")
    r = env.step("yy")
    assert r.defaulted and r.action == "bid 1 1" and env.bid == (1, 1)
    env.step("zz")
    r = env.step("zz")
    assert r.defaulted and r.action == "challenge"


def test_bid_order_and_probabilities() -> None:
    assert bid_beats((3, 2), (2, 6)) and bid_beats((2, 6), (2, 5)) and not bid_beats((2, 5), (2, 5))
    assert prob_at_least(1, 1, 1 / 6) == pytest.approx(1 / 6)
    assert prob_at_least(0, 3, 0.5) == 1.0 and prob_at_least(4, 3, 0.5) == 0.0
    # Own dice 5,5 and 3 unseen dice: P(at least 3 fives) = P(at least one five among 3) = 1 - (5/6)^3.
    assert bid_probability(3, 5, [5, 5], 5, False) == pytest.approx(1 - (5 / 6) ** 3)


def test_state_is_private_and_registry_variants(tmp_path) -> None:
    env = make("perudo-v0", players=4, dice=3)
    env.reset(seed=1)
    p, obs = env.observe()
    others = [h for q, h in env.hands.items() if q != p]
    assert obs.state["dice"] == env.hands[p] and "dice" in obs
    assert all(
        f"Round 1: your dice are {' '.join(map(str, h))}" not in obs for h in others if h != env.hands[p]
    )
    assert make("perudo-wild-v0").ones_wild and make("perudo-small-v0").dice_per_player == 2
    with pytest.raises(ConfigError):
        make("perudo-v0", players=7)
    inst = generate(5, seed=3, players=3, dice=2)
    assert inst == load(save(inst, tmp_path / "i.jsonl")) and inst == generate(5, seed=3, players=3, dice=2)
    env = PerudoEnv(**inst[0].env_kwargs())
    env.reset(seed=inst[0].seed)
    assert [env.hands[p] for p in range(3)] == inst[0].initial_dice
