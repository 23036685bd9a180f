"""Guess the person: question parsing, answers from the graph for known people, guess scoring,
parse errors vs rule violations, the LLM-answerer seat, determinism, fuzzing, and the greedy
information-gain guesser beating random with significance."""

from __future__ import annotations

import pytest
from scipy.stats import fisher_exact

from selflab.envs.agents import FixedAgent, RandomStringAgent
from selflab.envs.core import ParseError, RuleViolation
from selflab.envs.games.guess_person import GuessPersonEnv, GuessPersonScripted, parse_answer
from selflab.envs.games.guess_person.questions import (
    Query,
    QuestionError,
    answer,
    candidate_queries,
    parse_query,
    ranked_queries,
    split_entropy,
)
from selflab.envs.registry import list_envs, make, make_agent
from selflab.errors import ConfigError
from selflab.kg import find_person, load_people


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("field = music", Query("field", "music")),
        ("Field is Music?", Query("field", "music")),
        ("nationality = usa", Query("nationality", "United States")),
        ("country: france", Query("nationality", "France")),
        ("era = 19th_century", Query("era", "19th century")),
        ("occupation = computer scientist", Query("occupation", "computer scientist")),
        ("born_before 1900", Query("born_before", 1900)),
        ("born after 500 BCE", Query("born_after", -500)),
        ("died_before 1800.", Query("died_before", 1800)),
        ("alive", Query("alive", True)),
        ("alive = no", Query("alive", False)),
        ("nobel prize", Query("nobel_prize", True)),
        ("name_starts_with e", Query("name_starts_with", "e")),
        ("name starts with the letter É", Query("name_starts_with", "e")),
        ("Is this person a scientist?", None),
        ("Did they write novels", None),
    ],
)
def test_parse_query(text: str, expected: Query | None) -> None:
    assert parse_query(text) == expected


@pytest.mark.parametrize(
    "text",
    ["field = cooking", "nationality = Atlantis", "born_before soon", "born in 1900", "died after 1900",
     "name_starts_with AB", "born_before 0", "gender = robot", ""],
)  # fmt: skip
def test_malformed_structured_questions_are_errors(text: str) -> None:
    with pytest.raises(QuestionError):
        parse_query(text)


def test_canonical_text_round_trips() -> None:
    for q in candidate_queries(load_people()):
        assert parse_query(q.text()) == q, q


@pytest.mark.parametrize(
    ("name", "question", "expected"),
    [
        ("Albert Einstein", "field = science", "yes"),
        ("Albert Einstein", "nationality = Germany", "yes"),
        ("Albert Einstein", "continent = Asia", "no"),
        ("Albert Einstein", "born_before 1900", "yes"),
        ("Albert Einstein", "born_after 1879", "no"),  # strictly after
        ("Albert Einstein", "died_before 1956", "yes"),
        ("Albert Einstein", "died_before 1955", "no"),
        ("Albert Einstein", "nobel_prize", "yes"),
        ("Albert Einstein", "alive", "no"),
        ("Albert Einstein", "era = 19th century", "yes"),
        ("Taylor Swift", "alive", "yes"),
        ("Taylor Swift", "died_before 2000", "no"),
        ("Taylor Swift", "gender = female", "yes"),
        ("Socrates", "born_before 480 BCE", "unknown"),  # born about 470 BCE: too close to call
        ("Socrates", "born_before 600 BCE", "no"),
        ("Socrates", "born_before 400 BCE", "yes"),
        ("Socrates", "occupation = philosopher", "yes"),
        ("Édith Piaf", "name_starts_with E", "yes"),
        ("Frida Kahlo", "continent = North America", "yes"),
    ],
)
def test_answers_from_the_graph(name: str, question: str, expected: str) -> None:
    person = find_person(name)
    assert person is not None
    assert answer(person, parse_query(question)) == expected


def test_fast_entropies_match_the_definition() -> None:
    people = load_people()[:150]
    for e, q in ranked_queries(people):
        assert e == pytest.approx(split_entropy(people, q))
    assert split_entropy(people, Query("gender", "robot")) == 0.0


def _env(**kw) -> GuessPersonEnv:
    env = GuessPersonEnv(**kw)
    env.reset(seed=0)
    return env


