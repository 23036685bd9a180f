"""Deal or No Deal: scores under each objective computed by hand, no deal, rule checks, instance
constraints, determinism, fuzzing, and the conceding negotiator against random play."""

from __future__ import annotations

import random
import statistics

import pytest
from scipy.stats import wilcoxon

from selflab.envs.agents import RandomStringAgent
from selflab.envs.core import ParseError, RuleViolation
from selflab.envs.games.dealnodeal import DealNoDealEnv, DondNegotiator, DondRandom
from selflab.envs.games.dealnodeal.game import DondInstance, parse_action, parse_counts, rewards
from selflab.envs.games.dealnodeal.instances import generate, shipped
from selflab.envs.registry import make
from selflab.errors import ConfigError

# books, hats, balls. Player 0: 3*2 + 1*2 + 2*1 = 10; player 1: 0 + 1*4 + 2*3 = 10.
INST = DondInstance(id="hand", counts=(3, 1, 2), values=((2, 2, 1), (0, 4, 3)))


def env_for(objective, **kw):
    env = DealNoDealEnv(objective=objective, instance=INST, first_player=0, **kw)
    env.reset(seed=0)
    return env


@pytest.mark.parametrize(
    ("objective", "expected"),
    [("cooperative", (14.0, 14.0)), ("semi", (8.0, 6.0)), ("competitive", (2.0, -2.0))],
)
def test_deal_rewards_under_each_objective(objective, expected):
    env = env_for(objective)
    assert env.step("ACTION: PROPOSE: books=3 hats=1 balls=0").error is None
    r = env.step("ACTION: ACCEPT")
    assert r.done
    # Player 0 keeps 3 books + 1 hat = 6 + 2 = 8; player 1 gets 2 balls = 6.
    assert env.info["scores"] == [8, 6]
    assert (env.rewards[0], env.rewards[1]) == expected
    assert env.info["pareto_optimal"] is True
    assert env.info["max_joint_score"] == 3 * 2 + 4 + 2 * 3


def test_dominated_deal_is_flagged_not_pareto_optimal():
    env = env_for("semi")
    env.step("ACTION: PROPOSE: books=3 hats=0 balls=2")  # p0: 6 + 2 = 8, p1: 4; (8, 6) dominates
    env.step("ACTION: ACCEPT")
    assert env.info["scores"] == [8, 4]
    assert env.info["pareto_optimal"] is False


@pytest.mark.parametrize("objective", ["cooperative", "semi", "competitive"])
def test_no_deal_gives_zero_to_both(objective):
    env = env_for(objective, max_turns=4)
    env.step("ACTION: PROPOSE: books=3 hats=1 balls=2")
    env.step("ACTION: REJECT")
    env.step("ACTION: SAY: no way")
    r = env.step("ACTION: PROPOSE: books=0 hats=1 balls=2")
    assert r.done and env.info["agreement"] is False
    assert env.rewards == {0: 0.0, 1: 0.0}
    assert env.info["winners"] == []


def test_reward_function_directly():
    assert rewards("cooperative", (3, 5)) == (8, 8)
    assert rewards("semi", (3, 5)) == (3, 5)
    assert rewards("competitive", (3, 5)) == (-2, 2)
    with pytest.raises(ValueError):
        rewards("nice", (1, 1))


def test_rule_violations_and_parse_errors():
    env = env_for("semi", error_budget=5)
    r = env.step("ACTION: ACCEPT")
    assert isinstance(r.error, RuleViolation) and "no proposal" in r.error.reason
    r = env.step("ACTION: PROPOSE: books=4 hats=0 balls=0")
    assert isinstance(r.error, RuleViolation) and "pool" in r.error.reason
    r = env.step("ACTION: gimme everything")
    assert isinstance(r.error, ParseError)
    r = env.step("ACTION: PROPOSE: everything please")
    assert isinstance(r.error, ParseError)
    assert env.info["errors"][0] == {"parse": 2, "rule": 2, "defaults": 0}
    assert env.current_player() == 0  # refused actions do not pass the turn


def test_proposal_expires_after_any_other_action():
    env = env_for("semi")
    env.step("ACTION: PROPOSE: books=1 hats=1 balls=1")
    env.step("ACTION: SAY: let me think")  # player 1 talks instead of accepting: rejected
    r = env.step("ACTION: ACCEPT")  # player 0 has nothing to accept
    assert isinstance(r.error, RuleViolation)
    env.step("ACTION: PROPOSE: books=2 hats=0 balls=0")
    _, obs = env.observe()
    assert obs.state["offer"] == [1, 1, 2]  # what player 1 would receive
    env.step("ACTION: ACCEPT")
    assert env.info["deal"] == {"0": [2, 0, 0], "1": [1, 1, 2]}
    assert env.info["scores"] == [4, 10]


