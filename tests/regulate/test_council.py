"""Council decisions on scripted models: every proposal, intervention and vote is recorded;
unparsable proposals are never accepted; the vote picks the plurality, ties to the lower number."""

from __future__ import annotations

from selflab.models.types import GenerationRequest
from selflab.regulate.constitution import load_constitution
from selflab.regulate.council import Council, Problem, members_from, parse_vote
from tests.regulate.scripted import Scripted, safety_rule


def _problems(n: int = 2) -> list[Problem]:
    c = load_constitution()
    return [
        Problem(id=f"p{i}", constitution=c, failure="A user sent X. The assistant complied.")
        for i in range(n)
    ]


def test_parse_vote() -> None:
    assert parse_vote(" 2", 3) == 2
    assert parse_vote(" #0 reject", 3) == 0
    assert parse_vote(" 7", 3) is None
    assert parse_vote(" none", 3) is None
    # a vote that names two candidates, or a principle id, is no vote for either
    assert parse_vote(" 1 or 2", 3) is None and parse_vote(" 2 (not 1)", 3) is None
    assert parse_vote(" P3", 3) is None and parse_vote(" #1 (fixes P3)", 3) == 1


def test_failed_model_calls_are_recorded_as_model_errors() -> None:
    """A generation error is recorded as such, not as an empty unparsable answer."""
    m = Scripted(
        lambda text, r: None if r.assistant_prefix == "OP:" and "safety" in text else safety_rule(text, r)
    )
    council = Council({"": m}, members_from(["safety", "helpfulness"]))
    d = council.decide("consortium", _problems(1), seed=1)[0]
    failed = [p for p in d.history if p.member == "safety"]
    assert failed and all(p.patch is None and (p.error or "").startswith("model error") for p in failed)
    m2 = Scripted(lambda text, r: None if r.assistant_prefix == "VOTE:" else safety_rule(text, r))
    d2 = Council({"": m2}, members_from(["safety", "helpfulness"])).decide(
        "consortium", _problems(1), seed=1
    )[0]
    assert d2.accepted is None and all(v.choice is None and v.error for v in d2.votes)


def test_single_consortium_debate_record_everything() -> None:
    m = Scripted(safety_rule)
    council = Council({"": m}, members_from(["safety", "helpfulness", "drafter"]))
    single = council.decide("single", _problems(), seed=1)
    assert all(d.accepted is not None and len(d.history) == 1 for d in single)
    cons = council.decide("consortium", _problems(), seed=1)
    assert all(len(d.votes) == 3 and d.tally == "3/3 for #1" for d in cons)
    deb = council.decide("debate", _problems(), seed=1, rounds=2)
    d = deb[0]
    assert len(d.history) == 9 and len(d.interventions) == 2 and d.accepted is not None
    assert {p.round for p in d.history} == {0, 1, 2}


def test_unparsable_proposals_are_never_accepted() -> None:
    def rule(text: str, req: GenerationRequest) -> str:
        return "I think we should be nicer." if req.assistant_prefix == "OP:" else " 1"

    council = Council({"": Scripted(rule)}, members_from(["safety", "drafter"]))
    for strategy in ("single", "consortium", "debate"):
        for d in council.decide(strategy, _problems(1), seed=0):  # type: ignore[arg-type]
            assert d.accepted is None and d.unparsable == len(d.history) > 0
            assert all(p.error for p in d.history)


def test_majority_reject_and_ties() -> None:
    votes = iter([" 0", " 0", " 1"] + [" 1", " 2", " 0"])

    def rule(text: str, req: GenerationRequest) -> str:
        if req.assistant_prefix == "VOTE:":
            return next(votes)
        return (
            safety_rule(text, req)
            if "safety" in text
            else " add\nID: NEW\nTEXT: Another good principle here.\nRATIONALE: r"
        )

    council = Council({"": Scripted(rule)}, members_from(["safety", "helpfulness", "drafter"]))
    first, second = council.decide("consortium", _problems(2), seed=0)
    assert first.accepted is None and "(reject)" in first.tally
    assert second.tally.endswith("for #0 (reject)")  # a three-way tie goes to the lowest number


def test_members_on_different_models() -> None:
    a, b = Scripted(safety_rule, "a"), Scripted(safety_rule, "b")
    council = Council({"": a, "b": b}, members_from(["safety", "drafter"], ["", "b"]))
    council.decide("consortium", _problems(3), seed=0)
    assert a.calls and b.calls
    assert all(len(batch) == 3 for batch in b.calls)  # one batched call per step per model


def test_constrained_proposals_carry_the_patch_regex() -> None:
    import re

    from selflab.regulate.patches import PATCH_REGEX

    m = Scripted(safety_rule)
    Council({"": m}, members_from(["safety", "drafter"]), constrain=True).decide("consortium", _problems(1))
    proposals = [r for batch in m.calls for r in batch if r.assistant_prefix == "OP:"]
    votes = [r for batch in m.calls for r in batch if r.assistant_prefix == "VOTE:"]
    assert proposals and all(
        r.sampling.constraint and r.sampling.constraint.value == PATCH_REGEX for r in proposals
    )
    # Votes are one candidate number, so a constrained vote always parses.
    from selflab.regulate.council import VOTE_CONSTRAINT

    assert votes and all(r.sampling.constraint == VOTE_CONSTRAINT for r in votes)
    assert all(re.fullmatch(VOTE_CONSTRAINT.value, v) for v in (" 0", "1", " 12"))
    scripted = safety_rule("", proposals[0])
    assert re.fullmatch(PATCH_REGEX, scripted)  # the regex accepts a well-formed proposal


def test_unparsable_revision_keeps_the_standing_proposal() -> None:
    def rule(text: str, req: GenerationRequest) -> str:
        if req.assistant_prefix == "OP:":
            return "garbage" if "OTHER PROPOSALS" in text else safety_rule(text, req) or ""
        return safety_rule(text, req) or ""

    d = Council({"": Scripted(rule)}, members_from(["safety", "drafter"])).decide("debate", _problems(1))[0]
    assert [p.patch is not None for p in d.history] == [True, True, False, False]
    assert len(d.candidates) == 2 and all(c.round == 0 for c in d.candidates)
    assert d.accepted is not None
