"""Detective: a hand-built mystery with a known solution, the culprit's lies within constraints,
uniqueness of the solution over many seeds, parse errors vs rule violations, scoring,
determinism, fuzzing, and the scripted detective beating random with significance."""

from __future__ import annotations

import random

import pytest
from scipy.stats import fisher_exact

from selflab.envs.agents import RandomStringAgent
from selflab.envs.core import ParseError, RuleViolation
from selflab.envs.games.detective import DetectiveEnv, DetectiveRandom, DetectiveScripted
from selflab.envs.games.detective.instances import generate
from selflab.envs.games.detective.mystery import (
    GARDEN,
    Claim,
    Clue,
    Mystery,
    Suspect,
    consistent_suspects,
    full_evidence,
    is_solvable,
    solutions,
)
from selflab.envs.registry import list_envs, make, make_agent
from selflab.errors import ConfigError

TIMES = ["20:00", "21:00", "22:00"]


def _suspect(name: str, hand: str, rooms: list[str], hair: str = "brown") -> Suspect:
    timeline = dict(zip(TIMES, rooms, strict=True))
    shoes = "muddy" if GARDEN in rooms else "clean"
    return Suspect(
        name=name,
        relation="friend",
        motive="owed money",
        traits={"handedness": hand, "smokes": "no", "hair": hair, "shoes": shoes},
        timeline=timeline,
    )


def fixed_mystery(clues: bool = True) -> Mystery:
    """Hale did it (study, 21:00) and claims to have been alone in the kitchen, where Moreau truly
    was, alone. Vance was alone in the library. Clue: the murderer is left-handed; Moreau is not.

    By hand: Vance is cleared by the statements (if she did it, Hale and Moreau would both have been
    alone in the kitchen: a contradiction). Moreau is consistent with the statements (Hale's claim
    would then be true), so only the clue clears him. Hale is the unique solution."""
    return Mystery(
        id="fixed",
        setting="Blackwood Manor",
        victim="Lord Blackwood",
        weapon="a candlestick",
        rooms=["garden", "study", "kitchen", "library"],
        times=TIMES,
        crime_time="21:00",
        crime_room="study",
        suspects=[
            _suspect("Colonel Hale", "left", ["garden", "study", "library"]),
            _suspect("Miss Vance", "left", ["library", "library", "library"]),
            _suspect("Dr. Moreau", "right", ["library", "kitchen", "kitchen"]),
        ],
        culprit="Colonel Hale",
        lie_room="kitchen",
        clues=[Clue(trait="handedness", value="left", text="A left-handed blow.")] if clues else [],
    )


def test_fixed_mystery_solution_by_hand() -> None:
    m = fixed_mystery()
    assert m.claim("Colonel Hale", "21:00") == Claim("Colonel Hale", "21:00", "kitchen", ())
    assert m.claim("Dr. Moreau", "21:00") == Claim("Dr. Moreau", "21:00", "kitchen", ())
    assert m.claim("Colonel Hale", "22:00") == Claim("Colonel Hale", "22:00", "library", ("Miss Vance",))
    assert solutions(m) == ["Colonel Hale"] and is_solvable(m)
    # Without the clue, Moreau also fits: the statements alone cannot tell Hale from Moreau.
    assert solutions(fixed_mystery(clues=False)) == ["Colonel Hale", "Dr. Moreau"]
    # Partial evidence: before anything is heard, everyone fits.
    assert consistent_suspects(m.names, "study", "21:00", m.clues, {}, []) == m.names
    with pytest.raises(ConfigError):
        DetectiveEnv(mystery=fixed_mystery(clues=False))


