"""Generated-data loop: proposal parsing and filters, safe arithmetic checking, majority vote,
data rules with hand-checked counts, and one full iteration on the tiny llama."""

from __future__ import annotations

from pathlib import Path

import pytest

from selflab.loops import generated_data as gd
from selflab.loops import proposals as pr
from selflab.loops.base import get_loop, open_run
from selflab.models.adapters import is_model_folder
from selflab.models.testing import tiny_llama
from selflab.runs import RunDir


def test_parse_question() -> None:
    assert pr.parse_question("QUESTION: What is 3 + 4? The answer is 7.") == "What is 3 + 4?"
    assert (
        pr.parse_question("Sure!\n**Question:** Tom has 5 cats. How many legs?")
        == "Tom has 5 cats. How many legs?"
    )
    assert pr.parse_question("Here you go:\nHow many is 2 * 9?\nAnswer: 18") == "How many is 2 * 9?"
    assert pr.parse_question("no question here") is None
    assert pr.parse_question("") is None


def test_check_expression() -> None:
    assert pr.check_expression("What is 12 * 7?") == ("12 * 7", 84.0)
    assert pr.check_expression("Calculate 100 / 4 - 5?") == ("100 / 4 - 5", 20.0)
    assert pr.check_expression("What is 7 x 6?") == ("7 * 6", 42.0)
    assert pr.check_expression("What is 7 / 2?") is None  # not a whole number
    assert pr.check_expression("What is 5 / 0?") is None
    assert pr.check_expression("What is 12?") is None  # no operation
    assert pr.check_expression("Tom has 3 apples and buys 4. How many?") is None  # a word problem
    assert pr.check_expression("What is __import__('os')?") is None
    assert pr.check_expression("What is 10 ** 10?") is None  # ** is not allowed


def test_filter_proposals_counts_every_rejection() -> None:
    raws = [
        ("p0", "i", "QUESTION: What is 12 + 30?"),
        ("p1", "i", "QUESTION: what is 12 + 30 ?"),  # duplicate after normalisation
        ("p2", "i", "I like apples."),  # no question
        ("p3", "i", "QUESTION: Why?"),  # too short
        ("p4", "i", "QUESTION: How many apples are in the big red basket?"),  # no number
        ("p5", "i", DEMO := pr.DEMONSTRATIONS[1]),  # copy of a demonstration
        ("p6", "i", "QUESTION: What is 5 + 6? Give the final number at the end of your answer."),  # leak
        ("p7", "i", "QUESTION: Ana has 4 bags with 6 pens each. How many pens?"),
        ("p8", "i", "QUESTION: 45 + 27 = 72."),  # a statement with its answer
    ]
    assert DEMO.startswith("QUESTION")
    out = pr.filter_proposals(
        raws, forbidden=["What is 5 + 6? Give the final number at the end of your answer."]
    )
    reasons = [p.reason for p in out]
    assert reasons == [
        "ok", "duplicate", "no question found", "too short", "no number in the question",
        "copy of a demonstration", "held-out evaluation prompt (leak)", "ok", "not a question",
    ]  # fmt: skip
    assert out[0].checkable and out[0].true_answer == 42.0
    assert out[7].valid and not out[7].checkable


def test_majority_vote() -> None:
    assert pr.majority_vote([3.0, 3.0, 4.0, None]) == (3.0, 2, False)
    assert pr.majority_vote([3.0, 4.0, None, None]) == (None, 1, True)  # tie
    assert pr.majority_vote([None, None]) == (None, 0, True)


def _sol(pid: str, q: str, i: int, ans: float | None, text: str | None = None, **kw: object) -> pr.Solution:
    return pr.Solution(proposal_id=pid, question=q, sample=i, response=text or f"so {ans}", answer=ans, **kw)


