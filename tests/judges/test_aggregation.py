"""Likelihood, jury, meta and debate logic on scripted models with hand-computed outcomes."""

from __future__ import annotations

import math

import pytest

from selflab.errors import ConfigError
from selflab.judges.debate import DebateJudge
from selflab.judges.jury import DualJudge, Jury, aggregate_scores, majority_verdict
from selflab.judges.likelihood import LikelihoodJudge, normalise
from selflab.judges.meta import MetaJudge
from selflab.judges.pairwise import PairwiseLLMJudge
from selflab.judges.rubric import RubricJudge
from selflab.judges.types import MetaItem, PairwiseItem, PointwiseItem
from selflab.models.types import SamplingParams

from .scripted import ScriptedModel, reply_block, single_reply

PAIR = PairwiseItem(prompt="What is 2+2?", response_a="5", response_b="4", id="p")


def test_normalise_hand_values() -> None:
    assert normalise([math.log(1), math.log(3)]) == pytest.approx([0.25, 0.75])
    assert normalise([-math.inf, 0.0]) == pytest.approx([0.0, 1.0])


def test_likelihood_pointwise_expectation_hand_computed() -> None:
    # P(Score: k) proportional to k: p_k = k/15 on a 1..5 scale, E = sum k^2/15 = 55/15.
    model = ScriptedModel(lambda t, r: None, scorer=lambda text, cont: math.log(int(cont.split()[-1])))
    [j] = LikelihoodJudge(model, scale=(1, 5)).judge([PointwiseItem(prompt="q", response="r", id="x")])
    probs = j.details["probs"]
    assert sum(probs.values()) == pytest.approx(1.0)
    assert probs["3"] == pytest.approx(3 / 15)
    assert j.score == pytest.approx(55 / 15) and 1 <= j.score <= 5
    assert j.ok and j.details["mode"] == 5 and model.calls == []  # no generation at all
    [(_, continuations)] = model.score_calls
    assert continuations == [f"Score: {k}" for k in range(1, 6)]


def test_likelihood_pairwise_picks_the_right_side_and_cancels_position_bias() -> None:
    def scorer(text: str, cont: str) -> float:
        # Prefers the reply containing "4" (p=0.8), plus a bias toward whatever is shown first.
        shown = reply_block(text.split("<user> ", 1)[1], "A" if cont == "[[A]]" else "B")
        return math.log((0.8 if "4" in shown else 0.2) * (1.5 if cont == "[[A]]" else 1.0))

    model = ScriptedModel(lambda t, r: None, scorer=scorer)
    [j] = LikelihoodJudge(model).compare([PAIR])
    assert j.verdict == "B" and j.score < 0.5
    # Hand values: order AB: P(A)=0.2*1.5/(0.3+0.8)=0.2727; order BA: P(first)=0.8*1.5/(1.2+0.2)=0.857.
    p_ab, p_ba_first = 0.3 / 1.1, 1.2 / 1.4
    assert j.details["p_a"] == pytest.approx((p_ab + (1 - p_ba_first)) / 2)
    assert j.details["first_position_preference"] == pytest.approx((p_ab + p_ba_first) / 2 - 0.5)


def test_likelihood_rejects_multidigit_scale() -> None:
    with pytest.raises(ConfigError):
        LikelihoodJudge(ScriptedModel(lambda t, r: None), scale=(1, 10))


def test_majority_and_aggregate_hand_cases() -> None:
    assert majority_verdict(["A", "A", "B"]) == "A"
    assert majority_verdict(["A", "B"]) == "tie"
    assert majority_verdict(["A", "B", "tie", "tie"]) == "tie"
    assert majority_verdict(["B", "B", "tie", "A"]) == "B"
    assert aggregate_scores([1, 2, 2, 5], "mean") == 2.5
    assert aggregate_scores([1, 2, 4, 5], "median") == 3.0
    assert aggregate_scores([1, 1, 4, 4, 5], "majority") == 1.0


def consistent_rule(verdict: str):
    """Always prefers the original response `verdict` ("A" = the reply "5"), whatever its position."""

    def rule(text: str, request) -> str:
        shown_first_is_a = reply_block(text, "A") == "5"
        return f"[[{verdict if shown_first_is_a else {'A': 'B', 'B': 'A'}[verdict]}]]"

    return rule


def fixed_judges(verdicts: list[str]) -> list[PairwiseLLMJudge]:
    return [PairwiseLLMJudge(ScriptedModel(consistent_rule(v), name=f"m{i}")) for i, v in enumerate(verdicts)]


def test_jury_pairwise_majority_with_votes() -> None:
    jury = Jury(fixed_judges(["B", "B", "A"]))
    [j] = jury.compare([PAIR])
    assert j.verdict == "B" and j.details["counts"] == {"A": 1, "B": 2, "tie": 0}
    assert len(j.details["votes"]) == 3 and j.score == pytest.approx(1 / 3)