def test_env_answers_from_private_facts_and_scores() -> None:
    env = DetectiveEnv(mystery=fixed_mystery(), max_questions=10)
    env.reset(seed=0)
    _, obs = env.observe()
    assert "Lord Blackwood" in obs and "A left-handed blow." in obs and "culprit" not in obs.state
    assert "lie_room" not in str(obs.state)
    env.step("ACTION: ASK Colonel Hale: alibi")
    env.step("ASK hale: whereabouts 20:00")
    env.step("ACTION: ASK Miss Vance: traits")
    env.step("ACTION: ASK Vance: about Colonel Hale")
    env.step("ACTION: ASK Dr. Moreau: alibi")
    texts = [m.text for m in env.transcript(0) if m.type == "answer"]
    assert texts[0].startswith('Colonel Hale (alibi): "At 21:00 I was in the kitchen, alone."')
    assert texts[1].startswith('Colonel Hale (whereabouts 20:00): "At 20:00 I was in the garden, alone."')
    assert texts[2].startswith(
        "Miss Vance (traits): You observe: left-handed, does not smoke, brown hair, clean shoes."
    )
    assert texts[3].startswith(
        'Miss Vance (about Colonel Hale): "I was with Colonel Hale at 22:00 in the library."'
    )
    assert texts[4].startswith('Dr. Moreau (alibi): "At 21:00 I was in the kitchen, alone."')
    assert env.questions_used == 5
    result = env.step("ACTION: ACCUSE Colonel Hale")
    assert result.done and env.rewards == {0: pytest.approx(1 - 0.5 * 5 / 10)}
    assert env.info["success"] and env.info["culprit"] == "Colonel Hale"


def test_wrong_accusation_scores_zero() -> None:
    env = DetectiveEnv(mystery=fixed_mystery())
    env.reset(seed=0)
    env.step("ACTION: ACCUSE Dr. Moreau")
    assert env.done and env.rewards == {0: 0.0} and not env.info["success"]


def test_parse_errors_and_rule_violations_change_nothing() -> None:
    env = DetectiveEnv(mystery=fixed_mystery(), max_questions=2)
    env.reset(seed=0)
    cases = [
        ("hello there", ParseError),
        ("ASK Colonel Hale alibi", ParseError),  # no colon after the name
        ("ASK Colonel Hale: the weather", ParseError),
        ("ASK Inspector Lestrade: alibi", RuleViolation),
        ("ASK Hale: whereabouts 23:00", RuleViolation),
        ("ASK Hale: about Hale", RuleViolation),
        ("ACCUSE the butler", RuleViolation),
    ]
    for text, kind in cases:
        with pytest.raises(kind):
            env.apply(0, text)
    assert env.questions_used == 0 and not env.done
    env.step("ACTION: ASK Hale: alibi")
    env.step("ACTION: PASS")
    with pytest.raises(RuleViolation):
        env.apply(0, "ASK Vance: alibi")  # budget spent: only accusations remain
    _, obs = env.observe()
    assert obs.legal_actions == [f"ACCUSE {n}" for n in env.mystery.names]
    assert env.default_action(0) == "GIVE UP"
    for _ in range(env.error_budget + 1):
        env.step("gibberish")
    assert env.done and env.info["accused"] is None and env.rewards == {0: 0.0}
    assert env.info["errors"][0]["parse"] == env.error_budget + 1


def test_culprit_lies_only_within_its_constraints() -> None:
    for seed in range(150):
        m = generate(3 + seed % 3, random.Random(seed))
        for s in m.suspects:
            assert m.observed_traits(s.name) == s.traits  # traits are never falsified
            assert s.traits["shoes"] == ("muddy" if GARDEN in s.timeline.values() else "clean")
            for t in m.times:
                c = m.claim(s.name, t)
                if s.name == m.culprit and t == m.crime_time:
                    assert c.room not in (m.crime_room, GARDEN) and c.companions == ()
                    assert m.true_room(s.name, t) == m.crime_room
                else:
                    truth = tuple(
                        sorted(o.name for o in m.suspects if o.name != s.name and o.timeline[t] == c.room)
                    )
                    assert c.room == s.timeline[t] and c.companions == truth
                    if t == m.crime_time:
                        assert c.room != m.crime_room  # innocents were elsewhere
        # The murderer matches every clue: the physical evidence is never contradicted.
        culprit = m.suspect(m.culprit)
        assert all(culprit.traits[c.trait] == c.value for c in m.clues)


