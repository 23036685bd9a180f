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


def test_position_flip_rate_reads_verdicts_in_the_base_pairs_labels() -> None:
    """A judge that always names the verified-better side never flips under a position swap; the
    swapped unit's "A" is the base pair's "B", so raw labels must be mapped back before comparing."""
    from selflab.evalbench import metrics as M
    from selflab.evalbench.runner import perturbation_metrics

    units = build_units(load_items(8), BenchConfig(limit=8, per_perturbation=8, perturbations=["position"]))
    pairs = [u for u in units if u.mode == "pairwise"]
    assert any(u.perturbation == "position" for u in pairs)
    perfect = [JudgmentRecord(judge="perfect", unit=u, verdict=u.better) for u in pairs]
    always_a = [JudgmentRecord(judge="always-A", unit=u, verdict="A") for u in pairs]
    with M.boot_samples(10):
        assert perturbation_metrics(perfect, 0)["position"]["pairwise"]["flip_rate"]["value"] == 0.0
        assert perturbation_metrics(always_a, 0)["position"]["pairwise"]["flip_rate"]["value"] == 1.0


def test_jury_pointwise_threshold_is_its_members_scale_midpoint() -> None:
    """A rubric jury grades 0-5, so the benchmark must decide "correct" at score > 2.5, not at the
    1-5 fallback's 3: a jury that gives right answers 3 and wrong ones 2 is perfectly accurate."""
    from selflab.evalbench import metrics as M
    from selflab.evalbench.runner import make_judge, pointwise_metrics, run_judge
    from selflab.models.types import Completion

    cfg = BenchConfig(limit=4, perturbations=[], judges=["jury:seeds:2"])
    units = [u for u in build_units(load_items(4), cfg) if u.mode == "pointwise"]
    right = {u.response for u in units if u.correct}

    class Graded:  # direct mode: the verdict right after "Score:", 3 for right answers, 2 for wrong
        name = "graded"

        def generate(self, requests: list) -> list[Completion]:
            texts = [r.messages[-1].content for r in requests]
            return [Completion(text=" 3" if any(x in t for x in right) else " 2") for t in texts]

    model = Graded()
    recs = run_judge(make_judge("jury:seeds:2", model, cfg), units)
    with M.boot_samples(10):
        out = pointwise_metrics(recs, 0, 10)
    assert out["threshold"] == 2.5 and out["accuracy"]["value"] == 1.0


def test_judge_spec_options_may_hold_lists() -> None:
    """`rubric[scale=[1,5]]` is one option (a JSON list), not "scale=[1" and "5]"."""
    from selflab.evalbench.runner import parse_judge_spec

    assert parse_judge_spec("rubric[scale=[1,5],fence=none]") == (
        "rubric",
        {"scale": [1, 5], "fence": "none"},
    )
    assert parse_judge_spec("likelihood[scale=[0, 9]]") == ("likelihood", {"scale": [0, 9]})
    cfg = BenchConfig(judges=["rubric[scale=[1,5]]"], ablate_defences=True)
    kind, options = parse_judge_spec(judge_specs(cfg)[-1])
    assert kind == "rubric" and options["scale"] == [1, 5] and options["fence"] == "none"


@pytest.mark.parametrize("bad", [{"jury_sizes": []}, {"jury_sizes": [0, 3]}, {"max_new_tokens": 0}])
def test_bad_settings_fail_before_any_judging(bad: dict) -> None:
    """A majority study without jury sizes used to crash at the end of the run (max() of nothing)."""
    from selflab.evalbench.runner import check_config

    with pytest.raises(SelflabError, match="jury sizes|max_new_tokens") as e:
        check_config(BenchConfig(**bad))
    assert e.value.args and "at least 1" in str(e.value)
    check_config(BenchConfig(jury_sizes=[], majority=False))  # no study, no sizes needed


def test_abstentions_are_not_parse_failures_in_any_section() -> None:
    """The summary's top-level and per-perturbation failure rates used to count the disagreement
    policy's abstentions as failures while the pairwise section did not (1.0 next to 0.0)."""
    from selflab.evalbench import metrics as M
    from selflab.evalbench.runner import judge_summary

    cfg = BenchConfig(limit=4, per_perturbation=4, perturbations=["paraphrase"])
    units = [u for u in build_units(load_items(4), cfg) if u.mode == "pairwise"]
    assert any(u.perturbation == "paraphrase" for u in units)
    abstained = [
        JudgmentRecord(
            judge="j", unit=u, parse_error="abstained: orders disagree", details={"abstained": True}
        )
        for u in units
    ]
    with M.boot_samples(5):
        s = judge_summary(abstained, units, 0, 5)
    assert s["parse_failure_rate"]["value"] == 0.0
    assert s["pairwise"]["parse_failure_rate"]["value"] == 0.0
    assert s["perturbations"]["paraphrase"]["pairwise"]["parse_failure_rate"]["value"] == 0.0