def test_private_values_stay_private():
    env = env_for("semi")
    _, obs0 = env.observe()
    assert "book=2, hat=2, ball=1" in obs0
    assert "book=0, hat=4, ball=3" not in obs0


def test_parsers():
    assert parse_counts("books=1 hats=3 balls=1") == (1, 3, 1)
    assert parse_counts("I keep 2 books and 1 hat") == (2, 1, 0)
    assert parse_counts("nothing") is None
    assert parse_action("accept") == ("accept", "")
    # Explicit protocol: acceptance is the whole message, never inferred from a sentence.
    assert parse_action("**ACCEPT.**") == ("accept", "")
    assert parse_action("I accept the deal") is None
    assert parse_action("I do not accept") is None
    assert parse_action("hello there") is None


@pytest.mark.parametrize(
    "proposal",
    [
        "books=1 hats=0 books=3",  # one item, two counts
        "I keep 1 book, you get 2 books",
        "books=1.5 hats=1",  # not whole numbers: before, the item silently counted 0
        "books=1/2 hats=1",
        "books=1,5 hats=1",
        "books=two hats=1",
        "books=\uff12 hats=1",  # fullwidth digit
    ],
)
def test_ambiguous_or_malformed_counts_are_refused_not_read_one_way(proposal):
    """A proposal binds its author; one that parses two ways (or drops an item it names) must be
    refused so the player can restate it, never applied as a split it did not write."""
    env = env_for("semi")
    r = env.step(f"ACTION: PROPOSE: {proposal}")
    assert isinstance(r.error, ParseError) and env.pending is None and env.turn == 0


def test_count_followed_by_punctuation_or_markup_is_read():
    assert parse_counts("books=2. hats=1") == (2, 1, 0)  # before: books silently 0
    assert parse_counts("**books**=2, hats=1, balls=0.") == (2, 1, 0)
    assert parse_counts("books=2 hats=1 balls=0 (you get 1 book)") == (2, 1, 0)  # keyed form wins


def test_instances_follow_the_generator_constraints():
    for inst in [*shipped(), *(generate(random.Random(s)) for s in range(50))]:
        assert all(1 <= c <= 4 for c in inst.counts) and 5 <= sum(inst.counts) <= 7
        for v in inst.values:
            assert sum(c * x for c, x in zip(inst.counts, v, strict=True)) == 10
        assert all(a > 0 or b > 0 for a, b in zip(*inst.values, strict=True))
        assert any(a > 0 and b > 0 for a, b in zip(*inst.values, strict=True))


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError):
        DealNoDealEnv(objective="friendly")
    with pytest.raises(ConfigError):
        DealNoDealEnv(instance=10_000)


def play(env, agents, seed):
    env.reset(seed=seed)
    n = 0
    while not env.done:
        p, obs = env.observe()
        env.step(agents[p].act(obs))
        n += 1
        assert n < 200
    return env


def test_same_seed_same_episode():
    def run(seed):
        env = play(make("dealnodeal-v0"), [DondNegotiator(seed=seed), DondRandom(seed=seed + 1)], seed)
        return [m.to_dict() for m in env.transcript()], env.rewards

    assert run(4) == run(4)
    assert run(4) != run(5)


def test_fuzzed_actions_never_crash_and_episodes_end():
    for seed in range(15):
        env = play(
            make("dealnodeal-comp-v0"),
            [RandomStringAgent(seed=seed), RandomStringAgent(seed=seed + 99)],
            seed,
        )
        assert env.done
        assert sum(e["parse"] + e["rule"] for e in env.info["errors"].values()) > 0


def test_scripted_beats_random_in_competitive_mode():
    diffs = []
    for seed in range(120):
        scripted_seat = seed % 2
        agents = [None, None]
        agents[scripted_seat] = DondNegotiator(seed=seed)
        agents[1 - scripted_seat] = DondRandom(seed=seed)
        env = play(make("dealnodeal-comp-v0"), agents, seed)
        diffs.append(env.rewards[scripted_seat])  # zero-sum: own minus other's score
    assert statistics.mean(diffs) > 2.0
    assert wilcoxon(diffs, alternative="greater").pvalue < 1e-4


def test_scripted_self_play_cooperates_better_than_random():
    def joint(a_cls, b_cls):
        out = []
        for seed in range(60):
            env = play(make("dealnodeal-coop-v0"), [a_cls(seed=seed), b_cls(seed=seed + 1)], seed)
            out.append(env.rewards[0])
        return out

    scripted, rand = joint(DondNegotiator, DondNegotiator), joint(DondRandom, DondRandom)
    assert statistics.mean(scripted) > statistics.mean(rand) + 3