def test_rules_state_every_constraint_on_the_murderers_lie() -> None:
    """The generator never lets the murderer claim the garden, so an alibi in the garden clears a
    suspect (a quarter of the innocents give one). Unstated, that regularity is hidden from prompted
    players but learnable by trained ones: the rules must say it."""
    lies = {generate(3 + seed % 3, random.Random(seed)).lie_room for seed in range(100)}
    assert GARDEN not in lies
    rules = " ".join(DetectiveEnv().rules.split())
    assert "never the garden" in rules


@pytest.mark.parametrize("suspects", [3, 4, 5])
def test_every_generated_mystery_has_exactly_one_solution(suspects: int) -> None:
    for seed in range(200):
        m = generate(suspects, random.Random(seed))
        assert solutions(m) == [m.culprit], (suspects, seed)
        assert 1 <= len(m.clues) <= 4 and len(m.suspects) == suspects
        traits, claims = full_evidence(m)
        # Every innocent is cleared by some clue or by the statements.
        for s in m.names:
            if s != m.culprit:
                assert s not in consistent_suspects(
                    m.names, m.crime_room, m.crime_time, m.clues, traits, claims
                )


def _play(env_id: str, agent: str, seed: int) -> DetectiveEnv:
    env = make(env_id)
    env.reset(seed=seed)
    player = make_agent(env_id, agent, seed=seed)
    while not env.done:
        _, obs = env.observe()
        env.step(player.act(obs))
    return env


def test_same_seed_same_episode() -> None:
    a, b, c = (
        _play("detective-v0", "scripted", 5),
        _play("detective-v0", "scripted", 5),
        _play("detective-v0", "scripted", 6),
    )
    assert [m.to_dict() for m in a.transcript()] == [m.to_dict() for m in b.transcript()]
    assert a.rewards == b.rewards and a.mystery == b.mystery
    assert a.mystery != c.mystery


def test_fuzzed_actions_never_crash_and_episodes_end() -> None:
    for seed in range(15):
        env = make("detective-v0")
        env.reset(seed=seed)
        fuzz = RandomStringAgent(seed=seed)
        while not env.done:
            _, obs = env.observe()
            env.step(fuzz.act(obs))
        assert env.turn <= env.max_questions + 2 and "success" in env.info
        assert env.info["errors"][0]["parse"] + env.info["errors"][0]["rule"] > 0


def test_registry_variants_and_agents() -> None:
    ids = {s.id for s in list_envs()}
    assert {"detective-v0", "detective-easy-v0", "detective-hard-v0"} <= ids
    assert isinstance(make_agent("detective-v0", "scripted", seed=1), DetectiveScripted)
    assert isinstance(make_agent("detective-v0", "random", seed=1), DetectiveRandom)
    assert len(make("detective-hard-v0").rules) > 200


def test_scripted_detective_solves_cases_and_beats_random() -> None:
    n = 60
    scripted = [_play("detective-v0", "scripted", s) for s in range(n)]
    rand = [_play("detective-v0", "random", s) for s in range(n)]
    wins_s = sum(e.info["success"] for e in scripted)
    wins_r = sum(e.info["success"] for e in rand)
    assert wins_s >= 0.95 * n
    assert sum(e.rewards[0] for e in scripted) > sum(e.rewards[0] for e in rand)
    _, p = fisher_exact([[wins_s, n - wins_s], [wins_r, n - wins_r]], alternative="greater")
    assert p < 1e-6, (wins_s, wins_r, p)


def test_llm_detective_on_tiny_model(tiny_model_spec: str) -> None:
    from selflab.envs.runner import EpisodeSpec, play

    llm = f"llm:{tiny_model_spec}"
    specs = [
        EpisodeSpec(f"d{i}", "detective-easy-v0", [llm], seed=i, env_kwargs={"max_questions": 3})
        for i in range(2)
    ]
    result = play(specs, agent_options={"llm": {"max_new_tokens": 8, "temperature": 1.0}})
    assert len(result.episodes) == 2 and all(e.outcome and "success" in e.info for e in result.episodes)
    steps = [s for e in result.episodes for s in e.steps]
    assert steps and all(s.raw_output is not None for s in steps)
    assert "DETECTIVE" in steps[0].prompt[0]["content"]