def test_guess_scoring_and_aliases() -> None:
    env = _env(person="Albert Einstein", max_questions=20)
    r = env.step("ACTION: ASK field = science")
    assert r.error is None and env.qa[-1]["answer"] == "yes"
    env.step("ACTION: GUESS Isaac Newton")
    assert not env.done and env.wrong_guesses == ["Isaac Newton"]
    env.step("ACTION: GUESS einstein")  # unique surname
    assert env.done and env.info["success"] and env.info["turns_used"] == 3
    assert env.rewards == {0: pytest.approx(1 - 0.5 * 2 / 20)}


def test_errors_do_not_use_turns() -> None:
    env = _env(person="Albert Einstein")
    for text, kind in [
        ("hello", ParseError),
        ("ASK is he a physicist?", ParseError),  # free text needs an LLM answerer
        ("ASK field = cooking", ParseError),
        ("ASK", ParseError),
        ("GUESS", ParseError),
        ("GUESS Roosevelt", RuleViolation),  # Theodore, Franklin D. or Eleanor
        ("GUESS Gandhi", RuleViolation),
    ]:
        with pytest.raises(kind):
            env.apply(0, text)
    assert env.turns_used == 0 and not env.qa
    env.step("ACTION: GUESS Sherlock Holmes")
    assert env.turns_used == 1 and "no such person" in env.transcript()[-1].text


def test_budget_runs_out_and_default_move_is_pass() -> None:
    env = _env(person="Albert Einstein", max_questions=3)
    env.step("ACTION: ASK alive")
    env.step("ACTION: GUESS Marie Curie")
    assert env.default_action(0) == "PASS"
    for _ in range(env.error_budget + 1):
        env.step("???")
    assert env.done and not env.info["success"] and env.rewards == {0: 0.0}


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError):
        GuessPersonEnv(field="cooking")
    with pytest.raises(ConfigError):
        GuessPersonEnv(person="Sherlock Holmes")
    with pytest.raises(ConfigError):
        GuessPersonEnv(pool=1)
    env = _env(pool=10, person="Marie Curie")
    assert len(env.pool) == 10 and env.secret.name == "Marie Curie"
    _, obs = env.observe()
    assert "Marie Curie" in obs  # small pools are listed
    env = _env(field="music")
    assert {p.field for p in env.pool} == {"music"}


def test_answerer_seat() -> None:
    env = _env(players=2, person="Albert Einstein", pool=8)
    player, obs = env.observe()
    assert player == 0 and obs.state["role"] == "guesser"
    env.step("ACTION: ASK Did he work on relativity?")  # free text is fine with an answerer
    player, obs = env.observe()
    assert player == 1 and obs.state["role"] == "answerer" and "Albert Einstein" in obs
    assert obs.legal_actions == ["yes", "no", "unknown"]
    with pytest.raises(ParseError):
        env.apply(1, "maybe")
    env.step("ACTION: Yes.")
    env.step("ACTION: ASK field = music")
    env.step("ACTION: yes")  # a wrong answer
    env.step("ACTION: ASK nobel_prize")
    scripted = GuessPersonScripted(seed=0)
    env.step(scripted.act(env.observe()[1]))  # answered by code: right
    env.step("ACTION: GUESS Albert Einstein")
    assert env.done and env.info["success"] and env.rewards[0] > 0
    assert env.info["answer_accuracy"] == pytest.approx(0.5) and env.info["free_text_questions"] == 1
    # The answerer's share is weighed by its truthfulness: a private code of untrue answers
    # (two copies of one model colluding) does not pay it.
    assert env.rewards[1] == pytest.approx(0.5 * env.rewards[0])
    assert [x["answer"] for x in env.qa] == ["yes", "yes", "yes"]
    assert [parse_answer(t) for t in ("Yes.", "no", "I don't know", "unknown!")] == [
        "yes",
        "no",
        "unknown",
        "unknown",
    ]


def _play(env_id: str, agents: list[str], seed: int, **kw) -> GuessPersonEnv:
    env = make(env_id, **kw)
    env.reset(seed=seed)
    seats = [make_agent(env_id, a, seed=seed + i) for i, a in enumerate(agents)]
    while not env.done:
        player, obs = env.observe()
        env.step(seats[player].act(obs))
    return env