def test_jury_shares_one_generate_call_per_model() -> None:
    def rule(text: str, request) -> str:
        if "<reply>" in text:
            return "Score: 4" if single_reply(text) == "4" else "Score: 1"
        return "[[B]]" if reply_block(text, "B") == "4" else "[[A]]"

    model = ScriptedModel(rule)
    members = [
        DualJudge(RubricJudge(model, persona=p), PairwiseLLMJudge(model, persona=p))
        for p in ("a judge", "a teacher", "a cook")
    ]
    jury = Jury(members)
    items = [PointwiseItem(prompt="2+2?", response="4"), PointwiseItem(prompt="2+2?", response="5")]
    out = jury.judge(items)
    # 3 members x 2 items, one call per round (reasoning, then constrained verdict).
    assert [len(c) for c in model.calls] == [6, 6]
    assert [j.score for j in out] == [4.0, 1.0]
    [pair] = jury.compare([PAIR])
    assert [len(c) for c in model.calls[2:]] == [6, 6]  # 3 members x 2 orders
    assert pair.verdict == "B" and pair.details["counts"]["B"] == 3
    # The personas really are in the members' prompts.
    assert {r.messages[0].content.split(".")[0] for r in model.calls[0]} == {
        "You are a judge",
        "You are a teacher",
        "You are a cook",
    }


def test_jury_ignores_failed_members_and_fails_only_when_all_fail() -> None:
    good = RubricJudge(ScriptedModel(lambda t, r: "Score: 3", name="good"))
    broken = RubricJudge(ScriptedModel(lambda t, r: None, name="broken"))
    [j] = Jury([good, broken, broken]).judge([PointwiseItem(prompt="q", response="r")])
    assert j.score == 3.0 and j.details["n_valid"] == 1
    [j] = Jury([broken]).judge([PointwiseItem(prompt="q", response="r")])
    assert j.score is None and j.parse_error == "no juror gave a valid score"


def test_jury_abstentions_do_not_vote() -> None:
    biased = PairwiseLLMJudge(ScriptedModel(lambda t, r: "[[A]]", name="biased"), on_disagree="abstain")
    [right] = fixed_judges(["B"])
    [j] = Jury([biased, biased, right]).compare([PAIR])
    assert j.verdict == "B" and j.details["n_valid"] == 1
    assert [v["abstained"] for v in j.details["votes"]] == [True, True, False]


META = MetaItem(
    prompt="What is 2+2?",
    response="5",
    judgment_a="The reply is correct. Score: 5",
    judgment_b="The sum is 4, not 5. Score: 1",
    id="m",
)


def test_meta_judge_both_orders() -> None:
    def rule(text: str, request) -> str:
        a = text[text.index("<judgment_A>") : text.index("</judgment_A>")]
        return "[[A]]" if "not 5" in a else "[[B]]"

    model = ScriptedModel(rule)
    [j] = MetaJudge(model).compare_judgments([META])
    assert j.kind == "meta" and j.verdict == "B" and j.details["consistent"]
    assert len(model.calls[0]) == 2
    [j] = MetaJudge(ScriptedModel(lambda t, r: "[[A]]"), on_disagree="abstain").compare_judgments([META])
    assert j.verdict is None and j.abstained


def test_debate_transcript_and_decision() -> None:
    def rule(text: str, request) -> str:
        if "Your argument (round" in text:
            side = "A" if "argue that reply A is better" in text else "B"
            return f"Reply {side} is right."
        return "Having read the debate, B is correct.\n[[B]]"

    model = ScriptedModel(rule)
    [j] = DebateJudge(model, rounds=2).compare([PAIR])
    transcript = j.details["transcript"]
    assert [t["speaker"] for t in transcript] == ["advocate for A", "advocate for B"] * 2
    assert [t["round"] for t in transcript] == [1, 1, 2, 2]
    # 2 rounds x 2 debaters, then the decision: reasoning and constrained verdict.
    assert j.verdict == "B" and len(model.calls) == 6
    # Round 2 debaters see round 1 arguments.
    assert "Reply A is right." in model.calls[2][0].messages[-1].content


def test_debate_pointwise_scores_and_records_failed_turns() -> None:
    def rule(text: str, request) -> str | None:
        if "Your argument" in text:
            return None if "critic" in text or "low score" in text else "It is fine."
        return "Score: 2"

    [j] = DebateJudge(ScriptedModel(rule), rounds=1).judge([PointwiseItem(prompt="q", response="r")])
    assert j.score == 2.0
    assert j.details["transcript"][1]["error"].startswith("model error")


def test_rubric_judge_with_failed_sample_still_averages_the_rest() -> None:
    def rule(text: str, request) -> str | None:
        return None if request.sampling.seed == 1 else f"Score: {request.sampling.seed + 1}"

    judge = RubricJudge(ScriptedModel(rule), samples=3, sampling=SamplingParams(temperature=1.0))
    [j] = judge.judge([PointwiseItem(prompt="q", response="r")])
    assert j.score == pytest.approx((1 + 3) / 2) and j.details["n_parsed"] == 2


def test_jury_records_its_scale_and_refuses_members_on_different_scales() -> None:
    """A jury's mean score is on its members' scale; readers (the judge benchmark thresholds at
    the scale's midpoint) must find that scale in the details, and 0-5 and 1-5 scores never mix."""
    model = ScriptedModel(lambda t, r: "Score: 3")
    [j] = Jury([RubricJudge(model), RubricJudge(model)]).judge([PointwiseItem(prompt="q", response="r")])
    assert j.score == 3.0 and j.details["scale"] == [0.0, 5.0]
    with pytest.raises(ConfigError, match="different scales"):
        Jury([RubricJudge(model), RubricJudge(model, template="rubric_correctness")])
