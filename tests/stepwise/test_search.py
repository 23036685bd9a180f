"""Guided search at equal generated tokens: the beam search never generates more tokens than its
per-problem budget, the run matches the beams' budget to what the sampled methods spent, the
summary reports tokens per problem per method and family, and the batched likelihood judge gives
the numbers of one-by-one scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selflab.stepwise import get_family, step_problems
from selflab.stepwise.judges import _p_correct, p_correct_many, step_prompt
from selflab.stepwise.search import MIN_STEP_TOKENS, SearchConfig, _Beam, _plan, beam_search
from selflab.stepwise.search_run import SearchRunConfig, beam_budgets, run_search


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from selflab.models.testing import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def model(tiny: Path):  # type: ignore[no-untyped-def]
    from selflab.models import load_model

    return load_model(f"hf:{tiny}")


def test_plan_shrinks_near_the_end_of_the_budget() -> None:
    a, b = _Beam(steps=["x"]), _Beam(steps=["y"])
    full = _plan([a, b], 4, 1000, 32)
    assert [(bm is a, e, cap) for bm, e, cap in full] == [
        (True, 0, 32),
        (False, 0, 32),
        (True, 1, 32),
        (False, 1, 32),
    ]
    tight = _plan([a, b], 4, 10, 32)
    assert len(tight) == 10 // MIN_STEP_TOKENS and sum(cap for *_, cap in tight) <= 10
    assert _plan([a, b], 4, MIN_STEP_TOKENS - 1, 32) == [] and _plan([], 4, 100, 32) == []


def test_beam_budgets() -> None:
    ps = step_problems("dates", 2, seed=0, split="heldout")
    cfg = SearchConfig(n=4, width=2, expand=2, max_new_tokens=20)
    assert beam_budgets(ps, {ps[0].id: 57}, cfg) == [57, 80]
    assert beam_budgets(ps, {ps[0].id: 57}, cfg.model_copy(update={"token_budget": 33})) == [33, 33]


@pytest.mark.parametrize("guide", ["step", "outcome"])
def test_beam_search_stays_within_its_token_budget(model, guide: str) -> None:  # type: ignore[no-untyped-def]
    fam = get_family("detective")
    ps = step_problems("detective", 2, seed=0, split="heldout")
    cfg = SearchConfig(n=4, width=2, expand=2, max_steps=4, step_max_new_tokens=8, max_new_tokens=16)
    budgets = [30, 13]
    rs = beam_search(model, fam, ps, cfg, guide, budgets)
    assert [r.method for r in rs] == [f"beam_{guide}"] * 2
    for r, b in zip(rs, budgets, strict=True):
        assert 0 <= r.tokens <= b and r.judge_calls >= 0  # a stop at once counts 0 tokens
    # same seed, same result
    again = beam_search(model, fam, ps, cfg, guide, budgets)
    assert [r.text for r in again] == [r.text for r in rs]


def test_batched_likelihood_judge_matches_one_by_one(model) -> None:  # type: ignore[no-untyped-def]
    fam = get_family("detective")
    p = step_problems("detective", 1, seed=0, split="train")[0]
    prompts = [step_prompt(fam, p, p.gold_steps, k) for k in range(len(p.gold_steps))]
    batched = p_correct_many(model, prompts)
    single = [_p_correct(model, q) for q in prompts]
    for (a, _), (b, _) in zip(batched, single, strict=True):
        assert a is not None and b is not None and abs(a - b) < 1e-4


def test_run_compares_methods_at_equal_tokens(tiny: Path, tmp_path: Path) -> None:
    cfg = SearchRunConfig(
        model=f"hf:{tiny}",
        families=["detective", "dates"],
        problems_per_family=2,
        n=2,
        width=1,
        expand=2,
        max_steps=3,
        max_new_tokens=12,
        step_max_new_tokens=6,
    )
    rows = run_search(cfg, str(tmp_path / "run"))
    by = {r["method"]: r for r in rows}
    assert set(by) == {"greedy", "majority", "bon_step", "bon_outcome", "beam_step", "beam_outcome"}
    for m in ("beam_step", "beam_outcome"):
        assert by[m]["tokens_per_problem"] <= by["majority"]["tokens_per_problem"]
        assert set(by[m]["tokens_per_problem_by_family"]) == {"detective", "dates"}
    records = [
        json.loads(x)
        for f in (tmp_path / "run" / "records").glob("*.jsonl")
        for x in f.read_text().splitlines()
    ]
    spent = {r["problem_id"]: r["tokens"] for r in records if r["method"] == "majority"}
    for r in records:
        if r["method"].startswith("beam"):
            assert r["tokens"] <= spent[r["problem_id"]]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary == rows
    # resume: nothing is redone, same table
    assert run_search(cfg, str(tmp_path / "run"), resume=True) == rows


@pytest.mark.parametrize("family", ["detective", "blocks", "dates"])
def test_constrained_decoding_writes_steps_the_verifier_reads(model, family: str) -> None:  # type: ignore[no-untyped-def]
    from selflab.stepwise.search import sample_full

    fam = get_family(family)
    ps = step_problems(family, 2, seed=0, split="heldout")
    cfg = SearchConfig(
        n=2, width=1, expand=2, max_steps=3, step_max_new_tokens=48, max_new_tokens=160, constrain=True
    )
    for p, group in zip(ps, sample_full(model, fam, ps, cfg), strict=True):
        for text, _ in group:
            finished = text.split("\n")[:-1]  # the last line may be cut off by max_new_tokens
            steps = [line for line in finished if line and not line.startswith("Answer:")]
            lab = fam.label(p, "\n".join(steps))
            assert all(s.ok is not None or "calendar date" in s.reason for s in lab.steps), text
    for r in beam_search(model, fam, ps, cfg, "step", [96, 96]):
        p = next(q for q in ps if q.id == r.problem_id)
        lab = fam.label(p, r.text)
        read = lab.steps if "Answer:" in r.text else lab.steps[:-1]  # the last line may be cut off
        assert all(s.ok is not None or "calendar date" in s.reason for s in read), (r.text, lab.steps)