def test_same_seed_same_episode() -> None:
    a = _play("guess-person-small-v0", ["scripted"], 3)
    b = _play("guess-person-small-v0", ["scripted"], 3)
    c = _play("guess-person-small-v0", ["scripted"], 4)
    assert [m.to_dict() for m in a.transcript()] == [m.to_dict() for m in b.transcript()]
    assert a.instance == b.instance and a.instance != c.instance


def test_fuzzed_actions_never_crash_and_episodes_end() -> None:
    for env_id, players in (("guess-person-v0", 1), ("guess-person-llm-answerer-v0", 2)):
        for seed in range(6):
            env = make(env_id)
            env.reset(seed=seed)
            fuzz = [RandomStringAgent(seed=seed + i) for i in range(players)]
            while not env.done:
                player, obs = env.observe()
                env.step(fuzz[player].act(obs))
            assert env.turns_used <= env.max_questions
            assert sum(e["parse"] + e["rule"] for e in env.info["errors"].values()) > 0


def test_registry_variants() -> None:
    ids = {s.id for s in list_envs()}
    assert {"guess-person-v0", "guess-person-small-v0", "guess-person-llm-answerer-v0"} <= ids
    rules = make("guess-person-llm-answerer-v0").rules
    assert "free-text" in rules and "ACTION: GUESS" in rules and "physicist" in rules


def test_greedy_guesser_wins_on_the_full_graph() -> None:
    envs = [_play("guess-person-v0", ["scripted"], s) for s in range(8)]
    assert all(e.info["success"] for e in envs)
    assert max(e.info["turns_used"] for e in envs) <= 14  # log2(558) is about 9.1


def test_scripted_answerer_is_always_right() -> None:
    envs = [_play("guess-person-llm-answerer-v0", ["scripted", "scripted"], s) for s in range(6)]
    assert all(e.info["success"] and e.info["answer_accuracy"] == 1.0 for e in envs)
    assert all(e.rewards[0] == e.rewards[1] for e in envs)
    # An answerer that always says "yes" is caught by the accuracy metric and costs the guesser turns.
    lied = []
    for seed in range(3):
        env = make("guess-person-llm-answerer-v0")
        env.reset(seed=seed)
        seats = [GuessPersonScripted(seed=0), FixedAgent("ACTION: yes")]
        while not env.done:
            player, obs = env.observe()
            env.step(seats[player].act(obs))
        lied.append(env)
    assert min(e.info["answer_accuracy"] for e in lied) < 1.0
    assert sum(e.info["turns_used"] for e in lied) > sum(e.info["turns_used"] for e in envs[:3])


def test_scripted_beats_random_significantly() -> None:
    n = 40
    wins_s = sum(_play("guess-person-small-v0", ["scripted"], s).info["success"] for s in range(n))
    wins_r = sum(_play("guess-person-small-v0", ["random"], s).info["success"] for s in range(n))
    assert wins_s >= n - 1
    _, p = fisher_exact([[wins_s, n - wins_s], [wins_r, n - wins_r]], alternative="greater")
    assert p < 1e-6, (wins_s, wins_r, p)


def test_llm_answerer_on_tiny_model(tiny_model_spec: str) -> None:
    from selflab.envs.runner import EpisodeSpec, play

    llm = f"llm:{tiny_model_spec}"
    specs = [
        EpisodeSpec(
            f"g{i}",
            "guess-person-llm-answerer-v0",
            ["scripted", llm],
            seed=i,
            env_kwargs={"max_questions": 4},
        )
        for i in range(2)
    ]
    result = play(specs, agent_options={"llm": {"max_new_tokens": 6, "temperature": 1.0}})
    assert len(result.episodes) == 2
    for e in result.episodes:
        assert e.outcome and (e.info["answer_accuracy"] is None or 0.0 <= e.info["answer_accuracy"] <= 1.0)
    answers = [s for e in result.episodes for s in e.steps if s.agent == llm]
    assert answers and all("Answer yes, no or unknown" in s.observation for s in answers)
