"""Spy game rules: questions, answers, suspicion, voting, the spy's guesses and scoring."""

from __future__ import annotations

import pytest

from selflab.envs import ParseError, RuleViolation
from selflab.envs.games.spy import SpyEnv, load_data, question_attribute
from selflab.envs.games.spy.instances import generate
from selflab.errors import ConfigError


def game(suspicion: bool = False, **kw) -> SpyEnv:
    env = SpyEnv(players=4, rounds=1, suspicion=suspicion, location="beach", spy=2, **kw)
    env.reset(seed=0)
    return env


def ask_round(env: SpyEnv, answers: dict[int, str] | None = None) -> None:
    """Every player asks the next one about heat; answers default to the truth for the beach (yes)."""
    answers = answers or {}
    for asker in range(4):
        assert env.current_player() == asker and env.phase == "ask"
        target = (asker + 1) % 4
        assert env.step(f"ACTION: ask {target} Is it hot there?").error is None
        assert env.current_player() == target
        assert env.step(f"answer {answers.get(target, 'yes')}").error is None


def test_location_is_private_to_citizens() -> None:
    env = game()
    _, obs = env.observe()  # player 0, a citizen
    assert "The location is: beach" in obs and obs.state["location"] == "beach"
    spy_view = [m.text for m in env.transcript(2)]
    assert not any("The location is" in t for t in spy_view)
    assert any("You are the SPY" in t for t in spy_view)


def test_question_attribute_recorded_with_truth() -> None:
    env = game()
    env.step("ask 1 Is it cold there?")
    env.step("answer yes")
    qa = env.qa[-1]
    assert qa["attribute"] == "cold" and qa["truth"] == "no" and qa["answer"] == "yes"
    q = load_data()["questions"]
    assert question_attribute("is there lots of WATER around", q) == "water"
    assert question_attribute("what is your favourite colour", q) is None


def test_majority_vote_catches_spy_who_then_guesses_wrong() -> None:
    env = game()
    ask_round(env)
    assert env.phase == "vote"
    for voter, target in [(0, 2), (1, 2), (2, 0), (3, 2)]:
        assert env.current_player() == voter
        assert env.step(f"vote {target}").error is None
    assert env.phase == "last_guess" and env.current_player() == 2 and env.info["caught"]
    env.step("guess bank")
    assert env.done and env.info["winners"] == [0, 1, 3]
    assert env.rewards == {0: 1.0, 1: 1.0, 2: 0.0, 3: 1.0}


def test_caught_spy_guessing_right_wins() -> None:
    env = game()
    ask_round(env)
    for target in (2, 2, 0, 2):
        env.step(f"vote {target}")
    env.step("guess the Beach")
    assert env.info["winners"] == [2] and env.rewards[2] == 1.0


def test_no_strict_majority_means_spy_wins() -> None:
    env = game()
    ask_round(env)
    for target in (2, 2, 0, 0):  # two of four votes is not a strict majority
        env.step(f"vote {target}")
    assert env.done and env.info["winners"] == [2] and not env.info["caught"]


def test_spy_guess_on_own_ask_turn() -> None:
    env = game()
    env.step("ask 1 Is it noisy?")
    env.step("answer no")
    env.step("ask 2 Is it indoors?")
    env.step("answer no")
    assert env.current_player() == 2
    env.step("ACTION: guess beach")
    assert env.done and env.info["winners"] == [2] and env.info["spy_guess"] == "beach"

    env = game()
    for move in ["ask 1 Is it noisy?", "answer no", "ask 2 Is it indoors?", "answer no"]:
        env.step(move)
    env.step("guess hospital")
    assert env.done and env.info["winners"] == [0, 1, 3]


def test_rule_violations_and_parse_errors() -> None:
    env = game()
    assert isinstance(env.step("guess beach").error, RuleViolation)  # player 0 is not the spy
    assert isinstance(env.step("ask 0 Is it hot?").error, RuleViolation)  # asking oneself
    env._turn_state.attempts = 0
    assert isinstance(env.step("ask 9 Is it hot?").error, RuleViolation)
    env._turn_state.attempts = 0
    assert isinstance(env.step("ask 1 Is it the beach?").error, RuleViolation)  # names a location
    env._turn_state.attempts = 0
    assert isinstance(env.step("vote 1").error, RuleViolation)  # wrong phase
    env._turn_state.attempts = 0
    assert isinstance(env.step("what is this").error, ParseError)
    env._turn_state.attempts = 0
    env.step("ask 1 Is it hot?")
    assert isinstance(env.step("answer maybe").error, ParseError)
    assert env.step("yes").error is None  # a bare yes is understood in the answer phase


