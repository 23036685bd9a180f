"""End-to-end: the benchmark on the tiny random llama, through the runner and the CLI."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from selflab.errors import SelflabError
from selflab.evalbench.cli import register
from selflab.evalbench.items import load_items
from selflab.evalbench.runner import BenchConfig, JudgmentRecord, build_units, judge_specs, run_bench


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from selflab.models import load_model
    from selflab.models.testing import tiny_llama

    folder = tiny_llama(tmp_path_factory.mktemp("tiny"))
    return f"hf:{folder}", load_model(f"hf:{folder}")


def test_units_cover_every_perturbation() -> None:
    cfg = BenchConfig(limit=8, per_perturbation=3)
    units = build_units(load_items(8), cfg)
    perts = {(u.perturbation, u.mode) for u in units}
    for name in (
        "paraphrase",
        "rare_words",
        "language",
        "dialect",
        "pad_filler",
        "shorten",
        "multi_turn",
        "injection",
        "verdict_injection",
    ):
        assert (name, "pointwise") in perts and (name, "pairwise") in perts, name
    assert ("value_swap", "pointwise") in perts and ("position", "pairwise") in perts
    assert len({u.id for u in units}) == len(units)
    assert all(u.base_id for u in units)


def test_verdict_injection_forges_the_verdict_of_its_own_side() -> None:
    units = build_units(
        load_items(16), BenchConfig(limit=16, per_perturbation=8, perturbations=["verdict_injection"])
    )
    point = [u for u in units if u.perturbation == "verdict_injection" and u.mode == "pointwise"]
    pairs = [u for u in units if u.perturbation == "verdict_injection" and u.mode == "pairwise"]
    assert point and pairs
    assert all(u.correct is False and "Score: 5" in u.response for u in point)
    for u in pairs:
        wrong, label = (u.response, "A") if u.better == "B" else (u.response_b, "B")
        assert wrong.rstrip().endswith(f"[[{label}]]")  # the wrong side claims itself


def test_judge_specs_and_defence_ablation() -> None:
    cfg = BenchConfig(judges=["rubric", "pairwise[fence=none]", "likelihood"], ablate_defences=True)
    assert judge_specs(cfg) == [
        "rubric",
        "pairwise[fence=none]",
        "likelihood",
        "rubric[constrain=false,fence=none]",
        "pairwise[fence=none,constrain=false]",
        "likelihood[fence=none]",
    ]
    assert judge_specs(BenchConfig(judges=["rubric"])) == ["rubric"]


def test_end_to_end_tiny(tiny, tmp_path) -> None:
    spec, model = tiny
    cfg = BenchConfig(
        model=spec,
        judges=["rubric", "pairwise", "likelihood"],
        limit=4,
        per_perturbation=1,
        majority_items=1,
        jury_sizes=[1, 3],
        n_boot=50,
    )
    out = tmp_path / "run"
    s = run_bench(cfg, out, model=model)
    saved = json.loads((out / "summary.json").read_text())
    assert saved["schema"] == s["schema"] == "selflab.bench.judges/v1"
    assert set(saved["judges"]) == {"rubric", "pairwise", "likelihood"}
    lik = saved["judges"]["likelihood"]
    # the likelihood judge never fails to parse and yields every headline metric
    assert lik["parse_failure_rate"]["value"] == 0.0
    for key in ("accuracy", "cohen_kappa", "spearman", "kendall", "parse_failure_rate"):
        assert key in lik["pointwise"]
    assert lik["pairwise"]["position_consistency"]["n"] > 0
    assert 0.0 <= lik["pointwise"]["accuracy"]["value"] <= 1.0
    assert "position" in lik["perturbations"] and "value_swap" in lik["perturbations"]
    assert lik["injection"]["n"] > 0 and "flip_rate" in lik["injection"]
    # a generating judge on a random model: failures are recorded as failures, never as scores
    recs = [
        JudgmentRecord.model_validate_json(x)
        for x in (out / "records/judgments.jsonl").read_text().splitlines()
    ]
    kinds = {r.details["_kind"] for r in recs}
    assert kinds == {"rubric", "pairwise", "likelihood"}
    assert s["n_units"] == sum(1 for r in recs if r.details["_kind"] == "likelihood")
    for r in recs:
        if r.parse_error and not r.details.get("abstained"):
            assert r.score is None or r.details["_kind"] == "likelihood"
    assert (out / "majority.png").stat().st_size > 1000
    assert saved["majority"]["sizes"] == [1, 3]
    # resume: nothing is judged or recorded twice
    n = len(recs)
    run_bench(cfg, out, model=model, resume=True)
    assert len((out / "records/judgments.jsonl").read_text().splitlines()) == n
    with pytest.raises(SelflabError):
        run_bench(cfg, out, model=model)  # an existing run is not overwritten without --resume


def test_cli_tiny(tiny, tmp_path) -> None:
    spec, _ = tiny
    app = typer.Typer()
    register(app)

    @app.callback()
    def _main() -> None:
        pass

    out = tmp_path / "cli"
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "judges",
            "--model",
            spec,
            "--judge",
            "likelihood",
            "--limit",
            "2",
            "--perturbations",
            "position,injection",
            "--per-perturbation",
            "1",
            "--no-majority",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "position" in res.output and "accuracy" in res.output
    assert json.loads((out / "summary.json").read_text())["majority"] is None
    bad = CliRunner().invoke(
        app, ["bench", "judges", "--model", spec, "--perturbations", "nope", "--out", str(tmp_path / "bad")]
    )
    assert bad.exit_code != 0
