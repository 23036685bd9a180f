"""Adversarial Taboo: hand-made win/lose/guess cases, inflection matching, the attacker's taboo,
the shipped word table, determinism, fuzzing, and scripted against random play."""

from __future__ import annotations

from collections import Counter

import pytest
from scipy.stats import fisher_exact

from selflab.envs.agents import RandomStringAgent
from selflab.envs.core import ParseError, RuleViolation
from selflab.envs.games.taboo import TabooEnv, TabooNaiveDefender, TabooRandom, TabooScripted
from selflab.envs.games.taboo.env import parse_guess
from selflab.envs.games.taboo.words import associations, forms, mentions, same_word, tokens
from selflab.envs.registry import make


def started(target="apple", rounds=3):
    env = TabooEnv(target=target, rounds=rounds)
    env.reset(seed=0)
    return env


def test_mentions_whole_words_any_case_and_simple_inflections():
    assert mentions("I love APPLES in autumn", "apple")
    assert mentions("the apple's core", "apple")
    assert not mentions("a pineapple please", "apple")
    assert not mentions("applesauce", "apple")
    assert mentions("big cities", "city")
    assert mentions("three mice", "mouse")
    assert mentions("she was baking bread", "bake")
    assert mentions("knives are sharp", "knife")
    assert not mentions("nothing here", "apple")


def test_same_word_guess_matching():
    assert same_word("Apples", "apple")
    assert same_word("the apple", "apple")
    assert not same_word("pear", "apple")
    assert (
        same_word("ap-ple", "apple")
        and same_word("icecream", "ice cream")
        and same_word("ice-creams", "ice cream")
    )
    assert not same_word("apple or banana", "apple") and not same_word("not apple", "apple")
    assert parse_guess("GUESS: Apple") == "apple"
    # The explicit protocol: a guess is a message that starts with GUESS:, read whole.
    assert parse_guess("I think... guess: pear because it is green") is None
    assert parse_guess("GUESS: the pear") == "the pear"
    assert parse_guess("I will not guess yet") is None


def test_defender_saying_the_target_loses():
    env = started()
    env.step("ACTION: What fruit keeps the doctor away?")
    r = env.step("ACTION: Everyone knows an apple a day does")
    assert r.done and env.rewards == {0: 1.0, 1: -1.0}
    assert env.info["result"] == "attacker" and env.info["winners"] == [0]


def test_correct_guess_wins_for_defender_even_inflected():
    env = started()
    env.step("ACTION: It grows in an orchard and makes cider.")
    r = env.step("ACTION: GUESS: apples")
    assert r.done and env.rewards == {0: -1.0, 1: 1.0} and env.info["result"] == "defender"


def test_wrong_guess_wins_for_attacker():
    env = started()
    env.step("ACTION: It grows in an orchard.")
    env.step("ACTION: GUESS: pear")
    assert env.done and env.rewards == {0: 1.0, 1: -1.0} and env.info["guess"] == "pear"


def test_turn_limit_is_a_tie():
    env = started(rounds=2)
    for text in ["hint one", "tell me more", "hint two", "still no idea"]:
        env.step(f"ACTION: {text}")
    assert env.done and env.rewards == {0: 0.0, 1: 0.0} and env.info["result"] == "tie"


def test_attacker_saying_the_target_is_refused_and_hidden_from_defender():
    env = started()
    r = env.step("ACTION: Say apples please")
    assert isinstance(r.error, RuleViolation)
    assert env.current_player() == 0
    assert not any("apples please" in m.text for m in env.transcript())
    r = env.step("ACTION: ")
    assert isinstance(r.error, ParseError)
    env.step("ACTION: A red fruit")
    player, obs = env.observe()
    assert player == 1 and "A red fruit" in obs and "apple" not in obs.lower().replace("adversarial", "")


def test_target_is_private_to_the_attacker():
    env = started("volcano")
    _, obs = env.observe()
    assert "volcano" in obs
    env.step("ACTION: hot mountain")
    _, obs = env.observe()
    assert "volcano" not in obs


def test_word_table_is_large_and_clues_never_name_their_target():
    table = associations()
    assert len(table) >= 300
    for target, clues in table.items():
        assert len(clues) >= 4
        for clue in clues:
            assert not any(t in forms(target) for t in tokens(clue)), (target, clue)


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
        env = play(make("taboo-v0"), [TabooScripted(seed=seed), TabooRandom(seed=seed)], seed)
        return [m.to_dict() for m in env.transcript()], env.rewards

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_fuzzed_actions_never_crash_and_episodes_end():
    for seed in range(20):
        env = play(make("taboo-v0"), [RandomStringAgent(seed=seed), RandomStringAgent(seed=seed + 1)], seed)
        assert env.done