def test_suspicion_phase_after_each_answer() -> None:
    env = game(suspicion=True)
    env.step("ask 1 Is it hot there?")
    env.step("answer no")
    assert env.phase == "suspect"
    order = []
    while env.phase == "suspect":
        p = env.current_player()
        order.append(p)
        assert isinstance(env.step(f"suspect {p}").error, RuleViolation)  # cannot suspect oneself
        env._turn_state.attempts = 0
        env.step(f"suspect {(p + 1) % 4}")
    assert order == [2, 3, 0, 1]  # everyone, starting after the answerer
    assert env.phase == "ask" and env.current_player() == 1
    assert env.suspicion == {0: 1, 1: 2, 2: 3, 3: 0}


def test_deals_follow_the_seed() -> None:
    a, b = SpyEnv(players=5), SpyEnv(players=5)
    a.reset(seed=3)
    b.reset(seed=3)
    assert (a.location, a.spy) == (b.location, b.spy)
    seen = set()
    for s in range(30):
        a.reset(seed=s)
        seen.add((a.location, a.spy))
    assert len(seen) > 10
    assert generate(4, seed=1) == generate(4, seed=1)


def test_locations_distinguishable() -> None:
    data = load_data()
    sigs = [tuple(sorted(loc["attributes"])) for loc in data["locations"]]
    assert len(data["locations"]) >= 30 and len(set(sigs)) == len(sigs)


@pytest.mark.parametrize("players", [3, 8])
def test_table_sizes(players: int) -> None:
    env = SpyEnv(players=players, rounds=2)
    env.reset(seed=1)
    assert len(env.ask_order) == 2 * players


@pytest.mark.parametrize(
    "question",
    [
        "Is it a nightclub?",  # a two-word location written as one word
        "Is it a spacestation?",
        "Is it a re st au rant?",  # four pieces
        "Is it a b|e|a|c|h?",  # letters with a separator the spelled view does not know
        "Is it a h o s p i t a l?",  # spelled after the article "a", which used to swallow a letter
        "Is it a b\u0251nk?",  # Latin alpha, a look-alike outside the normaliser's table
        "Is it a b\u2063e\u2063a\u2063c\u2063h?",  # invisible separators between the letters
    ],
)
def test_questions_cannot_name_a_location_in_disguise(question: str) -> None:
    """The spy must not be able to ask "is it X?" about a candidate location by disguising X."""
    env = game()
    result = env.step(f"ask 1 {question}")
    assert isinstance(result.error, RuleViolation), question
    assert env.phase == "ask" and not any("asks Player 1" in m.text for m in env.transcript())


def test_ordinary_questions_are_not_mistaken_for_locations() -> None:
    for question in ["Do people go there at night?", "Is there a bar or a stage?", "Can you swim there?"]:
        env = game()
        assert env.step(f"ask 1 {question}").error is None, question


@pytest.mark.parametrize("move", ["vote 1 or 3", "vote 1, 2", "vote player 3 or player 1", "vote 2 3"])
def test_a_hedged_vote_is_refused_not_read_as_its_first_player(move: str) -> None:
    env = game()
    ask_round(env)
    assert env.phase == "vote" and env.current_player() == 0
    result = env.step(move)
    assert isinstance(result.error, ParseError) and env.votes == {}
    assert env.step("vote 2 (player 2)").error is None and env.votes == {0: 2}


def test_large_tables_reach_the_vote_before_the_turn_limit() -> None:
    """With 8 players, 10 rounds and suspicion a full game is 809 moves: a fixed limit of 400
    ended every such game at the limit, which the spy wins."""
    env = SpyEnv(players=8, rounds=10, suspicion=True, location="beach", spy=7)
    env.reset(seed=0)
    while not env.done:
        p = env.current_player()
        if env.phase == "ask":
            env.step(f"ask {(p + 1) % 8} Is it hot there?")
        elif env.phase == "answer":
            env.step("answer yes")
        elif env.phase == "last_guess":
            env.step("guess bank")
        else:
            env.step(f"{env.phase} {7 if p != 7 else 0}")
    assert env.info["outcome"] == "caught spy guessed wrong" and env.info["winners"] == list(range(7))
    with pytest.raises(ConfigError):
        SpyEnv(players=8, rounds=10, max_turns=400)
