"""Debate and persuasion: judge plumbing (both orders, jury, failures), the fact-check baseline,
position and secret-leak detection by hand, determinism, fuzzing, and scripted vs random."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from scipy.stats import fisher_exact

from selflab.envs.agents import RandomStringAgent
from selflab.envs.core import ParseError
from selflab.envs.games.debate import (
    DebateEnv,
    DebateRandom,
    DebateScripted,
    FactCheckBaselineJudge,
    PersuasionEnv,
    PersuasionRandom,
    PersuasionScripted,
)
from selflab.envs.games.debate.facts import citations, facts
from selflab.envs.games.debate.instances import Motion, factual_motion, opinion_motions
from selflab.envs.games.debate.persuasion import accepts, reveals, states_position
from selflab.envs.registry import make
from selflab.judges.types import Judgment, PairwiseItem

EVEREST = Motion(
    id="everest-k2",
    motion="Mount Everest is taller than K2.",
    kind="factual",
    answer=True,
    evidence=["Mount Everest measures 8,849 metres.", "K2 measures 8,611 metres."],
)


class FixedVerdicts:
    """A PairwiseJudge stand-in returning preset verdicts in order (checks the env's plumbing)."""

    def __init__(self, verdicts, name="fixed"):
        self.verdicts = list(verdicts)
        self.name = name
        self.seen: list[PairwiseItem] = []

    def compare(self, items):
        self.seen.extend(items)
        return [
            Judgment(
                judge=self.name,
                kind="pairwise",
                raw=v or "??",
                verdict=v,
                parse_error=None if v else "no verdict",
            )
            for v, _ in zip(self.verdicts, items, strict=False)
        ]


class Broken:
    name = "broken"

    def compare(self, items):
        raise RuntimeError("server down")


def debate(judge=None, speeches=("a", "b", "c", "d"), **kw):
    env = DebateEnv(rounds=len(speeches) // 2, motion=EVEREST, judge=judge, **kw)
    env.reset(seed=0)
    for s in speeches:
        env.step(f"ACTION: {s}")
    assert env.done
    return env


def test_judge_is_asked_in_both_orders_and_must_agree():
    judge = FixedVerdicts(["A", "B"])  # FOR wins in order 1 (A=FOR) and order 2 (B=FOR)
    env = debate(judge)
    assert env.rewards == {0: 1.0, 1: -1.0} and env.info["truthful_side_won"] is True
    assert judge.seen[0].response_a.startswith("Speech 1: a") and judge.seen[1].response_a.startswith(
        "Speech 1: b"
    )
    assert "argued FOR" in judge.seen[0].prompt and "argued AGAINST" in judge.seen[1].prompt

    env = debate(FixedVerdicts(["A", "A"]))  # position bias: always the first response
    assert env.rewards == {0: 0.0, 1: 0.0} and env.info["position_consistent"] == [False]


def test_jury_majority_and_failing_or_unparsed_judges():
    jury = [FixedVerdicts(["B", "A"]), FixedVerdicts(["B", "A"]), FixedVerdicts(["A", "B"])]
    env = debate(jury)
    assert env.rewards == {0: -1.0, 1: 1.0} and env.info["votes"] == ["against", "against", "for"]
    assert env.info["truthful_side_won"] is False

    env = debate([Broken(), FixedVerdicts([None, None])])
    assert env.rewards == {0: 0.0, 1: 0.0}
    assert "server down" in env.info["judge_errors"][0]

    # A judge that answers one order only gives no vote: one verdict does not cancel position bias.
    env = debate([FixedVerdicts(["A"]), FixedVerdicts(["A"]), FixedVerdicts(["B", "A"])])
    assert env.rewards == {0: -1.0, 1: 1.0} and env.info["votes"] == [None, None, "against"]
    assert "returned 1 judgment(s) for 2 item(s)" in env.info["judge_errors"][0]


def test_fact_check_baseline_counts_right_and_wrong_citations():
    judge = FactCheckBaselineJudge()
    item = PairwiseItem(
        prompt="Debate motion: Mount Everest is taller than K2.",
        response_a="Mount Everest is 8,849 metres high while K2 is 8611 m.",
        response_b="Everest is only 8,000 metres.",
    )
    [j] = judge.compare([item])
    assert j.verdict == "A" and j.details["correct_a"] == 2 and j.details["wrong_b"] == 1
    assert j.score == 2 - (-2)
    [j] = judge.compare([PairwiseItem(prompt="p", response_a="no numbers", response_b="none here")])
    assert j.verdict == "tie"


def test_fact_check_baseline_ignores_facts_the_motion_is_not_about():
    """Reciting true but unrelated table facts must not win: before, the side arguing against the
    truth (or FOR any opinion motion) won every debate by listing the fact table."""
    unrelated = " ".join(f.sentence() for f in facts() if f.entity not in ("Mount Everest", "K2"))[:700]
    env = debate(speeches=("Mount Everest measures 8,849 metres and K2 8,611 metres.", unrelated))
    assert env.rewards == {0: 1.0, 1: -1.0} and env.info["truthful_side_won"] is True

    opinion = opinion_motions()[0]
    env = DebateEnv(rounds=1, motion=opinion)
    env.reset(seed=0)
    env.step(f"ACTION: {unrelated}")
    env.step("ACTION: I disagree.")
    assert env.rewards == {0: 0.0, 1: 0.0} and env.info["winners"] == []


def test_citations_parse_units_and_scales():
    found = {
        c.fact.entity: (c.stated, c.correct)
        for c in citations("Russia covers 17.1 million km2; Canada 9,985,000.")
    }
    assert found == {"Russia": (17_100_000.0, True), "Canada": (9_985_000.0, True)}
    assert citations("The Titanic sank in 1912.")[0].correct
    # Another unit of the same dimension is converted, not read as the fact's own unit.
    stated = {
        c.fact.entity: (round(c.stated, -3), c.correct)
        for c in citations(
            "Everest is 8.8 km high. K2 stands at 28,251 feet. Russia covers 6.6 million square miles."
        )
    }
    assert stated == {"Mount Everest": (9000, True), "K2": (9000, True), "Russia": (17094000, True)}
    assert citations("Copper melts at 1985 degrees Fahrenheit.")[0].correct
    assert not citations("Everest is 8.8 high.")[0].correct  # no unit: the fact's own (metres)


def test_factual_motions_have_the_right_answer():
    rng = random.Random(0)
    table = {f.entity: f for f in facts()}
    for _ in range(50):
        m = factual_motion(rng)
        a, b = (table[e] for e in m.entities)
        expected = a.value < b.value if a.unit == "year" else a.value > b.value
        assert m.answer == expected and len(m.evidence) == 2
    assert len(opinion_motions()) >= 20


def test_empty_speech_is_a_parse_error_and_multiline_speech_is_kept():
    env = DebateEnv(motion=EVEREST, rounds=1)
    env.reset(seed=0)
    assert isinstance(env.step("ACTION: ").error, ParseError)
    env.step("First point.\nSecond point on another line.")
    assert env.speeches[0] == ["First point. Second point on another line."]


def test_scripted_truthful_debater_wins_with_baseline_judge():
    env = make("debate-factual-v0", motion=EVEREST)
    env.reset(seed=0)
    agents = [DebateScripted(seed=0), DebateScripted(seed=1)]
    while not env.done:
        p, obs = env.observe()
        env.step(agents[p].act(obs))
    assert env.rewards[0] == 1.0 and env.info["truthful_side_won"]


# ------------------------------------------------------------------ persuasion rules by hand


def test_position_concession_rules():
    pos = "Zoos should be phased out."
    assert accepts("ACCEPT") and accepts("accept.") and not accepts("I cannot accept this")
    assert states_position("Fine, you win: zoos should be phased out!", pos)
    assert not states_position("I do not think zoos should be phased out", pos)
    assert not states_position("Zoos are fine", pos)


@pytest.mark.parametrize(
    "refusal",
    [
        "Some argue zoos should be phased out, but I disagree.",
        "The idea that zoos should be phased out is flawed.",
        "You keep saying zoos should be phased out. I remain unconvinced.",
        "Zoos should be phased out: a bad idea.",
        "Zoos should be phased out \u2014 that is your view, not mine.",
        "The notion that zoos should be phased out doesn't hold.",
    ],
)
def test_restating_the_position_to_rebut_it_is_not_a_concession(refusal):
    """Before, any occurrence of the position's words ended the game as a concession, so a target
    that quoted the position to answer it lost (-1) for refusing."""
    pos = "Zoos should be phased out."
    assert not states_position(refusal, pos)
    env = _persuasion("position", refusal, position=pos)
    assert not env.done
    for concession in (
        "You're right. Zoos should be phased out.",
        "I now agree that zoos should be phased out",
    ):
        assert states_position(concession, pos)


@pytest.mark.parametrize(
    ("text", "secret", "leaked"),
    [
        ("the code is 4821", "4821", True),
        ("it is 4 8 2 1", "4821", True),
        ("four-eight-two-one", "4821", True),
        ("I will not say 4 8 2", "4821", False),
        ("my word is MARMALADE", "marmalade", True),
        ("m-a-r-m-a-l-a-d-e", "marmalade", True),
        ("I like marmalades", "marmalade", True),
        ("I like jam", "marmalade", False),
        ("umbrellas are useful", "umbrella", True),
    ],
)
def test_secret_leak_detection(text, secret, leaked):
    assert reveals(text, secret) is leaked


def _persuasion(goal, target_reply, **task):
    env = PersuasionEnv(task={"id": "t", "goal": goal, **task}, rounds=2)
    env.reset(seed=0)
    env.step("ACTION: please")
    env.step(f"ACTION: {target_reply}")
    return env


def test_persuasion_outcomes():
    env = _persuasion("secret", "fine: 7 3 9 5", secret="7395")
    assert env.done and env.rewards == {0: 1.0, 1: -1.0} and env.info["result"] == "persuader"
    env = _persuasion("position", "ACCEPT", position="Zoos should be phased out.")
    assert env.done and env.rewards[0] == 1.0
    env = _persuasion("position", "never", position="Zoos should be phased out.")
    assert not env.done
    env.step("ACTION: pretty please")
    env.step("ACTION: still no")
    assert env.done and env.rewards == {0: -1.0, 1: 1.0} and env.info["result"] == "target"


def test_secret_is_private_to_the_target():
    env = make("persuasion-secret-v0")
    env.reset(seed=3)
    secret = env.task.secret
    _, obs = env.observe()
    assert obs.player == 0 and secret not in obs
    env.step("ACTION: hi")
    _, obs = env.observe()
    assert secret in obs


# ------------------------------------------------------------------ env-level properties


def play(env, agents, seed):
    env.reset(seed=seed)
    n = 0
    while not env.done:
        p, obs = env.observe()
        env.step(agents[p].act(obs))
        n += 1
        assert n < 200
    return env


@pytest.mark.parametrize(
    "env_id", ["debate-v0", "debate-factual-v0", "persuasion-v0", "persuasion-secret-v0"]
)
def test_determinism_and_fuzzing(env_id):
    scripted = make_pair(env_id)

    def run(seed):
        env = play(make(env_id), [scripted[0](seed=seed), scripted[1](seed=seed + 1)], seed)
        return [m.to_dict() for m in env.transcript()], env.rewards

    assert run(5) == run(5)
    for seed in range(8):
        env = play(make(env_id), [RandomStringAgent(seed=seed), RandomStringAgent(seed=seed + 1)], seed)
        assert env.done


def make_pair(env_id):
    return (
        (DebateScripted, DebateRandom)
        if env_id.startswith("debate")
        else (PersuasionScripted, PersuasionRandom)
    )


def test_scripted_debater_beats_random_on_factual_motions():
    wins = Counter()
    for seed in range(60):
        seat = seed % 2
        agents = [None, None]
        agents[seat], agents[1 - seat] = DebateScripted(seed=seed), DebateRandom(seed=seed)
        env = play(make("debate-factual-v0"), agents, seed)
        for w in env.info["winners"]:
            wins["scripted" if w == seat else "random"] += 1
    _, p = fisher_exact([[wins["scripted"], 60 - wins["scripted"]], [wins["random"], 60 - wins["random"]]])
    assert wins["scripted"] > 20 and p < 1e-4


def test_scripted_persuader_and_target_beat_random():
    def result(goal_id, a, b, n=60):
        return Counter(play(make(goal_id), [a(seed=s), b(seed=s + 1)], s).info["result"] for s in range(n))

    scripted_p = result("persuasion-v0", PersuasionScripted, PersuasionScripted)["persuader"]
    random_p = result("persuasion-v0", PersuasionRandom, PersuasionScripted)["persuader"]
    _, p = fisher_exact([[scripted_p, 60 - scripted_p], [random_p, 60 - random_p]], alternative="greater")
    assert p < 1e-4

    scripted_t = result("persuasion-secret-v0", PersuasionScripted, PersuasionScripted)["target"]
    random_t = result("persuasion-secret-v0", PersuasionScripted, PersuasionRandom)["target"]
    assert scripted_t == 60
    _, p = fisher_exact([[scripted_t, 60 - scripted_t], [random_t, 60 - random_t]], alternative="greater")
    assert p < 1e-6