def _results(attacker, defender, n=60):
    return Counter(
        play(make("taboo-v0"), [attacker(seed=s), defender(seed=s + 1)], s).info["result"] for s in range(n)
    )


def test_scripted_defender_beats_random_defender():
    scripted, rand = _results(TabooScripted, TabooScripted), _results(TabooScripted, TabooRandom)
    assert scripted["defender"] >= 55 and scripted["attacker"] == 0
    _, p = fisher_exact(
        [[scripted["defender"], 60 - scripted["defender"]], [rand["defender"], 60 - rand["defender"]]]
    )
    assert p < 1e-6


def test_scripted_attacker_beats_random_attacker_against_a_naive_defender():
    scripted, rand = _results(TabooScripted, TabooNaiveDefender), _results(TabooRandom, TabooNaiveDefender)
    _, p = fisher_exact(
        [[scripted["attacker"], 60 - scripted["attacker"]], [rand["attacker"], 60 - rand["attacker"]]],
        alternative="greater",
    )
    assert scripted["attacker"] > 50 and p < 1e-6


@pytest.mark.parametrize("env_id", ["taboo-v0", "taboo-short-v0"])
def test_registered(env_id):
    env = make(env_id, target="piano")
    env.reset(seed=1)
    assert env.info["target"] == "piano"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("apple", "Join these letters and say the word: a|p|p|l|e"),  # separators not in the spelled view
        ("apple", "a;p;p;l;e"),
        ("apple", "Say a\u2063p\u2063p\u2063l\u2063e aloud"),  # invisible separators
        ("strawberry", "Say st ra wb er ry as one word"),  # more than three pieces
        ("strawberry", "st|raw|ber|ry"),
        ("apple", "Say \u0251pple"),  # Latin alpha: a look-alike outside the normaliser's table
        ("apple", "Say \uab7apple"),  # Cherokee small A
    ],
)
def test_attacker_cannot_smuggle_the_target_past_the_filter(target, message):
    env = started(target)
    r = env.step(f"ACTION: {message}")
    assert isinstance(r.error, RuleViolation), message
    assert env.current_player() == 0 and not env.history


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("apple", "Is it a|p|p|l|e?"),
        ("banana", "Is it a b a n a n a?"),  # spelled after the article "a"
        ("apple", "Is it ap-ple or ap.ple?"),
        ("apple", "Is it 4ppl3?"),
        ("apple", "Is it ap\u2063ple?"),  # an invisible separator
    ],
)
def test_defender_probing_with_a_disguised_target_said_it(target, message):
    """Saying the target (spelled out, or with separators or digits inside it) loses: otherwise a
    defender can name candidates safely and read the attacker's reaction."""
    env = started(target)
    env.step("ACTION: It is a food")
    r = env.step(f"ACTION: {message}")
    assert r.done and env.info["result"] == "attacker", message


def test_defender_lookalike_letters_are_refused_and_plain_neighbours_are_not_the_target():
    env = started("apple")
    env.step("ACTION: It is a food")
    r = env.step("ACTION: Is it \u0251pple?")
    assert isinstance(r.error, RuleViolation) and not env.done
    r = env.step("ACTION: Is it a fruit, from an orchard?")
    assert r.error is None and not env.done
    env = started("carpet")
    env.step("ACTION: It is in a house")
    assert not env.step("ACTION: Do you need a car? A pet?").done  # two words side by side


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("apple", "Read elppa backwards"),  # the target reversed
        ("apple", "Always Put People Last, Eventually"),  # an acrostic
        ("apple", "Spell alfa papa papa lima echo"),  # a spelling alphabet
        ("apple", "An appIe a day"),  # a capital I for an l
        ("strawberry", "Say yrrebwarts backwards"),
    ],
)
def test_attacker_cannot_encode_the_target(target, message):
    env = started(target)
    r = env.step(f"ACTION: {message}")
    assert isinstance(r.error, RuleViolation), message


def test_encodings_only_the_attacker_may_not_use_do_not_end_the_game_for_the_defender():
    """A reversed word or an acrostic refused to the attacker (a rewrite) is an ordinary word
    for the defender: "rats" does not say "star"."""
    env = started("star")
    env.step("ACTION: It shines at night")
    r = env.step("ACTION: Rats? Sun? Tired animals run?")
    assert r.error is None and not env.done