def test_build_examples_rules() -> None:
    props = pr.filter_proposals(
        [
            ("a", "inst a", "QUESTION: What is 2 + 2?"),
            ("b", "inst b", "QUESTION: Ann has 3 pens and 4 cups. Total?"),
            ("c", "inst c", "QUESTION: What is 9 * 9?"),
        ]  # fmt: skip
    )
    sols = [
        # a: majority 4 (3 of 4, right), one truncated copy of the majority
        _sol("a", "What is 2 + 2?", 0, 4.0, "2+2=4"),
        _sol("a", "What is 2 + 2?", 1, 4.0, "It is 4"),
        _sol("a", "What is 2 + 2?", 2, 4.0, "four is 4", finish_reason="length"),
        _sol("a", "What is 2 + 2?", 3, 5.0),
        # b: all four agree (7): too easy for the proposer, fine for the solver (not checkable)
        *[_sol("b", "Ann...", i, 7.0, f"7 ({i})") for i in range(4)],
        # c: a 2-2 tie -> no majority
        _sol("c", "What is 9 * 9?", 0, 81.0), _sol("c", "What is 9 * 9?", 1, 81.0),
        _sol("c", "What is 9 * 9?", 2, 80.0), _sol("c", "What is 9 * 9?", 3, 80.0),
    ]  # fmt: skip
    by: dict[str, list[pr.Solution]] = {}
    for s in sols:
        by.setdefault(s.proposal_id, []).append(s)
    votes = [pr.vote(p, by[p.id]) for p in props]
    assert [v.majority for v in votes] == [4.0, 7.0, None]
    assert votes[0].agreement == 0.75 and votes[0].majority_correct is True
    assert votes[2].no_majority and votes[2].majority_correct is False
    r = gd.build_examples(props, sols, votes, "majority", 0.5, keep_per_question=2, train_proposer=True)
    c = r.counts
    assert c["questions"] == 3 and c["dropped_no_majority"] == 1
    assert c["dropped_truncated_answer"] == 1
    assert c["solver_examples"] == 4  # a: 2 (the truncated one skipped), b: 2 of 4 (cap)
    assert (
        c["proposer_examples"] == 1 and c["proposer_skipped_not_intermediate"] == 2
    )  # only a is intermediate
    assert c["checkable_used"] == 1 and c["checkable_used_majority_right"] == 1
    proposer = [e for e in r.examples if e.source == "proposer"]
    assert proposer[0].prompt[0].content == "inst a" and proposer[0].response == "QUESTION: What is 2 + 2?"
    # verifier reward: only checkable questions, answers equal to the true value (c: 81 twice)
    r = gd.build_examples(props, sols, votes, "verifier", keep_per_question=2, train_proposer=False)
    assert r.counts["dropped_not_checkable"] == 1
    assert sorted(e.id for e in r.examples) == ["a#0", "a#1", "c#0"]  # c#1 repeats c#0 word for word
    # a higher agreement bar drops question a (0.75)
    r = gd.build_examples(props, sols, votes, "majority", 0.9, train_proposer=False)
    assert r.counts["dropped_low_agreement"] == 1 and r.counts["solver_examples"] == 2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def test_one_full_iteration(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The random tiny model writes no parsable question and no number: a wrapper rewrites each raw
    proposal into a checkable question (the real filters still run) and answers get a final number
    from their text length, so votes, data and training all have work to do."""
    from selflab.models import clear_cache, load_model
    from selflab.models.types import GenerationRequest

    real_filter = pr.filter_proposals

    def rewrite(raws, forbidden=()):  # type: ignore[no-untyped-def]
        fake = [
            (pid, inst, f"QUESTION: What is {i % 3} + {len(raw) % 4}?")
            for i, (pid, inst, raw) in enumerate(raws)
        ]
        return real_filter(fake, forbidden)

    monkeypatch.setattr(gd, "filter_proposals", rewrite)
    monkeypatch.setattr(gd, "final_number", lambda text: float(len(text) % 2))
    assert get_loop("generated-data") is gd.GeneratedDataLoop
    cfg = gd.GeneratedDataConfig.model_validate(
        dict(
            model=f"hf:{tiny}",
            iterations=1,
            proposals=6,
            samples=3,
            max_new_tokens=8,
            propose_max_new_tokens=8,
            eval_tasks=4,
            eval_max_new_tokens=8,
            consistency_samples=2,
            drop_truncated=False,
            train={"lora": True, "max_steps": 1, "batch_size": 2},
        )  # fmt: skip
    )
    metrics = open_run(gd.GeneratedDataLoop, tmp_path / "run", cfg, resume=False).run_loop()
    run = RunDir.open(tmp_path / "run")
    done = run.completed_stages()
    assert list(done) == ["iter-0.evaluate"] + [f"iter-1.{s}" for s in gd.GeneratedDataLoop.stages]
    props = run.records("iter-1.propose").read(pr.Proposal)
    valid = [p for p in props if p.valid]
    assert len(props) == 6 and valid and all(p.checkable for p in valid)
    assert done["iter-1.propose"].info["valid"] == len(valid)
    assert len(run.records("iter-1.solve").read(pr.Solution)) == 3 * len(valid)
    assert len(run.records("iter-1.vote").read(pr.Vote)) == len(valid)
    assert done["iter-1.build"].info["examples"] > 0 and done["iter-1.train"].info["steps"] == 1
    clear_cache()
    out = load_model(f"hf:{run.path / 'checkpoints' / 'iter-1'}").generate(
        [GenerationRequest.chat("x", max_new_tokens=2)]
    )
    assert out[0].error is None
    clear_cache()
    m1 = metrics[1].metrics
    assert {"heldout_accuracy", "majority_vote_accuracy", "self_consistency", "response_tokens",
            "gap_self_minus_objective"} <= set(m1)  # fmt: skip
    assert m1["heldout_accuracy"].estimate.n == 4 and m1["heldout_accuracy"].vs_baseline is not None
    assert "proposal_validity" in metrics[1].info


@pytest.mark.integration
def test_tiny_budget_on_embedded_model(tmp_path: Path) -> None:
    """The real model writes real proposals: the filters give a verdict with a reason for each, and
    the whole iteration runs (possibly with no valid question, which then carries the model forward)."""
    cfg = gd.GeneratedDataConfig.model_validate(
        dict(
            model="smollm2-135m",
            iterations=1,
            proposals=6,
            samples=2,
            max_new_tokens=24,
            eval_tasks=4,
            eval_max_new_tokens=24,
            consistency_samples=2,
            train={"lora": True, "max_steps": 1, "batch_size": 2},
        )  # fmt: skip
    )
    metrics = open_run(gd.GeneratedDataLoop, tmp_path / "run", cfg, resume=False).run_loop()
    run = RunDir.open(tmp_path / "run")
    props = run.records("iter-1.propose").read(pr.Proposal)
    assert len(props) == 6 and all(p.reason for p in props) and sum(len(p.raw) for p in props) > 30
    # a trained checkpoint (adapter or full weights), or the carried model when nothing was kept
    assert is_model_folder(run.path / "checkpoints" / "iter-1")
    assert metrics[-1].metrics["heldout_accuracy"].estimate.n == 4
